"""Charging-hardware drivers (boards/drivers) on the fake machine module, and Pilot.read()
allocation-free on the MicroPython unix port."""

import asyncio
import os
import random
import re
import subprocess
from pathlib import Path

import pytest

import fake_machine as fm
import iec61851
from boards.drivers.contactor import Contactor
from boards.drivers.lock import Lock
from boards.drivers.pilot import Pilot
from boards.drivers.proximity import Proximity
from boards.drivers.rcd import Rcd

ROOT = Path(__file__).resolve().parent.parent
MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"

# The DevKit's CP front end (boards/esp32_devkit): pin mV = 1282.4 + 93.26 x CP volts.
TH = (2262, 1973, 1693, 1404, 723, 303)
LEVEL_V = {"A": 12.0, "B": 8.98, "C": 5.99, "D": 2.93, "E": 0.0}


def pin_mv(volts):
    return 1282.38 + 93.264 * volts


def wave(duty_pct, high_v, low_v, t0=0, n=48, gap=43, noise_mv=0, slew_us=0, rng=None):
    """read_u16() values of one burst: a 1 kHz square wave sampled every `gap` us from t0.

    slew_us: samples this soon after an edge read halfway between the levels (a slow front end).
    """
    out = []
    hi_us = duty_pct * 10  # high plateau per 1000 us period
    for k in range(n):
        t = (t0 + k * gap) % 1000
        high = t < hi_us
        mv = pin_mv(high_v if high else low_v)
        since_edge = t if high else t - hi_us
        if slew_us and 0 <= since_edge < slew_us:
            mv = (pin_mv(high_v) + pin_mv(low_v)) / 2
        if noise_mv:
            mv += rng.uniform(-noise_mv, noise_mv)
        mv = min(max(mv, 0), 3300)
        out.append(int(mv * 65535 / 3300))
    return out


def make_pilot(samples=None):
    pwm = fm.PWM(fm.Pin(27), freq=1000, duty_u16=0)
    adc = fm.ADC(fm.Pin(36), atten=fm.ADC.ATTN_11DB)
    p = Pilot(pwm, adc, TH, 3300)
    if samples is not None:
        adc.samples = samples
    return p, pwm, adc


# -- Pilot: output --------------------------------------------------------------------------


def test_pilot_starts_in_x1():
    p, pwm, _ = make_pilot()
    assert pwm.duty_u16() == 65535
    assert p.duty_pct == 100.0
    assert p.offered_a == 0
    assert p.diode is None


@pytest.mark.parametrize(
    "amps,u16",
    [(6, 6554), (10, 10922), (13, 14199), (16, 17476), (20, 21845), (32, 34952), (40, 43690)]
    + [(51, 55705), (63, 58457), (80, 62914)],
)
def test_offer_duty(amps, u16):
    p, pwm, _ = make_pilot()
    p.offer(amps)
    assert pwm.duty_u16() == u16
    assert p.offered_a == pytest.approx(amps)
    assert 0 < p.duty_pct < 100


def test_offer_clamps_above_80_and_refuses_below_6():
    p, pwm, _ = make_pilot()
    p.offer(100)
    assert pwm.duty_u16() == 62914
    assert p.offered_a == 80
    p.offer(16)
    with pytest.raises(ValueError):
        p.offer(5.9)
    assert pwm.duty_u16() == 17476  # unchanged
    assert p.offered_a == 16


def test_standby_and_fault():
    p, pwm, _ = make_pilot()
    p.offer(32)
    p.fault()
    assert pwm.duty_u16() == 0
    assert p.duty_pct == 0.0
    assert p.offered_a == 0
    p.standby()
    assert pwm.duty_u16() == 65535
    assert p.duty_pct == 100.0
    assert p.offered_a == 0
    assert pwm.history[-3:] == [34952, 0, 65535]


def test_offered_a_is_the_decoding_of_the_duty_set():
    p, _, _ = make_pilot()
    p.offer(52)  # not encodable: 85 %, which an EV reads as 51 A
    assert p.duty_pct == pytest.approx(85.0)
    assert p.offered_a == 51
    p.offer(13)
    assert p.offered_a == 13.0 and repr(p.offered_a) == "13.0"


