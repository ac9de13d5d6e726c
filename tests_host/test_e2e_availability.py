"""End to end: availability, StatusNotification, Reset, TriggerMessage, UnlockConnector,
DataTransfer and security events, with the exact messages on the wire."""

import re
import time

import pytest

from tools.harness import FAST, variables

pytestmark = pytest.mark.e2e

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def config(extra=None):
    values = dict(FAST)
    values.update(extra or {})
    return {"variables": variables(values)}


def accepted(csms, sim):
    st = csms.station()
    boot = csms.wait_call(st, "BootNotification")
    sim.wait_status(lambda s: s["registration"] == "Accepted" and s["connected"])
    return st, boot


def statuses(csms, st, n, start=0, timeout=10):
    """The next `n` StatusNotification payloads from `start`, timestamps checked and dropped."""
    out = []
    for _ in range(n):
        f = csms.wait_call(st, "StatusNotification", timeout=timeout, start=start)
        start = f.index + 1
        p = dict(f.payload)
        assert STAMP.match(p.pop("timestamp"))
        out.append(p)
    return out, start


def status(evse, state):
    return {"connectorStatus": state, "evseId": evse, "connectorId": 1}


def calls(st, action, start=0):
    return [
        f
        for f in st.frames[start:]
        if f.direction == "in" and f.action == action and f.kind == "call"
    ]


def evse_where(sim, pred, n=0, timeout=10):
    return sim.wait_status(lambda s: pred(s["evse"][n]), timeout)["evse"][n]


def charge(sim, evse=1):
    sim.cmd("plug_in", evse=evse)
    evse_where(sim, lambda e: e["cp"] == "B", evse - 1)
    sim.cmd("button", evse=evse)
    sim.cmd("ev_state", evse=evse, state="C")
    evse_where(sim, lambda e: e["contactor"], evse - 1)


def test_boot_reports_every_connector_and_a_startup_event_then_changes(csms, sims):
    sim = sims(csms.url, config=config(), evses=2)
    st, boot = accepted(csms, sim)
    got, nxt = statuses(csms, st, 2, boot.index)
    assert sorted(got, key=lambda p: p["evseId"]) == [
        status(1, "Available"),
        status(2, "Available"),
    ]
    ev = csms.wait_call(st, "SecurityEventNotification")
    assert ev.payload["type"] == "StartupOfTheDevice" and STAMP.match(ev.payload["timestamp"])
    assert set(ev.payload) == {"type", "timestamp"}
    sim.cmd("plug_in", evse=2)
    got, nxt = statuses(csms, st, 1, nxt)
    assert got == [status(2, "Occupied")]
    sim.cmd("raise_error", evse=2, error="rcd_trip")
    got, nxt = statuses(csms, st, 1, nxt)
    assert got == [status(2, "Faulted")]


def test_change_availability_of_an_evse_a_connector_and_the_station(csms, sims):
    sim = sims(csms.url, config=config())
    st, boot = accepted(csms, sim)
    _, nxt = statuses(csms, st, 1, boot.index)
    evse1 = {"id": 1}
    assert csms.call(
        st, "ChangeAvailability", {"operationalStatus": "Inoperative", "evse": evse1}
    ) == {"status": "Accepted"}
    got, nxt = statuses(csms, st, 1, nxt)
    assert got == [status(1, "Unavailable")]
    # Unavailable offers no energy.
    sim.cmd("plug_in", evse=1)
    sim.cmd("button", evse=1)
    sim.cmd("ev_state", evse=1, state="C")
    time.sleep(1)
    e = evse_where(sim, lambda e: e["cp"] == "B")  # no PWM, so the EV never goes to C
    assert not e["contactor"] and e["pwm_duty"] == 100.0
    sim.cmd("plug_out", evse=1)
    evse_where(sim, lambda e: e["cp"] == "A")
    assert csms.call(
        st, "ChangeAvailability", {"operationalStatus": "Operative", "evse": evse1}
    ) == {"status": "Accepted"}
    got, nxt = statuses(csms, st, 1, nxt)
    assert got == [status(1, "Available")]
    # Same state again: Accepted, nothing to report.
    assert csms.call(st, "ChangeAvailability", {"operationalStatus": "Operative"}) == {
        "status": "Accepted"
    }
    conn = {"id": 1, "connectorId": 1}
    assert csms.call(
        st, "ChangeAvailability", {"operationalStatus": "Inoperative", "evse": conn}
    ) == {"status": "Accepted"}
    got, nxt = statuses(csms, st, 1, nxt)
    assert got == [status(1, "Unavailable")]
    assert csms.call(st, "ChangeAvailability", {"operationalStatus": "Inoperative"}) == {
        "status": "Accepted"
    }
    csms.call(st, "ChangeAvailability", {"operationalStatus": "Operative", "evse": conn})
    time.sleep(0.5)
    assert calls(st, "StatusNotification", nxt) == []  # the station is still Inoperative
    csms.call(st, "ChangeAvailability", {"operationalStatus": "Operative"})
    got, nxt = statuses(csms, st, 1, nxt)
    assert got == [status(1, "Available")]
    assert csms.call(
        st, "ChangeAvailability", {"operationalStatus": "Inoperative", "evse": {"id": 7}}
    ) == {"status": "Rejected", "statusInfo": {"reasonCode": "UnknownEvse"}}


