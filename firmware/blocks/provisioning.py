# provisioning: OCPP block B handlers: GetVariables and SetVariables over the device model.
# MIT licence.

import asyncio

import log
import ocppj
from firmware import device_model as dm_mod

_ACTUAL = "Actual"


_RESET_GRACE_MS = 500  # time for the Reset response to leave before the reboot


class Provisioning:
    def __init__(self, station):
        self.station = station
        self.session = station.session
        self.dm = station.dm
        self._reset_task = None
        router = station.router
        router.on("GetVariables", self.on_get_variables)
        router.on("SetVariables", self.on_set_variables)
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

    # -- Reset (B11, B12) -------------------------------------------------------------------
    # No transactions exist yet, so the station is always idle: OnIdle and Immediate both
    # reboot at once. Per-EVSE reset is not supported (EVSE.AllowReset is false).

    def on_reset(self, req):
        if "evseId" in req:
            return {"status": "Rejected", "statusInfo": {"reasonCode": "UnsupportedRequest"}}
        return {"status": "Accepted"}

    def after_reset(self, req, resp):
        if resp["status"] == "Accepted" and self._reset_task is None:
            self._reset_task = asyncio.create_task(self._reboot("RemoteReset"))

    async def _reboot(self, reason):
        await asyncio.sleep_ms(_RESET_GRACE_MS)
        await self.station.connection.close()
        self.station.reboot(reason)
