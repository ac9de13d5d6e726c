# evse: the IEC 61851-1 charging controller of one EVSE, and the only code that closes its
# contactor. It knows nothing of OCPP: it takes commands and reports states. MIT licence.

import asyncio
import time

from micropython import const

import log
from meter import MeterError

_TICK_MS = const(10)  # safety loop period: sampling + decision, well inside the 100 ms rule
# ... and while nothing is plugged in and nothing is on (see run): a plug-in is seen up to
# this much later, nothing else waits on it. An idle board (or virtual wallbox) sleeps.
_IDLE_TICK_MS = const(100)
_SLOW_MS = const(200)  # a new state towards charging (A->B, B->C) must be stable this long
_FAST_READS = const(2)  # reads in a row for a state that opens the contactor (<= 20 ms)
_STOP_MS = const(6000)  # after x1 the EV must leave C within this, else we open under load
_F_MS = const(300)  # state F is held at least this long after a hard fault
_RISE_MS = const(5000)  # the offered current rises at most once per this; it falls at once
_SETTLE_MS = const(500)  # the contactor's mirror contact must follow a command within this
_WELD_CLEAR_MS = const(1000)  # a weld clears once the mirror reads open this long
_RCD_TEST_MS = const(500)  # the RCD must trip within this when its test output is driven
_RCD_CLEAR_MS = const(1000)  # ... and be clear again within this after the test
_METER_POLL_MS = const(1000)
_METER_READ_MS = const(2000)  # one meter read may take this long
_METER_LOST_MS = const(8000)  # no good reading for this long: the meter is lost
# 1<->3-phase switching, never under load: the phase switch moves only this long after the main
# contactor opened, and the PWM comes back only this long after it moved (hardware.md 1.5).
_PHASE_GAP_MS = const(3000)
_MIN_A = const(6)  # the least current IEC 61851 lets us offer
_U16 = const(65535)  # the pilot's duty in x1 (steady +12 V)
# Above ~91 % duty (68 A) the -12 V plateau is too short for the pilot driver to judge the EV
# diode; until the diode has answered, offer at most this much.
_DIODE_CHECK_A = const(63)

# Fault codes. Hard faults signal state F and latch until the cause is gone (some only at
# unplug); the others only keep the contactor open and the pilot in x1.
RCD_TRIP = "rcd_trip"
RCD_SELFTEST = "rcd_selftest"
WELDED = "contactor_welded"
CONTACTOR_FAULT = "contactor_fault"  # commanded closed, the mirror never said so
DIODE_FAULT = "diode_fault"
CP_SHORT = "cp_short"
METER_TIMEOUT = "meter_timeout"
PP_FAULT = "pp_fault"
_ALL = (RCD_TRIP, RCD_SELFTEST, WELDED, CONTACTOR_FAULT, DIODE_FAULT, CP_SHORT, METER_TIMEOUT,
        PP_FAULT)  # fmt: skip
_HARD = (RCD_TRIP, RCD_SELFTEST, WELDED, CONTACTOR_FAULT, DIODE_FAULT, CP_SHORT)
_UNTIL_UNPLUG = (RCD_TRIP, RCD_SELFTEST, DIODE_FAULT, CONTACTOR_FAULT, PP_FAULT)

# What unlock() did (the controller's words; the remote control block answers OCPP with them).
UNLOCKED = "unlocked"  # released, or a socket without a lock, which holds nothing
UNLOCK_FAILED = "unlock_failed"  # the lock's position switch did not confirm it
FIXED_CABLE = "fixed_cable"  # a tethered cable without a lock: nothing to release

# RCD self-test progress, self._rcd: None (not run this session) -> _RCD_TESTING (test output
# on, waiting for the trip) -> _RCD_CLEARING (output off, waiting for the trip to clear) ->
# _RCD_OK; a failure raises RCD_SELFTEST instead.
_RCD_TESTING = const(1)
_RCD_CLEARING = const(2)
_RCD_OK = const(3)


