"""lib/iec61851.py: duty <-> current (hardware.md 1.4) and CP classification (1.2)."""

import struct

import pytest

import iec61851 as m

# hardware.md 1.4, exactly.
TABLE = {
    6: 6554,
    10: 10922,
    13: 14199,
    16: 17476,
    20: 21845,
    32: 34952,
    40: 43690,
    51: 55705,
    63: 58457,
    80: 62914,
}

# A board's thresholds (the DevKit's), mV at the pin: A/B, B/C, C/D, D/E, E/F, diode max.
TH = (2262, 1973, 1693, 1404, 723, 303)


@pytest.mark.parametrize("amps,u16", sorted(TABLE.items()))
def test_duty_table(amps, u16):
    assert m.duty_u16(m.duty_for_current(amps)) == u16


def test_duty_x1_and_f():
    assert m.duty_u16(100) == 65535
    assert m.duty_u16(100.0) == 65535
    assert m.duty_u16(0) == 0


def test_duty_formulas():
    assert m.duty_for_current(6) == 10.0
    assert m.duty_for_current(30) == pytest.approx(50.0)
    assert m.duty_for_current(51) == pytest.approx(85.0)
    assert m.duty_for_current(63) == pytest.approx(89.2)
    assert m.duty_for_current(80) == pytest.approx(96.0)
    assert m.duty_for_current(60) == pytest.approx(60 / 2.5 + 64)


def test_gap_between_51_and_52_5_offers_51():
    # 85 % decodes as 51 A; anything above it as more than 52.5 A: never offer more than asked.
    for amps in (51.1, 52, 52.4, 52.5):
        assert m.duty_for_current(amps) == pytest.approx(85.0)
        assert m.current_for_duty(m.duty_for_current(amps)) == 51
    assert m.current_for_duty(m.duty_for_current(52.6)) == pytest.approx(52.6)


@pytest.mark.parametrize("amps", [0, 5, 5.99, 80.01, 81, -6])
def test_offer_out_of_range(amps):
    with pytest.raises(ValueError):
        m.duty_for_current(amps)


@pytest.mark.parametrize("pct", [-0.1, 100.1, 200])
def test_duty_u16_out_of_range(pct):
    with pytest.raises(ValueError):
        m.duty_u16(pct)


def test_round_trip_6_to_80():
    """current -> duty -> current within 0.01 A, never above the request, for 6..80 A."""
    for tenth in range(60, 801):
        amps = tenth / 10
        back = m.current_for_duty(m.duty_for_current(amps))
        if 51 < amps <= 52.5:
            assert back == 51
        else:
            assert back == pytest.approx(amps, abs=0.01)
        assert back <= amps + 1e-9


def test_round_trip_through_u16():
    """What the EV sees from the quantised PWM differs by < 0.01 A (85 % excepted)."""
    for amps in range(6, 81):
        if 51 <= amps <= 52:
            continue  # exactly 85 %: the EV's measurement decides between 51 and 52.5 A
        pct = m.duty_u16(m.duty_for_current(amps)) * 100 / 65535
        assert m.current_for_duty(pct) == pytest.approx(amps, abs=0.01)


def test_u16_ties_on_single_precision():
    """The ESP32 computes in float32: the table must come out the same there."""

    def f32(x):
        return struct.unpack("f", struct.pack("f", x))[0]

    for amps, u16 in TABLE.items():
        pct = f32(f32(amps * 100) / 60) if amps <= 51 else f32(f32(amps * 2) / 5 + 64)
        x = f32(f32(pct * 65535) / 100)
        # duty_u16 on the product as float32 would see it: feed a percent whose product is x
        assert m.duty_u16(x * 100 / 65535) == u16
    # float32 noise around an exact half (one ulp near 10922 is ~0.001) still rounds to even
    for noise in (-0.004, 0.004):
        assert m.duty_u16((10922.5 + noise) * 100 / 65535) == 10922
        assert m.duty_u16((6553.5 + noise) * 100 / 65535) == 6554
    assert m.duty_u16(10922.45 * 100 / 65535) == 10922
    assert m.duty_u16(10922.55 * 100 / 65535) == 10923


@pytest.mark.parametrize(
    "pct,amps",
    [
        (0, 0),
        (2.9, 0),
        (3, 0),
        (5, 0),  # digital communication
        (7, 0),
        (7.9, 0),
        (8, 6),
        (9.9, 6),
        (10, 6),
        (50, 30),
        (85, 51),
        (85.2, 53),
        (90, 65),
        (96, 80),
        (96.5, 80),
        (97, 80),
        (97.1, 0),
        (100, 0),
    ],
)
def test_ev_decoding(pct, amps):
    assert m.current_for_duty(pct) == pytest.approx(amps)


def test_decoding_has_no_float_noise():
    assert m.current_for_duty(m.duty_for_current(10)) == 10.0
    assert repr(m.current_for_duty(m.duty_for_current(13))) == "13.0"


# -- classification ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "high,state",
    [
        (3300, "A"),
        (2402, "A"),
        (2262, "A"),  # on the threshold: the upper band
        (2261, "B"),
        (2122, "B"),
        (1973, "B"),
        (1972, "C"),
        (1842, "C"),
        (1693, "C"),
        (1692, "D"),
        (1562, "D"),
        (1404, "D"),
        (1403, "E"),
        (1282, "E"),
        (723, "E"),
        (722, "F"),
        (163, "F"),
        (0, "F"),
    ],
)
def test_classify_bands_and_borders(high, state):
    assert m.classify(high, 163, True, TH) == state
    assert m.classify(high, high, False, TH) == state  # x1: no low plateau, same state


def test_classify_returns_the_module_constants():
    assert m.classify(2402, 163, True, TH) is m.A
    assert m.classify(0, 0, False, TH) is m.F
    assert (m.A, m.B, m.C, m.D, m.E, m.F) == ("A", "B", "C", "D", "E", "F")


def test_diode():
    assert m.diode_ok(163, TH)  # -12 V
    assert m.diode_ok(303, TH)  # on the threshold
    assert not m.diode_ok(304, TH)
    assert not m.diode_ok(462, TH)  # shorted diode in B: -8.8 V
    assert not m.diode_ok(760, TH)  # shorted diode in C: -5.6 V
    assert not m.diode_ok(1282, TH)  # no negative half at all


def test_cp_short_reads_e_on_both_levels():
    assert m.classify(1282, 1282, True, TH) == "E"
    assert not m.diode_ok(1282, TH)


@pytest.mark.parametrize(
    "th",
    [
        (2262, 1973, 1693, 1404, 723),
        (2262, 1973, 1693, 1404, 723, 303, 1),
        (1973, 2262, 1693, 1404, 723, 303),
        (2262, 1973, 1693, 1404, 723, 723),
    ],
)
def test_bad_thresholds(th):
    with pytest.raises(ValueError):
        m.check_thresholds(th)


def test_duty_u16_for_whole_amperes_is_the_float_way_in_integers():
    for amps in range(6, 81):
        assert m.duty_u16_for(amps) == m.duty_u16(m.duty_for_current(amps)), amps
    assert m.duty_u16_for(16.5) == m.duty_u16(m.duty_for_current(16.5))
    for bad in (5, 81, 0):
        with pytest.raises(ValueError):
            m.duty_u16_for(bad)
