"""End to end: reservations (block H) on the MicroPython unix port, against the development
CSMS: ReserveNow and its Rejected rules, the reserved driver's session (Started carries
reservationId) while others get nothing, groups, reservations without an EVSE,
CancelReservation, expiry online and across a power loss, and a fault or Unavailable removing
a reservation, with the exact messages on the wire."""

import time
from datetime import datetime, timedelta, timezone

import pytest
from test_e2e_availability import accepted, calls, status, statuses
from test_e2e_transactions import reconnected

from tools.harness import FAST, variables

pytestmark = pytest.mark.e2e

REFUSED_WAIT_S = 1.0  # long enough for a refused card to have shown any effect
RSU = "ReservationStatusUpdate"


def config(extra=None):
    values = dict(FAST)
    values.update(extra or {})
    return {"variables": variables(values)}


def at(seconds):
    """The UTC time `seconds` from now, as OCPP writes it."""
    t = datetime.now(timezone.utc) + timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def reserve(csms, st, rid, evse=1, token="AABBCCDD", kind="ISO14443", expiry_s=600, **kw):
    req = {"id": rid, "expiryDateTime": at(expiry_s), "idToken": {"idToken": token, "type": kind}}
    if evse is not None:
        req["evseId"] = evse
    req.update(kw)
    return csms.call(st, "ReserveNow", req)


def rejected(code):
    return {"status": "Rejected", "statusInfo": {"reasonCode": code}}


def ok(sim, name, **kw):
    assert sim.cmd(name, **kw) == {"ok": True}


def evse(sim, pred=lambda e: True, n=1, timeout=10):
    return sim.wait_status(lambda s: pred(s["evse"][n - 1]), timeout)["evse"][n - 1]


def plug_in(sim, n=1):
    ok(sim, "plug_in", evse=n)
    evse(sim, lambda e: e["cp"] == "B", n)


def refused(sim, n=1):
    """Nothing offered at EVSE n, and it still shows Reserved."""
    time.sleep(REFUSED_WAIT_S)
    e = evse(sim, n=n)
    assert not e["contactor"] and e["pwm_duty"] == 100.0 and e["tx_id"] is None, e
    assert e["connector_status"] == "Reserved"


def charging(sim, n=1):
    ok(sim, "ev_state", evse=n, state="C")
    return evse(sim, lambda e: e["contactor"] and e["tx_id"] is not None, n)


def started(csms, st, start=0):
    f = csms.wait_frame(
        st,
        lambda f: (
            f.action == "TransactionEvent"
            and f.kind == "call"
            and f.payload["eventType"] == "Started"
        ),
        start=start,
    )
    return f.payload


def set_variable(csms, st, comp, var, value):
    data = {"component": {"name": comp}, "variable": {"name": var}, "attributeValue": value}
    got = csms.call(st, "SetVariables", {"setVariableData": [data]})
    assert got["setVariableResult"][0]["attributeStatus"] == "Accepted"


