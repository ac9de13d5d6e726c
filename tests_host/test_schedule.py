"""lib/schedule.py: the smart-charging limit at an instant and the composite schedule (issue 13,
OCPP 2.0.1 Part 2 K01/K08), hand-computed vectors, a property check that the composite is
limit_at at every second, and the same vectors on the MicroPython unix port."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rfc3339
import schedule as sc

ROOT = Path(__file__).resolve().parent.parent
MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"

T0 = rfc3339.parse("2026-01-05T00:00:00Z")  # a Monday
H = 3600
DAY = 86400


def at(s):
    return rfc3339.parse(s)


def prof(pid, purpose, level, periods, unit="A", kind="Absolute", start=T0, duration=None, **kw):
    """A ChargingProfileType dict as on the wire. periods: (startPeriod, limit[, numberPhases])."""
    sched = {"id": pid, "chargingRateUnit": unit, "chargingSchedulePeriod": []}
    for q in periods:
        per = {"startPeriod": q[0], "limit": q[1]}
        if len(q) > 2:
            per["numberPhases"] = q[2]
        sched["chargingSchedulePeriod"].append(per)
    if start is not None and kind != "Relative":
        sched["startSchedule"] = start if isinstance(start, str) else rfc3339.format(start)
    if duration is not None:
        sched["duration"] = duration
    p = {
        "id": pid,
        "stackLevel": level,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": kind,
        "chargingSchedule": [sched],
    }
    for k, v in kw.items():
        p[k] = rfc3339.format(v) if k in ("validFrom", "validTo") and isinstance(v, int) else v
    return p


def dflt(pid, level, periods, **kw):
    return prof(pid, "TxDefaultProfile", level, periods, **kw)


EV1 = {"evse": 1}


def periods(c):
    return [(q["startPeriod"], q["limit"], q["numberPhases"]) for q in c["chargingSchedulePeriod"]]


# -- limit_at: kinds ------------------------------------------------------------------------


def test_absolute_from_start_schedule():
    # K01: Absolute runs from startSchedule; before it and after its duration it covers nothing
    P = [(1, dflt(1, 0, [(0, 16), (60, 10)], start=T0 + 100, duration=300))]
    assert sc.limit_at(P, T0 + 50, EV1) == (None, 3, T0 + 100)
    assert sc.limit_at(P, T0 + 100, EV1) == (16, 3, T0 + 160)
    assert sc.limit_at(P, T0 + 159, EV1) == (16, 3, T0 + 160)
    assert sc.limit_at(P, T0 + 160, EV1) == (10, 3, T0 + 400)
    assert sc.limit_at(P, T0 + 400, EV1) == (None, 3, None)
    # the hardware maximum is the limit where no profile covers
    assert sc.limit_at(P, T0 + 400, {"evse": 1, "max_a": 32}) == (32, 3, None)


def test_recurring_daily():
    # every day 08:00-10:00: 6 A for an hour, then 16 A; never before the first startSchedule
    P = [
        (
            1,
            dflt(
                1,
                0,
                [(0, 6), (H, 16)],
                kind="Recurring",
                recurrencyKind="Daily",
                start="2026-01-05T08:00:00Z",
                duration=2 * H,
            ),
        )
    ]
    assert sc.limit_at(P, at("2026-01-07T08:30:00Z"), EV1) == (6, 3, at("2026-01-07T09:00:00Z"))
    assert sc.limit_at(P, at("2026-01-07T09:30:00Z"), EV1) == (16, 3, at("2026-01-07T10:00:00Z"))
    assert sc.limit_at(P, at("2026-01-07T10:00:00Z"), EV1) == (None, 3, at("2026-01-08T08:00:00Z"))
    assert sc.limit_at(P, at("2026-01-05T07:00:00Z"), EV1) == (None, 3, at("2026-01-05T08:00:00Z"))
    # the day before startSchedule: nothing (the recurrence starts at startSchedule)
    assert sc.limit_at(P, at("2026-01-04T08:30:00Z"), EV1) == (None, 3, at("2026-01-05T08:00:00Z"))


def test_recurring_daily_without_duration_runs_until_the_next_day():
    # no duration: the last period holds until the next recurrence starts the periods again
    P = [(1, dflt(1, 0, [(0, 6), (12 * H, 16)], kind="Recurring", recurrencyKind="Daily"))]
    assert sc.limit_at(P, T0 + 3 * DAY + 13 * H, EV1) == (16, 3, T0 + 4 * DAY)
    assert sc.limit_at(P, T0 + 4 * DAY, EV1) == (6, 3, T0 + 4 * DAY + 12 * H)


def test_recurring_duration_longer_than_the_recurrence_is_cut_by_the_next_one():
    # Daily with 30 h: each day's run starts the periods again at the next 00:00
    P = [(1, dflt(1, 0, [(0, 6), (20 * H, 16)], kind="Recurring", recurrencyKind="Daily",
                  duration=30 * H))]  # fmt: skip
    assert sc.limit_at(P, T0 + DAY - 1, EV1) == (16, 3, T0 + DAY)
    assert sc.limit_at(P, T0 + DAY + 2 * H, EV1) == (6, 3, T0 + DAY + 20 * H)


def test_recurring_weekly_across_the_week_boundary():
    # Sundays 22:00 until Monday 02:00: 8 A, 12 A from midnight; 2026-01-11 is a Sunday
    P = [
        (
            1,
            dflt(
                1,
                0,
                [(0, 8), (2 * H, 12)],
                kind="Recurring",
                recurrencyKind="Weekly",
                start="2026-01-11T22:00:00Z",
                duration=4 * H,
            ),
        )
    ]
    assert sc.limit_at(P, at("2026-01-18T23:00:00Z"), EV1) == (8, 3, at("2026-01-19T00:00:00Z"))
    assert sc.limit_at(P, at("2026-01-19T01:00:00Z"), EV1) == (12, 3, at("2026-01-19T02:00:00Z"))
    assert sc.limit_at(P, at("2026-01-19T02:00:00Z"), EV1) == (None, 3, at("2026-01-25T22:00:00Z"))
    assert sc.limit_at(P, at("2026-01-14T12:00:00Z"), EV1) == (None, 3, at("2026-01-18T22:00:00Z"))
    # a week later again
    assert sc.limit_at(P, at("2026-01-26T00:00:00Z"), EV1) == (12, 3, at("2026-01-26T02:00:00Z"))


def test_relative_from_the_transaction_start():
    # Relative profiles start at ctx["tx_start"] and do not apply without one
    P = [(1, dflt(1, 0, [(0, 10), (1800, 20)], kind="Relative"))]
    ctx = {"evse": 1, "tx": "t1", "tx_start": T0 + 1000}
    assert sc.limit_at(P, T0 + 500, ctx) == (None, 3, T0 + 1000)
    assert sc.limit_at(P, T0 + 1000 + 1799, ctx) == (10, 3, T0 + 2800)
    assert sc.limit_at(P, T0 + 2800, ctx) == (20, 3, None)
    assert sc.limit_at(P, T0 + 2800, EV1) == (None, 3, None)
    # a Relative TxProfile with a duration, over an Absolute TxDefault
    P.append(
        (1, prof(2, "TxProfile", 0, [(0, 6)], kind="Relative", duration=600, transactionId="t1"))
    )
    assert sc.limit_at(P, T0 + 1599, ctx) == (6, 3, T0 + 1600)
    assert sc.limit_at(P, T0 + 1600, ctx) == (10, 3, T0 + 2800)


def test_valid_from_and_valid_to_edges():
    # validFrom <= t < validTo; an expired profile never applies again
    p = dflt(1, 0, [(0, 10)], validFrom=T0 + 100, validTo=T0 + 200)
    P = [(1, p)]
    assert sc.limit_at(P, T0 + 99, EV1) == (None, 3, T0 + 100)
    assert sc.limit_at(P, T0 + 100, EV1) == (10, 3, T0 + 200)
    assert sc.limit_at(P, T0 + 199, EV1) == (10, 3, T0 + 200)
    assert sc.limit_at(P, T0 + 200, EV1) == (None, 3, None)
    assert not sc.expired(p, T0 + 199)
    assert sc.expired(p, T0 + 200)
    assert not sc.expired(dflt(2, 0, [(0, 10)]), T0 + 10**9)


def test_duration_end_falls_through_to_the_lower_stack_level():
    P = [(1, dflt(1, 0, [(0, 6)])), (1, dflt(2, 1, [(0, 16)], duration=100))]
    assert sc.limit_at(P, T0 + 99, EV1) == (16, 3, T0 + 100)
    assert sc.limit_at(P, T0 + 100, EV1) == (6, 3, None)


def test_higher_stack_level_wins_even_when_higher():
    # within a purpose the stack decides, not the minimum
    P = [(1, dflt(1, 0, [(0, 6)])), (1, dflt(2, 1, [(0, 16)]))]
    assert sc.limit_at(P, T0, EV1)[0] == 16


# -- limit_at: purposes ---------------------------------------------------------------------


def test_tx_profile_over_tx_default():
    # the TxProfile of the running transaction overrides TxDefault, whatever the stack levels
    # and even when higher; another transaction's TxProfile or another EVSE's does not count
    P = [
        (1, dflt(1, 5, [(0, 16)])),
        (1, prof(2, "TxProfile", 0, [(0, 20)], transactionId="A")),
        (2, prof(3, "TxProfile", 0, [(0, 6)], transactionId="B")),
    ]
    assert sc.limit_at(P, T0, {"evse": 1, "tx": "A"})[0] == 20
    assert sc.limit_at(P, T0, {"evse": 1, "tx": "B"})[0] == 16
    assert sc.limit_at(P, T0, {"evse": 1})[0] == 16
    assert sc.limit_at(P, T0, {"evse": 2, "tx": "B"})[0] == 6


def test_evse_tx_default_over_evse_0():
    P = [(0, dflt(1, 3, [(0, 10)])), (1, dflt(2, 0, [(0, 20)], duration=60))]
    assert sc.limit_at(P, T0, {"evse": 1})[0] == 20
    assert sc.limit_at(P, T0, {"evse": 2})[0] == 10
    # once the EVSE's own ends, EVSE 0's applies
    assert sc.limit_at(P, T0 + 60, {"evse": 1}) == (10, 3, None)


def test_max_profile_and_external_constraints_cap():
    P = [
        (0, prof(1, "ChargingStationMaxProfile", 0, [(0, 32)])),
        (1, dflt(2, 0, [(0, 20)])),
        (2, dflt(3, 0, [(0, 20)])),
    ]
    assert sc.limit_at(P, T0, {"evse": 1})[0] == 20
    # two EVSEs charge: each has half the station's 32 A
    assert sc.limit_at(P, T0, {"evse": 1, "share": 0.5})[0] == 16
    P.append((0, prof(4, "ChargingStationExternalConstraints", 0, [(0, 12)])))
    assert sc.limit_at(P, T0, {"evse": 1})[0] == 12
    assert sc.limit_at(P, T0, {"evse": 1, "share": 0.5})[0] == 6
    P.append((1, prof(5, "ChargingStationExternalConstraints", 0, [(0, 8)])))
    assert sc.limit_at(P, T0, {"evse": 1})[0] == 8
    assert sc.limit_at(P, T0, {"evse": 2})[0] == 12
    # the hardware maximum caps everything
    assert sc.limit_at(P, T0, {"evse": 1, "max_a": 6})[0] == 6
    # EVSE 0: the grid connection, MaxProfile and EVSE 0's external constraints only, unshared
    assert sc.limit_at(P, T0, {"evse": 0, "share": 0.5})[0] == 12
    assert sc.limit_at(P[:1], T0, {"evse": 0}) == (32, 3, None)
    assert sc.limit_at(P[1:3], T0, {"evse": 0}) == (None, 3, None)


def test_max_profile_on_an_evse_and_unknown_purposes_are_ignored():
    P = [(1, prof(1, "ChargingStationMaxProfile", 0, [(0, 6)])), (1, prof(2, "Nope", 0, [(0, 6)]))]
    assert sc.limit_at(P, T0, EV1) == (None, 3, None)


# -- W and A, phases ------------------------------------------------------------------------


def test_watts_to_amps_with_phases():
    one = [(1, dflt(1, 0, [(0, 11040, 3)], unit="W"))]
    assert sc.limit_at(one, T0, EV1) == (16, 3, None)  # 11040 / (230 * 3)
    assert sc.limit_at(one, T0, {"evse": 1, "voltage": 240})[0] == 11040 / 720
    # a 1-phase supply caps numberPhases: all the power on one phase
    assert sc.limit_at(one, T0, {"evse": 1, "phases": 1}) == (48, 1, None)
    P = [(1, dflt(1, 0, [(0, 7360, 1)], unit="W"))]
    assert sc.limit_at(P, T0, EV1) == (32, 1, None)
    # numberPhases absent: 3 (K01.FR.49)
    P = [(1, dflt(1, 0, [(0, 6900)], unit="W"))]
    assert sc.limit_at(P, T0, EV1) == (10, 3, None)
    P = [(1, dflt(1, 0, [(0, 16)]))]
    assert sc.limit_at(P, T0, {"evse": 1, "phases": 1}) == (16, 1, None)


def test_mixed_units_come_out_as_amps_per_phase_and_phases():
    # MaxProfile 16 A (3 phases by default) and a 1-phase TxDefault of 7360 W (32 A): 16 A on 1
    P = [
        (0, prof(1, "ChargingStationMaxProfile", 0, [(0, 16)])),
        (1, dflt(2, 0, [(0, 7360, 1)], unit="W")),
    ]
    assert sc.limit_at(P, T0, EV1) == (16, 1, None)
    c = sc.composite(P, T0, 60, "W", EV1)
    assert periods(c) == [(0, 3680.0, 1)]  # 16 A * 230 V * 1 phase
    assert periods(sc.composite(P, T0, 60, "A", EV1)) == [(0, 16.0, 1)]


def test_in_unit_rounds_to_a_tenth():
    assert sc.in_unit(16, 3, "A", EV1) == 16.0
    assert sc.in_unit(10 / 3, 3, "A", EV1) == 3.3
    assert sc.in_unit(8000 / 690, 3, "W", EV1) == 8000.0
    assert sc.in_unit(6, 1, "W", {"evse": 1, "voltage": 240}) == 1440.0
    assert sc.in_unit(None, 3, "W", EV1) is None


# -- composite ------------------------------------------------------------------------------


def test_composite_fields_and_merging():
    # equal adjacent periods merge, also across profiles (TxDefault 10 A, then MaxProfile 10 A)
    P = [
        (1, dflt(1, 0, [(0, 10), (60, 10), (120, 12)], duration=300)),
        (0, prof(2, "ChargingStationMaxProfile", 0, [(0, 10)])),
    ]
    c = sc.composite(P, T0, 600, "A", EV1)
    assert c == {
        "evseId": 1,
        "duration": 600,
        "scheduleStart": "2026-01-05T00:00:00Z",
        "chargingRateUnit": "A",
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10.0, "numberPhases": 3}],
    }
    P[1] = (0, prof(2, "ChargingStationMaxProfile", 0, [(0, 11)]))
    assert periods(sc.composite(P, T0, 600, None, EV1)) == [(0, 10.0, 3), (120, 11.0, 3)]


def test_composite_with_nothing_installed():
    # TC_K_39: no profile: the hardware maximum, or 80 A (a pilot's most) without one
    assert periods(sc.composite([], T0, 300, "A", {"evse": 1, "max_a": 32})) == [(0, 32.0, 3)]
    assert periods(sc.composite([], T0, 300, "A", EV1)) == [(0, 80.0, 3)]
    assert periods(sc.composite([], T0, 300, "W", {"evse": 0, "phases": 1})) == [(0, 18400.0, 1)]


def _k40(unit, mult):
    # TC_K_40_CS (Get Composite Schedule - Stacking ChargingProfiles): TxDefault stack 0 with
    # 6, 8, 10 from 0, 100, 200 s; TxDefault stack 1 with 7, 9 from 0, 100 s for 150 s; both
    # from the same startSchedule. Expected (OCTT, x = 0): 7 @0, 9 @100, 8 @150, 10 @200.
    return [
        (
            1,
            dflt(
                1, 0, [(0, 6 * mult), (100, 8 * mult), (200, 10 * mult)], unit=unit, duration=404
            ),
        ),
        (1, dflt(2, 1, [(0, 7 * mult), (100, 9 * mult)], unit=unit, duration=150)),
    ]


def test_octt_tc_k_40_stacking_in_a_and_w():
    assert periods(sc.composite(_k40("A", 1), T0, 350, "A", EV1)) == [
        (0, 7.0, 3),
        (100, 9.0, 3),
        (150, 8.0, 3),
        (200, 10.0, 3),
    ]
    # the OCTT's W variant: every limit x 1000, requested in W
    assert periods(sc.composite(_k40("W", 1000), T0, 350, "W", EV1)) == [
        (0, 7000.0, 3),
        (100, 9000.0, 3),
        (150, 8000.0, 3),
        (200, 10000.0, 3),
    ]
    # A profiles requested in W: A * 230 V * 3 phases
    assert periods(sc.composite(_k40("A", 1), T0, 350, "W", EV1)) == [
        (0, 4830.0, 3),
        (100, 6210.0, 3),
        (150, 5520.0, 3),
        (200, 6900.0, 3),
    ]


def _k41(unit, mult):
    # TC_K_41_CS (Combining chargingProfilePurposes), with the time deviation 4 s of the OCTT
    # run: MaxProfile 10 on EVSE 0 for 86404 s; TxDefault 6,10,8,15,8 from 0,60,120,180,260 for
    # 304 s (valid for 409 s); TxProfile 8,11,16,6,12 from 0,50,140,200,240 for 264 s.
    s = "2024-08-21T12:24:36Z"
    return [
        (0, prof(1, "ChargingStationMaxProfile", 0, [(0, 10 * mult, 3)], unit=unit, start=s,
                 duration=86404)),
        (1, dflt(2, 0, [(0, 6 * mult, 3), (60, 10 * mult, 3), (120, 8 * mult, 3),
                        (180, 15 * mult, 3), (260, 8 * mult, 3)], unit=unit, start=s,
                 duration=304, validFrom=s, validTo="2024-08-21T12:31:25Z")),
        (1, prof(2, "TxProfile", 0, [(0, 8 * mult, 3), (50, 11 * mult, 3), (140, 16 * mult, 3),
                                     (200, 6 * mult, 3), (240, 12 * mult, 3)], unit=unit,
                 start=s, duration=264, transactionId="f1522902")),
    ]  # fmt: skip


K41_CTX = {"evse": 1, "tx": "f1522902"}
# requested 4 s after startSchedule (x = 4): 8 (Tx), 10 (Max) @50-x, 6 (Tx) @200-x,
# 10 (Max) @240-x, 8 (TxDefault, once the TxProfile's 264 s end) @264-x, 10 (Max) @304-x
K41 = [(0, 8), (46, 10), (196, 6), (236, 10), (260, 8), (300, 10)]


def test_octt_tc_k_41_combining_purposes_in_a_and_w():
    start = at("2024-08-21T12:24:40Z")
    c = sc.composite(_k41("A", 1), start, 400, "A", K41_CTX)
    assert c["scheduleStart"] == "2024-08-21T12:24:40Z" and c["duration"] == 400
    assert periods(c) == [(s, float(v), 3) for s, v in K41]
    c = sc.composite(_k41("W", 1000), start, 400, "W", K41_CTX)
    assert periods(c) == [(s, float(v * 1000), 3) for s, v in K41]
    # W profiles read in A: 8000 W / (230 V * 3) = 11.59 A -> 11.6
    c = sc.composite(_k41("W", 1000), start, 400, "A", K41_CTX)
    assert periods(c)[:2] == [(0, 11.6, 3), (46, 14.5, 3)]
    # without the transaction the TxProfile does not count
    c = sc.composite(_k41("A", 1), start, 400, "A", {"evse": 1})
    assert periods(c) == [(0, 6, 3), (56, 10, 3), (116, 8, 3), (176, 10, 3), (256, 8, 3),
                          (300, 10, 3)]  # fmt: skip


def test_composite_walks_change_points_not_seconds():
    # a daily schedule over a week: a handful of limit_at calls, not 604800
    P = [(1, dflt(1, 0, [(0, 6), (H, 16)], kind="Recurring", recurrencyKind="Daily",
                  duration=2 * H))]  # fmt: skip
    calls = []
    real = sc.limit_at

    def counting(*a):
        calls.append(a[1])
        return real(*a)

    sc.limit_at = counting
    try:
        c = sc.composite(P, T0, 7 * DAY, "A", {"evse": 1, "max_a": 32})
    finally:
        sc.limit_at = real
    assert len(calls) == 21
    assert periods(c)[:4] == [(0, 6.0, 3), (H, 16.0, 3), (2 * H, 32.0, 3), (DAY, 6.0, 3)]


# -- property: the composite is limit_at at every second --------------------------------------

W0 = T0 + 10 * DAY  # the window starts here; profiles start around it


@st.composite
def profile_sets(draw):
    out = []
    for pid in range(1, draw(st.integers(1, 4)) + 1):
        purpose = draw(
            st.sampled_from(
                (
                    "TxDefaultProfile",
                    "TxProfile",
                    "ChargingStationMaxProfile",
                    "ChargingStationExternalConstraints",
                )
            )
        )
        evse = 0 if purpose == "ChargingStationMaxProfile" else draw(st.sampled_from((0, 1, 2)))
        kind = draw(st.sampled_from(("Absolute", "Recurring", "Relative")))
        unit = draw(st.sampled_from(("A", "W")))
        pers = []
        sp = 0
        for _ in range(draw(st.integers(1, 4))):
            lim = draw(st.integers(0, 40)) * (230 if unit == "W" else 1)
            ph = draw(st.sampled_from((None, 1, 2, 3)))
            pers.append((sp, lim) if ph is None else (sp, lim, ph))
            sp += draw(st.integers(1, 120))
        kw = {}
        start = W0 + draw(st.integers(-200, 300))
        if kind == "Recurring":
            rk = draw(st.sampled_from(("Daily", "Weekly")))
            kw["recurrencyKind"] = rk
            # an earlier recurrence, so that one starts in the window
            start -= 86400 if rk == "Daily" else 604800
        if draw(st.booleans()):
            kw["validFrom"] = W0 + draw(st.integers(-100, 400))
        if draw(st.booleans()):
            kw["validTo"] = W0 + draw(st.integers(-100, 500))
        if purpose == "TxProfile":
            kw["transactionId"] = draw(st.sampled_from(("t1", "t2")))
        dur = draw(st.one_of(st.none(), st.integers(1, 400)))
        p = prof(pid, purpose, draw(st.integers(0, 2)), pers, unit=unit, kind=kind,
                 start=start, duration=dur, **kw)  # fmt: skip
        out.append((evse, p))
    return out


CTXS = st.fixed_dictionaries(
    {
        "evse": st.sampled_from((0, 1)),
        "tx": st.sampled_from((None, "t1")),
        "tx_start": st.one_of(st.none(), st.integers(W0 - 100, W0 + 300)),
        "max_a": st.one_of(st.none(), st.integers(6, 32)),
        "phases": st.sampled_from((1, 3)),
        "share": st.sampled_from((1, 0.5)),
    }
)


@settings(max_examples=150, deadline=None)
@given(profile_sets(), CTXS, st.sampled_from(("A", "W")), st.integers(1, 400))
def test_composite_equals_limit_at_every_second(profiles, ctx, unit, duration):
    c = sc.composite(profiles, W0, duration, unit, ctx)
    pers = c["chargingSchedulePeriod"]
    assert pers[0]["startPeriod"] == 0
    for j in range(1, len(pers)):
        a, b = pers[j - 1], pers[j]
        assert a["startPeriod"] < b["startPeriod"] < duration
        assert (a["limit"], a["numberPhases"]) != (b["limit"], b["numberPhases"])
    i = 0
    for s in range(duration):
        while i + 1 < len(pers) and pers[i + 1]["startPeriod"] <= s:
            i += 1
        amps, phases, nxt = sc.limit_at(profiles, W0 + s, ctx)
        assert nxt is None or nxt > W0 + s
        lim = sc.in_unit(80 if amps is None else amps, phases, unit, ctx)
        assert (pers[i]["limit"], pers[i]["numberPhases"]) == (lim, phases), s


# -- on MicroPython -------------------------------------------------------------------------

MP_SCRIPT = """
import rfc3339
import schedule as sc

