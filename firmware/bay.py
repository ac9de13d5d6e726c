# bay: one EVSE's side of the transactions block: the authorization that lets it charge, the
# transaction open on it, its events and TxEnded samples. MIT licence.
"""A `Bay` per EVSE, owned by the transactions block (firmware/blocks/transactions.py).

What survives a power loss, per EVSE: the store document "tx<n>" (the open transaction,
rewritten with each event: its seqNo), and the TxEnded samples, appended to "tx<n>.mv" one line
each (see Transactions._recover).
"""

import json
import time

from micropython import const

import log
import rfc3339
import store
from firmware.meter_values import sampled
from firmware.queue import ENDED, STARTED, TRANSACTION_EVENT, UPDATED

_TAG = const("tx")
_TX = const("TxCtrlr/")
_SAMPLED = const("SampledDataCtrlr/")
_ALIGNED = const("AlignedDataCtrlr/")
_MAX_SAMPLES = const(48)  # TxEnded samples kept per transaction; beyond, every second goes
_STOP_WAIT_MS = const(8000)  # Ended waits this long for the contactor (it opens within 6 s)
READ_WAIT_MS = 3000  # ... and this long for a meter reading after it opened (public: the
# block waits as long for the last Ended before it decides a card)

# Start and stop points (TxCtrlr.TxStartPoint / TxStopPoint).
_EV_CONNECTED = const("EVConnected")
_AUTHORIZED = const("Authorized")
_POWER_PATH = const("PowerPathClosed")
ENERGY = "EnergyTransfer"
_AUTH_ENDS = const((_AUTHORIZED, _POWER_PATH))  # stop points that end with the authorization