def test_a_reserved_evse_charges_only_its_driver_and_every_rejected_rule(csms, sims):
    sim = sims(csms.url, config=config())
    st, boot = accepted(csms, sim)
    _, nxt = statuses(csms, st, 1, boot.index)
    assert reserve(csms, st, 1, evse=2) == rejected("UnknownEvse")
    assert reserve(csms, st, 1, connectorType="cType2") == rejected("UnknownConnectorType")
    assert reserve(csms, st, 1, expiry_s=-60) == rejected("InvalidValue")
    set_variable(csms, st, "ReservationCtrlr", "NonEvseSpecific", "false")
    assert reserve(csms, st, 1, evse=None) == rejected("MissingParam")
    set_variable(csms, st, "ReservationCtrlr", "Enabled", "false")
    assert reserve(csms, st, 1) == rejected("NotEnabled")
    set_variable(csms, st, "ReservationCtrlr", "Enabled", "true")
    assert calls(st, "StatusNotification", nxt) == []  # nothing reserved yet
    assert reserve(csms, st, 1, connectorType="sType2") == {"status": "Accepted"}
    got, nxt = statuses(csms, st, 1, nxt)
    assert got == [status(1, "Reserved")]
    # Another driver: a remote start, then a card at the EV plugged in.
    other = {"idToken": {"idToken": "11223344", "type": "ISO14443"}, "remoteStartId": 1}
    assert csms.call(st, "RequestStartTransaction", dict(other, evseId=1)) == rejected("Reserved")
    assert csms.call(st, "RequestStartTransaction", other) == {"status": "Rejected"}
    plug_in(sim)
    ok(sim, "swipe", token="11223344")
    refused(sim)
    assert calls(st, "TransactionEvent") == [] and calls(st, "StatusNotification", nxt) == []
    # Its driver.
    ok(sim, "swipe", token="AABBCCDD")
    charging(sim)
    p = started(csms, st)
    assert p["reservationId"] == 1 and p["idToken"] == {"idToken": "AABBCCDD", "type": "ISO14443"}
    assert p["triggerReason"] == "Authorized"
    got, nxt = statuses(csms, st, 1, nxt)
    assert got == [status(1, "Occupied")]
    # Used up: there is nothing left to cancel, and nothing to tell the CSMS.
    assert csms.call(st, "CancelReservation", {"reservationId": 1}) == {"status": "Rejected"}
    assert calls(st, RSU) == []


def test_by_group_then_cancelled_then_removed_by_a_fault(csms, sims):
    csms.csms.handlers["Authorize"] = lambda station, p: {
        "idTokenInfo": {
            "status": "Accepted",
            "groupIdToken": {
                "idToken": "FLEET" if p["idToken"]["idToken"] == "CAFE0001" else "X",
                "type": "Central",
            },
        }
    }
    sim = sims(csms.url, config=config())
    st, boot = accepted(csms, sim)
    _, nxt = statuses(csms, st, 1, boot.index)
    group = {"idToken": "fleet", "type": "Central"}
    assert reserve(csms, st, 5, groupIdToken=group) == {"status": "Accepted"}
    got, nxt = statuses(csms, st, 1, nxt)
    assert got == [status(1, "Reserved")]
    plug_in(sim)
    ok(sim, "swipe", token="BEEF0002")  # of group X
    refused(sim)
    ok(sim, "swipe", token="CAFE0001")  # of the reservation's group
    charging(sim)
    assert started(csms, st)["reservationId"] == 5
    ok(sim, "swipe", token="CAFE0001")
    evse(sim, lambda e: e["tx_id"] is None)
    ok(sim, "plug_out", evse=1)
    got, nxt = statuses(csms, st, 2, nxt)
    assert got == [status(1, "Occupied"), status(1, "Available")]
    # Cancelled.
    assert reserve(csms, st, 6) == {"status": "Accepted"}
    assert csms.call(st, "CancelReservation", {"reservationId": 6}) == {"status": "Accepted"}
    got, nxt = statuses(csms, st, 2, nxt)
    assert got == [status(1, "Reserved"), status(1, "Available")]
    # Removed by a fault, which then refuses another.
    assert reserve(csms, st, 7) == {"status": "Accepted"}
    got, nxt = statuses(csms, st, 1, nxt)
    ok(sim, "raise_error", evse=1, error="rcd_trip")
    f = csms.wait_call(st, RSU)
    assert f.payload == {"reservationId": 7, "reservationUpdateStatus": "Removed"}
    got, nxt = statuses(csms, st, 1, nxt)
    assert got == [status(1, "Faulted")]
    assert reserve(csms, st, 8) == {"status": "Faulted"}
    assert [f.payload["reservationId"] for f in calls(st, RSU)] == [7]


