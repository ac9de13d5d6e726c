"""Monitoring (block N, N02-N08): firmware/blocks/monitoring.py under CPython, with the real
device model, transactions and availability blocks and the fakes of test_transactions.py
(EVSEs, session, queue, fake time). Every request and every message sent is validated against
the official OCPP 2.0.1 schemas, and compared whole."""

import asyncio

import pytest
from test_transactions import (  # noqa: F401 (make and tm: its fixtures, used here too)
    NOW,
    make,
    request,
    stop_loop,
    tm,  # noqa: F401
)

import ocppj
from firmware.blocks import monitoring as monmod
from firmware.blocks.availability import Availability
from firmware.blocks.monitoring import Monitoring
from firmware.blocks.reports import report_data

ISO = "2026-11-21T18:16:40Z"  # NOW
POWER = {"component": {"name": "EVSE", "evse": {"id": 1}}, "variable": {"name": "Power"}}
HEARTBEAT = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
CONN_STATE = {
    "component": {"name": "Connector", "evse": {"id": 1, "connectorId": 1}},
    "variable": {"name": "AvailabilityState"},
}


def iso(t):
    import rfc3339

    return rfc3339.format(t)


def build(st, boot=1):
    st.session.in_len = 100
    st.mon = Monitoring(
        st.router,
        st.session,
        st.connection,
        st.queue,
        st.dm,
        st.store,
        st.clock,
        st.evses,
        st.txs,
        st.spawn,
        boot,
    )
    stop_loop(st, "run")  # the tests call step themselves
    return st.mon


@pytest.fixture
def station(make):  # noqa: F811
    def make_station(online=True, boot=1):
        st = make(online=online)
        # The availability block serves EVSE.1/Power and the AvailabilityStates.
        q = st.queue
        q.mark, q.before, q.kick = (lambda: 0), (lambda m: True), (lambda: None)
        st.connection.on_accepted, st.connection.on_online = [], []
        st.availability = Availability(
            st.router,
            st.session,
            st.connection,
            q,
            st.dm,
            st.store,
            st.clock,
            st.evses,
            st.txs,
            st.spawn,
        )
        stop_loop(st, "run")
        build(st, boot)
        return st

    return make_station


def mon(kind, value, sev, cv, mid=None, tx=None):
    d = {"value": value, "type": kind, "severity": sev}
    d.update(cv)
    if mid is not None:
        d["id"] = mid
    if tx is not None:
        d["transaction"] = tx
    return d


def set_monitors(st, *items):
    resp = request(st, "SetVariableMonitoring", {"setMonitoringData": list(items)})
    return [(r["status"], r.get("id"), r.get("statusInfo")) for r in resp["setMonitoringResult"]]


def step(st, tm, s=1):  # noqa: F811
    """s seconds later: the monitors look; the NotifyEvent payloads sent then."""
    tm.advance(s)
    before = len(st.session.sent)
    asyncio.run(st.mon.step())
    return [p for a, p in st.session.sent[before:] if a == "NotifyEvent"]


def event(eid, t, trigger, actual, mid, cv, cleared=False, tx=None):
    ev = {
        "eventId": 100000 + eid,  # boot 1: eventIds from 100001
        "timestamp": iso(t),
        "trigger": trigger,
        "actualValue": actual,
        "eventNotificationType": "CustomMonitor",
        "variableMonitoringId": mid,
    }
    ev.update(cv)
    if cleared:
        ev["cleared"] = True
    if tx is not None:
        ev["transactionId"] = tx
    return ev


def notify(t, *events, seq=0, tbc=False):
    p = {"generatedAt": iso(t), "seqNo": seq, "eventData": list(events)}
    if tbc:
        p["tbc"] = True
    return p