class Bay:
    """One EVSE's authorization and transaction."""

    def __init__(self, txs, evse):
        self.txs = txs
        self.evse = evse
        self.n = evse.id
        self.token = None  # the IdTokenType authorizing charging here, or None
        self.group = None  # its groupIdToken's idToken, lower case, or None
        self.auth_ms = None  # ticks of the authorization while the EV is not plugged in
        self.invalid = False  # the CSMS deauthorized the token, the transaction goes on
        self.tx = None  # the open transaction (its store document), or None
        self.samples = []  # TxEnded meterValue entries of the open transaction
        self.recovering = False  # an open transaction of the last boot is still being ended
        self.stopping = None  # (trigger, reason, ticks): Ended waits for the contactor
        self.ending = None  # (trigger, reason, time, ticks): Ended waits for the meter
        self._cut_ms = None  # ticks when energy last stopped flowing in this transaction
        self._replugged = False  # an EV plugged in while Ended waited for the meter
        self.plugged = evse.plugged  # what the last look at the EVSE saw
        self.flowing = evse.energy_flowing
        self.faults = len(evse.faults)
        self._pending = {}  # fields for the next event: idToken, evse, remoteStartId
        self.profile = None  # RequestStart's chargingProfile, for smart charging (K05)
        self._due_update = 0  # ticks of the next periodic Updated
        self._due_sample = 0  # ticks of the next TxEnded sample

    # -- what the bay is --------------------------------------------------------------------

    @property
    def tx_id(self):
        return self.tx["id"] if self.tx else None

    def charging_state(self):
        e = self.evse
        if not e.plugged:
            return "Idle"
        if e.energy_flowing or (e.ev_requesting and e.offered_a > 0):
            return "Charging"
        if e.offered_a > 0:
            return "SuspendedEV"
        if self.token is not None and (self.invalid or e.faults or not e.available or e.limited):
            # authorized, and the EVSE decided to offer nothing (a fault, a limit below 6 A)
            return "SuspendedEVSE"
        return "EVConnected"

    def usable(self):
        e = self.evse
        return (
            e.available
            and not e.faults
            and not self.recovering
            and self.stopping is None
            and self.ending is None
            and self.txs.may_start()
        )

    def _permit(self):
        self.evse.permit(self.token is not None and not self.invalid)

    def drop_token(self):
        """No token authorizes charging here any more: energy stops."""
        self.token = self.group = self.auth_ms = None
        self.invalid = False
        self._permit()

    # -- authorization ----------------------------------------------------------------------

    def authorize(self, id_token, info, trigger=_AUTHORIZED, remote_id=None, reservation=None):
        """`id_token` (accepted with idTokenInfo `info`) may charge here from now on; the id
        of the `reservation` it used goes with the Started event."""
        self.token = id_token
        group = info.get("groupIdToken")
        self.group = group["idToken"].lower() if group else None
        self.invalid = False
        self.auth_ms = None if self.evse.plugged else time.ticks_ms()
        self._pending["idToken"] = id_token
        if remote_id is not None:
            self._pending["remoteStartId"] = remote_id
        if reservation is not None:
            self._pending["reservationId"] = reservation
        self._permit()
        log.info(_TAG, "EVSE %d authorized (%s)" % (self.n, trigger))
        if self.tx is not None:
            self.post(UPDATED, trigger)
        else:
            self.try_start(trigger)

    def deauthorize(self, trigger, reason, id_token=None):
        """The authorization ends (stop token, remote stop): energy stops; the transaction
        ends with it if a stop point goes with the authorization, else at its stop."""
        self.drop_token()
        if self.tx is None:
            self._pending = {}  # nothing started: the token goes unreported
            return
        if id_token is not None:
            self._pending["idToken"] = id_token
        if self.txs.stop_points(_AUTH_ENDS):
            self.stop(trigger, reason)
            return
        if self.tx.get("why") is None:
            self.tx["why"] = reason
        self.post(UPDATED, trigger)

    def stop(self, trigger, reason):
        """End the transaction once the energy is cut, so that Ended has the final values."""
        self.drop_token()
        if self.tx.get("why") is None:
            self.tx["why"] = reason
        if self.evse.energy_flowing:
            self.stopping = (trigger, reason, time.ticks_ms())  # see changed() and tick()
        else:
            self.end(trigger, reason)

    # -- the transaction --------------------------------------------------------------------

    def try_start(self, trigger):
        """Open a transaction if a start point is met now."""
        if self.tx is not None or not self.usable():  # usable: also may_start()
            return
        if self.token is None and self.txs.held(self.n):
            return  # kept for a reservation's driver: another's EV plugged in gets nothing
        e = self.evse
        met = {
            _EV_CONNECTED: e.plugged,
            _AUTHORIZED: self.token is not None,
            _POWER_PATH: e.plugged and self.token is not None,
            ENERGY: e.energy_flowing,
        }
        if not any(met.get(p) for p in self.txs.points(_TX + "TxStartPoint")):
            return
        txs = self.txs
        now = txs.clock.now()
        self.tx = {"id": txs.new_tx_id(), "seq": 0, "t0": now, "why": None, "st": None}
        self._pending["evse"] = {"id": self.n, "connectorId": 1}
        begin = self.meter("TxStartedMeasurands", "Transaction.Begin", now)
        self.samples = []
        self._sample("Transaction.Begin", now)
        ticks = time.ticks_ms()
        self._due_update = ticks
        self._due_sample = ticks
        self.txs.schedule(self)
        log.info(_TAG, "EVSE %d transaction %s started (%s)" % (self.n, self.tx["id"], trigger))
        self.post(STARTED, trigger, begin)

    def end(self, trigger, reason, now=None):
        """Ended, with the TxEnded samples and a Transaction.End one; the bay is free again.

        The end value must include the energy up to the contactor's opening: when the last
        reading is older than that, Ended waits (at most READ_WAIT_MS) for the next one."""
        tx = self.tx
        if tx is None or self.ending is not None:
            return
        now = self.txs.clock.now() if now is None else now
        if not self._fresh():
            if tx.get("why") is None:
                tx["why"] = reason  # the first reason holds, whatever comes meanwhile
            self.ending = (trigger, reason, now, time.ticks_ms())  # see tick()
            return
        self._finish(trigger, reason, now)

    def _fresh(self):
        """The meter's last reading was taken after the energy last stopped."""
        cut, read = self._cut_ms, self.evse.reading_ms
        return cut is None or (read is not None and time.ticks_diff(read, cut) > 0)

    def _finish(self, trigger, reason, now):
        tx = self.tx
        reason = tx.get("why") or reason
        self._sample("Transaction.End", self.txs.clock.now(), keep=False)
        self.post(ENDED, trigger, self.samples, reason=reason, now=now)
        log.info(_TAG, "EVSE %d transaction %s ended (%s)" % (self.n, tx["id"], reason))
        self.tx = None
        self.stopping = self.ending = self._cut_ms = None
        self.samples = []
        self._pending = {}
        self.txs.forget(self)
        if not self.evse.plugged:
            self.drop_token()
        elif self.token is not None:
            self._pending["idToken"] = self.token  # it authorizes the next transaction too
        self.evse.touch()  # the listeners (availability, a scheduled reset) look again
        if self._replugged:
            self._replugged = False
            if self.evse.plugged:
                self.try_start("CablePluggedIn")

    def post(self, kind, trigger, meter=None, reason=None, now=None):
        """One TransactionEvent of the open transaction, on flash when this returns."""
        tx = self.tx
        info = {"transactionId": tx["id"]}
        state = self.charging_state()
        if state != tx["st"]:
            info["chargingState"] = tx["st"] = state
        if reason is not None:
            info["stoppedReason"] = reason
        rid = self._pending.pop("remoteStartId", None)
        if rid is not None:
            info["remoteStartId"] = rid
        txs = self.txs
        p = {
            "eventType": kind,
            "timestamp": rfc3339.format(txs.clock.now() if now is None else now),
            "triggerReason": trigger,
            "seqNo": tx["seq"],
            "transactionInfo": info,
        }
        for k in ("idToken", "evse", "reservationId"):
            v = self._pending.pop(k, None)
            if v is not None:
                p[k] = v
        if meter:
            p["meterValue"] = meter
        tx["seq"] += 1
        if not txs.queue.post(TRANSACTION_EVENT, p, tx["id"], kind):
            log.error(_TAG, "%s %d of %s lost: queue full" % (kind, p["seqNo"], tx["id"]))
        if kind == ENDED:
            txs.store.remove(self.doc)
            store.remove_file(self.samples_path)
        else:
            txs.store.save(self.doc, tx)  # after the post: a power loss between the two
            # leaves the event in the queue, where recovery finds its seqNo

    @property
    def doc(self):
        return "tx%d" % self.n

    @property
    def samples_path(self):
        return "%s/tx%d.mv" % (self.txs.store.root, self.n)

    # -- meter values -----------------------------------------------------------------------

    def meter(self, name, context, now, ctrlr=_SAMPLED):
        """[meterValue] of the measurands in `ctrlr + name` at `now`, or None (no reading)."""
        values = sampled(self.evse, self.txs.dm.setting(ctrlr + name, ""), context)
        if not values:
            return None
        return [{"timestamp": rfc3339.format(now), "sampledValue": values}]

    def _sample(self, context, now, ctrlr=_SAMPLED, keep=True):
        """Add a TxEnded sample; `keep`: also on flash (an end sample goes out at once)."""
        mv = self.meter("TxEndedMeasurands", context, now, ctrlr)
        if mv is None:
            return
        self.samples.append(mv[0])
        if not keep:
            return
        if len(self.samples) > _MAX_SAMPLES:
            # Thin out: keep the first, drop every second of the rest, rewrite the file.
            self.samples = self.samples[:1] + self.samples[2::2]
            store.write_lines(self.samples_path, self.samples)
        else:
            store.append_line(self.samples_path, mv[0])

    def tick(self, ticks, now, updated_s, ended_s):
        """Timers of this bay: EVConnectionTimeOut, periodic Updated, TxEnded samples."""
        if self.auth_ms is not None and not self.evse.plugged:
            limit_ms = self.txs.dm.setting(_TX + "EVConnectionTimeOut", 120) * 1000
            if time.ticks_diff(ticks, self.auth_ms) >= limit_ms:
                self._timed_out()
        if self.tx is None:
            return
        if self.ending is not None:
            if self._fresh() or time.ticks_diff(ticks, self.ending[3]) >= READ_WAIT_MS:
                trigger, reason, t = self.ending[:3]
                self._finish(trigger, reason, t)
            return
        if self.stopping is not None:
            if time.ticks_diff(ticks, self.stopping[2]) >= _STOP_WAIT_MS:
                log.warn(_TAG, "EVSE %d: energy still flowing, ending anyway" % self.n)
                self.end(self.stopping[0], self.stopping[1])
            return
        if updated_s > 0 and time.ticks_diff(ticks, self._due_update) >= updated_s * 1000:
            self._due_update = _next(self._due_update, updated_s, ticks)
            mv = self.meter("TxUpdatedMeasurands", "Sample.Periodic", now)
            if mv:
                self.post(UPDATED, "MeterValuePeriodic", mv)
        if ended_s > 0 and time.ticks_diff(ticks, self._due_sample) >= ended_s * 1000:
            self._due_sample = _next(self._due_sample, ended_s, ticks)
            self._sample("Sample.Periodic", now)
        self._check_energy_cap()

    def _timed_out(self):
        log.info(_TAG, "EVSE %d: no EV within EVConnectionTimeOut" % self.n)
        self.drop_token()
        if self.tx is None:
            self._pending = {}
            return
        if self.txs.stop_points(_AUTH_ENDS):
            self.end("EVConnectTimeout", "Timeout")
        else:
            self.post(UPDATED, "EVConnectTimeout")

    def clock_sample(self, boundary, tx_ended):
        """At a clock-aligned boundary: the Updated with MeterValueClock, or for TxEnded the
        aligned sample."""
        if self.tx is None:
            return
        if tx_ended:
            self._sample("Sample.Clock", boundary, _ALIGNED)
            return
        mv = self.meter("Measurands", "Sample.Clock", boundary, _ALIGNED)
        if mv:
            self.post(UPDATED, "MeterValueClock", mv)

    def _check_energy_cap(self):
        """After the CSMS deauthorized the token and StopTxOnInvalidId is false: charging goes
        on until the transaction has delivered MaxEnergyOnInvalidId Wh."""
        if not self.invalid or not self.evse.permitted:
            return
        r = self.evse.reading
        cap = self.txs.dm.setting(_TX + "MaxEnergyOnInvalidId", 0)
        if r is None or r.energy_wh - self.tx.get("e0", r.energy_wh) >= cap:
            self.evse.permit(False)
            log.info(_TAG, "EVSE %d: MaxEnergyOnInvalidId reached" % self.n)

    # -- what the EVSE did ------------------------------------------------------------------

    def changed(self):
        """The EVSE's state changed (called at the end of its safety-loop tick)."""
        e = self.evse
        plugged, flowing, faults = e.plugged, e.energy_flowing, len(e.faults)
        was_plugged, was_flowing, had = self.plugged, self.flowing, self.faults
        self.plugged, self.flowing, self.faults = plugged, flowing, faults
        if was_flowing and not flowing:
            self._cut_ms = time.ticks_ms()
        if self.ending is not None and plugged and not was_plugged:
            self._replugged = True  # a new session's plug-in: looked at once Ended is out
        if self.recovering or self.ending is not None:
            return
        if plugged and not was_plugged:
            self.auth_ms = None
            if self.tx is None:
                self.try_start("CablePluggedIn")
            else:
                self._pending["evse"] = {"id": self.n, "connectorId": 1}
                self.post(UPDATED, "CablePluggedIn")
            return
        if was_plugged and not plugged:
            self._unplugged()
            return
        if self.tx is None:
            if flowing and not was_flowing:
                self.try_start("ChargingStateChanged")
            return
        if self.stopping is not None:
            if not flowing:
                self.end(self.stopping[0], self.stopping[1])
            return
        if was_flowing and not flowing and self.txs.stop_points((ENERGY,)):
            stopped = "StoppedByEV" if e.cp == "B" else "Other"
            self.end("ChargingStateChanged", stopped)
            return
        if faults > had:
            self.post(UPDATED, "AbnormalCondition")
        elif self.charging_state() != self.tx["st"]:
            self.post(UPDATED, "ChargingStateChanged")

    def _unplugged(self):
        # StopTxOnEVSideDisconnect is true (read-only): the session ends with the cable.
        self.drop_token()
        if self.tx is None:
            self._pending = {}  # an authorization that started nothing goes unreported
        self.end("EVCommunicationLost", "EVDisconnected")

    # -- power loss -------------------------------------------------------------------------

    def load_samples(self):
        out = []
        try:
            with open(self.samples_path) as f:
                for line in f:
                    try:
                        mv = json.loads(line)
                    except ValueError:
                        continue  # a torn last line
                    if _sample_ok(mv):
                        out.append(mv)
                    else:
                        log.error(_TAG, "EVSE %d: a damaged sample dropped" % self.n)
        except OSError:
            pass
        return out


def _sample_ok(mv):
    """A meterValue entry as `_sample` writes it (read back from flash)."""
    return (
        type(mv) is dict
        and type(mv.get("timestamp")) is str
        and type(mv.get("sampledValue")) is list
        and len(mv["sampledValue"]) > 0
        and all(type(sv) is dict and "value" in sv for sv in mv["sampledValue"])
    )


def whole(tx):
    """A transaction document as `post` writes it (it may come from a damaged flash)."""
    return (
        type(tx) is dict
        and type(tx.get("id")) is str
        and 0 < len(tx["id"]) <= 36
        and type(tx.get("seq")) is int
        and tx["seq"] >= 0
    )


def _next(last, interval_s, ticks):
    """The start of the next sampling interval: one interval on, so the ticks' lateness does
    not add up; `ticks` itself when even that is already past (a changed interval, a stall)."""
    due = time.ticks_add(last, interval_s * 1000)
    return due if time.ticks_diff(ticks, due) < interval_s * 1000 else ticks