def test_reservations_without_an_evse_on_two_evses(csms, sims):
    sim = sims(csms.url, config=config(), evses=2)
    st, boot = accepted(csms, sim)
    _, nxt = statuses(csms, st, 2, boot.index)
    assert reserve(csms, st, 1, evse=None, token="A1", kind="Central") == {"status": "Accepted"}
    time.sleep(0.5)
    assert calls(st, "StatusNotification", nxt) == []  # one of two free EVSEs is enough
    assert reserve(csms, st, 2, evse=None, token="A2", kind="Central") == {"status": "Accepted"}
    got, nxt = statuses(csms, st, 2, nxt)
    assert sorted(got, key=lambda p: p["evseId"]) == [status(1, "Reserved"), status(2, "Reserved")]
    assert reserve(csms, st, 3, evse=None) == {"status": "Occupied"}
    assert reserve(csms, st, 4, evse=2) == {"status": "Occupied"}
    # A2 starts remotely without an EVSE: the first one, plugged in, its reservation used.
    plug_in(sim, 1)
    req = {"idToken": {"idToken": "A2", "type": "Central"}, "remoteStartId": 9}
    assert csms.call(st, "RequestStartTransaction", req) == {"status": "Accepted"}
    charging(sim, 1)
    p = started(csms, st)
    assert p["reservationId"] == 2 and p["transactionInfo"]["remoteStartId"] == 9
    assert p["evse"] == {"id": 1, "connectorId": 1}
    got, nxt = statuses(csms, st, 1, nxt)
    assert got == [status(1, "Occupied")]
    # The other EVSE stays Reserved for A1: a stranger gets nothing there.
    plug_in(sim, 2)
    ok(sim, "swipe", token="STRANGER")
    refused(sim, 2)
    # EVSE 2 made Unavailable: EVSE 1 can still serve A1 once its session ends, so the
    # reservation stays; EVSE 1 faulted too, it has no EVSE left and is removed.
    req = {"operationalStatus": "Inoperative", "evse": {"id": 2}}
    assert csms.call(st, "ChangeAvailability", req) == {"status": "Accepted"}
    got, nxt = statuses(csms, st, 1, nxt)
    assert got == [status(2, "Unavailable")] and calls(st, RSU) == []
    ok(sim, "raise_error", evse=1, error="rcd_trip")
    f = csms.wait_call(st, RSU)
    assert f.payload == {"reservationId": 1, "reservationUpdateStatus": "Removed"}
    got, nxt = statuses(csms, st, 1, nxt)
    assert got == [status(1, "Faulted")]


def test_expiry_online_and_across_a_power_loss(csms, sims, tmp_path):
    state = tmp_path / "state"
    sim = sims(csms.url, config=config(), evses=2, state_dir=state)
    st, boot = accepted(csms, sim)
    _, nxt = statuses(csms, st, 2, boot.index)
    assert reserve(csms, st, 1, expiry_s=2) == {"status": "Accepted"}
    f = csms.wait_call(st, RSU, timeout=10)
    assert f.payload == {"reservationId": 1, "reservationUpdateStatus": "Expired"}
    got, nxt = statuses(csms, st, 2, nxt)
    assert got == [status(1, "Reserved"), status(1, "Available")]
    # Power lost with two reservations: one expires while the station is off, one survives.
    assert reserve(csms, st, 2, expiry_s=4) == {"status": "Accepted"}
    assert reserve(csms, st, 3, evse=2, expiry_s=600) == {"status": "Accepted"}
    statuses(csms, st, 2, nxt)
    sim.kill()
    time.sleep(4)
    sim = sims(csms.url, config=config(), evses=2, state_dir=state)
    st2 = reconnected(csms, st)
    f = csms.wait_call(st2, RSU, timeout=15)
    assert f.payload == {"reservationId": 2, "reservationUpdateStatus": "Expired"}
    s = sim.wait_status(lambda s: s["evse"][0]["connector_status"] == "Available")
    assert s["evse"][1]["connector_status"] == "Reserved"
    # What the CSMS heard last of each connector.
    time.sleep(1)
    last = {}
    for f in calls(st2, "StatusNotification"):
        last[f.payload["evseId"]] = f.payload["connectorStatus"]
    assert last == {1: "Available", 2: "Reserved"}
    assert [f.payload["reservationId"] for f in calls(st2, RSU)] == [2]
