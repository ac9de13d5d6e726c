"""Smart charging (block K): firmware/blocks/smart_charging.py under CPython, wired to the real
device model, store and router, with fake EVSEs and transactions. Every answer and every
ReportChargingProfiles is checked against the official OCPP 2.0.1 schema; the requirement
ids are those of OCPP 2.0.1 Part 2."""

import asyncio
import json
from types import SimpleNamespace

import pytest

import ocppj
import rfc3339
from firmware.blocks.smart_charging import SmartCharging
from firmware.device_model import DeviceModel
from firmware.variables import declarations
from ocpp_oracle import valid
from store import Store

NOW = 1795285000  # 2026-11-21T18:16:40Z
T0 = rfc3339.format(NOW)


class Clock:
    def __init__(self):
        self.t = NOW

    def now(self):
        return self.t

    def iso(self):
        return rfc3339.format(self.t)


class FakeEvse:
    def __init__(self, n, phases=3, max_a=32, switch=False):
        self.id = n
        sw = object() if switch else None
        self.hw = SimpleNamespace(phases=phases, max_a=max_a, cable_a=None, phase_switch=sw)
        self.cable_a = None
        self._config_a = None
        self.max_a = max_a
        self.limit = "unset"
        self.asked = []  # set_phases calls
        # what load management reads
        self.reading = None
        self.energy_flowing = self.ev_requesting = self.plugged = self.limited = False
        self.offered_a = 0

    def set_limit(self, amps):
        self.limit = amps

    def set_phases(self, n):
        self.asked.append(n)


class FakeTxs:
    def __init__(self, evses):
        self.bays = [
            SimpleNamespace(
                tx=None, ending=None, stopping=None, token=None, profile=None, posted=[]
            )
            for _ in evses
        ]
        for b in self.bays:
            b.post = lambda kind, trigger, b=b: b.posted.append((kind, trigger))

    def bay(self, e):
        return self.bays[e.id - 1]

    def tx_id(self, e):
        tx = self.bays[e.id - 1].tx
        return None if tx is None else tx["id"]

    def start(self, n, tx_id, t0=NOW):
        self.bays[n - 1].tx = {"id": tx_id, "t0": t0}

    def end(self, n):
        self.bays[n - 1].tx = None


class FakeSession:
    def __init__(self):
        self.sent = []
        self.in_len = 100

    async def call(self, action, payload):
        self.sent.append((action, valid(action + "Request", payload)))
        return {}


class FakeMains:
    async def read(self):
        raise AssertionError("the tests step load management themselves")


class Station:
    def __init__(self, tmp_path, evses=2, dm_values=(), mains=None, switch=False):
        self.store = Store(str(tmp_path / "state"))
        self.evses = [FakeEvse(i, switch=switch) for i in range(1, evses + 1)]
        self.dm = DeviceModel(self.store, declarations([e.hw for e in self.evses]))
        for k, v in dm_values:
            self.dm.set(k, v)
        self.clock = Clock()
        self.txs = FakeTxs(self.evses)
        self.router = ocppj.Router()
        self.session = FakeSession()
        self.spawned = []
        self.ready = asyncio.Event()
        self.ready.set()
        self.block = SmartCharging(
            self.router,
            self.session,
            self.dm,
            self.store,
            self.clock,
            self.evses,
            self.txs,
            self.spawn,
            self.ready,
            mains,
        )

    def spawn(self, coro):
        if coro.__name__ == "run":
            coro.close()  # the 1 s loop: the tests call apply()
        else:
            self.spawned.append(coro)

    def call(self, action, req):
        valid(action + "Request", req)
        handler, after = self.router.entry(action)
        resp = handler(json.loads(json.dumps(req)))
        if hasattr(resp, "send"):
            resp = asyncio.run(resp)
        resp = valid(action + "Response", resp)
        if after is not None:
            after(req, resp)
        return resp

    def run_spawned(self):
        coros, self.spawned[:] = list(self.spawned), []
        for c in coros:
            asyncio.run(c)


def profile(pid, purpose="TxDefaultProfile", level=0, limit=10, unit="A", **kw):
    periods = kw.pop("periods", None) or [{"startPeriod": 0, "limit": limit}]
    s = {"id": 1, "chargingRateUnit": unit, "chargingSchedulePeriod": periods}
    kind = kw.pop("kind", "Absolute")
    if kind != "Relative":
        s["startSchedule"] = kw.pop("start", T0)
    p = {
        "id": pid,
        "stackLevel": level,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": kind,
        "chargingSchedule": [s],
    }
    p.update(kw)
    return p


def set_profile(st, evse, p):
    return st.call("SetChargingProfile", {"evseId": evse, "chargingProfile": p})