def prof(pid, purpose, lvl, start, dur, pers, unit="A", kind="Absolute", **kw):
    s = {"id": 1, "chargingRateUnit": unit, "chargingSchedulePeriod": []}
    for q in pers:
        d = {"startPeriod": q[0], "limit": q[1]}
        if len(q) > 2:
            d["numberPhases"] = q[2]
        s["chargingSchedulePeriod"].append(d)
    if start:
        s["startSchedule"] = start
    if dur:
        s["duration"] = dur
    p = {"id": pid, "stackLevel": lvl, "chargingProfilePurpose": purpose,
         "chargingProfileKind": kind, "chargingSchedule": [s]}
    p.update(kw)
    return p

def show(c):
    print(c["evseId"], c["duration"], c["scheduleStart"], c["chargingRateUnit"],
          " ".join("%d:%.1f/%d" % (q["startPeriod"], q["limit"], q["numberPhases"])
                   for q in c["chargingSchedulePeriod"]))

S = "2024-08-21T12:24:36Z"
for unit, m in (("A", 1), ("W", 1000)):
    P = [(0, prof(1, "ChargingStationMaxProfile", 0, S, 86404, [(0, 10 * m, 3)], unit)),
         (1, prof(2, "TxDefaultProfile", 0, S, 304,
                  [(0, 6 * m), (60, 10 * m), (120, 8 * m), (180, 15 * m), (260, 8 * m)], unit,
                  validFrom=S, validTo="2024-08-21T12:31:25Z")),
         (1, prof(2, "TxProfile", 0, S, 264,
                  [(0, 8 * m), (50, 11 * m), (140, 16 * m), (200, 6 * m), (240, 12 * m)], unit,
                  transactionId="f1")),
        ]
    for u in ("A", "W"):
        show(sc.composite(P, rfc3339.parse("2024-08-21T12:24:40Z"), 400, u,
                          {"evse": 1, "tx": "f1"}))
