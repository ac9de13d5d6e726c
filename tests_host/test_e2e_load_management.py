"""End to end: local load management (issue 13 item 4, OCPP 2.0.1 K11-K14 for its reports) and
phase switching on the virtual wallbox, whose mains meter reads the control channel's
`mains_load` plus what its EVs draw. Capacity mode follows the site's load down at once and up
by the 5 s rise rule; Solar mode charges from export only, switches to one phase when three
would be below 6 A and pauses after SolarStopDelay; the limits are reported with
NotifyChargingLimit / ClearedChargingLimit (source EMS) and take part in the composite
schedule; a silent mains meter means the fallback. Also the ChargingStationMaxProfile shared
by two EVSEs that charge."""

import pytest

from tools.harness import FAST, variables

pytestmark = pytest.mark.e2e

TE = "TransactionEvent"


def config(mode, **more):
    values = dict(FAST)
    values[("LoadManagement", "Mode")] = mode
    values[("LoadManagement", "MainsFuse")] = "25"
    values[("SmartChargingCtrlr", "PhaseSwitchMinInterval")] = "0"
    for k, v in more.items():
        values[("LoadManagement", k)] = v
    return {"variables": variables(values)}


def evse(sim, pred, timeout=15, n=1):
    return sim.wait_status(lambda s: pred(s["evse"][n - 1]), timeout)["evse"][n - 1]


def accepted(csms, sim):
    st = csms.station(timeout=20)
    sim.wait_status(lambda s: s["registration"] == "Accepted" and s["connected"], timeout=20)
    return st


def charging(sim, n=1):
    assert sim.cmd("plug_in", evse=n, cable_a=32) == {"ok": True}
    evse(sim, lambda e: e["cp"] == "B", n=n)
    assert sim.cmd("button", evse=n) == {"ok": True}
    assert sim.cmd("ev_state", evse=n, state="C") == {"ok": True}


def calls(st, action, start=0):
    return [
        f.payload
        for f in st.frames[start:]
        if f.direction == "in" and f.kind == "call" and f.action == action
    ]


def set_mode(csms, st, mode):
    data = {
        "component": {"name": "LoadManagement"},
        "variable": {"name": "Mode"},
        "attributeValue": mode,
    }
    r = csms.call(st, "SetVariables", {"setVariableData": [data]})
    assert r["setVariableResult"][0]["attributeStatus"] == "Accepted"


def ems_schedule(limit, phases=3):
    """The NotifyChargingLimit schedule of EVSE 1 (startSchedule checked apart)."""
    return {
        "id": 1000000001,
        "chargingRateUnit": "A",
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit, "numberPhases": phases}],
    }


def notified(csms, st, start=0):
    f = csms.wait_call(st, "NotifyChargingLimit", start=start)
    p = f.payload
    assert p["chargingSchedule"][0].pop("startSchedule").endswith("Z")
    return f, p


def test_capacity_follows_the_site_load(csms, sims):
    sim = sims(csms.url, config=config("Capacity"))
    st = accepted(csms, sim)
    # the site draws nothing: the fuse's 25 A is below the EVSE's 32 A, a restriction
    f, p = notified(csms, st)
    assert p == {
        "chargingLimit": {"chargingLimitSource": "EMS"},
        "evseId": 1,
        "chargingSchedule": [ems_schedule(25)],
    }
    charging(sim)
    e = evse(sim, lambda e: e["contactor"] and e["offered_a"] == 25.0)
    assert e["limit_a"] == 25 and e["phases"] == 3
    assert sim.cmd("mains_load", a=[12, 2, 0]) == {"ok": True}
    e = evse(sim, lambda e: e["offered_a"] == 13.0, timeout=5)  # down at once (~1 s)
    assert e["limit_a"] == 13 and e["contactor"]
    r = csms.call(st, "GetCompositeSchedule", {"evseId": 1, "duration": 60})
    assert r["schedule"]["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 13.0, "numberPhases": 3}
    ]
    assert sim.cmd("mains_load", a=[30, 0, 0]) == {"ok": True}  # over the fuse alone
    e = evse(sim, lambda e: e["offered_a"] == 0.0, timeout=5)
    assert e["limit_a"] == 0 and e["tx_id"] is not None  # paused, the transaction open
    assert sim.cmd("mains_load", a=[0, 0, 0]) == {"ok": True}
    e = evse(sim, lambda e: e["offered_a"] == 25.0 and e["contactor"], timeout=20)
    # a rise beyond LimitChangeSignificance that no CSMS call made (K01)
    triggers = [ev["triggerReason"] for ev in calls(st, TE)]
    assert "ChargingRateChanged" in triggers
    # Mode Off: the restriction ends
    n = len(st.frames)
    set_mode(csms, st, "Off")
    f = csms.wait_call(st, "ClearedChargingLimit", start=n)
    assert f.payload == {"chargingLimitSource": "EMS", "evseId": 1}
    e = evse(sim, lambda e: e["offered_a"] == 32.0, timeout=10)
    assert e["limit_a"] is None
    assert len(calls(st, "NotifyChargingLimit")) == 1