def test_set_answers_ids_replacement_and_persistence(station):
    st = station()
    unknown_var = {"component": {"name": "EVSE", "evse": {"id": 1}}, "variable": {"name": "X"}}
    assert set_monitors(
        st,
        mon("UpperThreshold", 7000, 5, POWER),
        mon("Delta", 10, 7, HEARTBEAT),
        mon("Delta", 0, 4, CONN_STATE),
        mon("UpperThreshold", 1, 4, CONN_STATE),  # no threshold on an option list
        mon(
            "Periodic",
            60,
            4,
            {"component": {"name": "AuthCtrlr"}, "variable": unknown_var["variable"]},
        ),
        mon("Periodic", 60, 4, {"component": {"name": "Nope"}, "variable": {"name": "X"}}),
        mon(
            "Periodic",
            60,
            4,
            {"component": {"name": "AuthCtrlr"}, "variable": {"name": "Enabled"}},
        ),  # not declared monitorable
        mon("UpperThreshold", 7000, 5, POWER),  # same type and severity: Duplicate
        mon("Periodic", 0, 5, POWER),
        mon("UpperThreshold", 1e9, 6, POWER),  # above maxLimit (rated power)
        mon("LowerThreshold", 100, 10, POWER),
        mon("Delta", 5, 5, POWER, mid=99),
    ) == [
        ("Accepted", 1, None),
        ("Accepted", 2, None),
        ("Accepted", 3, None),
        ("UnsupportedMonitorType", None, None),
        ("UnknownVariable", None, None),
        ("UnknownComponent", None, None),
        ("UnsupportedMonitorType", None, None),
        ("Duplicate", None, None),
        ("Rejected", None, {"reasonCode": "InvalidValue"}),
        ("Rejected", None, {"reasonCode": "ValueOutOfRange"}),
        ("Rejected", None, {"reasonCode": "InvalidSeverity"}),
        ("Rejected", None, {"reasonCode": "UnknownMonitorId"}),
    ]
    # The same id replaces the monitor.
    assert set_monitors(st, mon("LowerThreshold", 500, 2, POWER, mid=1, tx=True)) == [
        ("Accepted", 1, None)
    ]
    # ... on its own variable only (N04.FR.16).
    assert set_monitors(st, mon("Delta", 5, 5, HEARTBEAT, mid=1)) == [
        ("Rejected", None, {"reasonCode": "OtherVariable"})
    ]
    assert st.store.load("monitoring") == {
        "next": 4,
        "level": 9,
        "base": "All",
        "m": [
            [1, "EVSE.1/Power", 1, 500, 2, True],
            [2, "OCPPCommCtrlr/HeartbeatInterval", 2, 10, 7, False],
            [3, "Connector.1.1/AvailabilityState", 2, 0, 4, False],
        ],
    }
    # Built again from flash (a reboot): the same monitors, ids go on; what does not read
    # as a monitor is left out.
    doc = st.store.load("monitoring")
    st.store.save("monitoring", dict(doc, m=doc["m"] + [[9, "EVSE.1/Power", 7, 1, 1, False], 3]))
    st2 = station(boot=2)
    assert [m[:6] for m in st2.mon.monitors] == doc["m"]
    assert set_monitors(st2, mon("Periodic", 60, 4, POWER)) == [("Accepted", 4, None)]
    # SetMonitoringLevel persists, and comes back with the block.
    request(st2, "SetMonitoringLevel", {"severity": 3})
    st3 = station(boot=3)
    assert st3.dm.get("MonitoringCtrlr/ActiveMonitoringLevel") == "3"
    # More items than ItemsPerMessage, or more bytes than BytesPerMessage: a CALLERROR.
    with pytest.raises(ocppj.CallError) as e:
        set_monitors(st2, *[mon("Periodic", 60 + i, 4, POWER) for i in range(21)])
    assert e.value.code == "OccurrenceConstraintViolation"
    with pytest.raises(ocppj.CallError) as e:
        request(st2, "ClearVariableMonitoring", {"id": list(range(1, 22))})
    assert e.value.code == "OccurrenceConstraintViolation"
    st2.session.in_len = 4097
    with pytest.raises(ocppj.CallError) as e:
        request(st2, "ClearVariableMonitoring", {"id": [1]})
    assert e.value.code == "FormatViolation"
    st2.session.in_len = 100
    # supportsMonitoring in the reports follows the declarations.
    for key, yes in (("EVSE.1/Power", True), ("AuthCtrlr/Enabled", False)):
        d = st.dm.decl(key)
        assert report_data(st.dm, d)["variableCharacteristics"]["supportsMonitoring"] is yes


