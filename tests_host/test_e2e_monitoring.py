"""End to end: monitoring (block N) on the MicroPython unix port and the virtual ESP32, against
the development CSMS: a threshold monitor on the EVSE's power firing and clearing as the EV
changes its draw, delta, periodic and clock-aligned monitors, the monitoring level,
ClearVariableMonitoring, the connector's hard-wired monitor reporting a fault,
GetMonitoringReport in parts, offline queuing by severity, and monitors surviving a power
loss, with the exact messages on the wire (eventId, timestamps and generatedAt checked for
their form, then left out)."""

import re
import time
from datetime import datetime, timezone

import pytest
from test_e2e_availability import accepted
from test_e2e_transactions import reconnected

from tools.harness import FAST, variables

pytestmark = pytest.mark.e2e

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
POWER = {"component": {"name": "EVSE", "evse": {"id": 1}}, "variable": {"name": "Power"}}
HEARTBEAT = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
CONNECTOR = {
    "component": {"name": "Connector", "evse": {"id": 1, "connectorId": 1}},
    "variable": {"name": "AvailabilityState"},
}
OFFLINE_THRESHOLD = {
    "component": {"name": "OCPPCommCtrlr"},
    "variable": {"name": "OfflineThreshold"},
}
EVSE_STATE = {
    "component": {"name": "EVSE", "evse": {"id": 1}},
    "variable": {"name": "AvailabilityState"},
}


def ok(sim, name, **kw):
    assert sim.cmd(name, **kw) == {"ok": True}


def mon(kind, value, sev, cv):
    d = {"value": value, "type": kind, "severity": sev}
    d.update(cv)
    return d


def set_monitors(csms, st, *items):
    got = csms.call(st, "SetVariableMonitoring", {"setMonitoringData": list(items)})
    return [(r["status"], r.get("id")) for r in got["setMonitoringResult"]]


def ev(trigger, actual, mid, cv, cleared=False, tx=None):
    """An eventData without eventId and timestamp."""
    e = {
        "trigger": trigger,
        "actualValue": actual,
        "eventNotificationType": "CustomMonitor",
        "variableMonitoringId": mid,
    }
    e.update(cv)
    if cleared:
        e["cleared"] = True
    if tx is not None:
        e["transactionId"] = tx
    return e


def flag(comp, var, mid, actual, tech, kind="HardWiredMonitor"):
    """An eventData of a fault flag's monitor (EVSE 1) without eventId and timestamp."""
    e = {
        "trigger": "Delta",
        "actualValue": actual,
        "eventNotificationType": kind,
        "variableMonitoringId": mid,
        "component": {"name": comp, "evse": {"id": 1}},
        "variable": {"name": var},
        "techCode": tech,
    }
    if actual == "false":
        e["cleared"] = True
    return e


def next_events(csms, st, start, pred=lambda e: True, timeout=15):
    """(eventData of the next NotifyEvent from frame `start` with one that `pred` accepts,
    each checked and without eventId and timestamp; the index after it)."""
    while True:
        f = csms.wait_call(st, "NotifyEvent", start=start, timeout=timeout)
        start = f.index + 1
        p = f.payload
        assert STAMP.match(p["generatedAt"]) and p["seqNo"] == 0 and not p.get("tbc")
        out = []
        for e in p["eventData"]:
            e = dict(e)
            assert type(e.pop("eventId")) is int and STAMP.match(e.pop("timestamp"))
            out.append(e)
        if any(pred(e) for e in out):
            return out, start


def all_events(st, start=0):
    return [
        e
        for f in st.frames[start:]
        if f.kind == "call" and f.direction == "in" and f.msg[2] == "NotifyEvent"
        for e in f.payload["eventData"]
    ]


def report(csms, st, rid, **kw):
    """The NotifyMonitoringReport parts of GetMonitoringReport `rid`: [(tbc, [(variable name,
    [monitor ids])])], and the monitors by id."""
    start = len(st.frames)
    assert csms.call(st, "GetMonitoringReport", dict(requestId=rid, **kw)) == {
        "status": "Accepted"
    }
    parts, by_id = [], {}
    while True:
        f = csms.wait_call(st, "NotifyMonitoringReport", start=start)
        start = f.index + 1
        p = f.payload
        assert p["requestId"] == rid and p["seqNo"] == len(parts)
        parts.append(
            (
                p["tbc"],
                [(m["variable"]["name"], [v["id"] for v in m["variableMonitoring"]])
                 for m in p["monitor"]],
            )
        )  # fmt: skip
        for m in p["monitor"]:
            for v in m["variableMonitoring"]:
                by_id[v["id"]] = v
        if not p["tbc"]:
            return parts, by_id


