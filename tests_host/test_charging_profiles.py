"""firmware/charging_profiles.py: every SetChargingProfile rule of K01 (each with a profile that
breaks only that rule), the profile store (K01.FR.05 replacement, persistence, purge, the end
of a transaction), GetChargingProfiles' filters and ReportChargingProfiles' parts (K09),
ClearChargingProfile (K10); payloads checked against the official schemas; a MicroPython run."""

import copy
import json
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from firmware.charging_profiles import Profiles, check, report_parts
from ocpp_oracle import valid
from store import Store

START = "2027-01-15T08:00:00Z"
T_START = 1_800_000_000  # START in seconds


def ctx(profiles=None, **kw):
    """Two EVSEs, a transaction on EVSE 1, EVSE 2 on a 1-phase supply."""
    c = SimpleNamespace(
        evses=2,
        tx=[None, "tx-1", None],
        phases=[3, 3, 1],
        units="A,W",
        periods=4,
        entries=4,
        stack=5,
        switching=False,
        profiles=profiles,
    )
    for k, v in kw.items():
        setattr(c, k, v)
    return c


def profile(pid=1, purpose="TxDefaultProfile", level=1, kind="Absolute", **kw):
    p = {
        "id": pid,
        "stackLevel": level,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": kind,
        "chargingSchedule": [
            {
                "id": 1,
                "startSchedule": START,
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [
                    {"startPeriod": 0, "limit": 16.0},
                    {"startPeriod": 3600, "limit": 10.0},
                ],
            }
        ],
    }
    p.update(kw)
    return p


def set_request(evse_id, p):
    valid("SetChargingProfileRequest", {"evseId": evse_id, "chargingProfile": p})
    return p


def sched(p):
    return p["chargingSchedule"][0]


def period(p, i):
    return sched(p)["chargingSchedulePeriod"][i]


def test_the_baseline_profiles_are_accepted():
    c = ctx(Profiles())
    assert check(1, set_request(1, profile()), c) is None
    assert check(0, set_request(0, profile(purpose="ChargingStationMaxProfile")), c) is None
    tx = profile(purpose="TxProfile", transactionId="tx-1")
    assert check(1, set_request(1, tx), c) is None
    rel = profile(kind="Relative")
    del sched(rel)["startSchedule"]
    assert check(1, set_request(1, rel), c) is None
    rec = profile(kind="Recurring", recurrencyKind="Daily")
    assert check(0, set_request(0, rec), c) is None
    w = profile()
    sched(w)["chargingRateUnit"] = "W"
    period(w, 0).update(numberPhases=1)
    assert check(2, set_request(2, w), c) is None
    sw = profile()
    period(sw, 0).update(numberPhases=1, phaseToUse=2)
    assert check(1, set_request(1, sw), ctx(switching=True)) is None
    assert check(1, profile(level=5), c) is None  # the highest stack level itself


def _mutated(fn, **kw):
    p = profile(**kw)
    fn(p)
    return p


def _no_start(p):
    del sched(p)["startSchedule"]


def _two_schedules(p):
    p["chargingSchedule"].append(dict(sched(p), id=2))


