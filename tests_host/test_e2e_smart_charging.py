"""End to end: smart charging (block K) on the virtual wallbox against the development CSMS:
profiles set by the CSMS drive the pilot PWM (IEC 61851: duty % = A / 0.6); a TxProfile
overrides the TxDefaultProfile; a 0 A period pauses (SuspendedEVSE, the transaction stays
open) and the next period resumes in the same transaction; W profiles; GetCompositeSchedule
equal to what the pilot offers; profiles survive a power loss and apply offline;
Get/ClearChargingProfile."""

import datetime
import time

import pytest

from tools.harness import FAST, variables

pytestmark = pytest.mark.e2e

CONFIG = {"variables": variables(FAST)}
TE = "TransactionEvent"
PAST = "2020-01-01T00:00:00Z"


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def evse(sim, pred, timeout=10):
    return sim.wait_status(lambda s: pred(s["evse"][0]), timeout)["evse"][0]


def accepted(csms, sim):
    st = csms.station(timeout=20)
    sim.wait_status(lambda s: s["registration"] == "Accepted" and s["connected"], timeout=20)
    return st


def charging(sim):
    assert sim.cmd("plug_in", evse=1, cable_a=32) == {"ok": True}
    evse(sim, lambda e: e["cp"] == "B")
    assert sim.cmd("button", evse=1) == {"ok": True}
    assert sim.cmd("ev_state", evse=1, state="C") == {"ok": True}
    return evse(sim, lambda e: e["contactor"] and e["offered_a"] == 32.0)


def profile(pid, purpose="TxDefaultProfile", periods=((0, 10),), unit="A", start=PAST, **kw):
    p = {
        "id": pid,
        "stackLevel": kw.pop("level", 0),
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Absolute",
        "chargingSchedule": [
            {
                "id": 1,
                "startSchedule": start,
                "chargingRateUnit": unit,
                "chargingSchedulePeriod": [{"startPeriod": s, "limit": a} for s, a in periods],
            }
        ],
    }
    p.update(kw)
    return p


def set_profile(csms, st, evse_id, p):
    return csms.call(st, "SetChargingProfile", {"evseId": evse_id, "chargingProfile": p})


def tx_events(st):
    return [
        f.payload for f in st.frames if f.direction == "in" and f.kind == "call" and f.action == TE
    ]


def test_tx_default_then_tx_profile_then_get_and_clear(csms, sims):
    sim = sims(csms.url, config=CONFIG)
    st = accepted(csms, sim)
    e = charging(sim)
    tx = e["tx_id"]
    assert set_profile(csms, st, 0, profile(1)) == {"status": "Accepted"}
    e = evse(sim, lambda e: e["offered_a"] == 10.0)
    assert e["pwm_duty"] == 16.7 and e["contactor"]
    p2 = profile(2, "TxProfile", periods=((0, 16),), transactionId=tx)
    assert set_profile(csms, st, 1, p2) == {"status": "Accepted"}
    e = evse(sim, lambda e: e["offered_a"] == 16.0)
    assert e["pwm_duty"] == 26.7
    n = len(st.frames)
    r = csms.call(st, "GetChargingProfiles", {"requestId": 7, "chargingProfile": {}})
    assert r == {"status": "Accepted"}
    f = csms.wait_call(st, "ReportChargingProfiles", start=n)
    assert f.payload == {
        "requestId": 7,
        "chargingLimitSource": "CSO",
        "tbc": True,
        "evseId": 0,
        "chargingProfile": [profile(1)],
    }
    f = csms.wait_call(st, "ReportChargingProfiles", start=f.index + 1)
    assert f.payload == {
        "requestId": 7,
        "chargingLimitSource": "CSO",
        "tbc": False,
        "evseId": 1,
        "chargingProfile": [p2],
    }
    assert csms.call(st, "ClearChargingProfile", {"chargingProfileId": 2}) == {
        "status": "Accepted"
    }
    evse(sim, lambda e: e["offered_a"] == 10.0)
    assert csms.call(st, "ClearChargingProfile", {"chargingProfileId": 2}) == {"status": "Unknown"}
    r = csms.call(
        st, "GetChargingProfiles", {"requestId": 8, "chargingProfile": {"stackLevel": 3}}
    )
    assert r == {"status": "NoProfiles"}


def test_a_zero_period_pauses_and_the_next_resumes_the_same_transaction(csms, sims):
    sim = sims(csms.url, config=CONFIG)
    st = accepted(csms, sim)
    tx = charging(sim)["tx_id"]
    start = int(time.time())
    p = profile(3, "TxProfile", periods=((0, 0), (10, 16)), start=iso(start), transactionId=tx)
    assert set_profile(csms, st, 1, p) == {"status": "Accepted"}
    e = evse(sim, lambda e: e["offered_a"] == 0.0)
    assert e["pwm_duty"] == 100.0 and e["tx_id"] == tx
    csms.wait_frame(
        st,
        lambda f: (
            f.direction == "in"
            and f.action == TE
            and f.kind == "call"
            and f.payload["transactionInfo"].get("chargingState") == "SuspendedEVSE"
        ),
    )
    e = evse(sim, lambda e: e["offered_a"] == 16.0 and e["contactor"], timeout=20)
    assert e["pwm_duty"] == 26.7 and e["tx_id"] == tx
    csms.wait_frame(
        st,
        lambda f: (
            f.direction == "in"
            and f.action == TE
            and f.kind == "call"
            and f.payload["transactionInfo"].get("chargingState") == "Charging"
            and f.payload["eventType"] == "Updated"
        ),
    )
    # the schedule's rise (not a CSMS call) beyond LimitChangeSignificance, once the pilot
    # acted on it (K01)
    f = csms.wait_frame(
        st,
        lambda f: (
            f.direction == "in"
            and f.action == TE
            and f.kind == "call"
            and f.payload["triggerReason"] == "ChargingRateChanged"
        ),
    )
    ev = dict(f.payload)
    assert ev.pop("timestamp") and ev.pop("seqNo") > 0
    assert ev == {
        "eventType": "Updated",
        "offline": False,
        "triggerReason": "ChargingRateChanged",
        "transactionInfo": {"transactionId": tx},
    }
    events = tx_events(st)
    assert [e["triggerReason"] for e in events].count("ChargingRateChanged") == 1
    assert {ev["transactionInfo"]["transactionId"] for ev in events} == {tx}
    assert "Ended" not in [ev["eventType"] for ev in events]