def test_threshold_delta_and_periodic_events(station, tm):  # noqa: F811
    st = station()
    e = st.evses[0]
    e.read(1000.0, 0.0)
    assert set_monitors(
        st,
        mon("UpperThreshold", 7000, 5, POWER),
        mon("Delta", 100, 6, HEARTBEAT),
        mon("Delta", 0, 4, CONN_STATE),
        mon("Periodic", 60, 8, POWER),
        mon("PeriodicClockAligned", 900, 8, HEARTBEAT),
    ) == [("Accepted", i, None) for i in range(1, 6)]
    assert step(st, tm) == []  # (Delta: the references were taken when set)
    e.read(1000.0, 11040.4)
    t = NOW + 2
    assert step(st, tm) == [notify(t, event(1, t, "Alerting", "11040", 1, POWER))]
    assert step(st, tm) == []  # still above: no news
    e.read(1000.0, 3680.0)
    t += 3
    assert step(st, tm, 2) == [notify(t, event(2, t, "Alerting", "3680", 1, POWER, True))]
    # Delta on a number: more than 100 away from the last report.
    st.dm.set("OCPPCommCtrlr/HeartbeatInterval", "350")
    t += 1
    assert step(st, tm) == []
    st.dm.set("OCPPCommCtrlr/HeartbeatInterval", "401")
    t += 1
    assert step(st, tm) == [notify(t, event(3, t, "Delta", "401", 2, HEARTBEAT))]
    # Delta on an option list: every change.
    e.set(cp="B")
    t += 1
    assert step(st, tm) == [notify(t, event(4, t, "Delta", "Occupied", 3, CONN_STATE))]
    # Periodic: 60 s after it was set (NOW); clock-aligned: at the quarter hour (NOW is
    # 100 s past one).
    tm.advance(NOW + 60 - 1 - t)
    t = NOW + 60
    assert step(st, tm) == [notify(t, event(5, t, "Periodic", "3680", 4, POWER))]
    tm.advance(NOW + 800 - 1 - t)
    t = NOW + 800
    assert step(st, tm) == [
        notify(
            t,
            event(6, t, "Periodic", "3680", 4, POWER),
            event(7, t, "Periodic", "401", 5, HEARTBEAT),
        )
    ]
    assert iso(t).endswith(":30:00Z")


def test_level_offline_queue_and_transaction_monitors(station, tm):  # noqa: F811
    st = station()
    e = st.evses[0]
    set_monitors(
        st,
        mon("Delta", 0, 2, CONN_STATE),
        mon("Delta", 1, 6, HEARTBEAT),
        mon("UpperThreshold", 100, 1, POWER, tx=True),
    )
    step(st, tm)
    # SetMonitoringLevel 4: severity 6 is no longer sent.
    assert request(st, "SetMonitoringLevel", {"severity": 4}) == {"status": "Accepted"}
    assert request(st, "SetMonitoringLevel", {"severity": 10})["status"] == "Rejected"
    assert st.dm.get("MonitoringCtrlr/ActiveMonitoringLevel") == "4"
    assert st.store.load("monitoring")["level"] == 4  # the block sets it again at boot
    st.dm.set("OCPPCommCtrlr/HeartbeatInterval", "500")
    e.set(cp="B")
    t = NOW + 2
    # (event 2, of HeartbeatInterval's monitor, was not sent)
    assert step(st, tm) == [notify(t, event(1, t, "Delta", "Occupied", 1, CONN_STATE))]
    # Offline: severity 2 (<= OfflineQueuingSeverity 3) queued, the rest dropped.
    request(st, "SetMonitoringLevel", {"severity": 9})
    st.connection.ready.clear()
    st.dm.set("OCPPCommCtrlr/HeartbeatInterval", "600")
    e.set(cp="A")
    t += 1
    assert step(st, tm) == []
    assert st.queue.posted[-1] == (
        "NotifyEvent",
        notify(t, event(3, t, "Delta", "Available", 1, CONN_STATE)),
        None,
    )
    # A transaction monitor looks only while its EVSE has a transaction, and says which.
    st.connection.ready.set()
    e.read(1000.0, 5000.0)
    t += 1
    assert step(st, tm) == []
    st.txs.bays[0].tx = {"id": "T1"}
    t += 1
    assert step(st, tm) == [
        notify(
            t,
            event(5, t, "Delta", "Occupied", 1, CONN_STATE),  # a transaction: Occupied
            event(6, t, "Alerting", "5000", 3, POWER, tx="T1"),
        )
    ]
    # The transaction over: the power's monitor is silent (no cleared event) while the
    # connector's goes on.
    st.txs.bays[0].tx = None
    e.read(1000.0, 0.0)
    t += 1
    assert step(st, tm) == [notify(t, event(7, t, "Delta", "Available", 1, CONN_STATE))]


