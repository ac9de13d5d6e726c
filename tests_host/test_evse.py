"""The IEC 61851-1 controller (firmware/evse.py) on fake hardware, fake clock, 10 ms ticks."""

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

import iec61851
from boards.drivers import EvseHw
from firmware import evse as E
from meter import MeterError, Reading

ROOT = Path(__file__).resolve().parent.parent
MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"


class FakePilot:
    """Reads what the test sets as the EV state; the diode answers while the PWM runs."""

    def __init__(self):
        self.ev = "A"
        self.diode_ok = True
        self.duty_pct = 100.0
        self.duty = 65535  # duty_u16, as the real driver keeps it
        self.history = []  # ("x2", amps) / ("x1",) / ("F",)

    def offer(self, amps):
        self.duty_pct = iec61851.duty_for_current(amps)
        self.duty = iec61851.duty_u16_for(amps)
        self.history.append(("x2", amps))

    def standby(self):
        self.duty_pct = 100.0
        self.duty = 65535
        self.history.append(("x1",))

    def fault(self):
        self.duty_pct = 0.0
        self.duty = 0
        self.history.append(("F",))

    def read(self):
        x2 = 0 < self.duty_pct < 100
        self.diode = (self.diode_ok if x2 else None) if self.ev in "BCD" else None
        if self.duty_pct == 0:
            return "F"
        return self.ev


class FakeContactor:
    def __init__(self):
        self.closed = False
        self.mode = "follow"  # follow | welded | stuck_open | none
        self.history = []  # (now, "close"/"open") filled by the test loop

    def close(self):
        self.closed = True

    def open(self):
        self.closed = False

    def feedback(self):
        if self.mode == "none":
            return None
        if self.mode == "welded":
            return True
        if self.mode == "stuck_open":
            return False
        return self.closed


class FakeRcd:
    def __init__(self, has_test=True, test_works=True):
        self.fault = False
        self.has_test = has_test
        self.test_works = test_works
        self.testing = False
        self.tests = 0

    def tripped(self):
        return self.fault or (self.testing and self.test_works)

    def test(self, on):
        self.testing = on
        self.tests += on


class FakeProximity:
    def __init__(self, amps=32):
        self.amps = amps

    def read_amps(self):
        return self.amps


class FakeMeter:
    def __init__(self):
        self.fail = False

    async def read(self):
        if self.fail:
            raise MeterError("timeout")
        return Reading(1000.0, 7000.0)


