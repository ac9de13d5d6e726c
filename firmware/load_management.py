# load_management: local load management from a mains meter at the grid connection (vendor
# component LoadManagement): keep the site under its main fuse (Capacity), or charge from the
# power the site exports (Solar). MIT licence.
#
# Each EVSE's limit is one of the station's own ChargingStationExternalConstraints profiles (in
# RAM, source "EMS", firmware/charging_profiles.Profiles.set_external): it takes part in the
# limit the smart-charging block applies and in GetCompositeSchedule like any profile, and is
# reported with NotifyChargingLimit when it starts to restrict and ClearedChargingLimit when it
# stops (K12, K13): what the CSMS was last told is kept per EVSE, and the difference is sent
# once the link is ready (a restriction that began offline is told after the reconnect; one
# that began and ended offline is not told at all). Built and run by the smart-charging block
# while Mode is not Off.
#
# Every second (signed currents from the mains meter, negative = exported; the EVSEs' own draw
# from their meters):
#   other[p]  = mains[p] - own[p]: what the rest of the site draws on phase p
#   Capacity: each EVSE with a car plugged in gets (MainsFuse - max other[p]) / their number
#   Solar:    exported = -sum(other): 3 phases when it gives each EVSE 6 A per phase, else 1
#             phase (EVSEs with a phase switch, or wired for one phase) when it gives 6 A
#             there; below that, an EVSE charging goes on at 6 A for SolarStopDelay (a cloud),
#             then pauses (0 A); one not charging does not start
# A limit falls at once and rises only _RISE_MS after its last change; all hold for _SETTLE_MS
# after an EVSE's own draw changed (its meter catching up with the mains meter). A mains meter
# silent for _LOST_MS is a logged fault and the safe fallback: 6 A per EVSE (Capacity), a pause
# (Solar).

import asyncio
import time

from micropython import const

import log
import ocppj
from meter import MeterError

_TAG = const("load")
_MODE = const("LoadManagement/Mode")
_FUSE = const("LoadManagement/MainsFuse")
_SOLAR_DELAY = const("LoadManagement/SolarStopDelay")
_TICK_MS = const(1000)  # the mains meter is read this often
_READ_MS = const(2000)  # one read may take this long
_LOST_MS = const(5000)  # no good reading for this long: the meter is lost
_RISE_MS = const(5000)  # a limit rises at most once per this; it falls at once
# After an EVSE's draw changed (its contactor or offer) its meter's reading lags the mains
# meter's for up to a poll: the limits hold this long, until both have seen the change.
_SETTLE_MS = const(2500)
_MIN_A = const(6)  # the least a pilot offers
_FALLBACK_A = const(6)  # Capacity without a mains meter: what each EVSE may take
_ID = const(1000000000)  # the external profile of EVSE n has id _ID + n (no CSMS id)
_EXTERNAL = const("ChargingStationExternalConstraints")


