"""End to end: display messages (block O) on the MicroPython unix port, against the
development CSMS: what the virtual wallbox's display shows (`status` "display"), every
SetDisplayMessage answer the station can give, priorities and replacement, start and end
times, messages bound to a state or a transaction, a URI as "QR:", GetDisplayMessages in
parts, ClearDisplayMessage, and messages kept across a power loss, with the exact messages on
the wire."""

import time
from datetime import datetime, timedelta, timezone

import pytest
from test_e2e_availability import accepted
from test_e2e_transactions import reconnected

from tools.harness import FAST, variables

pytestmark = pytest.mark.e2e

READY = ["Ready", "Plug in or", "present a card"]


def at(seconds):
    t = datetime.now(timezone.utc) + timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def msg(mid, priority, content, fmt="UTF8", **kw):
    m = {"id": mid, "priority": priority, "message": {"format": fmt, "content": content}}
    m.update(kw)
    return m


def put(csms, st, m):
    return csms.call(st, "SetDisplayMessage", {"message": m})


def shows(sim, lines, timeout=10):
    return sim.wait_status(lambda s: s["display"] == lines, timeout)


def ok(sim, name, **kw):
    assert sim.cmd(name, **kw) == {"ok": True}


ACCEPTED = {"status": "Accepted"}


def test_answers_priorities_replacement_uri_parts_and_clear(csms, sims):
    sim = sims(csms.url, config={"variables": variables(FAST)})
    st, _ = accepted(csms, sim)
    shows(sim, READY)
    got = csms.call(
        st,
        "GetVariables",
        {
            "getVariableData": [
                {"component": {"name": "DisplayMessageCtrlr"}, "variable": {"name": "Available"}}
            ]
        },
    )
    assert got["getVariableResult"][0]["attributeValue"] == "true"
    # NormalCycle takes turns with the station's own screen.
    assert put(csms, st, msg(1, "NormalCycle", "Welcome to the garage")) == ACCEPTED
    shows(sim, ["Welcome to the", "garage"], timeout=15)
    shows(sim, READY, timeout=15)
    # InFront stays in front of the cycle; AlwaysFront before it, the newest one alone.
    assert put(csms, st, msg(2, "InFront", "Front message")) == ACCEPTED
    shows(sim, ["Front message"])
    assert put(csms, st, msg(3, "AlwaysFront", "Closed today")) == ACCEPTED
    shows(sim, ["Closed today"])
    assert put(csms, st, msg(4, "AlwaysFront", "Open till 8")) == ACCEPTED
    shows(sim, ["Open till 8"])
    assert put(csms, st, msg(4, "AlwaysFront", "Open till 9")) == ACCEPTED  # same id: replaced
    shows(sim, ["Open till 9"])
    # The answers the station gives: format, transaction, disabled, full.
    assert put(csms, st, msg(9, "NormalCycle", "<b>x</b>", "HTML")) == {
        "status": "NotSupportedMessageFormat"
    }
    assert put(csms, st, msg(9, "NormalCycle", "x", transactionId="nope")) == {
        "status": "UnknownTransaction"
    }
    assert put(csms, st, msg(9, "NormalCycle", "x", endDateTime=at(-60))) == {
        "status": "Rejected",
        "statusInfo": {"reasonCode": "InvalidValue"},
    }
    for i in range(5, 9):
        assert put(csms, st, msg(i, "NormalCycle", "Message %d" % i)) == ACCEPTED
    assert put(csms, st, msg(9, "NormalCycle", "x")) == {
        "status": "Rejected",
        "statusInfo": {"reasonCode": "OutOfStorage"},
    }
    data = {
        "setVariableData": [
            {
                "component": {"name": "DisplayMessageCtrlr"},
                "variable": {"name": "Enabled"},
                "attributeValue": "false",
            }
        ]
    }
    assert csms.call(st, "SetVariables", data)["setVariableResult"][0]["attributeStatus"] == (
        "Accepted"
    )
    assert put(csms, st, msg(8, "NormalCycle", "x")) == {
        "status": "Rejected",
        "statusInfo": {"reasonCode": "NotEnabled"},
    }
    data["setVariableData"][0]["attributeValue"] = "true"
    csms.call(st, "SetVariables", data)
    # GetDisplayMessages: all eight in two parts of four, as set.
    start = len(st.frames)
    assert csms.call(st, "GetDisplayMessages", {"requestId": 7}) == ACCEPTED
    parts = []
    for _ in range(2):
        f = csms.wait_call(st, "NotifyDisplayMessages", start=start)
        start = f.index + 1
        parts.append(f.payload)
    assert [(p["requestId"], p.get("tbc", False), len(p["messageInfo"])) for p in parts] == [
        (7, True, 4),
        (7, False, 4),
    ]
    infos = parts[0]["messageInfo"] + parts[1]["messageInfo"]
    assert sorted(infos, key=lambda m: m["id"])[:4] == [
        msg(1, "NormalCycle", "Welcome to the garage"),
        msg(2, "InFront", "Front message"),
        msg(3, "AlwaysFront", "Closed today"),
        msg(4, "AlwaysFront", "Open till 9"),
    ]
    req = {"requestId": 8, "priority": "InFront"}
    assert csms.call(st, "GetDisplayMessages", req) == ACCEPTED
    f = csms.wait_call(st, "NotifyDisplayMessages", start=start)
    assert f.payload == {
        "requestId": 8,
        "tbc": False,
        "messageInfo": [msg(2, "InFront", "Front message")],
    }
    assert csms.call(st, "GetDisplayMessages", {"requestId": 9, "id": [42]}) == {
        "status": "Unknown"
    }
    # Cleared: the AlwaysFront before it shows again; unknown ids are Unknown.
    assert csms.call(st, "ClearDisplayMessage", {"id": 4}) == ACCEPTED
    shows(sim, ["Closed today"])
    assert csms.call(st, "ClearDisplayMessage", {"id": 4}) == {"status": "Unknown"}
    # A URI: a QR code on a pixel display, its line on the sim's text one.
    assert put(csms, st, msg(4, "AlwaysFront", "https://pay.example/cs1", "URI")) == ACCEPTED
    shows(sim, ["QR:https://pay.example/cs1"])