def test_clear_base_and_reports_in_parts(station, tm):  # noqa: F811
    st = station()
    items = [mon("Periodic", 60 + i, i % 10, POWER) for i in range(10)]
    items += [mon("Delta", 5, 3, HEARTBEAT), mon("UpperThreshold", 9000, 3, POWER)]
    assert [s for s, _, _ in set_monitors(st, *items)] == ["Accepted"] * 12
    # Every monitor, in two parts (ten per part), a variable's monitors together.
    before = len(st.session.sent)
    assert request(st, "GetMonitoringReport", {"requestId": 5}) == {"status": "Accepted"}
    parts = [p for a, p in st.session.sent[before:] if a == "NotifyMonitoringReport"]
    assert [(p["seqNo"], p["tbc"]) for p in parts] == [(0, True), (1, False)]
    got = [(m["component"]["name"], [v["id"] for v in m["variableMonitoring"]])
           for p in parts for m in p["monitor"]]  # fmt: skip
    # (with the hard-wired and pre-configured ones, sorted by key)
    assert got == [
        ("CPPWMController", [95001]),
        ("Connector", [90001]),
        ("EVSE", list(range(1, 9))),
        ("EVSE", [9, 10, 12]),
        ("EVSE", [90101]),
        ("FiscalMetering", [90401]),
        ("OCPPCommCtrlr", [11]),
        ("PowerContactor", [90301]),
        ("RCD", [90201]),
    ]
    assert parts[0]["monitor"][0] == {
        "component": {"name": "CPPWMController", "evse": {"id": 1}},
        "variable": {"name": "Problem"},
        "variableMonitoring": [
            {"id": 95001, "transaction": False, "value": 0, "type": "Delta", "severity": 4}
        ],
    }
    assert parts[1]["monitor"][2]["variableMonitoring"] == [
        {"id": 90401, "transaction": False, "value": 0, "type": "Delta", "severity": 1}
    ]
    assert parts[0]["monitor"][1] == dict(
        CONN_STATE,
        variableMonitoring=[
            {"id": 90001, "transaction": False, "value": 0, "type": "Delta", "severity": 2}
        ],
    )
    assert parts[1]["monitor"][3] == dict(
        HEARTBEAT,
        variableMonitoring=[
            {"id": 11, "transaction": False, "value": 5, "type": "Delta", "severity": 3}
        ],
    )
    # Filters: criteria and component/variable.
    before = len(st.session.sent)
    req = {"requestId": 6, "monitoringCriteria": ["DeltaMonitoring", "ThresholdMonitoring"],
           "componentVariable": [POWER]}  # fmt: skip
    assert request(st, "GetMonitoringReport", req) == {"status": "Accepted"}
    (p,) = [p for a, p in st.session.sent[before:] if a == "NotifyMonitoringReport"]
    assert p == {
        "requestId": 6,
        "seqNo": 0,
        "generatedAt": ISO,
        "tbc": False,
        "monitor": [
            dict(
                POWER,
                variableMonitoring=[
                    {
                        "id": 12,
                        "transaction": False,
                        "value": 9000,
                        "type": "UpperThreshold",
                        "severity": 3,
                    }
                ],
            )
        ],
    }
    req = {"requestId": 7, "componentVariable": [CONN_STATE], "monitoringCriteria": [
        "ThresholdMonitoring"]}  # fmt: skip
    assert request(st, "GetMonitoringReport", req) == {"status": "EmptyResultSet"}
    # Clear: each kind, an unknown id, and a hard-wired one (Rejected, as replacing it).
    resp = request(st, "ClearVariableMonitoring", {"id": [1, 11, 12, 77, 90001]})
    assert resp == {
        "clearMonitoringResult": [
            {"status": "Accepted", "id": 1},
            {"status": "Accepted", "id": 11},
            {"status": "Accepted", "id": 12},
            {"status": "NotFound", "id": 77},
            {"status": "Rejected", "id": 90001},
        ]
    }
    assert set_monitors(st, mon("Delta", 1, 2, CONN_STATE, mid=90001)) == [
        ("Rejected", None, {"reasonCode": "HardWiredMonitor"})
    ]
    assert [m[0] for m in st.store.load("monitoring")["m"]] == list(range(2, 11))
    # SetMonitoringBase HardWiredOnly: the custom monitors go; with the defaults back, the
    # document goes too (the block then no longer loads at boot).
    assert request(st, "SetMonitoringBase", {"monitoringBase": "HardWiredOnly"}) == {
        "status": "Accepted"
    }
    assert st.mon.monitors == []
    assert st.dm.get("MonitoringCtrlr/ActiveMonitoringBase") == "HardWiredOnly"
    assert st.store.load("monitoring")["base"] == "HardWiredOnly"
    request(st, "SetMonitoringBase", {"monitoringBase": "All"})
    assert not st.store.exists(monmod.STORE)