def test_change_availability_during_a_session_is_scheduled_and_survives_a_reset(csms, sims):
    sim = sims(csms.url, config=config())
    st, boot = accepted(csms, sim)
    charge(sim)
    assert csms.call(
        st, "ChangeAvailability", {"operationalStatus": "Inoperative", "evse": {"id": 1}}
    ) == {"status": "Scheduled"}
    time.sleep(1)
    assert evse_where(sim, lambda e: True)["contactor"]  # the session goes on
    start = len(st.frames)
    sim.cmd("ev_state", evse=1, state="B")
    sim.cmd("plug_out", evse=1)
    got, _ = statuses(csms, st, 1, start)
    assert got == [status(1, "Unavailable")]
    assert csms.call(st, "Reset", {"type": "Immediate"}) == {"status": "Accepted"}
    csms.run(st.wait_closed(10), 15)
    st2, boot2 = accepted(csms, sim)
    assert boot2.payload["reason"] == "RemoteReset"
    got, _ = statuses(csms, st2, 1, boot2.index)
    assert got == [status(1, "Unavailable")]  # TC_G_18: it survived the reboot
    ev = csms.wait_call(st2, "SecurityEventNotification")
    assert ev.payload["type"] == "ResetOrReboot"


def test_reset_on_idle_waits_for_the_session_then_reboots_scheduled(csms, sims):
    sim = sims(csms.url, config=config())
    st, _ = accepted(csms, sim)
    charge(sim)
    assert csms.call(st, "Reset", {"type": "OnIdle"}) == {"status": "Scheduled"}
    time.sleep(1.5)
    assert st.connected and sim.cmd("status")["boot_count"] == 1
    sim.cmd("ev_state", evse=1, state="B")
    sim.cmd("plug_out", evse=1)
    csms.run(st.wait_closed(10), 15)
    st2, boot = accepted(csms, sim)
    assert boot.payload["reason"] == "ScheduledReset"
    assert sim.cmd("status")["boot_count"] == 2


def test_reset_immediate_stops_the_session_and_reboots(csms, sims):
    sim = sims(csms.url, config=config())
    st, _ = accepted(csms, sim)
    charge(sim)
    assert csms.call(st, "Reset", {"type": "Immediate"}) == {"status": "Accepted"}
    csms.run(st.wait_closed(10), 15)
    st2, boot = accepted(csms, sim)
    assert boot.payload["reason"] == "RemoteReset"
    e = evse_where(sim, lambda e: e["cp"] == "B")  # still plugged in: the car stayed
    assert not e["contactor"] and e["pwm_duty"] == 100.0  # after the reboot: not permitted


def trigger(csms, st, msg, evse=None):
    req = {"requestedMessage": msg}
    if evse:
        req["evse"] = evse
    return csms.call(st, "TriggerMessage", req)


