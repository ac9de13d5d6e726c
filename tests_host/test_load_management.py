"""Local load management (firmware/load_management.py) under CPython: the real device model,
profiles store and schedule maths, fake EVSEs and a mains meter given as readings. Every
NotifyChargingLimit and ClearedChargingLimit is checked against the official schema (K12,
K13 of OCPP 2.0.1 Part 2)."""

import asyncio
from types import SimpleNamespace

import pytest

import rfc3339
import schedule
from firmware.charging_profiles import Profiles
from firmware.device_model import DeviceModel
from firmware.load_management import LoadManagement
from firmware.variables import declarations
from meter import Reading
from ocpp_oracle import valid
from store import Store

NOW = 1795285000
T0 = rfc3339.format(NOW)


class Clock:
    def now(self):
        return NOW

    def iso(self):
        return T0


class Evse:
    """What load management reads of an EVSE controller."""

    def __init__(self, n, phases=3, max_a=32, switch=False):
        self.id = n
        self.hw = SimpleNamespace(
            phases=phases, max_a=max_a, cable_a=None, phase_switch=object() if switch else None
        )
        self.max_a = max_a
        self.reading = None
        self.energy_flowing = False
        self.ev_requesting = False
        self.plugged = False
        self.limited = False
        self.offered_a = 0

    def draws(self, amps, phases=3):
        """The EV charges at `amps` on `phases` phases (its meter says so)."""
        self.plugged = self.ev_requesting = self.energy_flowing = amps > 0
        self.offered_a = amps
        cur = tuple(float(amps) if p < phases else 0.0 for p in range(3))
        self.reading = Reading(0.0, amps * 230.0 * phases, cur, (230.0,) * 3)


class Session:
    def __init__(self):
        self.sent = []

    async def call(self, action, payload):
        self.sent.append((action, valid(action + "Request", payload)))
        return {}


class Site:
    def __init__(self, tmp_path, evses=None, mode="Capacity", fuse=25, delay=60):
        self.store = Store(str(tmp_path / "state"))
        self.evses = evses or [Evse(1)]
        self.dm = DeviceModel(self.store, declarations([e.hw for e in self.evses]))
        self.dm.set("LoadManagement/Mode", mode)
        self.dm.set("LoadManagement/MainsFuse", str(fuse))
        self.dm.set("LoadManagement/SolarStopDelay", str(delay))
        self.profiles = Profiles(self.store)
        self.session = Session()
        self.changes = 0
        self.ready = asyncio.Event()
        self.ready.set()
        self.lm = None  # built by the first pass: the EVs as the test set them up are settled
        self.ms = 0

    def changed(self):
        self.changes += 1

    def mains(self, *amps, after_ms=1000):
        """One pass with the mains meter reading `amps` per phase (None: no answer)."""
        self.ms += after_ms
        r = None if amps == (None,) else Reading(0.0, 0.0, tuple(amps), (230.0,) * 3)
        if self.lm is None:
            self.lm = LoadManagement(
                self.dm,
                None,
                self.evses,
                self.profiles,
                self.session,
                self.ready,
                Clock(),
                lambda c: asyncio.run(c),  # sent at once: the order on the wire is kept
                self.changed,
            )
            # the EVs as the test set them up have been so for long: settled (see
            # test_the_first_pass_holds_too for a start)
            self.lm._seen = [(e.energy_flowing, e.offered_a) for e in self.evses]
        self.lm.step(self.ms, r, 0)

    def limit(self, n=1):
        """(amps, phases) the schedule maths applies on EVSE n from the profiles, or None."""
        amps, phases, _ = schedule.limit_at(self.profiles.for_evse(n), NOW, {"evse": n})
        return None if amps is None else (amps, phases)

    def actions(self):
        out = [a for a, _ in self.session.sent]
        self.session.sent = []
        return out


@pytest.fixture
def site(tmp_path):
    return Site(tmp_path)


def test_capacity_keeps_the_fuse_with_the_evse_own_draw_taken_out(site):
    ev = site.evses[0]
    ev.draws(16)
    site.mains(16 + 5, 16 + 12, 16 + 3)  # the house: 5, 12, 3 A
    assert site.limit() == (13, 3)  # 25 - 12 on the worst phase
    assert site.lm.limits == [(13, 3)]
    assert site.actions() == ["NotifyChargingLimit"]
    p = site.profiles.for_evse(1)[0][1]
    assert p["chargingProfilePurpose"] == "ChargingStationExternalConstraints"
    assert site.profiles.count() == 0  # not an entry of the CSMS's
    assert site.store.load("charging_profiles") is None  # nor written to flash