def test_a_watt_profile_becomes_amps_per_phase(csms, sims):
    sim = sims(csms.url, config=CONFIG)
    st = accepted(csms, sim)
    charging(sim)
    assert set_profile(csms, st, 1, profile(4, periods=((0, 6900),), unit="W")) == {
        "status": "Accepted"
    }
    e = evse(sim, lambda e: e["offered_a"] == 10.0)  # 6900 W / (230 V x 3 phases)
    assert e["pwm_duty"] == 16.7


def test_the_composite_schedule_is_what_the_pilot_offers(csms, sims):
    sim = sims(csms.url, config=CONFIG)
    st = accepted(csms, sim)
    charging(sim)
    start = int(time.time()) + 2
    periods = ((0, 10), (6, 20), (12, 8))
    assert set_profile(csms, st, 1, profile(5, periods=periods, start=iso(start))) == {
        "status": "Accepted"
    }
    r = csms.call(st, "GetCompositeSchedule", {"evseId": 1, "duration": 30})
    assert r["status"] == "Accepted"
    sched = r["schedule"]
    t0 = int(
        datetime.datetime.strptime(sched["scheduleStart"], "%Y-%m-%dT%H:%M:%SZ")
        .replace(tzinfo=datetime.timezone.utc)
        .timestamp()
    )
    got = [(t0 + p["startPeriod"], p["limit"]) for p in sched["chargingSchedulePeriod"]]
    # before the profile starts the hardware's 32 A; then the profile's periods
    assert got == [(t0, 32.0), (start, 10.0), (start + 6, 20.0), (start + 12, 8.0)]
    for _, limit in got[1:]:
        evse(sim, lambda e, limit=limit: e["offered_a"] == limit, timeout=15)
    r = csms.call(st, "GetCompositeSchedule", {"evseId": 2, "duration": 30})
    assert r == {
        "status": "Rejected",
        "statusInfo": {"reasonCode": "UnknownEVSE", "additionalInfo": "evseId 2"},
    }


def test_profiles_survive_a_power_loss_and_apply_offline(csms, sims):
    sim = sims(csms.url, config=CONFIG)
    st = accepted(csms, sim)
    assert set_profile(csms, st, 0, profile(6, periods=((0, 13),))) == {"status": "Accepted"}
    sim.kill()
    sim2 = sims("ws://127.0.0.1:1/ocpp", config=CONFIG, state_dir=sim.state_dir)
    assert sim2.cmd("plug_in", evse=1, cable_a=32) == {"ok": True}
    evse(sim2, lambda e: e["cp"] == "B", timeout=20)
    assert sim2.cmd("button", evse=1) == {"ok": True}
    assert sim2.cmd("ev_state", evse=1, state="C") == {"ok": True}
    e = evse(sim2, lambda e: e["contactor"], timeout=20)
    assert e["offered_a"] == 13.0 and e["pwm_duty"] == 21.7
    assert not sim2.cmd("status")["connected"]


def test_request_start_with_a_profile_limits_its_transaction(csms, sims):
    # K05: the TxProfile of RequestStartTransaction applies to the transaction it starts (the
    # block loads with it).
    sim = sims(csms.url, config=CONFIG)
    st = accepted(csms, sim)
    assert sim.cmd("plug_in", evse=1, cable_a=32) == {"ok": True}
    evse(sim, lambda e: e["cp"] == "B")
    p = profile(8, "TxProfile", periods=((0, 8),))
    req = {
        "idToken": {"idToken": "R1", "type": "Central"},
        "remoteStartId": 3,
        "evseId": 1,
        "chargingProfile": p,
    }
    assert csms.call(st, "RequestStartTransaction", req) == {"status": "Accepted"}
    assert sim.cmd("ev_state", evse=1, state="C") == {"ok": True}
    e = evse(sim, lambda e: e["contactor"] and e["offered_a"] == 8.0, timeout=15)
    assert e["pwm_duty"] == 13.3
    n = len(st.frames)
    r = csms.call(st, "GetChargingProfiles", {"requestId": 9, "chargingProfile": {}})
    assert r == {"status": "Accepted"}
    f = csms.wait_call(st, "ReportChargingProfiles", start=n)
    assert f.payload == {
        "requestId": 9,
        "chargingLimitSource": "CSO",
        "tbc": False,
        "evseId": 1,
        "chargingProfile": [dict(p, transactionId=e["tx_id"])],
    }