def test_capacity_turned_on_while_running(csms, sims):
    sim = sims(csms.url, config=config("Off"))
    st = accepted(csms, sim)
    charging(sim)
    evse(sim, lambda e: e["contactor"] and e["offered_a"] == 32.0)
    assert sim.cmd("mains_load", a=[5, 5, 5]) == {"ok": True}
    set_mode(csms, st, "Capacity")
    _, p = notified(csms, st)
    assert p["chargingSchedule"] == [ems_schedule(20)]
    e = evse(sim, lambda e: e["offered_a"] == 20.0)
    assert e["limit_a"] == 20


def test_the_mains_meter_lost_means_6_a(csms, sims):
    sim = sims(csms.url, config=config("Capacity"))
    accepted(csms, sim)
    charging(sim)
    evse(sim, lambda e: e["contactor"] and e["offered_a"] == 25.0)
    assert sim.cmd("raise_error", evse=0, error="meter_timeout") == {"ok": True}
    e = evse(sim, lambda e: e["offered_a"] == 6.0, timeout=20)
    assert e["limit_a"] == 6 and e["contactor"]
    assert "mains meter lost" in sim.log()
    assert sim.cmd("clear_error", evse=0, error="meter_timeout") == {"ok": True}
    evse(sim, lambda e: e["offered_a"] == 25.0, timeout=20)
    assert "mains meter answers again" in sim.log()


def test_solar_starts_switches_phases_and_pauses(csms, sims):
    sim = sims(csms.url, config=config("Solar", SolarStopDelay="4"))
    st = accepted(csms, sim)
    assert sim.cmd("mains_load", a=[-10, -10, -10]) == {"ok": True}  # 30 A exported
    charging(sim)
    e = evse(sim, lambda e: e["contactor"] and e["offered_a"] == 10.0, timeout=20)
    assert e["phases"] == 3 and e["limit_a"] == 10
    tx = e["tx_id"]
    # a cloud: 9 A exported in all, 3 A a phase: one phase at 9 A, switched with the EV paused
    assert sim.cmd("mains_load", a=[-3, -3, -3]) == {"ok": True}
    e = evse(sim, lambda e: e["phases"] == 1 and e["contactor"] and e["offered_a"] == 9.0, 30)
    assert e["tx_id"] == tx and e["limit_a"] == 9
    assert sim.cmd("status")["evse"][0]["phase_switches_under_load"] == 0
    # the sun goes: 6 A for SolarStopDelay, then a pause in the same transaction
    assert sim.cmd("mains_load", a=[0, 0, 0]) == {"ok": True}
    e = evse(sim, lambda e: e["offered_a"] == 6.0, timeout=10)
    e = evse(sim, lambda e: e["offered_a"] == 0.0, timeout=15)
    assert e["tx_id"] == tx and e["limit_a"] == 0
    csms.wait_frame(
        st,
        lambda f: (
            f.direction == "in"
            and f.action == TE
            and f.kind == "call"
            and f.payload["transactionInfo"].get("chargingState") == "SuspendedEVSE"
        ),
    )
    # and back: three phases again
    assert sim.cmd("mains_load", a=[-8, -8, -8]) == {"ok": True}
    e = evse(sim, lambda e: e["phases"] == 3 and e["offered_a"] == 8.0 and e["contactor"], 30)
    assert e["tx_id"] == tx
    assert sim.cmd("status")["evse"][0]["phase_switches_under_load"] == 0
    events = calls(st, TE)
    assert {ev["transactionInfo"]["transactionId"] for ev in events} == {tx}
    assert "Ended" not in [ev["eventType"] for ev in events]
    # one restriction all along, told once: 10 A on three phases from the first export
    (notify,) = calls(st, "NotifyChargingLimit")
    assert notify["chargingSchedule"][0]["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 10, "numberPhases": 3}
    ]


def test_the_max_profile_is_shared_by_two_evses_that_charge(csms, sims):
    sim = sims(csms.url, config={"variables": variables(FAST)}, evses=2)
    st = accepted(csms, sim)
    p = {
        "id": 1,
        "stackLevel": 0,
        "chargingProfilePurpose": "ChargingStationMaxProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": [
            {
                "id": 1,
                "startSchedule": "2020-01-01T00:00:00Z",
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 20}],
            }
        ],
    }
    r = csms.call(st, "SetChargingProfile", {"evseId": 0, "chargingProfile": p})
    assert r == {"status": "Accepted"}
    charging(sim, 1)
    evse(sim, lambda e: e["contactor"] and e["offered_a"] == 20.0, n=1)
    charging(sim, 2)
    evse(sim, lambda e: e["contactor"] and e["offered_a"] == 10.0, n=2)
    evse(sim, lambda e: e["offered_a"] == 10.0, n=1)