def test_threshold_delta_periodic_level_and_clear(csms, sims):
    sim = sims(csms.url, config={"variables": variables(FAST)})
    st, _ = accepted(csms, sim)
    start = len(st.frames)
    assert set_monitors(
        csms,
        st,
        mon("UpperThreshold", 5000, 4, POWER),
        mon("Delta", 0, 5, CONNECTOR),
        mon("Periodic", 2, 8, HEARTBEAT),
        mon("Delta", 100, 7, HEARTBEAT),
        mon("PeriodicClockAligned", 3, 8, OFFLINE_THRESHOLD),
    ) == [("Accepted", i) for i in range(1, 6)]
    # The periodic monitor every 2 s, the clock-aligned one on multiples of 3 s (UTC).
    seen = {3: [], 5: []}
    while len(seen[3]) < 3 or len(seen[5]) < 2:
        f = csms.wait_call(st, "NotifyEvent", start=start)
        start = f.index + 1
        for e in f.payload["eventData"]:
            t = datetime.strptime(e.pop("timestamp"), "%Y-%m-%dT%H:%M:%SZ")
            del e["eventId"]
            seen[e["variableMonitoringId"]].append(int(t.replace(tzinfo=timezone.utc).timestamp()))
            if e["variableMonitoringId"] == 3:
                assert e == ev("Periodic", "300", 3, HEARTBEAT)
            else:
                assert e == ev("Periodic", "120", 5, OFFLINE_THRESHOLD)
    # (the monitors are looked at once a second: an event may come a second late, never
    # early, and the schedule stays)
    offsets = [t - 2 * i for i, t in enumerate(seen[3])]
    assert max(offsets) - min(offsets) <= 1, seen
    assert all(t % 3 in (0, 1) for t in seen[5]) and seen[5][1] - seen[5][0] in (2, 3, 4), seen
    # Cleared, they stop.
    assert csms.call(st, "ClearVariableMonitoring", {"id": [3, 5]}) == {
        "clearMonitoringResult": [{"status": "Accepted", "id": 3}, {"status": "Accepted", "id": 5}]
    }
    start = len(st.frames)
    # Charging at 3 x 32 A: the power goes above 5000 W; the connector is Occupied.
    ok(sim, "plug_in", evse=1)
    got, start = next_events(csms, st, start)
    assert got == [ev("Delta", "Occupied", 2, CONNECTOR)]
    ok(sim, "ev_state", evse=1, state="C")
    ok(sim, "swipe", token="AABBCCDD")
    got, start = next_events(csms, st, start, lambda e: e["variableMonitoringId"] == 1)
    tx = sim.cmd("status")["evse"][0]["tx_id"]
    assert got == [ev("Alerting", "22080", 1, POWER)]
    # The EV draws 6 A on one phase: 1380 W, the threshold's condition is over.
    ok(sim, "ev_current", evse=1, a=6, phases=1)
    got, start = next_events(csms, st, start)
    assert got == [ev("Alerting", "1380", 1, POWER, cleared=True)]
    # Level 4: the HeartbeatInterval's Delta (severity 7) is no longer sent, the power's
    # threshold (4) still is.
    assert csms.call(st, "SetMonitoringLevel", {"severity": 4}) == {"status": "Accepted"}
    data = [dict(HEARTBEAT, attributeValue="900")]
    got = csms.call(st, "SetVariables", {"setVariableData": data})
    assert got["setVariableResult"][0]["attributeStatus"] == "Accepted"
    time.sleep(1.5)
    ok(sim, "ev_current", evse=1, a=16, phases=3)
    got, start = next_events(csms, st, start)
    assert got == [ev("Alerting", "11040", 1, POWER)]
    time.sleep(1.5)
    assert [e["variableMonitoringId"] for e in all_events(st, start)] == []
    assert tx and all(e.get("transactionId") is None for e in all_events(st))
    # Clear each kind; an unknown id is NotFound.
    assert csms.call(st, "ClearVariableMonitoring", {"id": [1, 2, 4, 3]}) == {
        "clearMonitoringResult": [
            {"status": "Accepted", "id": 1},
            {"status": "Accepted", "id": 2},
            {"status": "Accepted", "id": 4},
            {"status": "NotFound", "id": 3},
        ]
    }
    req = {"requestId": 1, "monitoringCriteria": ["ThresholdMonitoring", "PeriodicMonitoring"]}
    assert csms.call(st, "GetMonitoringReport", req) == {"status": "EmptyResultSet"}
    # The hard-wired monitors: a contactor that sticks while charging, then an RCD trip: the
    # connector Faulted, the EVSE's Problem and the RCD Tripped at once, the contactor's
    # Problem when it does not open; each back, cleared, when its fault ends (the trip
    # latches until the unplug). After the StatusNotification of each change of status.
    start = len(st.frames)
    ok(sim, "raise_error", evse=1, error="contactor_welded")
    ok(sim, "raise_error", evse=1, error="rcd_trip")
    got, start = next_events(csms, st, start)
    hard = {"eventNotificationType": "HardWiredMonitor", "variableMonitoringId": 90001}
    evse, rcd = ("EVSE", "Problem", 90101), ("RCD", "Tripped", 90201)
    welded = ("PowerContactor", "Problem", 90301)
    assert got == [
        dict(ev("Delta", "Faulted", 0, CONNECTOR), techCode="rcd_trip", **hard),
        flag(*evse, "true", "rcd_trip"),
        flag(*rcd, "true", "rcd_trip"),
    ]
    got, start = next_events(csms, st, start)
    assert got == [flag(*welded, "true", "contactor_welded")]
    ok(sim, "clear_error", evse=1, error="contactor_welded")
    got, start = next_events(csms, st, start)
    assert got == [flag(*welded, "false", "contactor_welded")]
    ok(sim, "clear_error", evse=1, error="rcd_trip")
    ok(sim, "plug_out", evse=1)
    got, start = next_events(csms, st, start)
    # (the unplug ends the latch and the plug a moment apart: Occupied for that moment)
    assert got[0].pop("actualValue") in ("Occupied", "Available")
    want = dict(ev("Delta", "Available", 0, CONNECTOR, cleared=True), **hard)
    del want["actualValue"]
    assert got == [want, flag(*evse, "false", "rcd_trip"), flag(*rcd, "false", "rcd_trip")]
    # The Faulted's NotifyEvent right after its StatusNotification.
    calls = [(f.msg[2], f.payload) for f in st.frames if f.kind == "call" and f.direction == "in"]
    faulted = [i for i, c in enumerate(calls) if c[1].get("connectorStatus") == "Faulted"][-1]
    assert calls[faulted + 1][0] == "NotifyEvent"
    assert calls[faulted + 1][1]["eventData"][0]["actualValue"] == "Faulted"