W = [(1, prof(1, "TxDefaultProfile", 0, "2026-01-11T22:00:00Z", 14400, [(0, 8), (7200, 7360, 1)],
              "A", kind="Recurring", recurrencyKind="Weekly"))]
W[0][1]["chargingSchedule"][0]["chargingRateUnit"] = "W"
for t in ("2026-01-18T21:00:00Z", "2026-01-18T23:00:00Z", "2026-01-19T01:00:00Z"):
    a, n, nx = sc.limit_at(W, rfc3339.parse(t), {"evse": 1, "max_a": 16})
    print("%.3f" % a, n, rfc3339.format(nx))
show(sc.composite(W, rfc3339.parse("2026-01-18T21:00:00Z"), 6 * 3600, "A",
                  {"evse": 1, "max_a": 16, "phases": 3, "voltage": 240}))
R = [(1, prof(1, "TxDefaultProfile", 0, None, None, [(0, 10), (1800, 20)], kind="Relative"))]
t = rfc3339.parse("2026-01-05T00:00:00Z")
show(sc.composite(R, t, 3600, "W", {"evse": 1, "tx_start": t + 600}))
"""


def _run(argv, script):
    env = dict(os.environ, MICROPYPATH="%s:%s" % (ROOT / "lib", ROOT))
    out = subprocess.run(argv + [str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_same_results_on_micropython(tmp_path):
    if not MICROPYTHON.exists():
        pytest.skip("no MicroPython unix port in .venv")
    script = tmp_path / "schedule_mp.py"
    script.write_text(MP_SCRIPT)
    mp = _run([str(MICROPYTHON)], script)
    # the 32-bit port at an ESP32's heap, when built (tools/esp32sim.py build --bare)
    bare = ROOT / "build" / "esp32sim" / "micropython-bare"
    if bare.exists():
        assert _run([str(bare), "-X", "heapsize=112K"], script) == mp
    boot = tmp_path / "cpython.py"
    boot.write_text(
        "import sys\nsys.path[:0] = [%r, %r]\nimport mpcompat\nmpcompat.install()\n"
        "exec(open(sys.argv[1]).read())\n" % (str(ROOT / "tests_host"), str(ROOT / "lib"))
    )
    cp = _run([sys.executable, str(boot)], script)
    assert mp == cp
    lines = mp.splitlines()
    assert lines[0] == "1 400 2024-08-21T12:24:40Z A " + " ".join(
        "%d:%.1f/3" % (s, v) for s, v in K41
    )
    assert lines[1].endswith("0:5520.0/3 46:6900.0/3 196:4140.0/3 236:6900.0/3 260:5520.0/3 "
                             "300:6900.0/3")  # fmt: skip
    assert lines[3] == "1 400 2024-08-21T12:24:40Z W " + " ".join(
        "%d:%.1f/3" % (s, v * 1000) for s, v in K41
    )
    # the weekly W profile: 8 W is 0.012 A on 3 phases, 7360 W on 1 phase is 32 A -> 16 A max
    assert lines[4:7] == [
        "16.000 3 2026-01-18T22:00:00Z",
        "0.012 3 2026-01-19T00:00:00Z",
        "16.000 1 2026-01-19T02:00:00Z",
    ]
    assert lines[7] == (
        "1 21600 2026-01-18T21:00:00Z A 0:16.0/3 3600:0.0/3 10800:16.0/1 18000:16.0/3"
    )
    assert lines[8] == "1 3600 2026-01-05T00:00:00Z W 0:55200.0/3 600:6900.0/3 2400:13800.0/3"


def test_many_periods_and_the_steps_generator():
    # 1024 periods (the schema's most), one a minute: the binary search finds each; the
    # composite over them is the same through composite_steps, which yields every 16 changes
    pers = [(60 * i, 6 + i % 7) for i in range(1024)]
    P = [(1, dflt(1, 0, pers))]
    for i in (0, 1, 2, 511, 512, 1022):
        assert sc.limit_at(P, T0 + 60 * i + 30, EV1) == (6 + i % 7, 3, T0 + 60 * i + 60)
        assert sc.limit_at(P, T0 + 60 * i, EV1) == (6 + i % 7, 3, T0 + 60 * i + 60)
    assert sc.limit_at(P, T0 + 60 * 1023 + 30, EV1) == (6 + 1023 % 7, 3, None)
    gen = sc.composite_steps(P, T0, 1024 * 60, "A", EV1)
    yields = 0
    try:
        while True:
            next(gen)
            yields += 1
    except StopIteration as e:
        c = e.value
    assert yields == 1023 // 16
    assert c == sc.composite(P, T0, 1024 * 60, "A", EV1)
    assert periods(c) == [(60 * i, float(6 + i % 7), 3) for i in range(1024)]
