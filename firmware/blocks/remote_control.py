# remote_control: OCPP block F: TriggerMessage (F06) and UnlockConnector (F05). The
# transaction parts (RequestStart/StopTransaction) are the transactions block's. MIT licence.

import asyncio

from micropython import const

import log
import ocppj
from firmware.evse import FIXED_CABLE, UNLOCKED
from firmware.meter_values import sampled

_TAG = const("remote")
_ACCEPTED = {"status": "Accepted"}
_REJECTED = {"status": "Rejected"}
_NOT_IMPLEMENTED = {"status": "NotImplemented"}
_DEFAULT_MEASURANDS = const("Energy.Active.Import.Register")


class RemoteControl:
    def __init__(
        self,
        router,
        session,
        dm,
        clock,
        connection,
        evses,
        transactions,
        availability,
        spawn,
        firmware_status,
        log_status,
        certify=None,
    ):
        """firmware_status(), log_status(): (status, requestId) of the firmware update block
        for FirmwareStatusNotification and of the diagnostics block for LogStatusNotification,
        ("Idle", None) while the block is not loaded. certify(why): ask for a new certificate
        of the station's own key (the station certificate block); None: not offered."""
        self.session = session
        self.dm = dm
        self.clock = clock
        self.connection = connection
        self.evses = evses
        self.transactions = transactions
        self.availability = availability
        self.spawn = spawn
        self.firmware_status = firmware_status
        self.log_status = log_status
        self.certify = certify
        router.on("TriggerMessage", self.on_trigger, self._after_trigger)
        router.on("UnlockConnector", self.on_unlock)

    def _evse(self, n):
        evses = self.evses
        return evses[n - 1] if 1 <= n <= len(evses) else None

    # -- TriggerMessage ---------------------------------------------------------------------

    def on_trigger(self, req):
        msg = req["requestedMessage"]
        evse = req.get("evse")
        if evse is not None and (
            self._evse(evse["id"]) is None or evse.get("connectorId", 1) != 1
        ):
            return _REJECTED
        accepted = self.connection.registration == "Accepted"
        if msg == "BootNotification":
            return _REJECTED if accepted else _ACCEPTED  # F06.FR.17
        if not accepted:
            return _REJECTED  # while Pending nothing but a BootNotification may go out
        if msg in (
            "Heartbeat",
            "MeterValues",
            "FirmwareStatusNotification",
            "LogStatusNotification",
        ):
            return _ACCEPTED
        if msg == "StatusNotification":
            # Needs the connector (F06.FR.12 as relaxed by the errata).
            return _ACCEPTED if evse is not None and "connectorId" in evse else _REJECTED
        if msg == "TransactionEvent":
            txs = self.transactions.triggerable(evse["id"] if evse else None)
            return _ACCEPTED if txs else _REJECTED  # none running: Rejected (unconfirmed)
        if msg == "SignChargingStationCertificate" and self.certify is not None:
            return _ACCEPTED  # A03: a request under way already counts
        return _NOT_IMPLEMENTED

    def _after_trigger(self, req, resp):
        if resp["status"] != "Accepted":
            return
        msg = req["requestedMessage"]
        conn = self.connection
        if msg == "BootNotification":
            conn.trigger_boot()
        elif msg == "Heartbeat":
            conn.trigger_heartbeat()
        elif msg == "TransactionEvent":
            evse = req.get("evse")
            self.transactions.trigger(evse["id"] if evse else None)
        elif msg == "SignChargingStationCertificate":
            self.certify("TriggerMessage")
        else:
            evse = req.get("evse")
            self.spawn(self._send(msg, evse["id"] if evse else None))

    async def _send(self, msg, evse_id):
        try:
            if msg == "StatusNotification":
                await self.availability.send(self._evse(evse_id))
            elif msg == "MeterValues":
                for e in self.evses if evse_id is None else [self._evse(evse_id)]:
                    await self._meter_values(e)
            else:  # FirmwareStatusNotification, LogStatusNotification
                # The running update's or upload's status with its requestId, else Idle
                # without one.
                fn = self.firmware_status if msg[0] == "F" else self.log_status
                status, request_id = fn()
                payload = {"status": status}
                if request_id is not None:
                    payload["requestId"] = request_id
                await self.session.call(msg, payload)
        except (asyncio.TimeoutError, ocppj.CallError, ocppj.NotConnected) as e:
            log.warn(_TAG, "triggered %s: %r" % (msg, e))

    async def _meter_values(self, e):
        measurands = self.dm.setting("AlignedDataCtrlr/Measurands", _DEFAULT_MEASURANDS)
        values = sampled(e, measurands, "Trigger")
        if not values:
            log.warn(_TAG, "MeterValues: EVSE %d has no reading yet" % e.id)
            return
        mv = {"timestamp": self.clock.iso(), "sampledValue": values}
        await self.session.call("MeterValues", {"evseId": e.id, "meterValue": [mv]})

    # -- UnlockConnector --------------------------------------------------------------------

    async def on_unlock(self, req):
        e = self._evse(req["evseId"])
        if e is None or req["connectorId"] != 1:
            return {"status": "UnknownConnector"}
        txs = self.transactions
        if txs.busy(e) and txs.authorized(e):
            return {"status": "OngoingAuthorizedTransaction"}
        done = await e.unlock()  # the EVSE controller drives the lock
        if done == FIXED_CABLE:
            return {"status": "UnlockFailed", "statusInfo": {"reasonCode": "FixedCable"}}
        return {"status": "Unlocked" if done == UNLOCKED else "UnlockFailed"}