# (K01 rule, evseId, the profile breaking only that rule, ctx changes, reasonCode)
RULES = [
    ("FR.28 unknown EVSE", 3, profile(), {}, "UnknownEVSE"),
    ("FR.28 negative EVSE", -1, profile(), {}, "UnknownEVSE"),
    (
        "FR.26 unit not in RateUnit",
        1,
        _mutated(lambda p: sched(p).update(chargingRateUnit="W")),
        {"units": "A"},
        "UnsupportedRateUnit",
    ),
    (
        "FR.31 first startPeriod not 0",
        1,
        _mutated(lambda p: period(p, 0).update(startPeriod=60)),
        {},
        "FirstPeriodNotZero",
    ),
    (
        "FR.35 periods not ascending",
        1,
        _mutated(lambda p: period(p, 1).update(startPeriod=0)),
        {},
        "PeriodsNotAscending",
    ),
    ("PeriodsPerSchedule", 1, profile(), {"periods": 1}, "TooManyPeriods"),
    ("ProfileStackLevel", 1, profile(level=6), {}, "StackLevelTooHigh"),
    ("FR.40 Absolute without startSchedule", 1, _mutated(_no_start), {}, "NoStartSchedule"),
    (
        "FR.40 Recurring without startSchedule",
        1,
        _mutated(_no_start, kind="Recurring", recurrencyKind="Weekly"),
        {},
        "NoStartSchedule",
    ),
    ("FR.41 Relative with startSchedule", 1, profile(kind="Relative"), {}, "RelativeWithStart"),
    ("Recurring without recurrencyKind", 1, profile(kind="Recurring"), {}, "NoRecurrencyKind"),
    (
        "FR.38 MaxProfile on an EVSE",
        1,
        profile(purpose="ChargingStationMaxProfile"),
        {},
        "MaxProfileOnEVSE",
    ),
    (
        "FR.38 MaxProfile Relative",
        0,
        _mutated(_no_start, purpose="ChargingStationMaxProfile", kind="Relative"),
        {},
        "MaxProfileRelative",
    ),
    (
        "ExternalConstraints from the CSMS",
        0,
        profile(purpose="ChargingStationExternalConstraints"),
        {},
        "ExternalConstraints",
    ),
    (
        "FR.16 TxProfile on EVSE 0",
        0,
        profile(purpose="TxProfile", transactionId="tx-1"),
        {},
        "TxProfileOnEVSE0",
    ),
    (
        "FR.03 TxProfile without transactionId",
        1,
        profile(purpose="TxProfile"),
        {},
        "NoTransactionId",
    ),
    (
        "FR.33 TxProfile with an unknown transactionId",
        1,
        profile(purpose="TxProfile", transactionId="tx-9"),
        {},
        "UnknownTransaction",
    ),
    (
        "FR.09 TxProfile without a running transaction",
        2,
        profile(purpose="TxProfile", transactionId="tx-1"),
        {},
        "NoTransaction",
    ),
    (
        "FR.19 phaseToUse without numberPhases 1",
        1,
        _mutated(lambda p: period(p, 0).update(numberPhases=3, phaseToUse=1)),
        {"switching": True},
        "PhaseToUseNot1Phase",
    ),
    (
        "FR.20 phaseToUse without phase switching",
        1,
        _mutated(lambda p: period(p, 0).update(numberPhases=1, phaseToUse=1)),
        {},
        "NoPhaseSwitching",
    ),
    (
        "FR.45 numberPhases above the supply",
        2,
        _mutated(lambda p: period(p, 1).update(numberPhases=3)),
        {},
        "TooManyPhases",
    ),
    ("more than one chargingSchedule", 1, _mutated(_two_schedules), {}, "TooManySchedules"),
    ("negative stackLevel", 1, profile(level=-1), {}, "InvalidValue"),
    (
        "negative limit",
        1,
        _mutated(lambda p: period(p, 1).update(limit=-1.0)),
        {},
        "InvalidValue",
    ),
    (
        "NaN limit",
        1,
        _mutated(lambda p: period(p, 0).update(limit=float("nan"))),
        {},
        "InvalidValue",
    ),
    (
        "validTo not after validFrom",
        1,
        profile(validFrom="2027-01-15T09:00:00Z", validTo="2027-01-15T08:00:00Z"),
        {},
        "InvalidValue",
    ),
]


@pytest.mark.parametrize("rule,evse_id,p,changes,code", RULES, ids=[r[0] for r in RULES])
def test_every_k01_rule_rejects_with_its_reason_code(rule, evse_id, p, changes, code):
    valid("SetChargingProfileRequest", {"evseId": evse_id, "chargingProfile": p})
    got = check(evse_id, copy.deepcopy(p), ctx(Profiles(), **changes))
    assert got is not None and got[0] == code, got
    answer = {"status": "Rejected", "statusInfo": {"reasonCode": got[0], "additionalInfo": got[1]}}
    valid("SetChargingProfileResponse", answer)


def _stored(*items):
    ps = Profiles()
    for evse_id, p in items:
        ps.put(evse_id, p)
    return ps