def flag(comp, var, mid, actual, tech, kind="HardWiredMonitor", t=ISO, conn=False):
    """The eventData of a fault flag's monitor (without eventId)."""
    evse = {"id": 1, "connectorId": 1} if conn else {"id": 1}
    ev = {
        "timestamp": t,
        "trigger": "Delta",
        "actualValue": actual,
        "eventNotificationType": kind,
        "variableMonitoringId": mid,
        "component": {"name": comp, "evse": evse},
        "variable": {"name": var},
    }
    if tech:
        ev["techCode"] = tech
    if actual in ("false", "Available"):
        ev["cleared"] = True
    return ev


def test_hard_wired_monitor_reports_a_faulted_or_unavailable_connector(station, tm, monkeypatch):  # noqa: F811, E501
    """Not the monitoring block, the availability block posts the NotifyEvent to the
    durable queue, after the StatusNotification of the change: the connector's state and
    each fault flag that changed (EVSE, RCD, contactor, meter; the pilot's pre-configured
    one), in one message; leaving the state clears it; offline it is queued too (severity
    <= OfflineQueuingSeverity 3), unless the level or OfflineQueuingSeverity say
    otherwise."""
    import sys

    st = station()
    e = st.evses[0]
    q = st.queue
    import firmware

    # It must come with the first report, not before (fresh: not an earlier test's; the
    # module the monitoring block holds is back after the test).
    monkeypatch.delitem(sys.modules, "firmware.monitors")
    monkeypatch.delattr(firmware, "monitors")
    e.set(cp="B")  # Occupied: no news for it
    assert q.posted == [] and "firmware.monitors" not in sys.modules
    e.set(faults={"rcd_trip"})
    tm.advance(1)
    t1 = iso(NOW + 1)
    # Still Faulted: only the flags that changed (the contactor's; the EVSE's stays true).
    e.set(faults={"rcd_trip", "contactor_welded"}, cp="A")
    tm.advance(1)
    t2 = iso(NOW + 2)
    e.set(faults={"rcd_trip", "contactor_welded", "diode_fault"})
    e.set(faults={"meter_timeout"})
    e.set(faults=set())
    got = [p for a, p, _ in q.posted if a == "NotifyEvent"]
    ids = [ev.pop("eventId") for p in got for ev in p["eventData"]]
    assert ids == [1000000000 + NOW % 100000000 * 10 + i for i in range(1, len(ids) + 1)]
    conn = ("Connector", "AvailabilityState", 90001)
    evse, rcd = ("EVSE", "Problem", 90101), ("RCD", "Tripped", 90201)
    welded, meter = ("PowerContactor", "Problem", 90301), ("FiscalMetering", "Problem", 90401)
    pilot = ("CPPWMController", "Problem", 95001)
    pre = "PreconfiguredMonitor"
    assert got == [
        notify(NOW, flag(*conn, "Faulted", "rcd_trip", conn=True),
               flag(*evse, "true", "rcd_trip"), flag(*rcd, "true", "rcd_trip")),
        notify(NOW + 1, flag(*welded, "true", "contactor_welded", t=t1)),
        notify(NOW + 2, flag(*pilot, "true", "diode_fault", pre, t=t2)),
        # (one fault for the others: the EVSE's Problem stays true)
        notify(NOW + 2, flag(*rcd, "false", "rcd_trip", t=t2),
               flag(*welded, "false", "contactor_welded", t=t2),
               flag(*meter, "true", "meter_timeout", t=t2),
               flag(*pilot, "false", "diode_fault", pre, t=t2)),
        notify(NOW + 2, flag(*conn, "Available", None, conn=True, t=t2),  # (no techCode)
               flag(*evse, "false", "meter_timeout", t=t2),
               flag(*meter, "false", "meter_timeout", t=t2)),
    ]  # fmt: skip
    # The live values of the flags, for GetVariables and the reports.
    e.set(faults={"rcd_trip"})
    assert [st.dm.get(k) for k in ("EVSE.1/Problem", "RCD.1/Tripped", "PowerContactor.1/Problem",
            "FiscalMetering.1/Problem", "CPPWMController.1/Problem")] == [
        "true", "true", "false", "false", "false"]  # fmt: skip
    # Level 1: the RCD's (0) and contactor's (1) still go, the EVSE's and connector's (2) not.
    request(st, "SetMonitoringLevel", {"severity": 1})
    n = len(q.posted)
    e.set(faults={"rcd_trip", "contactor_fault"})
    e.set(faults=set())
    assert [[ev["variableMonitoringId"] for ev in p["eventData"]] for a, p, _ in q.posted[n:]] == [
        [90301],
        [90201, 90301],
    ]
    request(st, "SetMonitoringLevel", {"severity": 9})
    # Offline: queued at severity 2; with OfflineQueuingSeverity 1, or level 1, dropped.
    e.set_available = lambda on: e.set(available=on)
    inoperative = {"operationalStatus": "Inoperative"}
    st.connection.ready.clear()
    request(st, "ChangeAvailability", inoperative)
    assert q.posted[-1][1]["eventData"][0]["actualValue"] == "Unavailable"
    st.dm.set("MonitoringCtrlr/OfflineQueuingSeverity", "1")
    n = len(q.posted)
    request(st, "ChangeAvailability", {"operationalStatus": "Operative"})
    st.connection.ready.set()
    request(st, "SetMonitoringLevel", {"severity": 1})
    request(st, "ChangeAvailability", inoperative)
    assert e.available is False and len(q.posted) == n