def test_report_in_parts_offline_queuing_and_a_power_loss(csms, sims, tmp_path):
    state = tmp_path / "state"
    cfg = {"variables": variables(FAST)}
    sim = sims(csms.url, config=cfg, state_dir=state)
    st, _ = accepted(csms, sim)
    items = [mon("Delta", 0, 2, CONNECTOR), mon("Delta", 0, 6, EVSE_STATE)]
    items += [mon("Periodic", 3600 + i, i, POWER) for i in range(10)]
    assert set_monitors(csms, st, *items) == [("Accepted", i) for i in range(1, 13)]
    # Twelve monitors and six fixed ones: two parts (ten a part), a variable's monitors side
    # by side, sorted by key.
    parts, by_id = report(csms, st, 7)
    # (with the hard-wired monitors, 90001 the connector's, and the pilot's pre-configured
    # one, 95001)
    states = [("Problem", [95001]), ("AvailabilityState", [1, 90001]), ("AvailabilityState", [2])]
    hard = [("Problem", [90101]), ("Problem", [90401]), ("Problem", [90301]), ("Tripped", [90201])]
    assert parts == [
        (True, states + [("Power", [3, 4, 5, 6, 7, 8])]),
        (False, [("Power", [9, 10, 11, 12])] + hard),
    ]
    assert by_id[12] == {
        "id": 12,
        "transaction": False,
        "value": 3609,
        "type": "Periodic",
        "severity": 9,
    }
    # Offline: the connector's event (severity 2 <= OfflineQueuingSeverity 3) is queued and
    # delivered after the outage; the EVSE's (6) is dropped.
    ok(sim, "ws_disconnect")
    sim.wait_status(lambda s: not s["connected"])
    ok(sim, "plug_in", evse=1)
    sim.wait_status(lambda s: s["evse"][0]["connector_status"] == "Occupied")
    time.sleep(2)
    ok(sim, "ws_connect")
    st2 = reconnected(csms, st)
    got, _ = next_events(csms, st2, 0)
    assert got == [ev("Delta", "Occupied", 1, CONNECTOR)]
    time.sleep(1.5)
    assert [e["variableMonitoringId"] for e in all_events(st2)] == [1]
    # A power loss: the monitors are back with the station, and watch from boot.
    sim.kill()
    sim = sims(csms.url, config=cfg, state_dir=state)
    st3 = reconnected(csms, st2)
    sim.wait_status(lambda s: s["registration"] == "Accepted" and s["connected"])
    assert report(csms, st3, 8) == (parts, by_id)
    start = len(st3.frames)
    ok(sim, "plug_in", evse=1)  # a new EV: the one before went with the power
    next_events(csms, st3, start)
    time.sleep(1.5)
    got = sorted(all_events(st3, start), key=lambda e: e["variableMonitoringId"])
    assert [(e["variableMonitoringId"], e["actualValue"]) for e in got] == [
        (1, "Occupied"),
        (2, "Occupied"),
    ]


