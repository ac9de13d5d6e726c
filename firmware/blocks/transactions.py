# transactions: OCPP block E (transactions), the transaction half of F (RequestStart/Stop-
# Transaction, GetTransactionStatus) and of J (meter values): who may charge on which EVSE,
# and what the CSMS hears of it, durably. MIT licence.
"""Transactions.

Each EVSE has a `Bay`: the authorization that lets it charge (a token, with its group) and the
transaction open on it. A transaction starts when a TxStartPoint condition becomes true and
ends when a TxStopPoint condition ends (ocpp201-station.md §2.5); every TransactionEvent is
posted to the station's durable queue, which sends them in order and retries them. Charging is
permitted to the EVSE's state machine only while a token authorizes it.

What survives a power loss, per EVSE: the store document "tx<n>" (the open transaction,
rewritten with each event: its seqNo), and the TxEnded samples, appended to "tx<n>.mv" one line
each. At boot an open transaction is ended with stoppedReason PowerLoss (Reboot after a reset
the station did not plan, such as the watchdog), its seqNo continuing.
"""

import asyncio
import binascii
import json
import os
import time

from micropython import const

import log
import rfc3339
from firmware.auth_cache import token_key
from firmware.blocks.authorization import allowed
from firmware.meter_values import sampled
from firmware.queue import ENDED, STARTED, TRANSACTION_EVENT, UPDATED

_TAG = "tx"
_TX = "TxCtrlr/"
_SAMPLED = "SampledDataCtrlr/"
_ALIGNED = "AlignedDataCtrlr/"
_TICK_MS = const(1000)  # timers (sampling, clock alignment, plug-in timeout) run this often
_MAX_SAMPLES = const(48)  # TxEnded samples kept per transaction; beyond, every second goes
_METER_WAIT_MS = const(5000)  # at boot, how long an ended transaction waits for a reading
_STOP_WAIT_MS = const(8000)  # Ended waits this long for the contactor (it opens within 6 s)
_READ_WAIT_MS = const(3000)  # ... and this long for a meter reading after it opened
_SEP = (",", ":")