class Evse:
    """One EVSE's charging state machine over its hardware (boards.drivers.EvseHw).

    Commands: `permit(on)`, `set_limit(amps)`, `set_available(on)`, `set_config_limit(amps)`,
    `set_phases(n)`, `unlock()` (the cable lock).
    Reports: `cp`, `offered_a`, `faults`, `reading`, `limit_a`, `switching` and the properties
    below.

    The safety loop (`run`: `step` every 10 ms) only decides and drives the hardware, and
    allocates nothing (a test runs it under heap_lock): no logging, no callbacks. A tick that
    changed what the EVSE reports sets `wake`; `notify`, a task of its own, then logs what
    changed and calls each `on_change(evse)` callback inside its own error boundary, so that
    nothing a listener does (OCPP, flash writes, a full flash) can stop or slow the tick.
    """

    def __init__(self, evse_id, hw, ticks=time.ticks_ms):
        self.id = evse_id
        self.hw = hw
        self.ticks = ticks
        self.on_change = []
        self.wake = asyncio.Event()  # set by a tick that changed something; see notify()
        self.cp = "A"  # debounced control pilot state, "A".."F"
        self.offered_a = 0  # the current the pilot offers now, whole amperes (0 in x1 and F)
        # Active fault codes. Made with room for all of them, then emptied: adding one later
        # never grows the table, so the tick allocates nothing (MicroPython keeps a set's
        # table on discard).
        self.faults = set(_ALL)
        for code in _ALL:
            self.faults.discard(code)
        self.reading = None  # the meter's last good Reading
        self.reading_ms = None  # ticks when it was taken
        self.cable_a = hw.cable_a  # the cable's rating: tethered, or read by PP at plug-in
        self._permitted = False
        self._available = True
        self.limit_a = None  # application limit (smart charging, OCPP; set_limit); None: none
        self._config_a = None  # installer's limit; None: none
        self._raw = None  # candidate state and how long / often it has been read
        self._raw_since = 0
        self._raw_count = 0
        self._diode_seen = False  # the EV diode answered on the -12 V level this session
        self._diode_bad = 0  # reads in a row with PWM on and no diode
        self._rcd = None
        self._rcd_since = 0
        self._fault_since = None  # when the current hard fault began, for the F hold
        self._stop_since = None  # a charger-initiated stop began (x1 sent, contactor closed)
        # When a contactor (main or phase switch) was last commanded; the tick keeps it at most
        # _PHASE_GAP_MS ago, so that it never wraps (ticks_ms does after some days).
        self._switched = time.ticks_add(ticks(), -_PHASE_GAP_MS)
        self._open_since = None  # the mirror has read open since then, while a weld is set
        self._offer_ms = 0  # when the offered current last changed
        self._meter_ok_ms = None  # last good meter reading
        # 1<->3-phase switching: _want is the phases asked for (1 or 3) where a 3-phase EVSE
        # has a phase switch, else None; `switching`: a switch is pending or in its gaps, no
        # offer meanwhile. (No more attributes: a 38th would grow every Evse by 80 bytes.)
        self._want = 3 if hw.phase_switch is not None and hw.phases == 3 else None
        self.switching = self._want is not None and self.phases != 3
        self._changed = False
        self.last_step = None  # ticks of the latest safety-loop step (the supervisor reads it)
        # What notify() last logged, and news the tick leaves for it.
        self._told_cp = "A"
        self._told_faults = set()
        self._told_rcd = None
        self._forced = False  # the tick opened under load: the EV ignored x1
        self.last_poll = None  # ticks of the latest meter poll, good or not

    # -- commands ---------------------------------------------------------------------------

    def permit(self, on):
        """Charging permitted by the application (authorization); False stops a session."""
        self._permitted = bool(on)

    def set_limit(self, amps):
        """The application's limit (A), or None. Offers are whole amperes: rounded down."""
        self.limit_a = None if amps is None else int(amps)

    def set_config_limit(self, amps):
        self._config_a = None if amps is None else int(amps)

    def set_available(self, on):
        self._available = bool(on)

    def set_phases(self, n):
        """Connect 1 or 3 phases. Without a phase switch (or on a 1-phase EVSE) nothing
        happens. A change pauses the EV (x1), waits for the contactor to open, moves the
        switch and offers again, each step _PHASE_GAP_MS apart: `switching` until then."""
        if n != 1 and n != 3:
            raise ValueError("phases must be 1 or 3")
        if self._want is not None:
            self._want = n = 3 if n == 3 else 1  # an int whatever number came
            if n != self.phases:
                self.switching = True  # the next tick stops the offer

    async def unlock(self):
        """Release the cable from the socket's lock: UNLOCKED, UNLOCK_FAILED or FIXED_CABLE.
        Whether a session forbids it is the caller's business."""
        lock = self.hw.lock
        if lock is None:
            return FIXED_CABLE if self.hw.cable_a is not None else UNLOCKED
        ok = await lock.unlock()
        log.info("evse%d" % self.id, "unlock %s" % ("done" if ok else "failed"))
        return UNLOCKED if ok else UNLOCK_FAILED

    def touch(self):
        """Something the application keeps about this EVSE changed (a transaction ended):
        the on_change callbacks run again soon."""
        self.wake.set()

    # -- what it reports --------------------------------------------------------------------

    @property
    def permitted(self):
        return self._permitted

    @property
    def available(self):
        return self._available

    @property
    def plugged(self):
        return self.cp in "BCD"

    @property
    def ev_requesting(self):
        return self.cp in "CD"

    @property
    def energy_flowing(self):
        return self.hw.contactor.closed

    @property
    def suspended_ev(self):
        """Energy offered (PWM on) and the EV does not take it."""
        return self.cp == "B" and self.offered_a > 0

    @property
    def limited(self):
        """The application's limit (smart charging) is below the least a pilot offers: no
        PWM until it rises again."""
        lim = self.limit_a
        return lim is not None and lim < _MIN_A

    @property
    def phases(self):
        """The phases the contactors connect now: 1 while the phase switch is open."""
        if self._want is None:
            return self.hw.phases
        return 3 if self.hw.phase_switch.closed else 1

    @property
    def max_a(self):
        """The hardware's ceiling without the application's limit: the least of the board's
        maximum, the cable's rating and the installer's limit."""
        amps = self.hw.max_a
        lim = self.cable_a
        if lim is not None and lim < amps:
            amps = lim
        lim = self._config_a
        if lim is not None and lim < amps:
            amps = lim
        return amps

    @property
    def suspended_evse(self):
        """The EV asks for energy and we offer none."""
        return self.ev_requesting and self.offered_a == 0

    # -- the safety loop --------------------------------------------------------------------

    async def run(self):
        """Sample, decide, switch, every _TICK_MS. If it ever fails, everything opens.
        Nothing else runs here: see notify().

        Idle, every _IDLE_TICK_MS: CP in A with no change pending, the pilot a steady +12 V,
        the contactor commanded open and no fault. Nothing is then on for the 100 ms rule to
        switch off, and the first read of anything else brings back the _TICK_MS pace (a
        new CP state pending debounce, a fault, an offer)."""
        hw = self.hw
        try:
            while True:
                self.step(self.ticks())
                idle = self.cp == "A" and self._raw is None and not self.faults
                idle = idle and hw.pilot.duty == _U16 and not hw.contactor.closed
                await asyncio.sleep_ms(_IDLE_TICK_MS if idle else _TICK_MS)
        finally:
            self.hw.contactor.open()
            self.hw.pilot.fault()
            log.error("evse%d" % self.id, "safety loop ended: contactor opened")

    def step(self, now):
        self.last_step = now
        pilot = self.hw.pilot
        state = pilot.read()
        if pilot.duty > 0:  # while we drive F the EV cannot be seen: keep the last state
            self._debounce(state, now)
            self._check_diode(pilot)
        self._check_rcd(now)
        self._check_contactor(now)
        self._control(now)
        if self._changed:
            self._changed = False
            self.wake.set()

    async def notify(self):
        """Log what the ticks changed and call the on_change callbacks, each inside its own
        error boundary: a failing listener is logged, the others and the tick go on."""
        tag = "evse%d" % self.id
        while True:
            await self.wake.wait()
            self.wake.clear()
            self._tell(tag)
            for fn in self.on_change:
                try:
                    fn(self)
                except Exception as e:  # a full flash, a bug: never the safety loop's end
                    log.exc(tag, "on_change listener failed", e)

    def _tell(self, tag):
        """Log the changes since the last look (the tick itself never logs: it allocates)."""
        if self.cp != self._told_cp:
            log.info(tag, "CP %s -> %s" % (self._told_cp, self.cp))
            self._told_cp = self.cp
        told = self._told_faults
        for code in _ALL:
            if (code in self.faults) != (code in told):
                if code in told:
                    told.discard(code)
                    log.info(tag, "fault %s cleared" % code)
                else:
                    told.add(code)
                    log.warn(tag, "fault %s" % code)
        if self._rcd != self._told_rcd:
            if self._rcd == _RCD_OK:
                log.info(tag, "RCD self-test passed")
            self._told_rcd = self._rcd
        if self._forced:
            self._forced = False
            log.warn(tag, "EV ignored x1 for 6 s: opening under load")

    def _debounce(self, state, now):
        if state is None or state == self.cp:
            self._raw = None
            return
        if state != self._raw:
            self._raw, self._raw_since, self._raw_count = state, now, 0
        self._raw_count += 1
        fast = state in "AEF" or self.cp in "CD"  # anything that may open the contactor
        if (fast and self._raw_count >= _FAST_READS) or (
            not fast and time.ticks_diff(now, self._raw_since) >= _SLOW_MS
        ):
            self._enter(state, now)

    def _enter(self, state, now):
        old, self.cp, self._raw = self.cp, state, None
        self._changed = True
        if state == "E":
            self._fault(CP_SHORT, now)
        elif old == "E":
            self._clear(CP_SHORT)
        if state == "A":
            self._unplugged()
        elif old == "A" and state in "BCD":
            self._plugged(now)

    def _plugged(self, now):
        if self.hw.proximity is not None:
            self.cable_a = self.hw.proximity.read_amps() or self.hw.pp_fallback_a
            if self.cable_a is None:
                self._fault(PP_FAULT, now)
        self._rcd = None if self.hw.rcd.has_test else _RCD_OK

    def _unplugged(self):
        for code in _UNTIL_UNPLUG:
            self._clear(code)
        self._diode_seen = False
        self._diode_bad = 0
        self._rcd = None
        self._stop_since = None
        if self.hw.proximity is not None:
            self.cable_a = None

    def _fault(self, code, now):
        if code not in self.faults:
            self.faults.add(code)
            self._changed = True
            if code in _HARD and self._fault_since is None:
                self._fault_since = now

    def _clear(self, code):
        if code in self.faults:
            self.faults.discard(code)
            self._changed = True
            for c in _HARD:  # a loop, not any(): a generator would allocate
                if c in self.faults:
                    return
            self._fault_since = None

    def _check_diode(self, pilot):
        if pilot.diode is None or self.cp not in "BCD":
            return
        if pilot.diode:
            self._diode_seen = True
            self._diode_bad = 0
        else:
            self._diode_bad += 1
            if self._diode_bad >= _FAST_READS:
                self._fault(DIODE_FAULT, self.ticks())

    def _check_rcd(self, now):
        rcd = self.hw.rcd
        if self._rcd == _RCD_TESTING:
            if rcd.tripped():
                rcd.test(False)
                self._rcd, self._rcd_since = _RCD_CLEARING, now
            elif time.ticks_diff(now, self._rcd_since) >= _RCD_TEST_MS:
                rcd.test(False)
                self._rcd = None
                self._fault(RCD_SELFTEST, now)
            return
        if self._rcd == _RCD_CLEARING:
            if not rcd.tripped():
                self._rcd = _RCD_OK
                self._changed = True
            elif time.ticks_diff(now, self._rcd_since) >= _RCD_CLEAR_MS:
                self._rcd = None
                self._fault(RCD_SELFTEST, now)
            return
        if rcd.tripped():
            self._fault(RCD_TRIP, now)
        if self._rcd is None and self.plugged and not self.faults:
            rcd.test(True)
            self._rcd, self._rcd_since = _RCD_TESTING, now

    def _check_contactor(self, now):
        c = self.hw.contactor
        fb = c.feedback()
        if fb is None or time.ticks_diff(now, self._switched) < _SETTLE_MS:
            return
        if not c.closed and fb:
            self._fault(WELDED, now)
            self._open_since = None
        elif c.closed and not fb:
            c.open()
            self._switched = now
            self._fault(CONTACTOR_FAULT, now)
        elif WELDED in self.faults and not fb:
            if self._open_since is None:
                self._open_since = now
            elif time.ticks_diff(now, self._open_since) >= _WELD_CLEAR_MS:
                self._clear(WELDED)

    # -- decisions --------------------------------------------------------------------------

    def _offer(self, now):
        """The current to offer now, rate limited: rises once per _RISE_MS, falls at once."""
        target = self.max_a  # written out: a loop over a tuple would allocate it every tick
        lim = self.limit_a
        if lim is not None and lim < target:
            target = lim
        if target < _MIN_A:
            return 0
        if not self._diode_seen and target > _DIODE_CHECK_A:
            target = _DIODE_CHECK_A
        cur = self.offered_a
        if cur == 0 or target < cur or time.ticks_diff(now, self._offer_ms) >= _RISE_MS:
            return target
        return cur

    def _control(self, now):
        hw = self.hw
        pilot, contactor = hw.pilot, hw.contactor
        hard = self._fault_since is not None
        ready = self.plugged and self._permitted and self._available and not self.faults
        ready = ready and self._rcd == _RCD_OK
        if time.ticks_diff(now, self._switched) > _PHASE_GAP_MS:
            self._switched = time.ticks_add(now, -_PHASE_GAP_MS)  # long enough: no wrap
        want = self._want
        if want is not None:
            # The phase switch moves when wanted and safe: the main contactor commanded open
            # _PHASE_GAP_MS ago (or more) and its mirror not saying closed. `switching`: the
            # offer stays off while a switch is pending and a gap after it moved.
            gap = time.ticks_diff(now, self._switched) >= _PHASE_GAP_MS
            if want == self.phases:
                # The gap after the move (or after the opening, when a change of mind came late)
                busy = self.switching and not gap and not contactor.closed
            elif contactor.closed or not gap or contactor.feedback() is True:
                busy = True  # x1 is out: the EV goes to B (or 6 s pass), the contactor opens
            else:
                if want == 3:
                    hw.phase_switch.close()
                else:
                    hw.phase_switch.open()
                self._switched = now  # the main mirror settles too; the next move waits a gap
                # No EV plugged (as at boot): none to give a pause, the offer may follow at once
                busy = self.plugged
                self._changed = True
            if busy != self.switching:
                self.switching = busy
                self._changed = True
            if busy:
                ready = False
        offer = self._offer(now) if ready else 0
        wants = self.cp == "C" or (self.cp == "D" and hw.ventilation)
        # The pilot: F for a while after a hard fault, then x1; x2 only while ready to charge.
        if hard and time.ticks_diff(now, self._fault_since) < _F_MS:
            if pilot.duty != 0:
                pilot.fault()
            self._set_offer(0, now)
        elif offer:
            if offer != self.offered_a:
                pilot.offer(offer)
                self._set_offer(offer, now)
        elif pilot.duty != _U16:
            pilot.standby()
            self._set_offer(0, now)
        # The contactor.
        if contactor.closed:
            if self.faults or not wants:
                self._open(now)  # fault, EV stopped (C->B), unplug, D without ventilation
            elif not offer:
                # Charger-initiated stop: x1 is out; the EV should go to B (then the branch
                # above opens at once); after _STOP_MS we open under load.
                if self._stop_since is None:
                    self._stop_since = now
                elif time.ticks_diff(now, self._stop_since) >= _STOP_MS:
                    self._forced = True
                    self._open(now)
        elif offer and wants and self._diode_seen and contactor.feedback() is not True:
            contactor.close()
            self._switched = now
            self._stop_since = None
            self._changed = True

    def _set_offer(self, amps, now):
        if amps != self.offered_a:
            self.offered_a = amps
            self._offer_ms = now
            self._changed = True

    def _open(self, now):
        self.hw.contactor.open()
        self._switched = now
        self._stop_since = None
        self._changed = True

    # -- the meter --------------------------------------------------------------------------

    async def meter_loop(self):
        """Poll the meter; a meter silent for _METER_LOST_MS is a fault, not a crash."""
        tag = "evse%d" % self.id
        while True:
            self.last_poll = self.ticks()
            try:
                self.reading = await asyncio.wait_for_ms(self.hw.meter.read(), _METER_READ_MS)
                self._meter_ok_ms = self.reading_ms = self.ticks()
                self._clear(METER_TIMEOUT)
            except (MeterError, asyncio.TimeoutError) as e:
                log.warn(tag, "meter: %r" % e)
                now = self.ticks()
                if self._meter_ok_ms is None:
                    self._meter_ok_ms = now
                if time.ticks_diff(now, self._meter_ok_ms) >= _METER_LOST_MS:
                    self._fault(METER_TIMEOUT, now)
            await asyncio.sleep_ms(_METER_POLL_MS)