def test_monitoring_base_with_reports_and_a_meter_that_stops_answering(csms, sims):
    """SetMonitoringBase HardWiredOnly and FactoryDefault, each with a report (the pilot's
    pre-configured monitor off, then back), ClearVariableMonitoring of a pre-configured and a
    hard-wired one, and the meter's hard-wired monitor: silent for 8 s it is a fault (while
    the rest goes on), answering again it is over."""
    sim = sims(csms.url, config={"variables": variables(FAST)})
    st, _ = accepted(csms, sim)
    start = len(st.frames)
    ok(sim, "raise_error", evse=1, error="meter_timeout")
    hard = [("Problem", [90101]), ("Problem", [90401]), ("Problem", [90301]), ("Tripped", [90201])]
    pilot = [("Problem", [95001])]
    conn = [("AvailabilityState", [90001])]
    assert csms.call(st, "SetMonitoringBase", {"monitoringBase": "HardWiredOnly"}) == {
        "status": "Accepted"
    }
    parts, by_id = report(csms, st, 1)
    assert parts == [(False, conn + hard)]
    assert by_id[90401] == {
        "id": 90401,
        "transaction": False,
        "value": 0,
        "type": "Delta",
        "severity": 1,
    }
    assert csms.call(st, "SetMonitoringBase", {"monitoringBase": "FactoryDefault"}) == {
        "status": "Accepted"
    }
    parts, by_id = report(csms, st, 2)
    assert parts == [(False, pilot + conn + hard)]
    assert by_id[95001]["severity"] == 4
    assert csms.call(st, "ClearVariableMonitoring", {"id": [95001, 90401]}) == {
        "clearMonitoringResult": [
            {"status": "Accepted", "id": 95001},
            {"status": "Rejected", "id": 90401},
        ]
    }
    assert report(csms, st, 3)[0] == [(False, conn + hard)]
    # The meter's fault: the connector Faulted, the EVSE's and the meter's Problem.
    got, start = next_events(csms, st, start, timeout=20)
    hard = {"eventNotificationType": "HardWiredMonitor", "variableMonitoringId": 90001}
    evse, meter = ("EVSE", "Problem", 90101), ("FiscalMetering", "Problem", 90401)
    assert got == [
        dict(ev("Delta", "Faulted", 0, CONNECTOR), techCode="meter_timeout", **hard),
        flag(*evse, "true", "meter_timeout"),
        flag(*meter, "true", "meter_timeout"),
    ]
    ok(sim, "clear_error", evse=1, error="meter_timeout")
    got, start = next_events(csms, st, start)
    assert got == [
        dict(ev("Delta", "Available", 0, CONNECTOR, cleared=True), **hard),
        flag(*evse, "false", "meter_timeout"),
        flag(*meter, "false", "meter_timeout"),
    ]
