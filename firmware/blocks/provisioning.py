# provisioning: OCPP block B handlers: GetVariables and SetVariables over the device model, and
# Reset. The reports (GetBaseReport, GetReport) are in reports.py. MIT licence.

from micropython import const

import log
import ocppj
from firmware import device_model as dm_mod

_ACTUAL = const("Actual")
# An Immediate reset waits this long at most for the sessions to end: the EVSE's stop (the
# contactor opens within 6 s without the EV's help) plus a meter reading after it.
_ENDED_WAIT_MS = const(12000)


class Provisioning:
    def __init__(self, router, session, dm, connection, transactions, evses, spawn, reboot):
        """reboot(reason): the station's (async) reboot, main.Station.reboot."""
        self.session = session
        self.dm = dm
        self.connection = connection
        self.transactions = transactions
        self.evses = evses
        self.spawn = spawn
        self.reboot = reboot
        self._reset_reason = None  # the boot reason of a reset under way, else None
        self._rebooting = False
        router.on("GetVariables", self.on_get_variables)
        router.on("SetVariables", self.on_set_variables, self.after_set_variables)
        router.on("Reset", self.on_reset, self.after_reset)

    def _limit(self, msg, items):
        """Enforce DeviceDataCtrlr ItemsPerMessage / BytesPerMessage (B06.FR.16/17, B08)."""
        if len(items) > self.dm.get_int("DeviceDataCtrlr/ItemsPerMessage:" + msg):
            raise ocppj.CallError(ocppj.OCCURRENCE_CONSTRAINT_VIOLATION, "ItemsPerMessage")
        if self.session.in_len > self.dm.get_int("DeviceDataCtrlr/BytesPerMessage:" + msg):
            raise ocppj.CallError(ocppj.FORMAT_VIOLATION, "BytesPerMessage")

    def _lookup(self, item):
        """(result skeleton echoing the request item, lookup status, declaration or None)."""
        r = {"component": item["component"], "variable": item["variable"]}
        if "attributeType" in item:
            r["attributeType"] = item["attributeType"]
        return (r,) + self.dm.find(item["component"], item["variable"])

    def on_get_variables(self, req):
        items = req["getVariableData"]
        self._limit("GetVariables", items)
        return {"getVariableResult": [self._get(item) for item in items]}

    def _get(self, item):
        r, status, d = self._lookup(item)
        if d is not None:
            if item.get("attributeType", _ACTUAL) != _ACTUAL:
                status = "NotSupportedAttributeType"
            elif d[1][1] == "x":
                status = dm_mod.REJECTED  # WriteOnly: never reported
            else:
                r["attributeValue"] = self.dm.get(d[0])[: dm_mod.MAX_VALUE]
        r["attributeStatus"] = status
        return r

    def on_set_variables(self, req):
        items = req["setVariableData"]
        self._limit("SetVariables", items)
        return {"setVariableResult": [self._set(item) for item in items]}

    def _set(self, item):
        r, status, d = self._lookup(item)
        reason = None
        if d is not None:
            value = item["attributeValue"]
            if item.get("attributeType", _ACTUAL) != _ACTUAL:
                status = "NotSupportedAttributeType"
            elif d[1][1] == "r":
                status, reason = dm_mod.REJECTED, "ReadOnly"
            else:
                why = self.dm.check(d, value)
                if why:
                    status, reason = dm_mod.REJECTED, "InvalidValue"
                    log.info("dm", "SetVariables %s rejected: %s" % (d[0], why))
                else:
                    status = self.dm.set(d[0], value)
                    log.info("dm", "%s changed" % d[0])  # never the value: it may be secret
        r["attributeStatus"] = status
        if reason:
            r["attributeStatusInfo"] = {"reasonCode": reason}
        return r

    def after_set_variables(self, req, resp):
        # The answer is on the wire: a new BasicAuthPassword may be put to use now (A01).
        self.connection.credentials_sent()

    # -- Reset (B11, B12) -------------------------------------------------------------------
    # Idle: Accepted, reboot (RemoteReset). OnIdle during a session: Scheduled, reboot when the
    # last session ends (ScheduledReset). Immediate during a session: Accepted, sessions
    # stopped, reboot (RemoteReset). Per-EVSE reset is not supported: EVSE.AllowReset is false.

    def on_reset(self, req):
        if "evseId" in req:
            return {"status": "Rejected", "statusInfo": {"reasonCode": "UnsupportedRequest"}}
        if req["type"] == "OnIdle" and not self.transactions.idle():
            return {"status": "Scheduled"}
        return {"status": "Accepted"}

    def after_reset(self, req, resp):
        if self._rebooting:
            return  # a reset is already on its way
        if resp["status"] == "Scheduled":
            if self._reset_reason is None:
                log.info("reset", "scheduled: waiting for the sessions to end")
                for e in self.evses:
                    e.on_change.append(self._idle_check)
            self._reset_reason = "ScheduledReset"
        elif resp["status"] == "Accepted":
            # Immediate (also over a scheduled one): the transactions end as any stop does
            # (energy off, then Ended with a reading taken after the cut, queued on flash),
            # then the reboot.
            self._reset_reason = "RemoteReset"
            self._rebooting = True
            txs = self.transactions
            txs.stop_all("ResetCommand", "ImmediateReset")
            self.spawn(self._reboot(txs.ended(_ENDED_WAIT_MS)))

    def _idle_check(self, evse):
        if self.transactions.idle() and not self._rebooting:
            self._rebooting = True
            self.spawn(self._reboot())

    async def _reboot(self, first=None):
        self._rebooting = True
        if first is not None:
            await first
        await self.reboot(self._reset_reason)
