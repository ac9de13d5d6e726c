"""Reservations (block H): firmware/blocks/reservation.py with the real transactions block
(the fakes of test_transactions.py: EVSEs, queue, session, fake time) and the real status
rule of the availability block."""

from types import SimpleNamespace

import pytest
from test_transactions import (  # noqa: F401 (make and tm: its fixtures, used here too)
    NOW,
    accepted,
    card,
    events,
    make,
    request,
    run,
    stop_loop,
    tm,
)

import rfc3339
from firmware.blocks.availability import Availability
from firmware.blocks.reservation import Reservations
from store import Store

RSU = "ReservationStatusUpdate"


def reserve_req(rid=1, evse=1, token="AABBCCDD", kind="ISO14443", expiry=NOW + 600, **kw):
    req = {
        "id": rid,
        "expiryDateTime": rfc3339.format(expiry),
        "idToken": {"idToken": token, "type": kind},
    }
    if evse is not None:
        req["evseId"] = evse
    req.update(kw)
    return req


@pytest.fixture
def station(make):  # noqa: F811
    def build(n=1, values=None, **kw):
        st = make(n=n, values=values, **kw)
        st.avail = SimpleNamespace(txs=st.txs)  # what Availability.status reads
        st.res = Reservations(
            st.router,
            st.queue,
            st.dm,
            st.store,
            st.clock,
            st.evses,
            st.txs,
            st.spawn,
        )
        stop_loop(st, "_expiry")  # the tests call _expire themselves
        return st

    return build


def reserve(st, **kw):
    return request(st, "ReserveNow", reserve_req(**kw))


def status(st, e):
    """The connector status the availability block reports for `e`."""
    return Availability.status(st.avail, e)


def updates(st):
    return [p for a, p, _ in st.queue.posted if a == RSU]


def started(st):
    return [p for p in events(st) if p["eventType"] == "Started"]


def test_a_reserved_evse_refuses_another_card_and_charges_the_reserved_one(station):
    st = station()
    e = st.evses[0]
    assert reserve(st) == {"status": "Accepted"}
    assert status(st, e) == "Reserved" and st.store.exists("reservations")
    e.plug()
    assert status(st, e) == "Reserved"  # another driver's EV plugged in changes nothing
    card(st, "11223344")
    assert not e.permitted and events(st) == []
    card(st, "AABBCCDD")
    assert e.permitted
    (p,) = started(st)
    assert p["reservationId"] == 1 and p["idToken"]["idToken"] == "AABBCCDD"
    assert status(st, e) == "Occupied" and not st.store.exists("reservations")
    assert updates(st) == []  # used, not expired or removed: nothing to tell


def test_a_card_of_the_reservations_group_uses_it(station):
    st = station()
    e = st.evses[0]
    assert reserve(st, groupIdToken={"idToken": "FLEET", "type": "Local"}) == {
        "status": "Accepted"
    }
    e.plug()
    card(st, "99999999", accepted(group="OTHER"))
    assert not e.permitted
    card(st, "55555555", accepted(group="fleet"))  # groups compare without case
    assert e.permitted and started(st)[0]["reservationId"] == 1


def test_a_plug_in_alone_opens_no_transaction_on_a_reserved_evse(station):
    st = station(values={"TxCtrlr/TxStartPoint": "EVConnected"})
    e = st.evses[0]
    reserve(st)
    e.plug()
    assert events(st) == []
    card(st, "AABBCCDD")
    (p,) = started(st)
    assert p["reservationId"] == 1 and p["triggerReason"] == "Authorized"


def test_every_rejected_rule(station):
    st = station(n=2)
    e1, e2 = st.evses
    rejected = {"status": "Rejected"}

    def why(code):
        return dict(rejected, statusInfo={"reasonCode": code})

    assert reserve(st, evse=3) == why("UnknownEvse")
    assert reserve(st, connectorType="cType2") == why("UnknownConnectorType")
    assert reserve(st, evse=None, connectorType="cCCS2") == why("UnknownConnectorType")
    assert reserve(st, expiry=NOW) == why("InvalidValue")
    st.dm.set("ReservationCtrlr/NonEvseSpecific", "false")
    assert reserve(st, evse=None) == why("MissingParam")
    st.dm.set("ReservationCtrlr/Enabled", "false")
    assert reserve(st) == why("NotEnabled")
    st.dm.set("ReservationCtrlr/Enabled", "true")
    e1.set(faults={"rcd"})
    assert reserve(st) == {"status": "Faulted"}
    e1.set(faults=set(), available=False)
    assert reserve(st) == {"status": "Unavailable"}
    e1.set(available=True)
    e1.plug()
    assert reserve(st) == {"status": "Occupied"}
    assert reserve(st, rid=2, evse=2) == {"status": "Accepted"}
    assert reserve(st, rid=3, evse=2) == {"status": "Occupied"}  # reserved by another
    assert [r[0] for r in st.res.items] == [2]


def test_the_same_id_replaces_its_reservation_and_a_refused_one_keeps_it(station):
    st = station(n=2)
    reserve(st, rid=5, evse=1)
    assert reserve(st, rid=5, evse=2) == {"status": "Accepted"}
    assert [(r[0], r[4]) for r in st.res.items] == [(5, 2)]
    st.evses[0].set(faults={"rcd"})
    assert reserve(st, rid=5, evse=1) == {"status": "Faulted"}
    assert [(r[0], r[4]) for r in st.res.items] == [(5, 2)]


