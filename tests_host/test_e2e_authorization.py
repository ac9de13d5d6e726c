"""End to end: cards at the reader go through authorization (Authorize, the cache, the local
list, the offline rules) on the MicroPython unix port, against the development CSMS; charging
starts only for an Accepted token. ClearCache, SendLocalList and GetLocalListVersion on the
wire."""

import time

import pytest

from tools.harness import FAST, variables

pytestmark = pytest.mark.e2e

REFUSED_WAIT_S = 1.0  # long enough for a refused card to have shown any effect


def config(extra=None):
    values = dict(FAST)
    values.update(extra or {})
    return {"variables": variables(values)}


def accepted(csms, sim):
    st = csms.station(timeout=15)
    csms.wait_call(st, "BootNotification")
    sim.wait_status(lambda s: s["registration"] == "Accepted" and s["connected"])
    return st


def answers(csms, table, default="Invalid"):
    """The CSMS answers Authorize from {idToken: status} (others: `default`)."""

    def authorize(station, payload):
        return {"idTokenInfo": {"status": table.get(payload["idToken"]["idToken"], default)}}

    csms.csms.handlers["Authorize"] = authorize


def evse(sim, pred=lambda e: True, timeout=10):
    return sim.wait_status(lambda s: pred(s["evse"][0]), timeout)["evse"][0]


def plug_in(sim):
    assert sim.cmd("plug_in", evse=1) == {"ok": True}
    evse(sim, lambda e: e["cp"] == "B")
    assert sim.cmd("ev_state", evse=1, state="C") == {"ok": True}  # waits for the PWM


def swipe(sim, token, kind="ISO14443"):
    assert sim.cmd("swipe", token=token, type=kind) == {"ok": True}


def charges(sim):
    e = evse(sim, lambda e: e["contactor"] and e["power_w"] > 0)
    assert e["cp"] == "C"


def does_not_charge(sim):
    time.sleep(REFUSED_WAIT_S)
    e = evse(sim)
    assert not e["contactor"] and e["pwm_duty"] == 100.0 and e["cp"] == "B", e


def stop_and_unplug(sim, token):
    swipe(sim, token)  # its own card stops the session, without asking the CSMS
    evse(sim, lambda e: e["pwm_duty"] == 100.0)
    assert sim.cmd("ev_state", evse=1, state="B") == {"ok": True}
    assert sim.cmd("plug_out", evse=1) == {"ok": True}
    evse(sim, lambda e: e["cp"] == "A" and not e["contactor"])


def authorizes(st, start=0):
    return [
        f.payload
        for f in st.frames[start:]
        if f.direction == "in" and f.kind == "call" and f.action == "Authorize"
    ]


def calls_after(st, start, action):
    return [f for f in st.frames[start:] if f.direction == "in" and f.action == action]


def offline(sim):
    assert sim.cmd("ws_disconnect") == {"ok": True}
    sim.wait_status(lambda s: not s["connected"])


def online(csms, sim):
    assert sim.cmd("ws_connect") == {"ok": True}
    st = csms.station(timeout=15)
    sim.wait_status(lambda s: s["registration"] == "Accepted" and s["connected"], timeout=15)
    return st


def test_a_swipe_is_authorized_and_only_accepted_charges(csms, sims):
    answers(csms, {"GOOD1": "Accepted", "BLOCK1": "Blocked"})
    sim = sims(csms.url, config=config())
    st = accepted(csms, sim)
    plug_in(sim)
    for token in ("BAD1", "BLOCK1"):
        start = len(st.frames)
        swipe(sim, token)
        f = csms.wait_call(st, "Authorize", start=start)
        assert f.payload == {"idToken": {"idToken": token, "type": "ISO14443"}}
        does_not_charge(sim)
    start = len(st.frames)
    swipe(sim, "GOOD1", "KeyCode")
    f = csms.wait_call(st, "Authorize", start=start)
    assert f.payload == {"idToken": {"idToken": "GOOD1", "type": "KeyCode"}}
    charges(sim)
    # Refused tokens start nothing (TC_C_02/06); the accepted one starts the transaction.
    events = calls_after(st, 0, "TransactionEvent")
    assert events[0].index > f.index
    assert events[0].payload["eventType"] == "Started"
    assert events[0].payload["idToken"] == {"idToken": "GOOD1", "type": "KeyCode"}