def test_notify_charging_limit_is_exact(site):
    site.mains(20, 0, 0)
    assert site.session.sent == [
        (
            "NotifyChargingLimit",
            {
                "chargingLimit": {"chargingLimitSource": "EMS"},
                "evseId": 1,
                "chargingSchedule": [
                    {
                        "id": 1000000001,
                        "startSchedule": T0,
                        "chargingRateUnit": "A",
                        "chargingSchedulePeriod": [
                            {"startPeriod": 0, "limit": 5, "numberPhases": 3}
                        ],
                    }
                ],
            },
        )
    ]


def test_a_limit_falls_at_once_and_rises_at_most_every_5_s(site):
    site.mains(10, 10, 10)
    assert site.lm.limits == [(15, 3)]
    site.mains(15, 10, 10)
    assert site.lm.limits == [(10, 3)]  # down at once
    site.mains(12, 10, 10)
    site.mains(12, 10, 10, after_ms=3000)
    assert site.lm.limits == [(10, 3)]  # 4 s after the last change: not yet up
    site.mains(12, 10, 10)
    assert site.lm.limits == [(13, 3)]
    site.mains(5, 5, 5, after_ms=4999)
    assert site.lm.limits == [(13, 3)]
    site.mains(5, 5, 5, after_ms=1)
    assert site.lm.limits == [(20, 3)]


def test_no_restriction_is_cleared_charging_limit(tmp_path):
    site = Site(tmp_path, fuse=40)
    site.mains(20, 0, 0)
    site.mains(0, 0, 0, after_ms=6000)
    assert site.lm.limits == [None]
    assert site.limit() is None
    assert site.session.sent[-1] == (
        "ClearedChargingLimit",
        {"chargingLimitSource": "EMS", "evseId": 1},
    )
    assert site.actions() == ["NotifyChargingLimit", "ClearedChargingLimit"]


def test_capacity_is_shared_by_the_evses_that_want_energy(tmp_path):
    site = Site(tmp_path, [Evse(1), Evse(2), Evse(3)], fuse=32)
    a, b, _ = site.evses
    a.draws(10)
    b.draws(10)
    site.mains(24, 24, 24)  # the house 4 A
    assert site.lm.limits == [(14, 3), (14, 3), (14, 3)]  # (32 - 4) / 2


def test_capacity_counts_a_car_plugged_in_that_does_not_draw_yet(tmp_path):
    site = Site(tmp_path, [Evse(1), Evse(2)], fuse=32)
    a, b = site.evses
    a.draws(16)
    b.plugged = True  # in B: it may start drawing at any moment
    site.mains(16, 16, 16)
    assert site.lm.limits == [(16, 3), (16, 3)]  # 32 / 2: both together stay under the fuse


def test_solar_counts_only_the_cars_that_want_energy(tmp_path):
    site = Site(tmp_path, [Evse(1), Evse(2)], mode="Solar")
    a, b = site.evses
    a.draws(10)
    b.plugged = True  # full: it takes nothing
    site.mains(10 - 20, 10 - 20, 10 - 20)
    assert site.lm.limits == [(20, 3), (20, 3)]  # all of the export for the one charging


def test_a_lost_mains_meter_means_6_a_in_capacity(site):
    site.mains(0, 0, 20)
    site.mains(None)
    site.mains(None, after_ms=3000)
    assert not site.lm.lost
    site.mains(None, after_ms=2000)
    assert site.lm.lost
    assert site.lm.limits == [(6, 3)]
    site.mains(0, 0, 0)  # back: up by the rise rule
    assert not site.lm.lost


def test_no_reading_yet_is_the_fallback_too(site):
    site.mains(None)
    assert site.lm.limits == [(6, 3)]


def test_solar_charges_three_phases_from_export(tmp_path):
    site = Site(tmp_path, mode="Solar")
    ev = site.evses[0]
    ev.draws(8)
    site.mains(8 - 10, 8 - 10, 8 - 10)  # 10 A exported on each phase, with our 8 A
    assert site.lm.limits == [(10, 3)]


def test_solar_switches_to_one_phase_below_6_a_per_phase(tmp_path):
    site = Site(tmp_path, [Evse(1, switch=True)], mode="Solar")
    site.evses[0].plugged = site.evses[0].ev_requesting = True
    site.mains(-3, -3, -4)  # 10 A exported: 3.3 A per phase, 10 A on one
    assert site.lm.limits == [(10, 1)]
    assert site.limit() == (10, 1)


