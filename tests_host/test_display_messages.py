"""Display messages (block O): firmware/blocks/display_messages.py with the real transactions
block (the fakes of test_transactions.py: EVSEs, session, fake time). Every request and every
NotifyDisplayMessages is validated against the official OCPP 2.0.1 schemas."""

import json
from types import SimpleNamespace

import pytest
from test_transactions import (  # noqa: F401 (make and tm: its fixtures, used here too)
    NOW,
    START,
    make,
    request,
    settle,
    tm,
)

import rfc3339
from firmware.blocks.display_messages import DisplayMessages
from ocpp_oracle import valid

NDM = "NotifyDisplayMessages"
DOC = "display_messages"


def build(st, display=True):
    st.display = SimpleNamespace(messages=None, driver=object()) if display else None
    st.msgs = DisplayMessages(
        st.router,
        st.session,
        st.dm,
        st.store,
        st.clock,
        st.txs,
        st.spawn,
        st.display,
    )
    return st.msgs


@pytest.fixture
def station(make):  # noqa: F811
    def make_station(display=True, values=None, n=1):
        st = make(n=n, values=dict({START: "EVConnected"}, **(values or {})))
        build(st, display)
        return st

    return make_station


def info(mid=1, priority="NormalCycle", content="Hello", fmt="UTF8", **kw):
    """A MessageInfoType; kw: state, startDateTime, endDateTime, transactionId, language."""
    m = {"id": mid, "priority": priority}
    lang = kw.pop("language", None)
    for k in ("state", "startDateTime", "endDateTime", "transactionId"):
        if k in kw:
            m[k] = kw.pop(k)
    assert not kw
    m["message"] = {"format": fmt, "content": content}
    if lang is not None:
        m["message"]["language"] = lang
    return m


def put(st, *args, **kw):
    return request(st, "SetDisplayMessage", {"message": info(*args, **kw)})["status"]


def get(st, rid=1, **filters):
    """(GetDisplayMessages status, the NotifyDisplayMessages payloads it brought)."""
    before = len(st.session.sent)
    resp = request(st, "GetDisplayMessages", dict(requestId=rid, **filters))
    return resp["status"], [p for a, p in st.session.sent[before:] if a == NDM]


def ids(st, state="Idle", now=None):
    return [r[0] for r in st.msgs.active(NOW if now is None else now, state)]


def at(t):
    return rfc3339.format(t)


def plug_in(st):
    """A transaction on EVSE 1 (TxStartPoint EVConnected): its id."""
    st.evses[0].plug()
    return st.txs.bays[0].tx_id


# -- SetDisplayMessage ---------------------------------------------------------------------


def test_every_set_answer_in_the_order_of_the_checks(station, tm):  # noqa: F811
    st = station(display=False)
    assert st.display is None
    assert request(st, "SetDisplayMessage", {"message": info(fmt="HTML")}) == {
        "status": "Rejected",
        "statusInfo": {"reasonCode": "UnsupportedRequest"},
    }
    st = station()
    assert st.display.messages is st.msgs  # the display model asks it
    st.dm.set("DisplayMessageCtrlr/Enabled", "false")
    assert request(st, "SetDisplayMessage", {"message": info(fmt="HTML")}) == {
        "status": "Rejected",
        "statusInfo": {"reasonCode": "NotEnabled"},
    }
    st.dm.set("DisplayMessageCtrlr/Enabled", "true")
    # SupportedPriorities is ReadOnly: a board's config may narrow it.
    st.dm.set("DisplayMessageCtrlr/SupportedPriorities", "NormalCycle")
    assert put(st, priority="InFront", fmt="HTML") == "NotSupportedPriority"
    st.dm.set("DisplayMessageCtrlr/SupportedPriorities", "AlwaysFront,InFront,NormalCycle")
    assert put(st, fmt="HTML", state="Charging", transactionId="nope") == (
        "NotSupportedMessageFormat"
    )
    # Every state of the schema is supported: only one the schema refuses is not.
    handler = st.router.handlers["SetDisplayMessage"][0]
    bad = {"message": dict(info(transactionId="nope"), state="Sleeping")}
    assert handler(bad) == {"status": "NotSupportedState"}
    assert put(st, state="Faulted", transactionId="nope") == "UnknownTransaction"
    for end in (NOW, NOW - 5):  # over before it begins: it could never show
        assert request(st, "SetDisplayMessage", {"message": info(endDateTime=at(end))}) == {
            "status": "Rejected",
            "statusInfo": {"reasonCode": "InvalidValue"},
        }
    window = info(startDateTime=at(NOW + 60), endDateTime=at(NOW + 60))
    assert request(st, "SetDisplayMessage", {"message": window})["status"] == "Rejected"
    for i in range(1, 9):  # the capacity: DisplayMessages maxLimit
        assert put(st, i, content="m%d" % i) == "Accepted"
    assert st.dm.get("DisplayMessageCtrlr/DisplayMessages") == "8"
    assert request(st, "SetDisplayMessage", {"message": info(9)}) == {
        "status": "Rejected",
        "statusInfo": {"reasonCode": "OutOfStorage"},
    }
    assert put(st, 3, "InFront", "three again") == "Accepted"  # a replacement needs no room
    assert st.dm.get("DisplayMessageCtrlr/DisplayMessages") == "8"
    assert ids(st) == [3, 1, 2, 4, 5, 6, 7, 8]
    assert [r for r in st.msgs.active(NOW, "Idle") if r[0] == 3] == [
        (3, "InFront", "UTF8", "three again")
    ]