def test_fr06_same_purpose_evse_and_stack_level_with_overlapping_validity():
    ps = _stored((1, profile(pid=1, validTo="2027-01-15T10:00:00Z")))
    c = ctx(ps)
    assert check(1, profile(pid=2), c)[0] == "DuplicateStackLevel"
    assert check(1, profile(pid=2, validFrom="2027-01-15T09:59:59Z"), c)[0] == (
        "DuplicateStackLevel"
    )
    # Not overlapping, another stack level, another EVSE, another purpose: all stored.
    assert check(1, profile(pid=2, validFrom="2027-01-15T10:00:00Z"), c) is None
    assert check(1, profile(pid=2, level=2), c) is None
    assert check(2, profile(pid=2), c) is None
    ps.put(0, profile(pid=3, purpose="ChargingStationMaxProfile"))
    assert check(0, profile(pid=4, purpose="ChargingStationMaxProfile"), c)[0] == (
        "DuplicateStackLevel"
    )
    assert check(1, profile(pid=1), c) is None  # K01.FR.05: the same id replaces it


def test_fr52_fr53_tx_default_on_evse_0_and_an_evse_with_one_stack_level():
    c = ctx(_stored((1, profile(pid=1, validTo="2027-01-15T10:00:00Z"))))
    # whatever the validity
    assert check(0, profile(pid=2, validFrom="2027-02-01T00:00:00Z"), c)[0] == (
        "TxDefaultConflict"
    )
    assert check(0, profile(pid=2, level=2), c) is None
    c = ctx(_stored((0, profile(pid=1))))
    assert check(2, profile(pid=2), c)[0] == "TxDefaultConflict"
    assert check(0, profile(pid=1), c) is None  # the same id: replaced
    assert check(1, profile(pid=1), c) is None  # moved to an EVSE: replaces EVSE 0's


def test_fr39_same_transaction_and_stack_level_under_another_id():
    c = ctx(_stored((1, profile(pid=1, purpose="TxProfile", transactionId="tx-1"))))
    assert check(1, profile(pid=2, purpose="TxProfile", transactionId="tx-1"), c)[0] == (
        "TxStackLevelInUse"
    )
    assert check(1, profile(pid=2, purpose="TxProfile", transactionId="tx-1", level=2), c) is None
    assert check(1, profile(pid=1, purpose="TxProfile", transactionId="tx-1"), c) is None


def test_fr05_never_replaces_an_external_constraint():
    ps = _stored((0, profile(pid=7, purpose="ChargingStationExternalConstraints")))
    assert check(0, profile(pid=7), ctx(ps))[0] == "ExternalProfileId"
    assert check(0, profile(pid=8), ctx(ps)) is None


def test_entries_limit_counts_new_ids_only():
    ps = _stored(*((1, profile(pid=i, level=i)) for i in range(4)))
    c = ctx(ps)
    assert check(1, profile(pid=9, level=5), c)[0] == "TooManyProfiles"
    assert check(1, profile(pid=3, level=3), c) is None  # a replacement
    assert check(1, profile(pid=9, level=5), ctx(ps, entries=5)) is None


def test_put_replaces_the_same_id_and_count(tmp_path):
    ps = Profiles(Store(str(tmp_path)))
    ps.put(1, profile(pid=1))
    ps.put(0, profile(pid=2, purpose="ChargingStationMaxProfile"))
    ps.put(2, profile(pid=1, level=3))  # K01.FR.05
    assert ps.count() == 2
    assert ps.get(1) == (2, profile(pid=1, level=3))
    assert ps.get(7) is None
    saves = []
    real = Store.save
    ps._store.save = lambda name, doc: saves.append(name) or real(ps._store, name, doc)
    ps.put(2, profile(pid=1, purpose="TxProfile", transactionId="tx-2"))
    assert saves == ["charging_profiles"]  # one write: the replaced one leaves the document
    assert Profiles(Store(str(tmp_path))).get(1) is None