def test_solar_without_a_switch_runs_at_6_a_for_the_delay_then_pauses(tmp_path):
    site = Site(tmp_path, mode="Solar", delay=10)
    ev = site.evses[0]
    ev.draws(6)
    site.mains(6 - 2, 6 - 2, 6 - 2)  # 6 A of our 18 A come from the grid
    assert site.lm.limits == [(6, 3)]
    for _ in range(9):
        site.mains(6 - 2, 6 - 2, 6 - 2)
    assert site.lm.limits == [(6, 3)]
    site.mains(6 - 2, 6 - 2, 6 - 2)
    assert site.lm.limits == [(0, 3)]  # paused after SolarStopDelay
    ev.draws(0)
    ev.plugged = ev.limited = True
    site.mains(-7, -7, -7, after_ms=5000)
    assert site.lm.limits == [(0, 3)]  # the EV's own meter catching up: everything holds
    site.mains(-7, -7, -7, after_ms=2500)
    assert site.lm.limits == [(7, 3)]  # export again: resumes


def test_solar_at_night_is_a_pause_at_once(tmp_path):
    site = Site(tmp_path, mode="Solar")
    site.mains(3, 2, 1)
    assert site.lm.limits == [(0, 3)]


def test_stop_clears_every_limit(site):
    site.mains(20, 0, 0)
    site.lm.stop()
    assert site.lm.limits == [None]
    assert site.limit() is None
    assert site.actions() == ["NotifyChargingLimit", "ClearedChargingLimit"]


def test_a_one_phase_mains_meter(site):
    site.mains(20, None, None)
    assert site.lm.limits == [(5, 3)]


def test_offline_the_csms_is_told_what_holds_once_the_link_is_back(tmp_path):
    site = Site(tmp_path, fuse=40)
    site.ready.clear()
    site.mains(20, 0, 0)  # restricts offline: nothing sent
    assert site.lm.limits == [(20, 3)] and site.actions() == []
    site.ready.set()
    site.mains(20, 0, 0)
    assert site.actions() == ["NotifyChargingLimit"]
    site.ready.clear()
    site.mains(0, 0, 0, after_ms=6000)  # ends offline
    site.mains(20, 0, 0, after_ms=1000)  # and starts again, still offline
    site.ready.set()
    site.mains(20, 0, 0)
    assert site.actions() == []  # the CSMS knows of a restriction: nothing to tell
    site.mains(0, 0, 0, after_ms=6000)
    assert site.actions() == ["ClearedChargingLimit"]


def test_a_report_that_fails_is_sent_again(tmp_path):
    site = Site(tmp_path)
    sent = site.session.sent

    async def refuse(action, payload):
        raise asyncio.TimeoutError()

    site.session.call = refuse
    site.mains(20, 0, 0)
    assert sent == []
    del site.session.call  # the class's call again
    site.mains(20, 0, 0)
    assert site.actions() == ["NotifyChargingLimit"]


def test_the_limits_hold_while_an_evse_meter_catches_up(site):
    ev = site.evses[0]
    site.mains(5, 5, 5)
    assert site.lm.limits == [(20, 3)]
    ev.draws(20)  # the EV starts: the mains meter sees it first
    ev.reading = Reading(0.0, 0.0, (0.0, 0.0, 0.0), (230.0,) * 3)
    site.mains(25, 25, 25)
    site.mains(25, 25, 25)
    assert site.lm.limits == [(20, 3)]  # not cut to 0 by the house seeming to draw 25 A
    ev.draws(20)  # its meter has it now
    site.mains(25, 25, 25, after_ms=500)
    assert site.lm.limits == [(20, 3)]
    site.mains(30, 25, 25)  # and a real rise of the house's load falls at once
    assert site.lm.limits == [(15, 3)]


def test_the_first_pass_holds_too(site):
    site.mains(1, 1, 1)
    site.lm._seen = [None]  # as built: nothing seen yet
    site.mains(30, 30, 30)
    assert site.lm.limits == [(24, 3)]  # held
    site.mains(30, 30, 30, after_ms=2500)
    assert site.lm.limits == [(0, 3)]


def test_a_report_the_csms_refuses_is_not_sent_again(tmp_path):
    import ocppj

    site = Site(tmp_path)
    refused = []

    async def refuse(action, payload):
        refused.append(action)
        raise ocppj.CallError("NotImplemented", remote=True)

    site.session.call = refuse
    site.mains(20, 0, 0)
    site.mains(20, 0, 0)
    assert refused == ["NotifyChargingLimit"]  # answered, if with a CALLERROR: told


def test_notify_carries_the_schedule_of_the_profile_in_force(tmp_path):
    site = Site(tmp_path)
    site.ready.clear()
    site.mains(20, 0, 0)
    site.lm.clock = SimpleNamespace(iso=lambda: "2026-12-06T10:00:00Z")  # later, reconnected
    site.ready.set()
    site.mains(20, 0, 0)
    ((_, msg),) = site.session.sent
    assert msg["chargingSchedule"] == site.profiles.get(1000000001)[1]["chargingSchedule"]
    assert msg["chargingSchedule"][0]["startSchedule"] == T0  # when the restriction began