@pytest.fixture
def st(tmp_path):
    return Station(tmp_path)


def test_a_tx_default_limits_every_evse_at_once(st):
    assert [e.limit for e in st.evses] == [None, None]  # nothing limits: no limit
    assert set_profile(st, 0, profile(1)) == {"status": "Accepted"}
    assert [e.limit for e in st.evses] == [10, 10]
    assert st.dm.get("SmartChargingCtrlr/Entries") == "1"


def test_rejected_with_a_reason_code_never_an_error(st):
    # K01.FR.16: a TxProfile on EVSE 0
    r = set_profile(st, 0, profile(1, "TxProfile", transactionId="t1"))
    assert r["status"] == "Rejected"
    assert r["statusInfo"]["reasonCode"] == "TxProfileOnEVSE0"
    # K01.FR.28: an unknown EVSE
    r = set_profile(st, 3, profile(2))
    assert r["statusInfo"]["reasonCode"] == "UnknownEVSE"
    # K01.FR.09: no transaction running
    r = set_profile(st, 1, profile(3, "TxProfile", transactionId="t1"))
    assert r["statusInfo"]["reasonCode"] == "NoTransaction"
    # K01.FR.26 and the unit in RateUnit
    st.dm.values["SmartChargingCtrlr/RateUnit"] = "A"
    r = set_profile(st, 1, profile(4, unit="W"))
    assert r["statusInfo"]["reasonCode"] == "UnsupportedRateUnit"
    assert st.dm.get("SmartChargingCtrlr/Entries") == "0"


def test_a_tx_profile_overrides_the_default_and_ends_with_its_transaction(st):
    set_profile(st, 0, profile(1, limit=10))
    st.txs.start(1, "t1")
    assert set_profile(st, 1, profile(2, "TxProfile", limit=20, transactionId="t1")) == {
        "status": "Accepted"
    }
    assert [e.limit for e in st.evses] == [20, 10]
    st.txs.end(1)
    st.block.apply()
    assert st.block.profiles.get(2) is None  # TxProfiles end with their transaction
    assert [e.limit for e in st.evses] == [10, 10]


def test_a_zero_period_then_a_higher_one(st):
    periods = [{"startPeriod": 0, "limit": 0}, {"startPeriod": 60, "limit": 16}]
    set_profile(st, 1, profile(1, periods=periods))
    assert st.evses[0].limit == 0
    st.clock.t += 60
    st.block.apply()
    assert st.evses[0].limit == 16


def test_a_period_change_beyond_the_significance_is_charging_rate_changed(st):
    # K01: told with the transaction, one pass later (after the EVSE acted), never for a
    # change a CSMS call made or one within LimitChangeSignificance (10 %)
    st.txs.start(1, "t1")
    periods = [
        {"startPeriod": 0, "limit": 20},
        {"startPeriod": 60, "limit": 19},
        {"startPeriod": 120, "limit": 10},
    ]
    set_profile(st, 1, profile(1, periods=periods))
    posted = st.txs.bays[0].posted
    st.block.apply()
    assert st.evses[0].limit == 20 and posted == []  # set by the CSMS
    st.clock.t += 60
    st.block.apply()
    st.block.apply()
    assert st.evses[0].limit == 19 and posted == []  # 5 %
    st.clock.t += 60
    st.block.apply()
    assert st.evses[0].limit == 10 and posted == []
    st.block.apply()
    assert posted == [("Updated", "ChargingRateChanged")]
    assert st.txs.bays[1].posted == []


def test_watts_become_amps_with_the_nominal_voltage_and_phases(st):
    set_profile(st, 1, profile(1, unit="W", limit=6900))
    assert st.evses[0].limit == pytest.approx(10)  # 6900 W / (230 V x 3)
    st.dm.set("SmartChargingCtrlr/NominalVoltage", "115")
    st.block.apply()
    assert st.evses[0].limit == pytest.approx(20)


def test_the_max_profile_is_shared_over_the_evses_that_charge(st):
    set_profile(st, 0, profile(1, "ChargingStationMaxProfile", limit=20))
    assert [e.limit for e in st.evses] == [20, 20]
    st.txs.start(1, "t1")
    st.txs.start(2, "t2")
    st.block.apply()
    assert [e.limit for e in st.evses] == [10, 10]


def test_expired_profiles_are_purged(st):
    later = rfc3339.format(NOW + 100)
    set_profile(st, 1, profile(1, validTo=later))
    assert st.evses[0].limit == 10
    st.clock.t += 100
    st.block.apply()
    assert st.block.profiles.count() == 0
    assert st.evses[0].limit is None