def test_reservations_without_an_evse_hold_all_free_evses_once_as_many(station):
    st = station(n=2)
    e1, e2 = st.evses
    assert reserve(st, rid=1, evse=None, token="A1") == {"status": "Accepted"}
    assert [status(st, e) for e in st.evses] == ["Available", "Available"]
    assert reserve(st, rid=2, evse=None, token="A2") == {"status": "Accepted"}
    assert [status(st, e) for e in st.evses] == ["Reserved", "Reserved"]
    assert reserve(st, rid=3, evse=None, token="A3") == {"status": "Occupied"}
    assert reserve(st, rid=4, evse=2) == {"status": "Occupied"}  # the two need both
    e1.plug()
    card(st, "STRANGER")
    assert not e1.permitted
    card(st, "A2")
    assert e1.permitted and started(st)[0]["reservationId"] == 2
    assert [status(st, e) for e in st.evses] == ["Occupied", "Reserved"]
    e2.plug()
    card(st, "STRANGER")
    assert not e2.permitted
    assert st.res.check(2, {"idToken": "A1", "type": "ISO14443"}, None)[0] == 1


def test_a_stranger_may_take_an_evse_the_reservations_do_not_need(station):
    st = station(n=2)
    reserve(st, rid=1, evse=None, token="A1")
    st.evses[0].plug()
    card(st, "STRANGER")
    assert st.evses[0].permitted and "reservationId" not in started(st)[0]
    assert status(st, st.evses[1]) == "Reserved"  # the last free one is the reservation's


def test_expiry_tells_the_csms_through_the_queue(station, tm):  # noqa: F811
    st = station()
    reserve(st, expiry=NOW + 60)
    st.res._expire(st.clock.now())
    assert updates(st) == []
    tm.advance(s=60)
    st.res._expire(st.clock.now())
    assert updates(st) == [{"reservationId": 1, "reservationUpdateStatus": "Expired"}]
    assert status(st, st.evses[0]) == "Available" and not st.store.exists("reservations")
    assert st.evses[0].touched > 0


def test_reservations_survive_a_restart_and_a_damaged_document_is_dropped(station, tmp_path):
    st = station()
    reserve(st, rid=7, groupIdToken={"idToken": "G", "type": "Local"})
    doc = Store(str(tmp_path)).load("reservations")
    assert doc == [[7, NOW + 600, "ISO14443:aabbccdd", "g", 1, None]]
    st2 = station()
    assert st2.res.items == doc and status(st2, st2.evses[0]) == "Reserved"
    Store(str(tmp_path)).save("reservations", doc + [["x"], 5])
    st3 = station()
    assert st3.res.items == doc
    assert Store(str(tmp_path)).load("reservations") == doc


def test_cancel_known_and_unknown(station):
    st = station()
    reserve(st, rid=3)
    assert request(st, "CancelReservation", {"reservationId": 4}) == {"status": "Rejected"}
    assert request(st, "CancelReservation", {"reservationId": 3}) == {"status": "Accepted"}
    assert status(st, st.evses[0]) == "Available" and updates(st) == []


def test_a_fault_or_unavailable_evse_removes_its_reservation(station):
    st = station(n=2)
    reserve(st, rid=1, evse=1)
    reserve(st, rid=2, evse=2)
    st.evses[0].set(faults={"rcd"})
    st.evses[1].set(available=False)
    assert updates(st) == [
        {"reservationId": 1, "reservationUpdateStatus": "Removed"},
        {"reservationId": 2, "reservationUpdateStatus": "Removed"},
    ]
    assert st.res.items == []


def test_reservations_without_an_evse_beyond_the_usable_evses_are_removed_newest_first(station):
    st = station(n=2)
    reserve(st, rid=1, evse=None, token="A1")
    reserve(st, rid=2, evse=None, token="A2")
    st.evses[1].set(faults={"rcd"})
    assert updates(st) == [{"reservationId": 2, "reservationUpdateStatus": "Removed"}]
    assert [r[0] for r in st.res.items] == [1]
    assert status(st, st.evses[0]) == "Reserved"


def test_request_start_against_a_reservation(station):
    st = station(n=2)
    reserve(st, rid=1, evse=1, token="R1", kind="Central")
    req = {"idToken": {"idToken": "R2", "type": "Central"}, "remoteStartId": 1, "evseId": 1}
    assert request(st, "RequestStartTransaction", req) == {
        "status": "Rejected",
        "statusInfo": {"reasonCode": "Reserved"},
    }
    del req["evseId"]  # anywhere: the free EVSE 2
    assert request(st, "RequestStartTransaction", req) == {"status": "Accepted"}
    assert st.evses[1].permitted and not st.evses[0].permitted
    req = {"idToken": {"idToken": "R1", "type": "Central"}, "remoteStartId": 2, "evseId": 1}
    assert request(st, "RequestStartTransaction", req) == {"status": "Accepted"}
    assert st.evses[0].permitted
    st.evses[0].plug()
    run(st)
    p = [p for p in started(st) if p["evse"]["id"] == 1][0]
    assert p["reservationId"] == 1 and p["transactionInfo"]["remoteStartId"] == 2


def test_request_start_by_group_uses_the_reservation(station):
    st = station()
    reserve(st, token="R1", kind="Central", groupIdToken={"idToken": "G", "type": "Central"})
    req = {
        "idToken": {"idToken": "R9", "type": "Central"},
        "groupIdToken": {"idToken": "g", "type": "Central"},
        "remoteStartId": 3,
        "evseId": 1,
    }
    assert request(st, "RequestStartTransaction", req) == {"status": "Accepted"}
    assert st.evses[0].permitted and st.res.items == []


def test_the_button_cannot_take_a_reserved_evse(station):
    st = station()
    reserve(st)
    st.evses[0].plug()
    st.txs.button(st.evses[0])
    run(st)
    assert not st.evses[0].permitted
