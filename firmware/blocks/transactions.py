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
import time

from micropython import const

import log
import store
from firmware.auth_cache import token_key
from firmware.bay import READ_WAIT_MS, Bay, whole
from firmware.blocks.authorization import allowed
from firmware.queue import ENDED, TRANSACTION_EVENT, UPDATED

_TAG = const("tx")
_TX = const("TxCtrlr/")
_COST = const("TariffCostCtrlr/")
_SAMPLED = const("SampledDataCtrlr/")
_ALIGNED = const("AlignedDataCtrlr/")
_TICK_MS = const(1000)  # timers (sampling, clock alignment, plug-in timeout) run this often
_METER_WAIT_MS = const(5000)  # at boot, how long an ended transaction waits for a reading


class Transactions:
    # The reservation block once loaded sets its own (a class attribute until then: no slot
    # in each station's instance, heap).
    reservations = None
    # The tariff and cost block (block I) likewise, loaded by _cost when first needed.
    tariff = None

    def __init__(
        self,
        router,
        session,
        connection,
        queue,
        dm,
        store,
        clock,
        evses,
        authorization,
        spawn,
        urandom,
        boot_reason,
    ):
        self.router = router  # K05: loads smart charging for a RequestStart's profile
        self.session = session
        self.connection = connection
        self.queue = queue
        self.dm = dm
        self.store = store
        self.clock = clock
        self.authorization = authorization
        self.spawn = spawn
        self.urandom = urandom
        self.boot_reason = boot_reason
        self.bays = [Bay(self, e) for e in evses]
        self._timed = []  # bays with an open transaction (the timers look at these)
        self._aligned = None  # the last clock-aligned boundary seen, per interval
        self._aligned_ended = None
        self._reading = False  # a card is being decided: further cards wait their turn
        self._halted = False  # True once a reset stopped everything: nothing starts any more
        for b in self.bays:
            b.evse.on_change.append(lambda e, b=b: b.changed())
        router.on("RequestStartTransaction", self.on_request_start, self._after_start)
        router.on("RequestStopTransaction", self.on_request_stop, self._after_stop)
        router.on("GetTransactionStatus", self.on_get_status)
        queue.on_reply[TRANSACTION_EVENT] = self._on_reply
        self._recover()
        spawn(self._timers())

    # -- settings ---------------------------------------------------------------------------

    def points(self, key):
        return self.dm.setting(key, "").split(",")

    def stop_points(self, which):
        pts = self.points(_TX + "TxStopPoint")
        return any(p in pts for p in which)

    def may_start(self):
        """Transactions may start: not while the CSMS keeps us Pending or Rejected, unless
        TxBeforeAcceptedEnabled (offline, never registered this boot, is allowed)."""
        if self._halted:
            return False  # a reset is on its way
        reg = self.connection.registration
        if reg in ("Pending", "Rejected"):
            return self.dm.setting(_TX + "TxBeforeAcceptedEnabled", False)
        return True

    def new_tx_id(self):
        """128 random bits in hex: unique across reboots without keeping a counter."""
        return binascii.hexlify(self.urandom(16)).decode()

    # -- queries ----------------------------------------------------------------------------

    def bay(self, evse):
        return self.bays[evse.id - 1]

    def busy(self, evse):
        """A transaction is open on `evse` (or one of the last boot is being ended)."""
        b = self.bays[evse.id - 1]
        return b.tx is not None or b.recovering

    def idle(self):
        """No transaction is open (nor one of the last boot being ended) on any EVSE."""
        for b in self.bays:
            if b.tx is not None or b.recovering:
                return False
        return True

    def authorized(self, evse):
        return self.bays[evse.id - 1].token is not None

    def tx_id(self, evse):
        return self.bays[evse.id - 1].tx_id

    def held(self, n):
        """A reservation keeps EVSE n for its driver: another driver's plug-in opens no
        transaction there, and it shows Reserved while none is open."""
        r = self.reservations
        return r is not None and r.holds(n)

    def _reserved(self, b, id_token, info):
        """What the reservations say of `id_token` (its groupIdToken in `info`) charging at
        `b`: False when `b` is held for another driver, else the reservation it uses there or
        None."""
        r = self.reservations
        return None if r is None else r.check(b.n, id_token, info.get("groupIdToken"))

    def _may(self, b, id_token, info, what):
        """`id_token`, decided with idTokenInfo `info`, may take `b` now; if not, logged."""
        if not allowed(info, b.n):
            why = info["status"]
        elif b.token is not None or not b.usable():
            why = "EVSE in use"
        elif self._reserved(b, id_token, info) is False:
            why = "reserved for another driver"
        else:
            return True
        log.info(_TAG, "EVSE %d: %s refused (%s)" % (b.n, what, why))
        return False

    def _authorize(self, b, id_token, info, trigger="Authorized", remote_id=None):
        """`b.authorize`, using the reservation `id_token` has at `b` if it has one: that
        ends, and the Started event carries its id (H03). `_may` said yes."""
        found = self._reserved(b, id_token, info)
        rid = None if found is None else self.reservations.use(found)
        b.authorize(id_token, info, trigger, remote_id, rid)
        dm = self.dm
        t = self._cost(
            "personalMessage" in info
            or dm.setting(_COST + "TariffFallbackMessage", "")
            or dm.setting(_COST + "TotalCostFallbackMessage", "")
        )
        if t is not None:
            t.authorized(b, info)  # the driver's tariff on the display

    def _cost(self, need):
        """The tariff and cost block, loaded first when `need`: an answer brings a tariff or a
        cost, or a fallback message is set. None when it is not loaded, or the board has no
        display to show costs on (no CostUpdated handler then)."""
        if self.tariff is None and need:
            try:
                self.router.entry("CostUpdated")
            except Exception as e:
                log.warn(_TAG, "tariff and cost: %r" % e)
        return self.tariff

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
        self.spawn(self._card({"idToken": token, "type": kind}))

    def button(self, evse):
        """The start/stop button of `evse`: stops what runs there, else presents the
        button's token (LocalButton.IdToken / IdTokenType) for this EVSE."""
        b = self.bay(evse)
        tok = {
            "idToken": self.dm.setting("LocalButton/IdToken", ""),
            "type": self.dm.setting("LocalButton/IdTokenType", "NoAuthorization"),
        }
        if b.token is not None:
            b.deauthorize("StopAuthorized", "Local", tok)
            return
        self.spawn(self._start_at(b, tok))

    async def _start_at(self, b, id_token):
        await self._settled()
        info = await self.authorization.authorize(id_token, b.n)
        if self._may(b, id_token, info, "token"):
            self._authorize(b, id_token, info)

    async def _card(self, id_token):
        try:
            await self._decide(id_token)
        finally:
            self._reading = False

    async def _settled(self):
        """Wait until no transaction waits for its end value (a card right after an unplug
        is for the next session, and that EVSE is busy until the Ended is out)."""
        waited = 0
        while any(b.ending is not None for b in self.bays) and waited <= READ_WAIT_MS:
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
        info = await self.authorization.authorize(id_token, target.n if target else None)
        group = info.get("groupIdToken")
        group = group["idToken"].lower() if group else None
        master = self.dm.setting("AuthCtrlr/MasterPassGroupId", "").lower()
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
        target = self._target(id_token, info)
        if target is None or not allowed(info, target.n):
            log.info(_TAG, "card accepted, but no EVSE it may use")
            return
        self._authorize(target, id_token, info)

    def _target(self, id_token, info):
        """The bay for a card accepted with `info`, or None: the first with an EV plugged in
        and nobody authorizing it, else the first free one (ahead of the plug:
        EVConnectionTimeOut runs), in each case one reserved for this driver first, and
        never one held for another driver."""
        for plugged in (True, False):
            first = None
            for b in self.bays:
                if b.token is None and b.usable() and b.evse.plugged == plugged:
                    found = self._reserved(b, id_token, info)
                    if found:
                        return b
                    if found is None and first is None:
                        first = b
            if first is not None:
                return first
        return None

    def _waiting(self):
        """The first bay with an EV plugged in and nobody authorizing it."""
        for b in self.bays:
            if b.evse.plugged and b.token is None and b.usable():
                return b
        return None

    # -- RequestStartTransaction, RequestStopTransaction (F01, F02, F03) -------------------

    def on_request_start(self, req):
        n = req.get("evseId")
        tok = req["idToken"]  # its groupIdToken, if any, is in req too
        if n is None:
            b = None
            for c in self.bays:
                if c.token is None and c.usable() and self._reserved(c, tok, req) is not False:
                    b = c
                    break
        else:
            b = self.bays[n - 1] if 1 <= n <= len(self.bays) else None
        if b is None or b.token is not None or not b.usable() or not self.may_start():
            return {"status": "Rejected"}
        if self._reserved(b, tok, req) is False:
            return {"status": "Rejected", "statusInfo": {"reasonCode": "Reserved"}}
        req["evseId"] = b.n  # for the after-hook
        resp = {"status": "Accepted"}
        if b.tx is not None:
            resp["transactionId"] = b.tx["id"]  # started at EVConnected, say
        return resp

    def _after_start(self, req, resp):
        if resp["status"] == "Accepted":
            self.spawn(self._remote_start(self.bays[req["evseId"] - 1], req))

    async def _remote_start(self, b, req):
        id_token = req["idToken"]
        info = {"status": "Accepted"}
        if "groupIdToken" in req:
            info["groupIdToken"] = req["groupIdToken"]
        if self.dm.setting("AuthCtrlr/AuthorizeRemoteStart", False):
            info = await self.authorization.authorize(id_token, b.n)
        if not self._may(b, id_token, info, "remote start"):
            return
        self._authorize(b, id_token, info, "RemoteStart", req["remoteStartId"])
        p = req.get("chargingProfile")
        if p is not None:
            # K05: a TxProfile for the transaction this start opens; the smart charging block
            # (loaded now if it was not) fills in its transactionId once it runs.
            b.profile = p
            try:
                self.router.entry("SetChargingProfile")
            except Exception as e:  # no smart charging: the profile is ignored, the start holds
                log.warn(_TAG, "RequestStart's profile ignored: %r" % e)

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
        """End every transaction for a reset, and start no new one before it: as any stop,
        energy off first (PWM off, the contactor opens at B or after the EVSE's limit), then
        Ended with a reading taken after the cut. `ended()` waits for that."""
        self._halted = True
        for b in self.bays:
            if b.tx is not None and b.stopping is None and b.ending is None:
                b.stop(trigger, reason)
            else:
                b.drop_token()

    async def ended(self, limit_ms):
        """Wait (at most `limit_ms`) until no transaction is open: each Ended is on flash."""
        waited = 0
        while not self.idle() and waited < limit_ms:
            await asyncio.sleep_ms(100)
            waited += 100

    # -- the CSMS's answers -----------------------------------------------------------------

    def _on_reply(self, payload, response):
        info = response.get("idTokenInfo")
        t = self._cost(
            "totalCost" in response
            or "updatedPersonalMessage" in response
            or (info is not None and "personalMessage" in info)
        )
        if t is not None:
            t.reply(payload, response)
        tok = payload.get("idToken")
        if info is None or tok is None:
            return
        self.authorization.remember(tok, info)
        b = self._by_tx(payload["transactionInfo"]["transactionId"])
        if b is None or b.token is None or token_key(b.token) != token_key(tok):
            return
        if info["status"] == "Accepted":
            return
        log.warn(_TAG, "EVSE %d: the CSMS deauthorized the token (%s)" % (b.n, info["status"]))
        if self.dm.setting(_TX + "StopTxOnInvalidId", True):
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
        updated_s = self.dm.setting(_SAMPLED + "TxUpdatedInterval", 0)
        ended_s = self.dm.setting(_SAMPLED + "TxEndedInterval", 0)
        for b in self.bays:
            b.tick(ticks, now, updated_s, ended_s)
        self._aligned = self._align(now, "Interval", self._aligned, self._clock_values)
        self._aligned_ended = self._align(
            now, "TxEndedInterval", self._aligned_ended, self._clock_ended
        )

    def _align(self, now, name, last, fn):
        """Call `fn(boundary)` when `now` passed a multiple of AlignedDataCtrlr.<name> (from
        UTC midnight); the boundary seen now."""
        interval = self.dm.setting(_ALIGNED + name, 0)
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
        if self._timed and self.dm.setting(_ALIGNED + "SendDuringIdle", False):
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
        if self.dm.setting("OCPPCommCtrlr/QueueAllMessages", False):
            for p in idle:
                self.queue.post("MeterValues", p)
        elif self.connection.ready.is_set():
            self.spawn(self._send_meter_values(idle))

    async def _send_meter_values(self, payloads):
        for p in payloads:
            try:
                await self.session.call("MeterValues", p)
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
            if tx is not None and not whole(tx):
                log.error(_TAG, "EVSE %d: transaction document unusable, dropped: %r" % (b.n, tx))
                tx = None
            if tx is None:
                self.store.remove(b.doc)
                store.remove_file(b.samples_path)
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
        reason = "PowerLoss" if self.boot_reason == "PowerUp" else "Reboot"
        for b in open_bays:
            if b in ended:  # the power went between its Ended and the document's removal
                self.store.remove(b.doc)
                store.remove_file(b.samples_path)
                b.tx = None
                b.samples = []
                b.recovering = False
            else:
                self.spawn(self._end_after_boot(b, reason))

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