def test_get_charging_profiles_reports_in_parts(st):
    for i in range(1, 7):
        set_profile(st, 1, profile(i, level=i))
    set_profile(st, 0, profile(9, "ChargingStationMaxProfile", limit=32))
    r = st.call("GetChargingProfiles", {"requestId": 5, "chargingProfile": {}})
    assert r == {"status": "Accepted"}
    st.run_spawned()
    parts = [(p["evseId"], len(p["chargingProfile"]), p["tbc"]) for a, p in st.session.sent]
    assert parts == [(0, 1, True), (1, 4, True), (1, 2, False)]
    assert all(a == "ReportChargingProfiles" for a, p in st.session.sent)
    r = st.call("GetChargingProfiles", {"requestId": 6, "chargingProfile": {"stackLevel": 7}})
    assert r == {"status": "NoProfiles"}


def test_clear_by_id_and_by_criteria(st):
    set_profile(st, 1, profile(1, level=1))
    set_profile(st, 2, profile(2, level=1))
    assert st.call("ClearChargingProfile", {"chargingProfileId": 1}) == {"status": "Accepted"}
    assert st.evses[0].limit is None
    assert st.call("ClearChargingProfile", {"chargingProfileId": 1}) == {"status": "Unknown"}
    r = st.call("ClearChargingProfile", {"chargingProfileCriteria": {"evseId": 2}})
    assert r == {"status": "Accepted"}
    assert st.evses[1].limit is None


def test_composite_schedule(st):
    periods = [{"startPeriod": 0, "limit": 10}, {"startPeriod": 600, "limit": 0}]
    set_profile(st, 1, profile(1, periods=periods))
    r = st.call("GetCompositeSchedule", {"evseId": 1, "duration": 1200})
    assert r == {
        "status": "Accepted",
        "schedule": {
            "evseId": 1,
            "duration": 1200,
            "scheduleStart": T0,
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [
                {"startPeriod": 0, "limit": 10.0, "numberPhases": 3},
                {"startPeriod": 600, "limit": 0.0, "numberPhases": 3},
            ],
        },
    }
    r = st.call("GetCompositeSchedule", {"evseId": 1, "duration": 60, "chargingRateUnit": "W"})
    assert r["schedule"]["chargingSchedulePeriod"][0]["limit"] == 6900.0
    r = st.call("GetCompositeSchedule", {"evseId": 3, "duration": 60})
    assert r["status"] == "Rejected"
    st.dm.values["SmartChargingCtrlr/RateUnit"] = "A"
    r = st.call("GetCompositeSchedule", {"evseId": 1, "duration": 60, "chargingRateUnit": "W"})
    assert r["status"] == "Rejected"


def test_profiles_survive_a_reboot(tmp_path):
    st = Station(tmp_path)
    set_profile(st, 1, profile(1, limit=8))
    st2 = Station(tmp_path)
    assert st2.evses[0].limit == 8


def test_not_available_is_not_supported(st):
    st.dm.values["SmartChargingCtrlr/Available"] = "false"
    for action, req in (
        ("SetChargingProfile", {"evseId": 1, "chargingProfile": profile(1)}),
        ("GetChargingProfiles", {"requestId": 1, "chargingProfile": {}}),
        ("ClearChargingProfile", {}),
        ("GetCompositeSchedule", {"evseId": 1, "duration": 60}),
    ):
        with pytest.raises(ocppj.CallError) as e:
            st.call(action, req)
        assert e.value.code == "NotSupported"


def test_not_enabled_rejects_and_applies_nothing(st):
    set_profile(st, 1, profile(1))
    st.dm.set("SmartChargingCtrlr/Enabled", "false")
    st.block.apply()
    assert st.evses[0].limit is None
    r = set_profile(st, 1, profile(2, level=1))
    assert r["statusInfo"]["reasonCode"] == "NotEnabled"


def test_request_start_profile_becomes_a_tx_profile_of_the_new_transaction(st):
    # K05: kept on the bay by the transactions block, without a transactionId
    b = st.txs.bays[0]
    b.token = {"idToken": "T", "type": "Central"}
    b.profile = profile(7, "TxProfile", limit=8)
    st.block.apply()
    assert b.profile is not None and st.block.profiles.count() == 0  # no transaction yet
    st.txs.start(1, "t9")
    st.block.apply()
    assert b.profile is None
    assert st.block.profiles.get(7)[1]["transactionId"] == "t9"
    assert st.evses[0].limit == 8


def test_request_start_profile_breaking_a_rule_is_ignored(st):
    b = st.txs.bays[0]
    b.token = {"idToken": "T", "type": "Central"}
    b.profile = profile(7, "TxProfile", limit=8, level=99)  # above ProfileStackLevel
    st.txs.start(1, "t9")
    st.block.apply()
    assert b.profile is None and st.block.profiles.count() == 0
    assert st.evses[0].limit is None