def test_the_store_is_persisted_without_tx_profiles(tmp_path):
    st = Store(str(tmp_path))
    ps = Profiles(st)
    ps.put(1, profile(pid=1, validTo="2027-01-16T00:00:00Z"))
    ps.put(0, profile(pid=2, purpose="ChargingStationMaxProfile"))
    ps.put(1, profile(pid=3, purpose="TxProfile", transactionId="tx-1"))
    assert ps.count() == 3
    doc = json.loads((tmp_path / "charging_profiles.json").read_text())
    assert doc["v"] == 1 and [[e, p["id"]] for e, p in doc["p"]] == [[1, 1], [0, 2]]
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
    again = Profiles(st)
    assert again.count() == 2
    assert again.get(1) == (1, profile(pid=1, validTo="2027-01-16T00:00:00Z"))
    assert again.get(2) == (0, profile(pid=2, purpose="ChargingStationMaxProfile"))
    assert again.get(3) is None  # TxProfiles end with their transaction (and a reboot)


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        '{"v": 2, "p": []}',
        '{"v": 1, "p": [[1]]}',
        '{"v": 1, "p": [["1", {"id": 1}]]}',
        '{"v": 1, "p": 5}',
        "[]",
    ],
)
def test_a_bad_document_is_logged_and_ignored(tmp_path, logged, text):
    (tmp_path / "charging_profiles.json").write_text(text)
    ps = Profiles(Store(str(tmp_path)))
    assert ps.count() == 0
    assert "charging_profiles" in logged.getvalue()
    ps.put(1, profile())  # and the next change writes a good one
    assert Profiles(Store(str(tmp_path))).count() == 1


def test_a_refused_write_is_logged_not_raised(tmp_path, logged):
    st = Store(str(tmp_path))
    ps = Profiles(st)
    st.root = str(tmp_path / "gone")
    ps.put(1, profile())
    assert ps.count() == 1 and "not saved" in logged.getvalue()


def test_purge_drops_the_expired(tmp_path):
    st = Store(str(tmp_path))
    ps = Profiles(st)
    ps.put(1, profile(pid=1, validTo="2027-01-15T09:00:00Z"))
    ps.put(1, profile(pid=2, level=2, validTo="2027-01-15T10:00:00Z"))
    ps.put(1, profile(pid=3, level=3))
    assert ps.purge(T_START + 3599) == 0
    assert ps.purge(T_START + 3600) == 1  # validTo passed
    assert [p["id"] for _, p in ps.for_evse(1)] == [2, 3]
    assert Profiles(st).count() == 2  # written


def test_end_transaction_drops_its_tx_profiles_only():
    ps = _stored(
        (1, profile(pid=1)),
        (1, profile(pid=2, purpose="TxProfile", transactionId="tx-1")),
        (2, profile(pid=3, purpose="TxProfile", transactionId="tx-2")),
    )
    assert ps.end_transaction("tx-1") == 1
    assert sorted(p["id"] for _, p in ps._items) == [1, 3]
    assert ps.end_transaction("tx-1") == 0


def test_for_evse_is_its_own_and_evse_0s():
    ps = _stored(
        (0, profile(pid=1, purpose="ChargingStationMaxProfile")),
        (0, profile(pid=2, level=0)),
        (1, profile(pid=3)),
        (1, profile(pid=4, purpose="TxProfile", transactionId="tx-1")),
        (2, profile(pid=5)),
    )
    assert [(e, p["id"]) for e, p in ps.for_evse(1)] == [(0, 1), (0, 2), (1, 3), (1, 4)]
    assert [(e, p["id"]) for e, p in ps.for_evse(2)] == [(0, 1), (0, 2), (2, 5)]
    assert [(e, p["id"]) for e, p in ps.for_evse(0)] == [(0, 1), (0, 2)]


def _report_store():
    return _stored(
        (1, profile(pid=1)),
        (0, profile(pid=2, purpose="ChargingStationMaxProfile")),
        (2, profile(pid=3, level=2)),
        (1, profile(pid=4, purpose="TxProfile", transactionId="tx-1")),
        (0, profile(pid=5, purpose="ChargingStationExternalConstraints")),  # the station's own
        (1, profile(pid=6, level=3)),
    )


def _ids(reported):
    return [(e, src, p["id"]) for e, src, p in reported]


