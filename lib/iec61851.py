# iec61851: IEC 61851-1 Annex A control-pilot arithmetic: duty <-> current, CP state bands.
# MIT licence. Ours because no maintained package encodes the Mode 3 pilot for MicroPython.

from micropython import const

# CP states as the controller sees them. Module-level str constants are interned (qstr) on
# MicroPython, so returning one never allocates.
A = "A"  # +12 V: no EV
B = "B"  # +9 V: EV connected, not asking for energy
C = "C"  # +6 V: EV asks for energy
D = "D"  # +3 V: EV asks for energy and needs ventilation
E = "E"  # ~0 V: CP shorted to PE (or the EVSE is unpowered)
F = "F"  # -12 V steady: the EVSE signals "not available" (or its +12 V never reaches the line)

_U16 = const(65535)
# duty_u16 ties: float noise of up to this fraction of one count still counts as an exact .5
# (single-precision floats on the ESP32 carry ~0.004 counts of noise near 65535).
_TIE_EPS = 0.01


def duty_for_current(amps):
    """The duty cycle (%) an EVSE sets to offer `amps` (IEC 61851-1 Table A.8).

    6..51 A: amps / 0.6; 51..80 A: amps / 2.5 + 64. Currents between 51 and 52.5 A cannot be
    encoded (85 % decodes as 51 A, anything above it as more than 52.5 A), so they get 85 %,
    i.e. 51 A, never more than asked. ValueError outside 6..80 A: below 6 A the EVSE goes to
    x1 (steady +12 V) instead of offering less.
    """
    if not 6 <= amps <= 80:
        raise ValueError("offer must be 6..80 A")
    if amps <= 52.5:
        return min(amps, 51) * 100 / 60
    return amps * 2 / 5 + 64


def duty_u16_for(amps):
    """duty_u16(duty_for_current(amps)), for whole amperes in integer arithmetic: the safety
    tick offers whole amperes and must not allocate (a float is a heap object). Other
    values go the float way."""
    if type(amps) is not int:
        return duty_u16(duty_for_current(amps))
    if not 6 <= amps <= 80:
        raise ValueError("offer must be 6..80 A")
    if amps <= 52:  # 51 A and the unencodable 52 A: amps / 0.6 %
        num, den = _U16 * (amps if amps < 51 else 51), 60
    else:  # amps / 2.5 + 64 %
        num, den = _U16 * (2 * amps + 320), 500
    n = num // den  # < 2**25: small ints, also on a 32-bit port
    r2 = 2 * (num - n * den)
    if r2 > den or (r2 == den and n & 1):  # round half to even, as duty_u16 does
        n += 1
    return n


def duty_u16(percent):
    """machine.PWM.duty_u16() value for a duty cycle: round(65535 * percent / 100).

    Exact halves round to even, as Python's round() does (6 A: 6553.5 -> 6554; 10 A: 10922.5 ->
    10922), also on single-precision ports where the product carries float noise.
    """
    if not 0 <= percent <= 100:
        raise ValueError("duty must be 0..100 %")
    x = percent * _U16 / 100
    n = int(x)
    frac = x - n
    if frac > 0.5 + _TIE_EPS or (frac >= 0.5 - _TIE_EPS and n & 1):
        n += 1
    return n


def current_for_duty(percent):
    """The current (A) an EV reads from a duty cycle (%): the EV-side decoding table.

    < 8 %: no charging (3..7 % means digital communication, 5 % nominal); 8..10 %: 6 A;
    10..85 %: duty x 0.6; 85..96 %: (duty - 64) x 2.5; 96..97 %: 80 A; above 97 % (and 100 %,
    x1): no charging. Rounded to 0.01 A so that float noise (10.000000000000002) never reaches
    a meter value.
    """
    if percent < 8 or percent > 97:
        return 0
    if percent < 10:
        return 6
    if percent <= 85:
        return round(percent * 0.6, 2)
    if percent <= 96:
        return round((percent - 64) * 2.5, 2)
    return 80


def check_thresholds(th):
    """ValueError unless th = (ab, bc, cd, de, ef, diode_max) in mV, strictly descending."""
    if len(th) != 6:
        raise ValueError("thresholds: (ab, bc, cd, de, ef, diode_max)")
    for i in range(5):
        if not th[i] > th[i + 1]:
            raise ValueError("thresholds must descend: A/B > B/C > C/D > D/E > E/F > diode")


def classify(high_mv, low_mv, pwm_on, th):
    """The CP state from one burst's plateau levels, in mV at the ADC pin.

    th = (ab, bc, cd, de, ef, diode_max). The state is the band of the high level: >= ab A,
    >= bc B, >= cd C, >= de D, >= ef E (about 0 V: CP shorted to PE), else F (steady -12 V).
    Only the high plateau carries the EV's load, so low_mv and pwm_on do not change the
    state: a shorted EV diode or a missing negative half shows in diode_ok(), which the
    caller judges only while the PWM runs (pwm_on). Allocation-free.
    """
    if high_mv >= th[0]:
        return A
    if high_mv >= th[1]:
        return B
    if high_mv >= th[2]:
        return C
    if high_mv >= th[3]:
        return D
    if high_mv >= th[4]:
        return E
    return F


def diode_ok(low_mv, th):
    """True when the low plateau reaches -12 V (<= th[5]): the EV's diode is there.

    Meaningful only while the PWM runs (0 < duty < 100 %): x1 has no low plateau, F no high
    one. IEC 61851-1 wants it seen at least once before the contactor closes.
    """
    return low_mv <= th[5]