def mains(st, *amps, ms=1000):
    """A pass of load management with the mains meter reading `amps` per phase."""
    from meter import Reading

    lm = st.block.load
    lm._seen = [(e.energy_flowing, e.offered_a) for e in st.evses]  # settled long ago
    lm.step(ms, Reading(0.0, 0.0, amps, (230.0,) * 3), 0)


def test_load_management_starts_and_stops_with_its_mode(tmp_path):
    st = Station(tmp_path, mains=FakeMains(), dm_values=[("LoadManagement/MainsFuse", "20")])
    assert st.block.load is None
    st.dm.set("LoadManagement/Mode", "Capacity")
    st.block.apply()
    assert st.block.load is None  # the next turn of the loop starts it
    st.block._manage()
    mains(st, 12, 4, 4)
    assert [e.limit for e in st.evses] == [8, 8]  # applied at once: 20 - 12
    st.run_spawned()
    mains(st, 12, 4, 4, ms=2000)  # one report at a time
    st.run_spawned()
    assert [a for a, _ in st.session.sent] == ["NotifyChargingLimit"] * 2
    st.dm.set("LoadManagement/Mode", "Off")
    st.block._manage()
    assert st.block.load is None and [e.limit for e in st.evses] == [None, None]
    st.run_spawned()
    assert [a for a, _ in st.session.sent][2:] == ["ClearedChargingLimit"] * 2


def test_no_mains_meter_no_load_management(tmp_path, logged):
    st = Station(tmp_path, dm_values=[("LoadManagement/Mode", "Capacity")])
    st.block._manage()
    st.block._manage()
    assert st.block.load is None
    assert logged.getvalue().count("load management needs a mains meter") == 1


def test_the_external_limit_is_in_the_composite_and_the_report(tmp_path):
    st = Station(tmp_path, mains=FakeMains(), dm_values=[("LoadManagement/Mode", "Capacity")])
    set_profile(st, 1, profile(1, limit=16))
    mains(st, 15, 15, 15)  # 25 - 15: 10 A
    assert st.evses[0].limit == 10
    r = st.call("GetCompositeSchedule", {"evseId": 1, "duration": 60})
    assert r["schedule"]["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 10.0, "numberPhases": 3}
    ]
    r = st.call(
        "GetChargingProfiles",
        {"requestId": 5, "chargingProfile": {"chargingLimitSource": ["EMS"]}, "evseId": 1},
    )
    assert r == {"status": "Accepted"}
    st.run_spawned()
    reports = [p for a, p in st.session.sent if a == "ReportChargingProfiles"]
    assert [
        (p["chargingLimitSource"], [q["id"] for q in p["chargingProfile"]]) for p in reports
    ] == [("EMS", [1000000001])]
    # the CSMS can neither clear it nor take its id
    assert st.call("ClearChargingProfile", {"chargingProfileId": 1000000001}) == {
        "status": "Unknown"
    }
    r = set_profile(st, 1, profile(1000000001, level=1))
    assert r["statusInfo"]["reasonCode"] == "ExternalProfileId"


def test_the_external_limit_applies_with_smart_charging_disabled(tmp_path):
    st = Station(tmp_path, mains=FakeMains(), dm_values=[("LoadManagement/Mode", "Capacity")])
    set_profile(st, 1, profile(1, limit=8))
    st.dm.set("SmartChargingCtrlr/Enabled", "false")
    mains(st, 15, 15, 15)
    assert st.evses[0].limit == 10  # the fuse's 10 A, not the CSMS's 8


def test_phases_are_asked_of_an_evse_with_a_switch_once_per_interval(tmp_path):
    st = Station(
        tmp_path, switch=True, dm_values=[("SmartChargingCtrlr/PhaseSwitchMinInterval", "60")]
    )
    one = [{"startPeriod": 0, "limit": 16, "numberPhases": 1}]
    set_profile(st, 1, profile(1, periods=one))
    assert st.evses[0].asked == [1] and st.evses[1].asked == []  # EVSE 1's profile
    assert st.evses[0].limit == 16
    st.call("ClearChargingProfile", {"chargingProfileId": 1})
    assert st.evses[0].asked == [1]  # back to 3 only after PhaseSwitchMinInterval
    st.block._switched[0] -= 60000
    st.block.apply()
    assert st.evses[0].asked == [1, 3]


def test_phases_are_not_asked_without_a_switch(st):
    one = [{"startPeriod": 0, "limit": 16, "numberPhases": 1}]
    set_profile(st, 1, profile(1, periods=one))
    assert st.evses[0].asked == []