@pytest.mark.parametrize(
    "criteria,evse_id,expected",
    [
        (
            {},
            None,
            [
                (0, "CSO", 2),
                (0, "EMS", 5),
                (1, "CSO", 1),
                (1, "CSO", 4),
                (1, "CSO", 6),
                (2, "CSO", 3),
            ],
        ),
        ({}, 0, [(0, "CSO", 2), (0, "EMS", 5)]),
        ({}, 1, [(1, "CSO", 1), (1, "CSO", 4), (1, "CSO", 6)]),
        ({"chargingProfileId": [3, 4, 99]}, None, [(1, "CSO", 4), (2, "CSO", 3)]),
        ({"stackLevel": 2}, None, [(2, "CSO", 3)]),
        ({"chargingLimitSource": ["EMS", "SO"]}, None, [(0, "EMS", 5)]),
        ({"chargingLimitSource": ["CSO"]}, 0, [(0, "CSO", 2)]),
        ({"chargingProfilePurpose": "TxProfile"}, None, [(1, "CSO", 4)]),
        ({"chargingProfilePurpose": "TxDefaultProfile", "stackLevel": 1}, 1, [(1, "CSO", 1)]),
        ({"chargingProfilePurpose": "TxProfile"}, 2, []),
    ],
)
def test_report_filters(criteria, evse_id, expected):
    req = {"requestId": 7, "chargingProfile": criteria}
    if evse_id is not None:
        req["evseId"] = evse_id
    valid("GetChargingProfilesRequest", req)
    assert _ids(_report_store().report(criteria, evse_id)) == expected


def test_report_parts_one_evse_and_source_a_part_with_tbc():
    reported = _report_store().report({})
    parts = list(report_parts(reported, 42, 2))
    for part in parts:
        valid("ReportChargingProfilesRequest", part)
    assert [
        (m["evseId"], m["chargingLimitSource"], [p["id"] for p in m["chargingProfile"]], m["tbc"])
        for m in parts
    ] == [
        (0, "CSO", [2], True),
        (0, "EMS", [5], True),
        (1, "CSO", [1, 4], True),
        (1, "CSO", [6], True),
        (2, "CSO", [3], False),
    ]
    assert all(m["requestId"] == 42 for m in parts)
    one = list(report_parts(reported[:1], 1, 10))
    assert one == [
        {
            "requestId": 1,
            "chargingLimitSource": "CSO",
            "tbc": False,
            "evseId": 0,
            "chargingProfile": [reported[0][2]],
        }
    ]
    assert list(report_parts([], 1, 10)) == []


def test_the_station_external_constraints_live_in_ram_and_are_no_entries(tmp_path):
    st = Store(str(tmp_path))
    ps = Profiles(st)
    ps.put(1, profile(pid=1))
    ext = profile(pid=1000000001, purpose="ChargingStationExternalConstraints")
    ps.set_external(1, ext)
    ps.set_external(2, profile(pid=1000000002, purpose="ChargingStationExternalConstraints"))
    assert ps.count() == 1
    assert ps.get(1000000001) == (1, ext)
    assert [p["id"] for _, p in ps.for_evse(1)] == [1, 1000000001]
    assert [p["id"] for _, p in Profiles(st).for_evse(1)] == [1]  # never written
    newer = profile(pid=1000000001, purpose="ChargingStationExternalConstraints", level=2)
    ps.set_external(1, newer)  # replaces EVSE 1's
    assert [p for _, p in ps.for_evse(1)][1] is newer
    ps.set_external(1, None)
    assert [p["id"] for _, p in ps.for_evse(1)] == [1]
    assert ps.get(1000000002) is not None
    assert [t[1] for t in ps.report({}, 2)] == ["EMS"]  # reported with its source


def _clear(ps, req):
    valid("ClearChargingProfileRequest", req)
    status = ps.clear(req)
    valid("ClearChargingProfileResponse", {"status": status})
    return status