def test_an_ongoing_transaction_is_known(station, tm):  # noqa: F811
    st = station()
    tx = plug_in(st)
    assert tx and put(st, transactionId=tx) == "Accepted"


def test_messages_persist_and_load_again(station, tm):  # noqa: F811
    st = station()
    assert not st.store.exists(DOC)
    assert put(st, 1, "InFront", "Welcome", language="en", state="Idle") == "Accepted"
    assert put(st, 2, content="https://example.com/tariff", fmt="URI") == "Accepted"
    put(st, 1, "NormalCycle", "Willkommen", language="de")  # replaced, now the newest
    assert st.store.load(DOC) == [
        [2, "NormalCycle", "URI", "https://example.com/tariff", None, None, None, None, None],
        [1, "NormalCycle", "UTF8", "Willkommen", None, None, None, None, "de"],
    ]
    old = st.msgs
    again = build(st)  # a reboot: the same store
    assert again.items == old.items and st.display.messages is again
    assert ids(st) == [2, 1]


def test_a_damaged_document_loses_only_its_damaged_entries(station, tm):  # noqa: F811
    st = station()
    good = [4, "AlwaysFront", "ASCII", "Closed", "Idle", NOW, NOW + 60, None, "en"]
    st.store.save(
        DOC,
        [
            good,
            [5, "Sideways", "UTF8", "x", None, None, None, None, None],
            [6, "InFront", "UTF8", "x"],
            "junk",
        ],
    )
    assert build(st).items == [good]
    assert st.store.load(DOC) == [good]  # rewritten
    st.store.save(DOC, {"not": "a list"})
    assert build(st).items == [] and not st.store.exists(DOC)


# -- GetDisplayMessages --------------------------------------------------------------------


def test_get_rebuilds_each_message_as_set_and_filters(station, tm):  # noqa: F811
    st = station()
    tx = plug_in(st)
    assert get(st) == ("Unknown", [])
    full = info(
        7,
        "AlwaysFront",
        "Pay here",
        state="Charging",
        startDateTime=at(NOW - 60),
        endDateTime=at(NOW + 3600),
        transactionId=tx,
        language="en",
    )
    assert request(st, "SetDisplayMessage", {"message": full})["status"] == "Accepted"
    put(st, 8, "InFront", "Idle text", state="Idle")
    put(st, 9)
    assert get(st, 3) == (
        "Accepted",
        [
            {
                "requestId": 3,
                "messageInfo": [full, info(8, "InFront", "Idle text", state="Idle"), info(9)],
                "tbc": False,
            }
        ],
    )
    assert get(st, 4, id=[9, 7, 99]) == (
        "Accepted",
        [{"requestId": 4, "messageInfo": [full, info(9)], "tbc": False}],
    )
    assert get(st, 5, priority="InFront")[1][0]["messageInfo"] == [
        info(8, "InFront", "Idle text", state="Idle")
    ]
    assert get(st, 6, state="Charging")[1][0]["messageInfo"] == [full]
    assert get(st, 7, state="Charging", priority="NormalCycle") == ("Unknown", [])
    assert get(st, 8, id=[99]) == ("Unknown", [])


def test_get_sends_several_messages_in_parts(station, tm):  # noqa: F811
    st = station()
    for i in range(1, 7):
        put(st, i, content="%d" % i * 10)
    put(st, 7, content="x" * 500)
    put(st, 8, content="y" * 12)
    status, parts = get(st, 42)
    assert status == "Accepted"
    # At most 4 a part, and beyond the first at most 512 characters of contents.
    assert [[m["id"] for m in p["messageInfo"]] for p in parts] == [[1, 2, 3, 4], [5, 6], [7, 8]]
    assert [p["tbc"] for p in parts] == [True, True, False]
    assert {p["requestId"] for p in parts} == {42}
    assert parts[1]["messageInfo"] == [info(5, content="5" * 10), info(6, content="6" * 10)]
    for p in parts:
        assert len(json.dumps(valid(NDM + "Request", p))) < 4096


# -- ClearDisplayMessage -------------------------------------------------------------------