PILOT = {
    "component": {"name": "CPPWMController", "evse": {"id": 1}},
    "variable": {"name": "Problem"},
}


def test_preconfigured_monitor_cleared_replaced_and_brought_back_by_the_base(station, tm):  # noqa: F811
    """The pilot's pre-configured monitor (95001): on by default, cleared (Accepted) it is
    off until SetMonitoringBase All or FactoryDefault; replaced (the same id, the same
    variable only) it is a custom monitor that All keeps and FactoryDefault removes;
    HardWiredOnly turns it off. Which are off is persisted."""
    st = station()
    e = st.evses[0]

    def ids():
        before = len(st.session.sent)
        assert request(st, "GetMonitoringReport", {"requestId": 1, "componentVariable": [
            PILOT]}) == {"status": "Accepted"}  # fmt: skip
        (p,) = [p for a, p in st.session.sent[before:] if a == "NotifyMonitoringReport"]
        return [(v["id"], v["type"], v["severity"]) for m in p["monitor"]
                for v in m["variableMonitoring"]]  # fmt: skip

    def pilot_events():
        n = len(st.queue.posted)
        e.set(faults={"diode_fault"})
        e.set(faults=set())
        evs = [ev for _, p, _ in st.queue.posted[n:] for ev in p["eventData"]]
        return [ev["variableMonitoringId"] for ev in evs if ev["variableMonitoringId"] > 95000]

    assert ids() == [(95001, "Delta", 4)]
    assert pilot_events() == [95001, 95001]
    clear = {"id": [95001]}
    assert request(st, "ClearVariableMonitoring", clear) == {
        "clearMonitoringResult": [{"status": "Accepted", "id": 95001}]
    }
    assert request(st, "ClearVariableMonitoring", clear)["clearMonitoringResult"] == [
        {"status": "NotFound", "id": 95001}
    ]
    req = {"requestId": 2, "componentVariable": [PILOT]}
    assert request(st, "GetMonitoringReport", req) == {"status": "EmptyResultSet"}
    assert pilot_events() == []
    assert set_monitors(st, mon("Delta", 1, 3, PILOT, mid=95001)) == [
        ("Rejected", None, {"reasonCode": "UnknownMonitorId"})
    ]
    assert st.store.load("monitoring")["off"] == [95001]
    st2 = station(boot=2)  # a reboot: still off
    assert request(st2, "GetMonitoringReport", req) == {"status": "EmptyResultSet"}
    st = st2
    e = st.evses[0]
    # All brings it back.
    assert request(st, "SetMonitoringBase", {"monitoringBase": "All"}) == {"status": "Accepted"}
    assert ids() == [(95001, "Delta", 4)]
    assert not st.store.exists(monmod.STORE)  # the defaults again
    # Replaced: only on its own variable; then a custom monitor (severity 3 here).
    assert set_monitors(st, mon("Delta", 1, 3, POWER, mid=95001)) == [
        ("Rejected", None, {"reasonCode": "OtherVariable"})
    ]
    assert set_monitors(st, mon("Delta", 1, 3, PILOT, mid=95001)) == [("Accepted", 95001, None)]
    assert ids() == [(95001, "Delta", 3)]
    assert st.store.load("monitoring")["m"] == [
        [95001, "CPPWMController.1/Problem", 2, 1, 3, False]
    ]
    # All keeps the replacement; FactoryDefault brings back the factory one.
    request(st, "SetMonitoringBase", {"monitoringBase": "All"})
    assert ids() == [(95001, "Delta", 3)]
    request(st, "SetMonitoringBase", {"monitoringBase": "FactoryDefault"})
    assert ids() == [(95001, "Delta", 4)]
    assert st.mon.monitors == []
    # HardWiredOnly: off (NotFound to clear, nothing reported, no events); the hard-wired
    # ones stay.
    request(st, "SetMonitoringBase", {"monitoringBase": "HardWiredOnly"})
    assert request(st, "GetMonitoringReport", req) == {"status": "EmptyResultSet"}
    assert request(st, "ClearVariableMonitoring", clear)["clearMonitoringResult"] == [
        {"status": "NotFound", "id": 95001}
    ]
    assert pilot_events() == []
    assert request(st, "GetMonitoringReport", {"requestId": 3}) == {"status": "Accepted"}
    request(st, "SetMonitoringBase", {"monitoringBase": "FactoryDefault"})
    assert ids() == [(95001, "Delta", 4)]


