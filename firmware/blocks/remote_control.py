# remote_control: OCPP block F: TriggerMessage (F06) and UnlockConnector (F05). The
# transaction parts (RequestStart/StopTransaction) are the transactions block's. MIT licence.

import asyncio

import log
import ocppj
from firmware.meter_values import sampled

_TAG = "remote"
_ACCEPTED = {"status": "Accepted"}
_REJECTED = {"status": "Rejected"}
_NOT_IMPLEMENTED = {"status": "NotImplemented"}
_DEFAULT_MEASURANDS = "Energy.Active.Import.Register"


class RemoteControl:
    def __init__(self, station):
        self.station = station
        station.router.on("TriggerMessage", self.on_trigger, self._after_trigger)
        station.router.on("UnlockConnector", self.on_unlock)

    def _evse(self, n):
        evses = self.station.evses
        return evses[n - 1] if 1 <= n <= len(evses) else None

    # -- TriggerMessage ---------------------------------------------------------------------

    def on_trigger(self, req):
        msg = req["requestedMessage"]
        evse = req.get("evse")
        if evse is not None and (
            self._evse(evse["id"]) is None or evse.get("connectorId", 1) != 1
        ):
            return _REJECTED
        accepted = self.station.connection.registration == "Accepted"
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
            txs = self.station.transactions.triggerable(evse["id"] if evse else None)
            return _ACCEPTED if txs else _REJECTED  # none running: Rejected (unconfirmed)
        return _NOT_IMPLEMENTED

    def _after_trigger(self, req, resp):
        if resp["status"] != "Accepted":
            return
        msg = req["requestedMessage"]
        conn = self.station.connection
        if msg == "BootNotification":
            conn.trigger_boot()
        elif msg == "Heartbeat":
            conn.trigger_heartbeat()
        elif msg == "TransactionEvent":
            evse = req.get("evse")
            self.station.transactions.trigger(evse["id"] if evse else None)
        else:
            evse = req.get("evse")
            self.station.spawn(self._send(msg, evse["id"] if evse else None))

    async def _send(self, msg, evse_id):
        st = self.station
        try:
            if msg == "StatusNotification":
                await st.availability.send(self._evse(evse_id))
            elif msg == "MeterValues":
                for e in st.evses if evse_id is None else [self._evse(evse_id)]:
                    await self._meter_values(e)
            elif msg == "FirmwareStatusNotification":
                # The running update's last status with its requestId, else Idle without one.
                fw = getattr(st, "firmware", None)
                status, request_id = fw.status() if fw is not None else ("Idle", None)
                payload = {"status": status}
                if request_id is not None:
                    payload["requestId"] = request_id
                await st.session.call(msg, payload)
            else:  # LogStatusNotification: no log upload exists, so Idle, no requestId
                await st.session.call(msg, {"status": "Idle"})
        except (asyncio.TimeoutError, ocppj.CallError, ocppj.NotConnected) as e:
            log.warn(_TAG, "triggered %s: %r" % (msg, e))

    async def _meter_values(self, e):
        try:
            measurands = self.station.dm.get("AlignedDataCtrlr/Measurands")
        except KeyError:
            measurands = _DEFAULT_MEASURANDS
        values = sampled(e, measurands, "Trigger")
        if not values:
            log.warn(_TAG, "MeterValues: EVSE %d has no reading yet" % e.id)
            return
        mv = {"timestamp": self.station.clock.iso(), "sampledValue": values}
        await self.station.session.call("MeterValues", {"evseId": e.id, "meterValue": [mv]})

    # -- UnlockConnector --------------------------------------------------------------------

    async def on_unlock(self, req):
        e = self._evse(req["evseId"])
        if e is None or req["connectorId"] != 1:
            return {"status": "UnknownConnector"}
        txs = self.station.transactions
        if txs.busy(e) and txs.authorized(e):
            return {"status": "OngoingAuthorizedTransaction"}
        lock = e.hw.lock
        if lock is None:
            if e.hw.cable_a is not None:
                return {"status": "UnlockFailed", "statusInfo": {"reasonCode": "FixedCable"}}
            return {"status": "Unlocked"}  # a socket without a lock holds nothing
        ok = await lock.unlock()
        log.info(_TAG, "EVSE %d unlock %s" % (e.id, "done" if ok else "failed"))
        return {"status": "Unlocked" if ok else "UnlockFailed"}