def test_pilot_rejects_bad_arguments():
    pwm, adc = fm.PWM(fm.Pin(1)), fm.ADC(fm.Pin(36))
    with pytest.raises(ValueError):
        Pilot(pwm, adc, TH[:5])
    with pytest.raises(ValueError):
        Pilot(pwm, adc, TH, samples=5)
    with pytest.raises(ValueError):
        Pilot(pwm, adc, TH, mv_full=0)


# -- Pilot: input ---------------------------------------------------------------------------


def burst_state(p, adc, samples):
    adc.samples = samples
    adc._i = 0
    return p.read()


@pytest.mark.parametrize("amps", [6, 10, 16, 32, 51, 63])
@pytest.mark.parametrize("state", ["B", "C", "D"])
def test_clean_square_waves_all_phases(amps, state):
    p, pwm, adc = make_pilot()
    p.offer(amps)
    duty = pwm.duty_u16() * 100 / 65535
    for t0 in range(0, 1000, 13):
        s = burst_state(p, adc, wave(duty, LEVEL_V[state], -12.0, t0=t0, gap=p.gap_us))
        assert (s, p.diode) == (state, True), (t0, p.high_mv, p.low_mv)


def test_10_percent_plateau_holds_two_or_three_samples_per_period():
    """6 A: 100 us high per 1 ms period, a sample every 43 us: 2 or 3 per plateau."""
    p, pwm, adc = make_pilot()
    p.offer(6)
    assert p.gap_us == 43
    for t0 in range(0, 1000):
        w = wave(10.0, 5.99, -12.0, t0=t0)
        per_period = [
            sum(1 for k in range(48) if (t0 + 43 * k) // 1000 == n and w[k] > 30000)
            for n in range(3)
        ]
        assert max(per_period) <= 3
        assert sum(per_period) >= 4  # two periods' worth, split or not
        assert burst_state(p, adc, w) == "C"
        assert p.diode is True
        assert abs(p.high_mv - pin_mv(5.99)) < 3


def test_slow_edges_and_noise():
    """A front end that needs 10 us per edge, +-40 mV noise: still the right state."""
    rng = random.Random(61851)
    p, pwm, adc = make_pilot()
    for amps in (6, 13, 32, 63):
        p.offer(amps)
        duty = pwm.duty_u16() * 100 / 65535
        for state in "BCD":
            for _ in range(60):
                w = wave(duty, LEVEL_V[state], -12.0, rng.randrange(1000), 48, 43, 40, 10, rng)
                assert burst_state(p, adc, w) == state
                assert p.diode is True


def test_single_spike_moves_the_level_by_a_third():
    p, pwm, adc = make_pilot()
    p.offer(16)
    w = wave(26.67, 8.98, -12.0)
    w[40] = int((pin_mv(8.98) + 300) * 65535 / 3300)  # one read 300 mV above the plateau
    assert burst_state(p, adc, w) == "B"
    assert p.high_mv == pytest.approx(pin_mv(8.98) + 100, abs=2)


def test_missing_diode():
    """No diode (or a shorted one): the low level stays at -8.8 V in B, -5.6 V in C."""
    p, pwm, adc = make_pilot()
    p.offer(16)
    duty = pwm.duty_u16() * 100 / 65535
    assert burst_state(p, adc, wave(duty, 8.98, -8.8)) == "B"
    assert p.diode is False
    assert burst_state(p, adc, wave(duty, 5.99, -5.6)) == "C"
    assert p.diode is False
    assert burst_state(p, adc, wave(duty, 5.99, -12.0)) == "C"
    assert p.diode is True


def test_cp_short_is_e():
    p, pwm, adc = make_pilot()
    p.offer(32)
    assert burst_state(p, adc, wave(53.3, 0.0, 0.0)) == "E"
    assert p.diode is False
    p.standby()
    assert burst_state(p, adc, [int(pin_mv(0.0) * 65535 / 3300)] * 48) == "E"
    assert p.diode is None


def test_x1_levels_and_no_diode_judgement():
    p, _, adc = make_pilot()
    for state, volts in LEVEL_V.items():
        assert burst_state(p, adc, [int(pin_mv(volts) * 65535 / 3300)] * 48) == state
        assert p.diode is None
    assert p.high_mv == p.low_mv


def test_f_reads_f_and_judges_nothing():
    p, _, adc = make_pilot()
    p.fault()
    assert burst_state(p, adc, [int(pin_mv(-12.0) * 65535 / 3300)] * 48) == "F"
    assert p.diode is None
    assert p.high_mv == 163


def test_diode_not_judged_when_the_low_plateau_is_too_short():
    """80 A = 96 %: 40 us of -12 V per period, less than two sample gaps."""
    p, pwm, adc = make_pilot()
    p.offer(80)
    assert burst_state(p, adc, wave(96.0, 5.99, -12.0, t0=990)) == "C"
    assert p.diode is None
    p.offer(63)  # 89.2 %: 108 us, judged
    assert burst_state(p, adc, wave(89.2, 5.99, -12.0)) == "C"
    assert p.diode is True


def test_levels_in_mv():
    p, pwm, adc = make_pilot()
    p.offer(32)
    burst_state(p, adc, wave(53.3, 8.98, -12.0))
    assert p.high_mv == pytest.approx(pin_mv(8.98), abs=2)
    assert p.low_mv == pytest.approx(pin_mv(-12.0), abs=2)
    assert len(p.burst) == 48


def test_read_spans_two_periods():
    p, _, adc = make_pilot([0])
    import time

    t = time.perf_counter()
    for _ in range(20):
        p.read()
    per_read = (time.perf_counter() - t) / 20
    assert per_read >= 0.0020  # 48 samples, 43 us apart
    assert adc._i == 20 * 48


def test_read_returns_module_constants():
    p, _, adc = make_pilot()
    assert burst_state(p, adc, [65535] * 48) is iec61851.A


HEAPLOCK = """
import time
import micropython
from array import array
from boards.drivers.pilot import Pilot

class PWM:
    def __init__(self):
        self.d = 0
    def duty_u16(self, d=None):
        if d is None:
            return self.d
        self.d = d

class ADC:
    def __init__(self, wave):
        self.wave = wave
        self.i = 0
    def read_u16(self):
        i = self.i
        self.i = (i + 1) % len(self.wave)
        return self.wave[i]

# 6 A (10 %) with the EV in C: 24 samples per period, 3 on the high plateau
wave = array("H", [int(1841 * 65535 // 3300)] * 3 + [int(163 * 65535 // 3300)] * 21)
p = Pilot(PWM(), ADC(wave), (2262, 1973, 1693, 1404, 723, 303), 3300, 48)
p.offer(6)

def run(n):
    micropython.heap_lock()
    try:
        t0 = time.ticks_us()
        for _ in range(n):
            p.read()
        t1 = time.ticks_us()
    finally:
        micropython.heap_unlock()
    return time.ticks_diff(t1, t0) // n

paced = run(100)
print(p.read(), p.high_mv, p.low_mv, p.diode)
p.gap_us = 0  # no pacing: the cost of the loop itself
loop = run(100)
print("OK", paced, loop)
"""


def test_pilot_read_allocates_nothing_on_micropython(tmp_path):
    if not MICROPYTHON.exists():
        pytest.skip("no MicroPython unix port in .venv")
    script = tmp_path / "heaplock_pilot.py"
    script.write_text(HEAPLOCK)
    env = dict(os.environ, MICROPYPATH="%s:%s" % (ROOT / "lib", ROOT))
    out = subprocess.run(
        [str(MICROPYTHON), str(script)], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split("\n")
    assert lines[0] == "C 1840 162 True"
    m = re.fullmatch(r"OK (\d+) (\d+)", lines[1])
    assert m, out.stdout
    paced, loop = int(m.group(1)), int(m.group(2))
    assert paced >= 2000  # 48 x 43 us
    print("Pilot.read() on the unix port: %d us paced, %d us for the loop alone" % (paced, loop))


# -- Proximity ------------------------------------------------------------------------------

PP_BANDS = ((420, 63), (450, None), (800, 32), (1050, None), (1620, 20), (1700, None), (2300, 13))


def pp(mv_samples):
    adc = fm.ADC(fm.Pin(39), atten=fm.ADC.ATTN_11DB)
    adc.samples = [int(mv * 65535 / 3300) for mv in mv_samples]
    return Proximity(adc, PP_BANDS, 3300)


def pp_mv(ohms):
    return 3300 * ohms / (1000 + ohms)


@pytest.mark.parametrize("ohms,amps", [(1500, 13), (680, 20), (220, 32), (100, 63)])
def test_pp_resistors(ohms, amps):
    assert pp([pp_mv(ohms)]).read_amps() == amps
    for tol in (0.9, 1.1):  # a 10 % resistor either way
        assert pp([pp_mv(ohms * tol)]).read_amps() == amps


@pytest.mark.parametrize(
    "mv,amps",
    [
        (0, None),  # short
        (150, None),
        (210, 63),
        (420, 63),
        (435, None),  # between 63 and 32 A
        (460, 32),
        (800, 32),
        (900, None),
        (1100, 20),
        (1620, 20),
        (1650, None),
        (1750, 13),
        (2300, 13),
        (2400, None),
        (3300, None),  # open
    ],
)
def test_pp_bands_and_faults(mv, amps):
    assert pp([mv]).read_amps() == amps


def test_pp_median_drops_outliers():
    p = pp([1336, 0, 1336, 3300, 1336])
    assert p.read_amps() == 20
    assert abs(p.mv - 1336) <= 1
    p = pp([1980, 3300, 3300, 1980, 1980])
    assert p.read_amps() == 13


def test_pp_contiguous_bands_as_the_sim_uses_them():
    adc = fm.ADC(fm.Pin(39))
    prox = Proximity(adc, ((450, 63), (970, 32), (1660, 20), (2640, 13)), 3300)
    for mv, amps in ((300, 63), (600, 32), (1340, 20), (1980, 13), (3250, None), (50, None)):
        adc.samples = [mv * 65535 // 3300]
        assert prox.read_amps() == amps


def test_pp_bad_bands():
    with pytest.raises(ValueError):
        Proximity(fm.ADC(fm.Pin(39)), ((800, 32), (420, 63)))
    with pytest.raises(ValueError):
        Proximity(fm.ADC(fm.Pin(39)), ((100, 63),))  # at or below the short level
    with pytest.raises(ValueError):
        Proximity(fm.ADC(fm.Pin(39)), ((400, 0),))


# -- Contactor ------------------------------------------------------------------------------


def test_contactor_two_outputs_switch_together():
    c1, c2 = fm.Pin(32, fm.Pin.OUT, value=1), fm.Pin(27, fm.Pin.OUT, value=1)
    c = Contactor([c1, c2])
    assert (c1.value(), c2.value(), c.closed) == (0, 0, False)  # opened at once
    c.close()
    assert (c1.value(), c2.value(), c.closed) == (1, 1, True)
    c.open()
    assert (c1.value(), c2.value(), c.closed) == (0, 0, False)
    assert c.feedback() is None


@pytest.mark.parametrize("closed_level", [0, 1])
def test_contactor_feedback_polarity(closed_level):
    out, mirror = fm.Pin(26, fm.Pin.OUT), fm.Pin(4, fm.Pin.IN)
    c = Contactor([out], mirror=mirror, mirror_closed=closed_level)
    mirror._value = closed_level
    assert c.feedback() is True
    mirror._value = 1 - closed_level
    assert c.feedback() is False
    c.close()  # the driver reports; a closed command with an open mirror is the controller's call
    assert c.closed is True and c.feedback() is False


def test_contactor_needs_one_or_two_outputs():
    with pytest.raises(ValueError):
        Contactor([])
    with pytest.raises(ValueError):
        Contactor([fm.Pin(1), fm.Pin(2), fm.Pin(3)])


# -- RCD ------------------------------------------------------------------------------------


class Glitchy(fm.Pin):
    """An input that reads the given levels in turn."""

    def __init__(self, id, levels):
        super().__init__(id, fm.Pin.IN)
        self.levels = list(levels)

    def value(self, v=None):
        return self.levels.pop(0)


def test_rcd_tripped_needs_two_agreeing_reads():
    fault = fm.Pin(13, fm.Pin.IN)
    r = Rcd(fault)
    assert r.tripped() is False
    fault._value = 1
    assert r.tripped() is True
    assert Rcd(Glitchy(13, [1, 0])).tripped() is False
    assert Rcd(Glitchy(13, [0, 1])).tripped() is False
    assert Rcd(Glitchy(13, [1, 1])).tripped() is True


def test_rcd_active_low():
    fault = fm.Pin(13, fm.Pin.IN, value=1)
    r = Rcd(fault, fault_active=0)
    assert r.tripped() is False
    fault._value = 0
    assert r.tripped() is True


def test_rcd_test_output():
    test = fm.Pin(23, fm.Pin.OUT, value=1)
    r = Rcd(fm.Pin(13, fm.Pin.IN), test=test)
    assert r.has_test is True
    assert test.value() == 0  # released at construction
    r.test(True)
    assert test.value() == 1
    r.test(False)
    assert test.history == [0, 1, 0]
    test_low = fm.Pin(23, fm.Pin.OUT)
    r = Rcd(fm.Pin(13, fm.Pin.IN), test=test_low, test_active=0)
    assert test_low.value() == 1
    r.test(True)
    assert test_low.value() == 0


def test_rcd_without_test():
    r = Rcd(fm.Pin(13, fm.Pin.IN))
    assert r.has_test is False
    r.test(True)  # nothing to drive, nothing raised


# -- Lock -----------------------------------------------------------------------------------


class Actuator(fm.Pin):
    """A position switch that follows the motor: locked after a pulse on a, unlocked on b."""

    def __init__(self, a, b, locked_value=1, works=True):
        super().__init__(35, fm.Pin.IN)
        self.a, self.b, self.locked_value, self.works = a, b, locked_value, works
        self.pos = 1 - locked_value

    def value(self, v=None):
        if self.works:
            if 1 in self.a.history[-2:] and self.a.value() == 0:
                self.pos = self.locked_value
            if 1 in self.b.history[-2:] and self.b.value() == 0:
                self.pos = 1 - self.locked_value
        return self.pos


def pins():
    return fm.Pin(17, fm.Pin.OUT, value=1), fm.Pin(18, fm.Pin.OUT, value=1)


def test_lock_without_feedback():
    a, b = pins()
    lk = Lock(a, b, pulse_ms=10)
    assert (a.value(), b.value()) == (0, 0)
    assert lk.locked is False
    assert asyncio.run(lk.lock()) is True
    assert a.history == [0, 1, 0] and b.history == [0, 0]
    assert lk.locked is True
    assert asyncio.run(lk.unlock()) is True
    assert b.history == [0, 0, 1, 0]
    assert lk.locked is False


@pytest.mark.parametrize("locked_value", [0, 1])
def test_lock_with_feedback(locked_value):
    a, b = pins()
    fb = Actuator(a, b, locked_value)
    lk = Lock(a, b, fb, locked_value=locked_value, pulse_ms=10)
    assert lk.locked is False
    assert asyncio.run(lk.lock()) is True
    assert lk.locked is True
    assert asyncio.run(lk.unlock()) is True
    assert lk.locked is False


def test_lock_jammed():
    a, b = pins()
    fb = Actuator(a, b, works=False)
    lk = Lock(a, b, fb, pulse_ms=10)
    assert asyncio.run(lk.lock()) is False
    assert lk.locked is False
    assert (a.value(), b.value()) == (0, 0)


def test_lock_cancelled_mid_pulse_stops_the_motor():
    a, b = pins()
    lk = Lock(a, b, pulse_ms=1000)

    async def go():
        t = asyncio.create_task(lk.lock())
        await asyncio.sleep(0.05)
        assert a.value() == 1
        t.cancel()
        try:
            await t
        except asyncio.CancelledError:
            pass

    asyncio.run(go())
    assert (a.value(), b.value()) == (0, 0)


class Logged(fm.Pin):
    """An output that writes every level into one log shared with the other pins."""

    def __init__(self, id, log):
        super().__init__(id, fm.Pin.OUT)
        self.log = log

    def value(self, v=None):
        if v is not None:
            self.log.append((self.id, 1 if v else 0))
        return super().value(v)


def test_lock_movements_do_not_overlap():
    log = []
    a, b = Logged(17, log), Logged(18, log)
    lk = Lock(a, b, pulse_ms=30)
    del log[:]

    async def go():
        return await asyncio.gather(lk.lock(), lk.unlock())

    assert asyncio.run(go()) == [True, True]
    # the motor never gets both directions at once: lock's pulse ends before unlock's starts
    assert log == [(17, 1), (17, 0), (18, 0), (18, 1), (17, 0), (18, 0)]
    assert lk.locked is False