def test_clear_by_id(tmp_path):
    st = Store(str(tmp_path))
    ps = Profiles(st)
    for evse_id, p in _report_store()._items:
        ps.put(evse_id, p)
    assert _clear(ps, {"chargingProfileId": 3}) == "Accepted"
    assert ps.get(3) is None and ps.count() == 4  # the external one (id 5) is no entry
    assert Profiles(st).get(3) is None  # written
    assert _clear(ps, {"chargingProfileId": 3}) == "Unknown"
    assert _clear(ps, {"chargingProfileId": 5}) == "Unknown"  # external: never cleared
    assert ps.get(5) is not None
    # id and criteria both given: the id alone counts (K10.FR.03)
    req = {"chargingProfileId": 1, "chargingProfileCriteria": {"evseId": 2}}
    assert _clear(ps, req) == "Accepted" and ps.get(1) is None and ps.count() == 3
    assert _clear(ps, {"chargingProfileId": 4}) == "Accepted"  # a TxProfile


def test_clear_by_criteria():
    ps = _report_store()
    crit = {"evseId": 1, "chargingProfilePurpose": "TxDefaultProfile", "stackLevel": 3}
    assert _clear(ps, {"chargingProfileCriteria": crit}) == "Accepted"
    assert sorted(p["id"] for _, p in ps._items) == [1, 2, 3, 4, 5]
    assert _clear(ps, {"chargingProfileCriteria": crit}) == "Unknown"
    crit = {"chargingProfilePurpose": "ChargingStationExternalConstraints"}
    assert _clear(ps, {"chargingProfileCriteria": crit}) == "Unknown"
    assert _clear(ps, {"chargingProfileCriteria": {"evseId": 0}}) == "Accepted"
    assert sorted(p["id"] for _, p in ps._items) == [1, 3, 4, 5]  # EVSE 0's external stays
    assert _clear(ps, {"chargingProfileCriteria": {"stackLevel": 1}}) == "Accepted"
    assert sorted(p["id"] for _, p in ps._items) == [3, 5]
    assert _clear(ps, {}) == "Accepted"  # neither: everything the CSMS may clear
    assert sorted(p["id"] for _, p in ps._items) == [5]
    assert _clear(ps, {}) == "Unknown"


MP_SCRIPT = """
import json
from firmware.charging_profiles import Profiles, check, report_parts
from store import Store

class Ctx:
    evses = 2
    tx = [None, "tx-1", None]
    phases = [3, 3, 1]
    units = "A,W"
    periods = 4
    entries = 4
    stack = 5
    switching = False

P = json.loads(PROFILE)
st = Store(ROOT)
ps = Profiles(st)
c = Ctx()
c.profiles = ps
print(check(1, P, c))
ps.put(1, P)
P2 = json.loads(PROFILE)
P2["id"] = 2
print(check(1, P2, c)[0])
P2["chargingSchedule"][0]["chargingRateUnit"] = "W"
c.units = "A"
print(check(0, P2, c)[0])
T = json.loads(PROFILE)
T.update(id=3, chargingProfilePurpose="TxProfile", transactionId="tx-1")
T.pop("validTo")
c.units = "A,W"
print(check(1, T, c))
ps.put(1, T)
again = Profiles(st)
print(ps.count(), again.count(), again.get(1) == (1, P))
print(ps.purge(1800003600), ps.count(), Profiles(st).count())
print(ps.end_transaction("tx-1"), ps.count())
ps.put(0, P2)
print([m["tbc"] for m in report_parts(ps.report({}), 5, 1)])
print(ps.clear({"chargingProfileId": 2}), ps.clear({"chargingProfileId": 2}))
"""


def test_check_and_store_on_micropython(tmp_path):
    root = Path(__file__).resolve().parent.parent
    mp = root / ".venv" / "bin" / "micropython"
    if not mp.exists():
        pytest.skip("no MicroPython unix port in .venv")
    p = profile(validTo="2027-01-15T09:00:00Z")
    script = tmp_path / "profiles_mp.py"
    script.write_text(
        MP_SCRIPT.replace("PROFILE", repr(json.dumps(p))).replace(
            "ROOT", repr(str(tmp_path / "state"))
        )
    )
    env = dict(os.environ, MICROPYPATH="%s:%s" % (root / "lib", root))
    out = subprocess.run(
        [str(mp), str(script)], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "None",
        "DuplicateStackLevel",
        "UnsupportedRateUnit",
        "None",
        "2 1 True",
        "1 1 0",
        "1 0",
        "[False]",
        "Accepted Unknown",
    ]