class Rig:
    """One Evse on fake hardware, stepped by a fake clock."""

    def __init__(
        self, max_a=32, ventilation=False, cable=32, rcd=None, tethered_a=None, pp_fallback_a=None
    ):
        self.pilot = FakePilot()
        self.contactor = FakeContactor()
        self.rcd = rcd or FakeRcd()
        prox = None if tethered_a else FakeProximity(cable)
        self.hw = EvseHw(
            self.pilot,
            self.contactor,
            self.rcd,
            FakeMeter(),
            max_a,
            proximity=prox,
            ventilation=ventilation,
            cable_a=tethered_a,
            pp_fallback_a=pp_fallback_a,
        )
        self.now = 1000
        self.evse = E.Evse(1, self.hw, ticks=lambda: self.now)
        self.changes = 0  # ticks that woke the listeners (Evse.notify)

    def step(self):
        self.now += 10
        self.evse.step(self.now)
        if self.evse.wake.is_set():
            self.evse.wake.clear()
            self.changes += 1

    def run(self, ms):
        for _ in range(ms // 10):
            self.step()

    def until(self, pred, limit_ms=10000):
        """Step until pred() holds; return the ms it took."""
        start = self.now
        while not pred():
            if self.now - start > limit_ms:
                raise AssertionError("never happened")
            self.step()
        return self.now - start

    def charging(self, amps=None):
        """Plug in, permit, EV to C: returns with the contactor closed."""
        self.pilot.ev = "B"
        self.run(300)
        self.evse.permit(True)
        if amps:
            self.evse.set_limit(amps)
        self.run(50)
        self.pilot.ev = "C"
        self.until(lambda: self.contactor.closed, 1000)


def test_full_session_a_b_c_b_a():
    r = Rig()
    r.run(100)
    assert r.evse.cp == "A" and r.pilot.duty_pct == 100.0 and not r.contactor.closed
    r.pilot.ev = "B"
    took = r.until(lambda: r.evse.cp == "B")
    assert 200 <= took <= 220  # towards charging: stable for 200 ms first
    r.run(50)
    assert r.rcd.tests == 1  # self-test at the start of the session
    assert r.pilot.duty_pct == 100.0  # not permitted yet: x1, no energy offered
    r.evse.permit(True)
    r.run(20)
    assert r.pilot.history[-1] == ("x2", 32) and r.evse.offered_a == 32
    assert r.evse.suspended_ev
    r.pilot.ev = "C"
    took = r.until(lambda: r.contactor.closed)
    assert 200 <= took <= 220
    assert r.evse.energy_flowing and not r.evse.suspended_ev
    r.pilot.ev = "B"
    assert r.until(lambda: not r.contactor.closed) <= 20  # EV stops: open within two reads
    assert r.pilot.duty_pct == iec61851.duty_for_current(32)  # B2: the EV may resume
    r.pilot.ev = "A"
    r.until(lambda: r.evse.cp == "A")
    assert r.pilot.duty_pct == 100.0 and r.evse.offered_a == 0
    assert r.changes > 0


def test_no_permission_no_energy_even_in_c():
    r = Rig()
    r.pilot.ev = "C"
    r.run(2000)
    assert r.evse.cp == "C" and not r.contactor.closed and r.pilot.duty_pct == 100.0
    assert r.evse.suspended_evse


def test_ev_pausing_in_b_then_resuming():
    r = Rig()
    r.charging()
    r.pilot.ev = "B"
    r.run(3000)
    assert not r.contactor.closed and r.evse.suspended_ev and r.evse.offered_a == 32
    r.pilot.ev = "C"
    r.until(lambda: r.contactor.closed, 300)


def test_unplug_while_charging_opens_within_20_ms():
    r = Rig()
    r.charging()
    r.pilot.ev = "A"
    assert r.until(lambda: not r.contactor.closed) <= 20
    assert r.evse.cp == "A" and r.pilot.duty_pct == 100.0


def test_rcd_trip_opens_at_once_signals_f_then_x1_and_latches_until_unplug():
    r = Rig()
    r.charging()
    r.rcd.fault = True
    r.run(10)
    assert not r.contactor.closed and r.pilot.duty_pct == 0.0
    assert r.evse.faults == {E.RCD_TRIP}
    r.run(280)
    assert r.pilot.duty_pct == 0.0  # F held >= 300 ms
    r.run(40)
    assert r.pilot.duty_pct == 100.0  # then x1 while faulted
    r.rcd.fault = False
    r.run(2000)
    assert E.RCD_TRIP in r.evse.faults and not r.contactor.closed
    r.pilot.ev = "A"
    r.run(50)
    assert r.evse.faults == set()


def test_welded_contactor_is_reported_and_blocks_charging_until_it_reads_open():
    r = Rig()
    r.charging()
    r.contactor.mode = "welded"
    r.pilot.ev = "B"
    r.run(20)
    assert not r.contactor.closed  # commanded open at once
    r.run(600)
    assert E.WELDED in r.evse.faults
    r.pilot.ev = "C"
    r.run(2000)
    assert not r.contactor.closed
    r.contactor.mode = "follow"  # serviced
    r.run(1100)
    assert E.WELDED not in r.evse.faults


def test_contactor_that_never_closes_is_a_fault():
    r = Rig()
    r.contactor.mode = "stuck_open"
    r.charging()
    r.run(600)
    assert not r.contactor.closed and E.CONTACTOR_FAULT in r.evse.faults


def test_missing_diode_is_a_fault_and_opens():
    r = Rig()
    r.charging()
    r.pilot.diode_ok = False
    assert r.until(lambda: not r.contactor.closed) <= 20
    assert E.DIODE_FAULT in r.evse.faults


def test_no_diode_ever_seen_means_no_closing():
    r = Rig()
    r.pilot.diode_ok = False
    r.pilot.ev = "B"
    r.run(300)
    r.evse.permit(True)
    r.pilot.ev = "C"
    r.run(1000)
    assert not r.contactor.closed and E.DIODE_FAULT in r.evse.faults


def test_cp_short_opens_and_clears_when_gone():
    r = Rig()
    r.charging()
    r.pilot.ev = "E"
    assert r.until(lambda: not r.contactor.closed) <= 20
    assert E.CP_SHORT in r.evse.faults
    r.run(400)
    r.pilot.ev = "C"
    r.run(300)
    assert E.CP_SHORT not in r.evse.faults


def test_charger_stop_goes_x1_first_and_opens_when_the_ev_goes_to_b():
    r = Rig()
    r.charging()
    r.evse.permit(False)
    r.run(10)
    assert r.pilot.duty_pct == 100.0 and r.contactor.closed  # x1 first, under load still
    r.run(2000)
    assert r.contactor.closed
    r.pilot.ev = "B"
    assert r.until(lambda: not r.contactor.closed) <= 20


def test_charger_stop_opens_under_load_after_6_s():
    r = Rig()
    r.charging()
    r.evse.permit(False)
    took = r.until(lambda: not r.contactor.closed, 8000)
    assert 6000 <= took <= 6020


def test_offered_current_falls_at_once_rises_once_per_5_s_and_obeys_the_cable():
    r = Rig(cable=20)
    r.charging()
    assert r.evse.offered_a == 20  # clamped by the cable's PP rating
    r.evse.set_limit(10)
    r.run(10)
    assert r.evse.offered_a == 10  # falls at once
    r.evse.set_limit(16)
    took = r.until(lambda: r.evse.offered_a == 16)
    assert 4990 <= took <= 5010
    r.evse.set_limit(18)
    took = r.until(lambda: r.evse.offered_a == 18)
    assert 4990 <= took <= 5010
    r.evse.set_limit(5)  # below 6 A: no offer, the EV is suspended by the EVSE
    r.run(10)
    assert r.evse.offered_a == 0 and r.pilot.duty_pct == 100.0
    r.pilot.ev = "B"
    r.run(30)
    assert not r.contactor.closed


def test_tethered_cable_rating_is_board_data():
    r = Rig(tethered_a=16)
    r.charging()
    assert r.evse.offered_a == 16


def test_unreadable_proximity_blocks_charging():
    r = Rig(cable=None)
    r.pilot.ev = "B"
    r.run(300)
    r.evse.permit(True)
    r.run(100)
    assert E.PP_FAULT in r.evse.faults and r.pilot.duty_pct == 100.0


def test_unreadable_proximity_charges_at_13_a_where_the_board_says_so():
    r = Rig(cable=None, pp_fallback_a=13)
    r.charging()
    assert r.evse.offered_a == 13 and not r.evse.faults


def test_state_d_needs_ventilation():
    r = Rig()
    r.pilot.ev = "B"
    r.run(300)
    r.evse.permit(True)
    r.pilot.ev = "D"
    r.run(1000)
    assert not r.contactor.closed
    r = Rig(ventilation=True)
    r.pilot.ev = "B"
    r.run(300)
    r.evse.permit(True)
    r.pilot.ev = "D"
    r.until(lambda: r.contactor.closed, 1000)


def test_failed_rcd_self_test_blocks_charging():
    r = Rig(rcd=FakeRcd(test_works=False))
    r.pilot.ev = "B"
    r.evse.permit(True)
    r.run(800)
    assert E.RCD_SELFTEST in r.evse.faults and r.pilot.duty_pct in (0.0, 100.0)
    r.pilot.ev = "C"
    r.run(1000)
    assert not r.contactor.closed


def test_unavailable_evse_offers_nothing():
    r = Rig()
    r.evse.set_available(False)
    r.pilot.ev = "B"
    r.run(300)
    r.evse.permit(True)
    r.pilot.ev = "C"
    r.run(1000)
    assert not r.contactor.closed and r.pilot.duty_pct == 100.0


def test_meter_silent_for_8_s_is_a_fault_that_opens_and_clears_when_it_answers():
    r = Rig()
    r.charging()

    async def go():
        task = asyncio.create_task(r.evse.meter_loop())
        await asyncio.sleep(0.05)
        assert r.evse.reading.energy_wh == 1000.0
        r.hw.meter.fail = True
        r.now += 8500  # time passes for the meter loop's clock
        await asyncio.sleep(1.1)
        assert E.METER_TIMEOUT in r.evse.faults
        r.run(10)
        assert not r.contactor.closed
        r.hw.meter.fail = False
        await asyncio.sleep(1.1)
        assert E.METER_TIMEOUT not in r.evse.faults
        task.cancel()

    asyncio.run(go())


def test_a_dying_safety_loop_opens_the_contactor():
    r = Rig()
    r.charging()

    def boom():
        raise RuntimeError("bug")

    r.evse.ticks = boom

    async def go():
        with pytest.raises(RuntimeError):
            await r.evse.run()

    asyncio.run(go())
    assert not r.contactor.closed and r.pilot.duty_pct == 0.0


def test_the_safety_loop_slows_to_100_ms_only_while_nothing_is_plugged_in_or_on(monkeypatch):
    """Evse.run's pace, from the sleeps it asks for (the fake clock moves by each): 100 ms in
    A with the pilot at +12 V, the contactor open and no fault; 10 ms from the first read of
    anything else (a plug-in pending debounce, a session, a fault) until all is idle again."""
    r = Rig()
    script = []  # (sleeps asked so far at which to act, action)
    paces = []
    closed = []

    class Stop(Exception):
        pass

    async def sleep_ms(ms):
        paces.append(ms)
        closed.append(r.contactor.closed)
        r.now += ms
        for at, act in script:
            if at == len(paces):
                act()
        if len(paces) >= 400:
            raise Stop()

    def plug_in():
        r.pilot.ev = "B"

    def start():
        r.evse.permit(True)
        r.pilot.ev = "C"

    def leave():
        r.pilot.ev = "A"
        r.evse.permit(False)

    def trip():
        r.rcd.fault = True

    def untrip():
        r.rcd.fault = False

    script += [(5, plug_in), (120, start), (250, leave), (300, trip), (330, untrip)]
    monkeypatch.setattr(E, "asyncio", type("A", (), {"sleep_ms": staticmethod(sleep_ms)}))

    async def go():
        with pytest.raises(Stop):
            await r.evse.run()

    asyncio.run(go())
    assert paces[:5] == [100] * 5  # idle: nothing plugged in
    assert set(paces[5:250]) == {10}  # the plug-in seen at the next read, then the session
    assert any(closed[120:250]) and not any(closed[252:])  # it charged, opened in 20 ms
    back = paces.index(100, 250)  # unplugged: A once debounced, x1, contactor open
    assert back - 250 <= 3 and set(paces[back:300]) == {100}
    assert set(paces[300:302]) == {10}  # the trip: F, a fault (first read after it)


def test_offers_above_63_a_wait_until_the_diode_has_answered():
    r = Rig(max_a=80, cable=None, tethered_a=80)
    r.pilot.ev = "B"
    r.run(300)
    r.evse.permit(True)
    r.run(20)
    assert r.evse.offered_a == 63  # the diode is judged at this duty
    r.pilot.ev = "C"
    r.until(lambda: r.contactor.closed, 1000)
    r.until(lambda: r.evse.offered_a == 80, 6000)


# -- the cable lock (UnlockConnector asks the controller) ------------------------------------


class FakeLock:
    def __init__(self, works=True):
        self.works = works
        self.unlocks = 0

    async def unlock(self):
        self.unlocks += 1
        return self.works


@pytest.mark.parametrize(
    "works, tethered_a, want",
    [
        (True, None, E.UNLOCKED),
        (False, None, E.UNLOCK_FAILED),
        (True, 32, E.UNLOCKED),  # a lock is driven whatever the cable
        (None, None, E.UNLOCKED),  # a socket without a lock holds nothing
        (None, 32, E.FIXED_CABLE),
    ],
)
def test_unlock_drives_the_lock_and_says_what_came_of_it(works, tethered_a, want):
    r = Rig(tethered_a=tethered_a)
    lock = r.hw.lock = None if works is None else FakeLock(works)
    assert asyncio.run(r.evse.unlock()) == want
    assert lock is None or lock.unlocks == 1


# -- the tick allocates nothing; the listeners run outside it ------------------------------

HEAPLOCK = """
# The safety tick over whole sessions under micropython.heap_lock(): the real drivers (pilot,
# contactor with mirror contact, RCD with test output) on allocation-free fake pins.
import micropython

from boards.drivers import EvseHw
from boards.drivers.contactor import Contactor
from boards.drivers.pilot import Pilot
from boards.drivers.rcd import Rcd
from boards.sim.ev import CP_THRESHOLDS, MV_FULL
from firmware.evse import Evse


def raw(mv):
    return mv * 65535 // MV_FULL


RAW_A, RAW_B, RAW_C, RAW_LOW = raw(2390), raw(2103), raw(1819), raw(110)


class Pin:
    def __init__(self):
        self.v = 0
        self.ups = 0  # times driven to 1

    def value(self, v=None):
        if v is None:
            return self.v
        if v and not self.v:
            self.ups += 1
        self.v = v


class Follow:  # an input that reads another pin (mirror contact, RCD fault output)
    def __init__(self, src):
        self.src = src
        self.forced = 0

    def value(self, v=None):
        return 1 if self.forced else self.src.v


class PWM:
    def __init__(self):
        self.d = 65535

    def duty_u16(self, d=None):
        if d is None:
            return self.d
        self.d = d


class ADC:  # 24 samples per 1 kHz period (the pilot reads 43 us apart)
    def __init__(self, pwm):
        self.pwm = pwm
        self.i = 0
        self.high = RAW_A

    def read_u16(self):
        i = self.i
        self.i = i + 1 if i < 23 else 0
        return self.high if i * 65535 < self.pwm.d * 24 else RAW_LOW


class Clock:
    def __init__(self):
        self.t = 0


class Marks:  # (cp, contactor closed, offered A) at each checkpoint, kept without allocating
    def __init__(self):
        self.b = bytearray(60)
        self.k = 0


pwm = PWM()
adc = ADC(pwm)
coil, test = Pin(), Pin()
fault = Follow(test)
hw = EvseHw(
    Pilot(pwm, adc, CP_THRESHOLDS, MV_FULL, 48),
    Contactor([coil], Follow(coil), 1),
    Rcd(fault, 1, test, 1),
    None,
    32,
    cable_a=32,
)
clock = Clock()
evse = Evse(1, hw, ticks=lambda: clock.t)
marks = Marks()


def run(n):
    for _ in range(n):
        clock.t += 10
        evse.step(clock.t)
    b, k = marks.b, marks.k
    b[k] = ord(evse.cp)
    b[k + 1] = 1 if hw.contactor.closed else 0
    b[k + 2] = evse.offered_a
    marks.k = k + 3


def sessions():
    run(30)  # A
    adc.high = RAW_B  # plugged in
    run(40)  # B after 200 ms; the RCD self-test passes
    evse.permit(True)
    run(5)  # x2: 32 A
    adc.high = RAW_C
    run(30)  # closed
    adc.high = RAW_B
    run(5)  # the EV stops: open
    adc.high = RAW_C
    run(30)  # closed again
    evse.set_limit(16)
    run(5)  # the offer falls at once
    fault.forced = 1  # the RCD trips
    run(5)  # open, F
    fault.forced = 0
    adc.high = RAW_A  # unplugged: the trip clears
    run(60)
    adc.high = RAW_B
    run(40)  # a new session, still permitted: x2 after its self-test
    adc.high = RAW_C
    run(30)  # closed
    evse.permit(False)
    run(5)  # x1: the EV should stop
    adc.high = RAW_B
    run(5)  # open
    adc.high = RAW_A
    run(30)


micropython.heap_lock()
try:
    sessions()
    result = None
except MemoryError as e:
    result = e
micropython.heap_unlock()
if result is not None:
    import sys

    sys.print_exception(result)
b = marks.b
print(" ".join("%s%d/%d" % (chr(b[i]), b[i + 1], b[i + 2]) for i in range(0, marks.k, 3)))
print(coil.ups, test.ups, pwm.d, sorted(evse.faults))
"""


def test_safety_tick_allocates_nothing_over_whole_sessions_on_micropython(tmp_path):
    """Evse.step under micropython.heap_lock() for two sessions: plug-in, self-test, offer,
    close, EV stop, limit, RCD trip, unplug, charger stop: any allocation would raise."""
    if not MICROPYTHON.exists():
        pytest.skip("no MicroPython unix port in .venv")
    script = tmp_path / "heaplock_evse.py"
    script.write_text(HEAPLOCK)
    env = dict(os.environ, MICROPYPATH=".frozen:%s:%s" % (ROOT / "lib", ROOT))
    out = subprocess.run(
        [str(MICROPYTHON), str(script)], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == [
        "A0/0 B0/0 B0/32 C1/32 B0/32 C1/32 C1/16 C0/0 A0/0 B0/16 C1/16 C1/0 B0/0 A0/0",
        "3 2 65535 []",
    ], out.stdout


def test_listeners_run_outside_the_tick_each_in_its_own_error_boundary(logged):
    r = Rig()
    seen = []

    def full_flash(e):
        raise OSError(28)  # ENOSPC: what a store write does on a full flash

    def counting(e):
        seen.append(e.cp)

    r.evse.on_change += [full_flash, counting]

    async def go():
        notifier = asyncio.create_task(r.evse.notify())
        r.pilot.ev = "B"
        for _ in range(40):
            r.now += 10
            r.evse.step(r.now)  # never calls a listener itself
            await asyncio.sleep(0)
        r.evse.permit(True)
        r.pilot.ev = "C"
        for _ in range(40):
            r.now += 10
            r.evse.step(r.now)
            await asyncio.sleep(0)
        closed = r.contactor.closed
        r.pilot.ev = "B"
        for _ in range(3):
            r.now += 10
            r.evse.step(r.now)
            await asyncio.sleep(0)
        notifier.cancel()
        return closed

    assert asyncio.run(go())  # charging went on although a listener fails every time
    assert not r.contactor.closed  # and the EV's stop opened it at once
    assert seen[:2] == ["B", "B"] and "C" in seen and seen[-1] == "B"
    text = logged.getvalue()
    assert "CP A -> B" in text and "CP B -> C" in text and "CP C -> B" in text
    assert text.count("on_change listener failed") == len(seen)