def test_times_states_transactions_and_a_power_loss(csms, sims, tmp_path):
    state = tmp_path / "state"
    cfg = {"variables": variables(FAST)}
    sim = sims(csms.url, config=cfg, state_dir=state)
    st, _ = accepted(csms, sim)
    shows(sim, READY)
    # From 3 s on, until 6 s.
    assert put(csms, st, msg(1, "AlwaysFront", "Soon", startDateTime=at(3), endDateTime=at(6)))
    time.sleep(1)
    assert sim.cmd("status")["display"] == READY
    shows(sim, ["Soon"])
    shows(sim, READY)
    # Only while charging; and one for the running transaction, gone with it.
    assert put(csms, st, msg(2, "AlwaysFront", "Enjoy", state="Charging")) == ACCEPTED
    time.sleep(1.5)
    assert sim.cmd("status")["display"] == READY
    ok(sim, "plug_in", evse=1)
    ok(sim, "ev_state", evse=1, state="C")
    ok(sim, "swipe", token="AABBCCDD")
    s = shows(sim, ["Enjoy"])
    tx = s["evse"][0]["tx_id"]
    assert put(csms, st, msg(3, "AlwaysFront", "Thanks", transactionId=tx)) == ACCEPTED
    shows(sim, ["Thanks"])
    ok(sim, "swipe", token="AABBCCDD")
    s = sim.wait_status(lambda s: s["display"][:1] == ["Finished"])
    assert csms.call(st, "GetDisplayMessages", {"requestId": 1, "id": [3]}) == {
        "status": "Unknown"
    }
    ok(sim, "plug_out", evse=1)
    # Kept across a power loss.
    assert put(csms, st, msg(4, "InFront", "Still here")) == ACCEPTED
    shows(sim, ["Still here"])
    sim.kill()
    sim = sims(csms.url, config=cfg, state_dir=state)
    st = reconnected(csms, st)
    shows(sim, ["Still here"], timeout=15)
    assert csms.call(st, "GetDisplayMessages", {"requestId": 2, "id": [4, 2]}) == ACCEPTED
    f = csms.wait_call(st, "NotifyDisplayMessages")
    assert sorted(f.payload["messageInfo"], key=lambda m: m["id"]) == [
        msg(2, "AlwaysFront", "Enjoy", state="Charging"),
        msg(4, "InFront", "Still here"),
    ]


def test_a_wallbox_without_a_display(csms, sims):
    cfg = {"variables": variables(FAST), "sim": {"display": False}}
    sim = sims(csms.url, config=cfg)
    st, _ = accepted(csms, sim)
    names = [
        ("DisplayMessageCtrlr", "Available"),
        ("TariffCostCtrlr", "Available", "Tariff"),
        ("TariffCostCtrlr", "Available", "Cost"),
    ]
    req = []
    for comp, var, *inst in names:
        v = {"name": var}
        if inst:
            v["instance"] = inst[0]
        req.append({"component": {"name": comp}, "variable": v})
    got = csms.call(st, "GetVariables", {"getVariableData": req})
    assert [r["attributeValue"] for r in got["getVariableResult"]] == ["false"] * 3
    assert put(csms, st, msg(1, "NormalCycle", "Hi")) == {
        "status": "Rejected",
        "statusInfo": {"reasonCode": "UnsupportedRequest"},
    }
    assert csms.call(st, "GetDisplayMessages", {"requestId": 1}) == {"status": "Unknown"}
    # No display to show costs on: CostUpdated is not supported here.
    start = len(st.frames)
    with pytest.raises(Exception, match="NotSupported"):
        csms.call(st, "CostUpdated", {"totalCost": 1.5, "transactionId": "T"})
    (err,) = [f.msg for f in st.frames[start:] if f.kind == "error"]
    assert err[2] == "NotSupported" and err[4] == {}
    assert sim.cmd("status")["display"] == []