def test_trigger_message_for_every_message(csms, sims):
    sim = sims(csms.url, config=config())
    st, boot = accepted(csms, sim)
    statuses(csms, st, 1, boot.index)
    csms.wait_call(st, "SecurityEventNotification")
    ok, rej = {"status": "Accepted"}, {"status": "Rejected"}

    def next_call(action, msg, evse=None):
        start = len(st.frames)
        assert trigger(csms, st, msg, evse) == ok
        f = csms.wait_call(st, action, start=start)
        # the answer came before the triggered message
        answer = [x for x in st.frames[start : f.index] if x.direction == "in"]
        assert [x.kind for x in answer] == ["result"]
        return f.payload

    assert next_call("Heartbeat", "Heartbeat") == {}
    p = next_call("StatusNotification", "StatusNotification", {"id": 1, "connectorId": 1})
    assert p["connectorStatus"] == "Available" and p["evseId"] == 1
    assert trigger(csms, st, "StatusNotification") == rej
    assert trigger(csms, st, "StatusNotification", {"id": 3, "connectorId": 1}) == rej
    charge(sim)
    time.sleep(1.2)
    p = next_call("MeterValues", "MeterValues", {"id": 1})
    assert p["evseId"] == 1 and len(p["meterValue"]) == 1
    sv = p["meterValue"][0]["sampledValue"]
    assert [s["measurand"] for s in sv] == ["Energy.Active.Import.Register"]
    assert sv[0]["context"] == "Trigger" and sv[0]["unitOfMeasure"] == {"unit": "Wh"}
    assert sv[0]["value"] > 0
    assert next_call("FirmwareStatusNotification", "FirmwareStatusNotification") == {
        "status": "Idle"
    }
    assert next_call("LogStatusNotification", "LogStatusNotification") == {"status": "Idle"}
    assert trigger(csms, st, "TransactionEvent") == {"status": "Accepted"}  # it charges
    assert trigger(csms, st, "BootNotification") == rej  # F06.FR.17: already Accepted
    # A02/A03: the station asks for a certificate (test_e2e_station_certificate.py).
    start = len(st.frames)
    assert trigger(csms, st, "SignChargingStationCertificate") == ok
    p = csms.wait_call(st, "SignCertificate", start=start).payload
    assert set(p) == {"csr", "certificateType"}


def test_trigger_boot_while_pending_sends_it_at_once_with_reason_triggered(csms, sims):
    answers = [("Pending", 30), ("Accepted", 300)]

    def boot(station, payload):
        s, i = answers.pop(0) if len(answers) > 1 else answers[0]
        return {"status": s, "interval": i}

    csms.csms.boot_policy = boot
    sim = sims(csms.url, config=config())
    st = csms.station()
    b1 = csms.wait_call(st, "BootNotification")
    sim.wait_status(lambda s: s["registration"] == "Pending")
    assert trigger(csms, st, "Heartbeat") == {"status": "Rejected"}
    t = time.monotonic()
    assert trigger(csms, st, "BootNotification") == {"status": "Accepted"}
    b2 = csms.wait_call(st, "BootNotification", start=b1.index + 1)
    assert time.monotonic() - t < 2 and b2.payload["reason"] == "Triggered"
    sim.wait_status(lambda s: s["registration"] == "Accepted")


@pytest.mark.parametrize("outage_s, threshold, expect", [(1, 30, [2]), (4, 2, [1, 2])])
def test_statuses_after_short_and_long_outages(csms, sims, outage_s, threshold, expect):
    cfg = config({("OCPPCommCtrlr", "OfflineThreshold"): str(threshold)})
    sim = sims(csms.url, config=cfg, evses=2)
    st, boot = accepted(csms, sim)
    statuses(csms, st, 2, boot.index)
    sim.cmd("ws_disconnect")
    sim.wait_status(lambda s: not s["connected"])
    sim.cmd("plug_in", evse=2)  # a change while offline
    time.sleep(outage_s)
    sim.cmd("ws_connect")
    st2 = csms.station(timeout=15)
    sim.wait_status(lambda s: s["connected"])
    time.sleep(1.5)
    got = [f.payload for f in calls(st2, "StatusNotification")]
    assert sorted(p["evseId"] for p in got) == expect
    assert calls(st2, "BootNotification") == []
    for p in got:
        want = "Occupied" if p["evseId"] == 2 else "Available"
        assert p["connectorStatus"] == want


def test_unlock_connector_and_data_transfer(csms, sims):
    sim = sims(csms.url, config=config())
    st, _ = accepted(csms, sim)
    assert csms.call(st, "UnlockConnector", {"evseId": 1, "connectorId": 1}) == {
        "status": "Unlocked"
    }
    assert csms.call(st, "UnlockConnector", {"evseId": 2, "connectorId": 1}) == {
        "status": "UnknownConnector"
    }
    charge(sim)
    assert csms.call(st, "UnlockConnector", {"evseId": 1, "connectorId": 1}) == {
        "status": "OngoingAuthorizedTransaction"
    }
    assert csms.call(st, "DataTransfer", {"vendorId": "com.example", "messageId": "x"}) == {
        "status": "UnknownVendorId"
    }