def test_notify_event_in_parts_and_a_failed_call_queued_by_severity(station, tm):  # noqa: F811
    st = station()
    evse_state = dict(CONN_STATE, component={"name": "EVSE", "evse": {"id": 1}})
    items = [mon("Delta", 0, sev, CONN_STATE) for sev in range(10)]
    items += [mon("Delta", 0, sev, evse_state) for sev in (4, 5)]
    assert [s for s, _, _ in set_monitors(st, *items)] == ["Accepted"] * 12
    st.evses[0].set(cp="B")
    t = NOW + 1
    got = step(st, tm)
    assert [(p["seqNo"], p.get("tbc", False), len(p["eventData"])) for p in got] == [
        (0, True, 10),
        (1, False, 2),
    ]
    assert [e["eventId"] - 100000 for p in got for e in p["eventData"]] == list(range(1, 13))
    assert got[1] == notify(
        t,
        event(11, t, "Delta", "Occupied", 11, evse_state),
        event(12, t, "Delta", "Occupied", 12, evse_state),
        seq=1,
    )

    # The link goes while they are sent: the events of the part that failed and after it
    # are queued as offline ones (severity <= 3), in parts again.
    async def lost(action, payload):
        raise ocppj.NotConnected()

    st.session.call = lost
    st.evses[0].set(cp="A")
    t += 1
    assert step(st, tm) == []
    (posted,) = [p for a, p, _ in st.queue.posted if a == "NotifyEvent"]
    assert posted == notify(
        t, *[event(13 + sev, t, "Delta", "Available", sev + 1, CONN_STATE) for sev in range(4)]
    )