def test_clear_a_known_message_and_an_unknown_one(station, tm):  # noqa: F811
    st = station()
    put(st, 1)
    put(st, 2)
    assert request(st, "ClearDisplayMessage", {"id": 1}) == {"status": "Accepted"}
    assert st.store.load(DOC)[0][0] == 2 and ids(st) == [2]
    assert request(st, "ClearDisplayMessage", {"id": 1}) == {"status": "Unknown"}
    assert request(st, "ClearDisplayMessage", {"id": 2}) == {"status": "Accepted"}
    assert not st.store.exists(DOC)  # the block will not load at the next boot
    assert st.dm.get("DisplayMessageCtrlr/DisplayMessages") == "0"


# -- what the display shows ----------------------------------------------------------------


def test_active_order_always_front_then_in_front_then_normal_cycle(station, tm):  # noqa: F811
    st = station()
    put(st, 1, "NormalCycle", "n1")
    put(st, 2, "InFront", "f2")
    put(st, 3, "NormalCycle", "n3")
    put(st, 4, "InFront", "f4")
    assert st.msgs.active(NOW, "Idle") == [
        (2, "InFront", "UTF8", "f2"),
        (4, "InFront", "UTF8", "f4"),
        (1, "NormalCycle", "UTF8", "n1"),
        (3, "NormalCycle", "UTF8", "n3"),
    ]
    put(st, 5, "AlwaysFront", "a5", fmt="ASCII")
    assert st.msgs.active(NOW, "Idle") == [(5, "AlwaysFront", "ASCII", "a5")]
    put(st, 6, "AlwaysFront", "a6")
    assert ids(st) == [6]  # the newest AlwaysFront alone
    put(st, 5, "AlwaysFront", "a5 again")
    assert ids(st) == [5]
    request(st, "ClearDisplayMessage", {"id": 5})
    assert ids(st) == [6]
    request(st, "ClearDisplayMessage", {"id": 6})
    assert ids(st) == [2, 4, 1, 3]
    st.dm.set("DisplayMessageCtrlr/Enabled", "false")
    assert ids(st) == []


def test_active_between_start_and_end_then_gone(station, tm):  # noqa: F811
    st = station()
    put(st, 1, startDateTime=at(NOW + 100), endDateTime=at(NOW + 200))
    put(st, 2, "AlwaysFront", startDateTime=at(NOW + 150))
    put(st, 3, endDateTime=at(NOW + 50))
    assert ids(st) == [3]
    assert ids(st, now=NOW + 50) == []  # 3 is over, 1 not yet begun
    assert [m[0] for m in st.msgs.items] == [1, 2]  # 3 is gone for good
    assert ids(st, now=NOW + 100) == [1]
    assert ids(st, now=NOW + 150) == [2]
    tm.advance(s=200)
    assert get(st)[1][0]["messageInfo"] == [info(2, "AlwaysFront", startDateTime=at(NOW + 150))]
    assert st.store.load(DOC)[0][0] == 2


def test_active_only_in_the_messages_state(station, tm):  # noqa: F811
    st = station()
    put(st, 1, state="Charging")
    put(st, 2, state="Faulted")
    put(st, 3)
    assert ids(st, "Charging") == [1, 3]
    assert ids(st, "Faulted") == [2, 3]
    assert ids(st, "Idle") == [3]
    assert ids(st, "Unavailable") == [3]


def test_a_transactions_messages_end_with_it(station, tm):  # noqa: F811
    st = station(values={"TxCtrlr/TxStopPoint": "EVConnected"})
    tx = plug_in(st)
    put(st, 1, "InFront", "Charging for you", transactionId=tx)
    put(st, 2)
    assert ids(st, "Charging") == [1, 2]
    assert len(st.store.load(DOC)) == 2
    st.evses[0].unplug()
    settle(st, tm)
    assert st.txs.bays[0].tx_id is None
    assert ids(st, "Idle") == [2]
    assert [m[0] for m in st.store.load(DOC)] == [2]
    assert put(st, 3, transactionId=tx) == "UnknownTransaction"


def test_the_count_drops_the_messages_of_an_ended_transaction(station, tm):  # noqa: F811
    st = station(values={"TxCtrlr/TxStopPoint": "EVConnected"})
    tx = plug_in(st)
    put(st, 1, transactionId=tx)
    assert st.dm.get("DisplayMessageCtrlr/DisplayMessages") == "1"
    st.evses[0].unplug()
    settle(st, tm)
    assert st.dm.get("DisplayMessageCtrlr/DisplayMessages") == "0"
    assert not st.store.exists(DOC)


def test_language(station, tm):  # noqa: F811
    st = station()
    put(st, 1, content="Hello", language="en")
    put(st, 2, content="Hallo", language="de-CH")
    put(st, 3, content="12:00")
    assert ids(st) == [1, 2, 3]  # no Language: every message
    st.dm.set("DisplayMessageCtrlr/Language", "de")
    assert ids(st) == [2, 3]
    st.dm.set("DisplayMessageCtrlr/Language", "EN-gb")
    assert ids(st) == [1, 3]


def test_the_block_registers_its_three_actions(station):
    st = station()
    for action in ("SetDisplayMessage", "GetDisplayMessages", "ClearDisplayMessage"):
        assert type(st.router.handlers[action]) is tuple