def test_a_cached_token_charges_offline_and_after_a_reboot(csms, sims):
    answers(csms, {"GOOD1": "Accepted"})
    sim = sims(csms.url, config=config())
    st = accepted(csms, sim)
    plug_in(sim)
    swipe(sim, "GOOD1")
    charges(sim)
    stop_and_unplug(sim, "GOOD1")
    assert len(authorizes(st)) == 1
    # Offline: the cached Accepted answer decides (LocalAuthorizeOffline is true).
    offline(sim)
    plug_in(sim)
    swipe(sim, "GOOD1")
    charges(sim)
    stop_and_unplug(sim, "GOOD1")
    # Reboot: the cache is on flash.
    st = online(csms, sim)
    assert csms.call(st, "Reset", {"type": "Immediate"}) == {"status": "Accepted"}
    csms.run(st.wait_closed(10), 15)
    st = accepted(csms, sim)
    assert sim.cmd("status")["boot_count"] == 2
    offline(sim)
    plug_in(sim)
    swipe(sim, "GOOD1")
    charges(sim)
    assert authorizes(st) == []


def test_an_unknown_token_offline_needs_offline_tx_for_unknown_id(csms, sims):
    sim = sims(csms.url, config=config())
    accepted(csms, sim)
    offline(sim)
    plug_in(sim)
    swipe(sim, "NEW1")
    does_not_charge(sim)
    st = online(csms, sim)
    got = csms.call(
        st,
        "SetVariables",
        {
            "setVariableData": [
                {
                    "component": {"name": "AuthCtrlr"},
                    "variable": {"name": "OfflineTxForUnknownIdEnabled"},
                    "attributeValue": "true",
                }
            ]
        },
    )
    assert got["setVariableResult"][0]["attributeStatus"] == "Accepted"
    offline(sim)
    swipe(sim, "NEW2")
    charges(sim)


def test_clear_cache_forgets_tokens(csms, sims):
    answers(csms, {"GOOD1": "Accepted"})
    sim = sims(csms.url, config=config())
    st = accepted(csms, sim)
    plug_in(sim)
    swipe(sim, "GOOD1")
    charges(sim)
    stop_and_unplug(sim, "GOOD1")
    assert csms.call(st, "ClearCache", {}) == {"status": "Accepted"}
    offline(sim)
    plug_in(sim)
    swipe(sim, "GOOD1")
    does_not_charge(sim)
    st = online(csms, sim)
    disable = {
        "component": {"name": "AuthCacheCtrlr"},
        "variable": {"name": "Enabled"},
        "attributeValue": "false",
    }
    csms.call(st, "SetVariables", {"setVariableData": [disable]})
    assert csms.call(st, "ClearCache", {}) == {"status": "Rejected"}


def test_local_list_full_version_and_offline_use(csms, sims):
    sim = sims(csms.url, config=config())
    st = accepted(csms, sim)
    assert csms.call(st, "GetLocalListVersion", {}) == {"versionNumber": 0}
    req = {
        "versionNumber": 3,
        "updateType": "Full",
        "localAuthorizationList": [
            {
                "idToken": {"idToken": "LIST1", "type": "ISO14443"},
                "idTokenInfo": {"status": "Accepted"},
            },
            {
                "idToken": {"idToken": "LIST2", "type": "ISO14443"},
                "idTokenInfo": {"status": "Blocked"},
            },
        ],
    }
    assert csms.call(st, "SendLocalList", req) == {"status": "Accepted"}
    assert csms.call(st, "GetLocalListVersion", {}) == {"versionNumber": 3}
    diff = {"versionNumber": 3, "updateType": "Differential"}
    assert csms.call(st, "SendLocalList", diff) == {"status": "VersionMismatch"}
    offline(sim)
    plug_in(sim)
    swipe(sim, "LIST2")
    does_not_charge(sim)
    swipe(sim, "LIST1")
    charges(sim)
    assert authorizes(st) == []


def test_local_pre_authorize_uses_the_cache_without_authorize(csms, sims):
    answers(csms, {"GOOD1": "Accepted"})
    cfg = config({("AuthCtrlr", "LocalPreAuthorize"): "true"})
    sim = sims(csms.url, config=cfg)
    st = accepted(csms, sim)
    plug_in(sim)
    swipe(sim, "GOOD1")
    charges(sim)
    stop_and_unplug(sim, "GOOD1")
    assert len(authorizes(st)) == 1
    plug_in(sim)
    swipe(sim, "GOOD1")
    charges(sim)
    assert sim.cmd("status")["connected"] is True
    assert len(authorizes(st)) == 1  # online, but decided from the cache