class LoadManagement:
    """dm: the device model (the LoadManagement variables); meter: the mains meter (async
    read() -> meter.Reading, signed currents); evses: the Evse controllers; profiles: the
    charging profiles store (set_external); session and ready (an Event set while the link
    is up and Accepted): for NotifyChargingLimit and ClearedChargingLimit; clock: the station's
    Clock; spawn: runs a coroutine; changed: called after a limit changed, so that the
    smart-charging block applies it at once."""

    def __init__(self, dm, meter, evses, profiles, session, ready, clock, spawn, changed):
        self.dm = dm
        self.meter = meter
        self.evses = evses
        self.profiles = profiles
        self.session = session
        self.ready = ready
        self.clock = clock
        self.spawn = spawn
        self.changed = changed
        n = len(evses)
        self.limits = [None] * n  # (amps, phases) published per EVSE, None: no restriction
        self._moved = [0] * n  # ticks of each limit's last change
        self._low = [None] * n  # Solar: since when each EVSE's share has been below 6 A
        self.reading = None  # the mains meter's last good Reading
        self.lost = False  # the meter has been silent for _LOST_MS (a fault)
        self._ok_ms = None  # ticks of the last good reading (None: none yet)
        self._stop = False
        # See _settled. None: not seen yet, so the first pass with a reading holds too (a
        # session may have begun just before, its meter not showing it yet).
        self._seen = [None] * n
        self._since = [None] * n  # ticks of each EVSE's last change, None: settled
        self._told = [False] * n  # whether the CSMS knows of a restriction on each EVSE
        self._telling = False  # a NotifyChargingLimit or ClearedChargingLimit under way

    async def run(self):
        start = time.ticks_ms()
        while not self._stop:
            reading = None
            try:
                reading = await asyncio.wait_for_ms(self.meter.read(), _READ_MS)
            except (MeterError, asyncio.TimeoutError) as e:
                log.warn(_TAG, "mains meter: %r" % e)
            if self._stop:
                break
            try:
                self.step(time.ticks_ms(), reading, start)
            except Exception as e:  # a bug here must not end load management for good
                log.exc(_TAG, "step", e)
            await asyncio.sleep_ms(_TICK_MS)

    def stop(self):
        """Mode Off: the external limits go (ClearedChargingLimit for each that restricted)."""
        self._stop = True
        for i in range(len(self.evses)):
            self._publish(i, None, 0)
            if self._told[i] and self.ready.is_set():
                self._told[i] = False
                self.spawn(self._tell(i, "ClearedChargingLimit", _cleared(i + 1)))
        self.changed()

    # -- the decision -----------------------------------------------------------------------

    def step(self, ms, reading, start):
        """One pass: `reading` the mains meter's (None: none this time), at ticks `ms`."""
        if reading is not None:
            self.reading = reading
            self._ok_ms = ms
            if self.lost:
                self.lost = False
                log.info(_TAG, "mains meter answers again")
        elif not self.lost:
            since = start if self._ok_ms is None else self._ok_ms
            if time.ticks_diff(ms, since) >= _LOST_MS:
                self.lost = True
                log.error(_TAG, "mains meter lost: fallback limits")
        solar = self.dm.get(_MODE) == "Solar"
        fresh = self._ok_ms is not None and not self.lost
        if not self._settled(ms) and fresh:
            self._reconcile()
            return
        evses = self.evses
        # Who shares. Capacity: every EVSE with a car plugged in, so that one that starts
        # drawing never takes the site over the fuse before the next pass (an idle car costs
        # the others a share). Solar: only those that want energy (or wait on our pause).
        busy = 0
        for e in evses:
            if e.ev_requesting or (e.plugged and (e.limited or not solar)):
                busy += 1
        busy = max(1, busy)
        if solar:
            export = self._export() if fresh else 0
            per = export / busy  # A, summed over the phases
        else:
            room = self._room() / busy if fresh else _FALLBACK_A
        any_change = False
        for i in range(len(evses)):
            e = evses[i]
            if solar:
                amps, phases = self._solar(i, e, per, ms, fresh)
            else:
                amps, phases = (int(room) if room > 0 else 0), e.hw.phases
            any_change = self._publish(i, amps, phases, ms) or any_change
        if any_change:
            self.changed()
        self._reconcile()

    def _reconcile(self):
        """Tell the CSMS of the first EVSE whose restriction it does not know as it is."""
        if self._telling or not self.ready.is_set():
            return
        for i in range(len(self.evses)):
            lim = self.limits[i]
            if (lim is not None) == self._told[i]:
                continue
            n = i + 1
            if lim is None:
                self.spawn(self._tell(i, "ClearedChargingLimit", _cleared(n)))
            else:
                # the schedule of the profile in force: what GetChargingProfiles reports too
                s = self.profiles.get(_ID + n)[1]["chargingSchedule"][0]
                msg = {"chargingLimit": {"chargingLimitSource": "EMS"}, "evseId": n,
                       "chargingSchedule": [s]}  # fmt: skip
                self.spawn(self._tell(i, "NotifyChargingLimit", msg))
            return

    def _settled(self, ms):
        """False while an EVSE's draw changed less than _SETTLE_MS ago: its own meter may not
        show it yet while the mains meter does, and the rest of the site would seem to draw
        what it draws."""
        ok = True
        for i in range(len(self.evses)):
            e = self.evses[i]
            now = (e.energy_flowing, e.offered_a)
            if now != self._seen[i]:
                self._seen[i] = now
                self._since[i] = ms
            elif self._since[i] is not None and time.ticks_diff(ms, self._since[i]) >= _SETTLE_MS:
                self._since[i] = None
            if self._since[i] is not None:
                ok = False
        return ok

    def _own(self, p):
        """What the EVSEs draw on phase p (A) by their meters; nothing while their contactor
        is open."""
        a = 0
        for e in self.evses:
            r = e.reading
            if r is not None and e.energy_flowing:
                c = r.current_a[p]
                if c is not None:
                    a += c
        return a

    def _room(self):
        """Capacity: the current (A per phase) the EVSEs together may draw: MainsFuse less the
        most the rest of the site draws on a phase."""
        fuse = self.dm.get_int(_FUSE)
        cur = self.reading.current_a
        worst = None
        for p in range(3):
            if cur[p] is None:  # a one-phase mains meter
                continue
            other = cur[p] - self._own(p)
            if worst is None or other > worst:
                worst = other
        return fuse - (worst or 0)

    def _export(self):
        """Solar: what the site exports with the EVSEs' own draw added back (A, summed over
        the phases)."""
        cur = self.reading.current_a
        out = 0
        for p in range(3):
            if cur[p] is not None:
                out += self._own(p) - cur[p]
        return out

    def _solar(self, i, e, per, ms, fresh):
        """(amps per phase, phases) for EVSE i (e) from `per`, its share of the export (A
        summed over the phases)."""
        three = e.hw.phases == 3
        one = e.hw.phase_switch is not None or not three  # it can charge on one phase
        if three and per >= 3 * _MIN_A:
            self._low[i] = None
            return int(per / 3), 3
        low = 1 if one else e.hw.phases
        if per >= _MIN_A and one:
            self._low[i] = None
            return int(per), 1
        if not fresh or not e.energy_flowing:
            self._low[i] = None
            return 0, low  # no export to start on: a pause at once
        if self._low[i] is None:
            self._low[i] = ms
        delay = self.dm.get_int(_SOLAR_DELAY) * 1000
        if time.ticks_diff(ms, self._low[i]) < delay:
            return _MIN_A, low  # from the grid in part, for SolarStopDelay
        return 0, low

    # -- publishing -------------------------------------------------------------------------

    def _publish(self, i, amps, phases, ms=0):
        """Make (amps, phases) EVSE i's external limit, by the rise rule; None: no restriction.
        True when the limit changed."""
        e = self.evses[i]
        old = self.limits[i]
        if amps is not None and amps >= e.max_a and phases >= e.hw.phases:
            amps = None  # the hardware's own ceiling: no restriction of ours
        new = None if amps is None else (amps, phases)
        if new == old:
            return False
        if old is not None:  # a rise: more power than before, or none of ours
            if new is None or amps * phases > old[0] * old[1]:
                if time.ticks_diff(ms, self._moved[i]) < _RISE_MS and not self._stop:
                    return False
        self._moved[i] = ms
        n = i + 1
        self.limits[i] = new
        if new is None:
            self.profiles.set_external(n, None)
            log.info(_TAG, "EVSE %d: no limit" % n)
            return True
        s = {
            "id": _ID + n,
            "startSchedule": self.clock.iso(),
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": amps, "numberPhases": phases}],
        }
        self.profiles.set_external(
            n,
            {
                "id": _ID + n,
                "stackLevel": 0,
                "chargingProfilePurpose": _EXTERNAL,
                "chargingProfileKind": "Absolute",
                "chargingSchedule": [s],
            },
        )
        log.info(_TAG, "EVSE %d: %d A on %d phase(s)" % (n, amps, phases))
        return True

    async def _tell(self, i, action, payload):
        """Send `action`; once answered the CSMS knows EVSE i's restriction as it was."""
        self._telling = True
        try:
            await self.session.call(action, payload)
            self._told[i] = action == "NotifyChargingLimit"
        except ocppj.CallError as e:  # the CSMS has it and refused it: asking again won't help
            log.warn(_TAG, "%s refused: %r" % (action, e))
            self._told[i] = action == "NotifyChargingLimit"
        except (asyncio.TimeoutError, ocppj.NotConnected) as e:
            log.warn(_TAG, "%s not sent: %r" % (action, e))  # tried again next second
        finally:
            self._telling = False


def _cleared(n):
    return {"chargingLimitSource": "EMS", "evseId": n}