# Start and stop points (TxCtrlr.TxStartPoint / TxStopPoint).
EV_CONNECTED = "EVConnected"
AUTHORIZED = "Authorized"
POWER_PATH = "PowerPathClosed"
ENERGY = "EnergyTransfer"
_AUTH_ENDS = (AUTHORIZED, POWER_PATH)  # stop points that end with the authorization


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
        if self.token is not None and (self.invalid or e.faults or not e.available):
            return "SuspendedEVSE"  # authorized, and the EVSE decided to offer nothing
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

    def authorize(self, id_token, info, trigger=AUTHORIZED, remote_id=None):
        """`id_token` (accepted with idTokenInfo `info`) may charge here from now on."""
        self.token = id_token
        group = info.get("groupIdToken")
        self.group = group["idToken"].lower() if group else None
        self.invalid = False
        self.auth_ms = None if self.evse.plugged else time.ticks_ms()
        self._pending["idToken"] = id_token
        if remote_id is not None:
            self._pending["remoteStartId"] = remote_id
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
        e = self.evse
        met = {
            EV_CONNECTED: e.plugged,
            AUTHORIZED: self.token is not None,
            POWER_PATH: e.plugged and self.token is not None,
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

    def end(self, trigger, reason, now=None, final=False):
        """Ended, with the TxEnded samples and a Transaction.End one; the bay is free again.

        The end value must include the energy up to the contactor's opening: when the last
        reading is older than that, Ended waits (at most _READ_WAIT_MS) for the next one,
        unless `final` (a reset: the reboot will not wait)."""
        tx = self.tx
        if tx is None or self.ending is not None:
            return
        now = self.txs.clock.now() if now is None else now
        if not final and not self._fresh():
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
        for k in ("idToken", "evse"):
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
            _remove(self.samples_path)
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
        values = sampled(self.evse, self.txs.setting(ctrlr + name, ""), context)
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
            _rewrite(self.samples_path, self.samples)
        else:
            _append(self.samples_path, mv[0])

    def tick(self, ticks, now, updated_s, ended_s):
        """Timers of this bay: EVConnectionTimeOut, periodic Updated, TxEnded samples."""
        if self.auth_ms is not None and not self.evse.plugged:
            limit_ms = self.txs.setting(_TX + "EVConnectionTimeOut", 120) * 1000
            if time.ticks_diff(ticks, self.auth_ms) >= limit_ms:
                self._timed_out()
        if self.tx is None:
            return
        if self.ending is not None:
            if self._fresh() or time.ticks_diff(ticks, self.ending[3]) >= _READ_WAIT_MS:
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
        cap = self.txs.setting(_TX + "MaxEnergyOnInvalidId", 0)
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


class Transactions:
    def __init__(self, station):
        self.station = station
        station.transactions = self
        self.dm = station.dm
        self.store = station.store
        self.clock = station.clock
        self.queue = station.queue
        self.bays = [Bay(self, e) for e in station.evses]
        self._timed = []  # bays with an open transaction (the timers look at these)
        self._aligned = None  # the last clock-aligned boundary seen, per interval
        self._aligned_ended = None
        self._reading = False  # a card is being decided: further cards wait their turn
        for b in self.bays:
            b.evse.on_change.append(lambda e, b=b: b.changed())
        router = station.router
        router.on("RequestStartTransaction", self.on_request_start, self._after_start)
        router.on("RequestStopTransaction", self.on_request_stop, self._after_stop)
        router.on("GetTransactionStatus", self.on_get_status)
        self.queue.on_reply[TRANSACTION_EVENT] = self._on_reply
        self._recover()
        station.spawn(self._timers())

    # -- settings ---------------------------------------------------------------------------

    def setting(self, key, default):
        try:
            v = self.dm.get(key)
        except KeyError:
            return default
        return int(v) if type(default) is int else v

    def points(self, key):
        return self.setting(key, "").split(",")

    def stop_points(self, which):
        pts = self.points(_TX + "TxStopPoint")
        return any(p in pts for p in which)

    def may_start(self):
        """Transactions may start: not while the CSMS keeps us Pending or Rejected, unless
        TxBeforeAcceptedEnabled (offline, never registered this boot, is allowed)."""
        reg = self.station.connection.registration
        if reg in ("Pending", "Rejected"):
            return self.setting(_TX + "TxBeforeAcceptedEnabled", "false") == "true"
        return True

    def new_tx_id(self):
        """128 random bits in hex: unique across reboots without keeping a counter."""
        return binascii.hexlify(self.station.board.urandom(16)).decode()

    # -- queries ----------------------------------------------------------------------------

    def bay(self, evse):
        return self.bays[evse.id - 1]

    def busy(self, evse):
        """A transaction is open on `evse` (or one of the last boot is being ended)."""
        b = self.bays[evse.id - 1]
        return b.tx is not None or b.recovering

    def authorized(self, evse):
        return self.bays[evse.id - 1].token is not None

    def tx_id(self, evse):
        return self.bays[evse.id - 1].tx_id

    def _by_tx(self, tx_id):
        for b in self.bays:
            if b.tx is not None and b.tx["id"] == tx_id:
                return b
        return None

    # -- the reader and the button ----------------------------------------------------------

    def card(self, token, kind="ISO14443"):
        """An idToken presented at the reader. Returns at once; the decision follows in a
        task, so the reader never waits for the CSMS. One card at a time: another one
        while the last is decided is ignored (the reader would beep it away)."""
        if self._reading:
            log.warn(_TAG, "card ignored: the last one is still being decided")
            return
        self._reading = True
        self.station.spawn(self._card({"idToken": token, "type": kind}))

    def button(self, evse):
        """The start/stop button of `evse`: stops what runs there, else presents the
        button's token (LocalButton.IdToken / IdTokenType) for this EVSE."""
        b = self.bay(evse)
        tok = {
            "idToken": self.setting("LocalButton/IdToken", ""),
            "type": self.setting("LocalButton/IdTokenType", "NoAuthorization"),
        }
        if b.token is not None:
            b.deauthorize("StopAuthorized", "Local", tok)
            return
        self.station.spawn(self._start_at(b, tok))

    async def _start_at(self, b, id_token):
        await self._settled()
        info = await self.station.authorization.authorize(id_token, b.n)
        if allowed(info, b.n) and b.token is None and b.usable():
            b.authorize(id_token, info)
        else:
            log.info(_TAG, "EVSE %d: token refused (%s)" % (b.n, info["status"]))

    async def _card(self, id_token):
        try:
            await self._decide(id_token)
        finally:
            self._reading = False

    async def _settled(self):
        """Wait until no transaction waits for its end value (a card right after an unplug
        is for the next session, and that EVSE is busy until the Ended is out)."""
        waited = 0
        while any(b.ending is not None for b in self.bays) and waited <= _READ_WAIT_MS:
            await asyncio.sleep_ms(100)
            waited += 100

    async def _decide(self, id_token):
        await self._settled()
        key = token_key(id_token)
        for b in self.bays:
            if b.token is not None and token_key(b.token) == key:
                b.deauthorize("StopAuthorized", "Local", id_token)  # its own card: no Authorize
                return
        target = self._waiting()
        info = await self.station.authorization.authorize(id_token, target.n if target else None)
        group = info.get("groupIdToken")
        group = group["idToken"].lower() if group else None
        master = self.setting("AuthCtrlr/MasterPassGroupId", "").lower()
        if info["status"] != "Accepted":
            log.info(_TAG, "card refused (%s)" % info["status"])
            return
        if master and group == master:
            # A master pass stops every session (no display to choose one) and starts none.
            for b in self.bays:
                if b.token is not None or b.tx is not None:
                    b.deauthorize("StopAuthorized", "MasterPass", id_token)
            return
        if group is not None:
            for b in self.bays:
                if b.token is not None and b.group == group:
                    b.deauthorize("StopAuthorized", "Local", id_token)  # same group (C09)
                    return
        # Things may have moved while the CSMS was asked: choose again.
        target = self._waiting()
        if target is None:
            for b in self.bays:
                if b.token is None and b.usable() and not b.evse.plugged:
                    target = b  # ahead of the plug (EVConnectionTimeOut runs)
                    break
        if target is None or not allowed(info, target.n):
            log.info(_TAG, "card accepted, but no EVSE it may use")
            return
        target.authorize(id_token, info)

    def _waiting(self):
        """The first bay with an EV plugged in and nobody authorizing it."""
        for b in self.bays:
            if b.evse.plugged and b.token is None and b.usable():
                return b
        return None

    # -- RequestStartTransaction, RequestStopTransaction (F01, F02, F03) -------------------

    def on_request_start(self, req):
        n = req.get("evseId")
        if n is None:
            free = [b for b in self.bays if b.token is None and b.usable()]
            b = free[0] if free else None
        else:
            b = self.bays[n - 1] if 1 <= n <= len(self.bays) else None
        if b is None or b.token is not None or not b.usable() or not self.may_start():
            return {"status": "Rejected"}
        req["evseId"] = b.n  # for the after-hook
        resp = {"status": "Accepted"}
        if b.tx is not None:
            resp["transactionId"] = b.tx["id"]  # started at EVConnected, say
        return resp

    def _after_start(self, req, resp):
        if resp["status"] == "Accepted":
            self.station.spawn(self._remote_start(self.bays[req["evseId"] - 1], req))

    async def _remote_start(self, b, req):
        id_token = req["idToken"]
        info = {"status": "Accepted"}
        if "groupIdToken" in req:
            info["groupIdToken"] = req["groupIdToken"]
        if self.setting("AuthCtrlr/AuthorizeRemoteStart", "false") == "true":
            info = await self.station.authorization.authorize(id_token, b.n)
        if not allowed(info, b.n) or b.token is not None or not b.usable():
            log.info(_TAG, "remote start on EVSE %d refused (%s)" % (b.n, info["status"]))
            return
        b.authorize(id_token, info, "RemoteStart", req["remoteStartId"])

    def on_request_stop(self, req):
        b = self._by_tx(req["transactionId"])
        return {"status": "Accepted" if b is not None else "Rejected"}

    def _after_stop(self, req, resp):
        b = self._by_tx(req["transactionId"])
        if resp["status"] == "Accepted" and b is not None:
            b.deauthorize("RemoteStop", "Remote")

    # -- GetTransactionStatus (E14) ---------------------------------------------------------

    def on_get_status(self, req):
        tx_id = req.get("transactionId")
        if tx_id is None:
            return {"messagesInQueue": self.queue.pending(action=TRANSACTION_EVENT) > 0}
        return {
            "ongoingIndicator": self._by_tx(tx_id) is not None,
            "messagesInQueue": self.queue.pending(tx_id, TRANSACTION_EVENT) > 0,
        }

    # -- TriggerMessage(TransactionEvent), reset --------------------------------------------

    def triggerable(self, evse_id=None):
        return [b for b in self.bays if b.tx is not None and evse_id in (None, b.n)]

    def trigger(self, evse_id=None):
        now = self.clock.now()
        for b in self.triggerable(evse_id):
            b.post(UPDATED, "Trigger", b.meter("TxUpdatedMeasurands", "Trigger", now))

    def stop_all(self, trigger, reason):
        """End every transaction now (a reset): energy off first."""
        for b in self.bays:
            b.drop_token()
            b.ending = None
            b.end(trigger, reason, final=True)

    # -- the CSMS's answers -----------------------------------------------------------------

    def _on_reply(self, payload, response):
        info = response.get("idTokenInfo")
        tok = payload.get("idToken")
        if info is None or tok is None:
            return
        self.station.authorization.remember(tok, info)
        b = self._by_tx(payload["transactionInfo"]["transactionId"])
        if b is None or b.token is None or token_key(b.token) != token_key(tok):
            return
        if info["status"] == "Accepted":
            return
        log.warn(_TAG, "EVSE %d: the CSMS deauthorized the token (%s)" % (b.n, info["status"]))
        if self.setting(_TX + "StopTxOnInvalidId", "true") == "true":
            b.stop("Deauthorized", "DeAuthorized")
        else:
            b.invalid = True
            r = b.evse.reading
            b.tx.setdefault("e0", r.energy_wh if r else 0)
            b._check_energy_cap()

    # -- timers -----------------------------------------------------------------------------

    def schedule(self, b):
        if b not in self._timed:
            self._timed.append(b)
        r = b.evse.reading
        if r is not None:
            b.tx["e0"] = r.energy_wh

    def forget(self, b):
        if b in self._timed:
            self._timed.remove(b)

    async def _timers(self):
        while True:
            await asyncio.sleep_ms(_TICK_MS)
            try:
                self._tick()
            except Exception as e:  # a bug here must not stop the timers for good
                log.exc(_TAG, "timers", e)

    def _tick(self):
        ticks = time.ticks_ms()
        now = self.clock.now()
        updated_s = self.setting(_SAMPLED + "TxUpdatedInterval", 0)
        ended_s = self.setting(_SAMPLED + "TxEndedInterval", 0)
        for b in self.bays:
            b.tick(ticks, now, updated_s, ended_s)
        self._aligned = self._align(now, "Interval", self._aligned, self._clock_values)
        self._aligned_ended = self._align(
            now, "TxEndedInterval", self._aligned_ended, self._clock_ended
        )

    def _align(self, now, name, last, fn):
        """Call `fn(boundary)` when `now` passed a multiple of AlignedDataCtrlr.<name> (from
        UTC midnight); the boundary seen now."""
        interval = self.setting(_ALIGNED + name, 0)
        if interval <= 0:
            return None
        boundary = now - now % interval
        if last is not None and boundary > last:
            fn(boundary)
        return boundary

    def _clock_ended(self, boundary):
        for b in self.bays:
            b.clock_sample(boundary, True)

    def _clock_values(self, boundary):
        """Clock-aligned values of every EVSE (J01): in an Updated for a transaction's EVSE,
        in MeterValues for the others; with SendDuringIdle, none while any transaction runs."""
        if self._timed and self.setting(_ALIGNED + "SendDuringIdle", "false") == "true":
            return
        idle = []
        for b in self.bays:
            if b.tx is not None:
                b.clock_sample(boundary, False)
            else:
                mv = b.meter("Measurands", "Sample.Clock", boundary, _ALIGNED)
                if mv:
                    idle.append({"evseId": b.n, "meterValue": mv})
        if not idle:
            return
        if self.setting("OCPPCommCtrlr/QueueAllMessages", "false") == "true":
            for p in idle:
                self.queue.post("MeterValues", p)
        elif self.station.connection.ready.is_set():
            self.station.spawn(self._send_meter_values(idle))

    async def _send_meter_values(self, payloads):
        for p in payloads:
            try:
                await self.station.session.call("MeterValues", p)
            except Exception as e:  # offline or no answer: clock values are not kept
                log.warn(_TAG, "MeterValues: %r" % (e,))
                return

    # -- power loss -------------------------------------------------------------------------

    def _recover(self):
        """Open transactions of the last boot: end them (PowerLoss or Reboot), their seqNo
        continuing after the highest one on flash."""
        open_bays = []
        for b in self.bays:
            tx = self.store.load(b.doc)
            if tx is not None and not _whole(tx):
                log.error(_TAG, "EVSE %d: transaction document unusable, dropped: %r" % (b.n, tx))
                tx = None
            if tx is None:
                self.store.remove(b.doc)
                _remove(b.samples_path)
                continue
            tx.setdefault("why", None)
            tx.setdefault("st", None)
            b.tx = tx
            b.samples = b.load_samples()
            b.recovering = True
            open_bays.append(b)
        if not open_bays:
            return
        ended = []
        for action, p, tx_id in self.queue.messages():
            b = self._by_tx(tx_id) if action == TRANSACTION_EVENT else None
            seq = p.get("seqNo") if b is not None and type(p) is dict else None
            if type(seq) is not int:
                continue
            b.tx["seq"] = max(b.tx["seq"], seq + 1)
            if p.get("eventType") == ENDED:
                ended.append(b)
        # A reset the station planned ended its transactions first: this is a power loss,
        # or a reboot it did not plan (watchdog).
        reason = "PowerLoss" if self.station.boot_reason == "PowerUp" else "Reboot"
        for b in open_bays:
            if b in ended:  # the power went between its Ended and the document's removal
                self.store.remove(b.doc)
                _remove(b.samples_path)
                b.tx = None
                b.samples = []
                b.recovering = False
            else:
                self.station.spawn(self._end_after_boot(b, reason))

    async def _end_after_boot(self, b, reason):
        waited = 0
        while b.evse.reading is None and waited < _METER_WAIT_MS:
            await asyncio.sleep_ms(100)
            waited += 100
        b.recovering = False
        if b.tx is None:  # ended meanwhile (RequestStopTransaction)
            return
        log.info(_TAG, "EVSE %d: transaction %s of the last boot ends" % (b.n, b.tx["id"]))
        b.tx["st"] = None
        b.end("AbnormalCondition", reason)
        b.plugged = b.evse.plugged
        b.flowing = b.evse.energy_flowing
        if b.plugged:
            b.try_start("CablePluggedIn")


def _sample_ok(mv):
    """A meterValue entry as `_sample` writes it (read back from flash)."""
    return (
        type(mv) is dict
        and type(mv.get("timestamp")) is str
        and type(mv.get("sampledValue")) is list
        and len(mv["sampledValue"]) > 0
        and all(type(sv) is dict and "value" in sv for sv in mv["sampledValue"])
    )


def _whole(tx):
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


def _append(path, entry):
    try:
        with open(path, "a") as f:
            f.write(json.dumps(entry, separators=_SEP) + "\n")
    except OSError as e:
        log.error(_TAG, "samples not kept: %r" % e)


def _rewrite(path, entries):
    try:
        with open(path + ".tmp", "w") as f:
            for entry in entries:
                f.write(json.dumps(entry, separators=_SEP) + "\n")
        os.rename(path + ".tmp", path)
    except OSError as e:
        log.error(_TAG, "samples not kept: %r" % e)


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass
