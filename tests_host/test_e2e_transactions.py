"""End to end: transactions (block E), remote start and stop (F), meter values in transactions
and clock-aligned (J), on the MicroPython unix port against the development CSMS, driven
through the control channel. Every TransactionEvent is compared whole: the fields that vary
from run to run (timestamps, the transaction id, meter readings) are checked, then replaced by
placeholders."""

import copy
import re
import time

import pytest

from tools.harness import FAST, variables

pytestmark = pytest.mark.e2e

TX = "TransactionEvent"
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
QUIET = {  # no periodic or clock-aligned values unless a test asks for them
    ("SampledDataCtrlr", "TxUpdatedInterval"): "0",
    ("SampledDataCtrlr", "TxEndedInterval"): "0",
    ("AlignedDataCtrlr", "Interval"): "0",
    ("AlignedDataCtrlr", "TxEndedInterval"): "0",
}
GOOD = {"idToken": "GOOD", "type": "ISO14443"}
EVSE1 = {"id": 1, "connectorId": 1}


def config(extra=None):
    values = dict(FAST)
    values.update(QUIET)
    for (comp, var), value in (extra or {}).items():
        values[(comp, var)] = value
    return {"variables": variables(values)}


def accepted(csms, sim):
    st = csms.station(timeout=15)
    csms.wait_call(st, "BootNotification")
    sim.wait_status(lambda s: s["registration"] == "Accepted" and s["connected"])
    return st


def reconnected(csms, old, timeout=20):
    """The station's next connection after `old` (which may not have noticed its end yet)."""
    deadline = time.monotonic() + timeout
    while True:
        st = csms.csms.stations.get("CS1")
        if st is not None and st is not old and st.connected:
            return st
        if time.monotonic() > deadline:
            raise AssertionError("no new connection")
        time.sleep(0.05)


def evse(sim, pred=lambda e: True, timeout=15, n=1):
    return sim.wait_status(lambda s: pred(s["evse"][n - 1]), timeout)["evse"][n - 1]


def ok(sim, name, **kw):
    assert sim.cmd(name, **kw) == {"ok": True}


def plug_in(sim, state="C"):
    ok(sim, "plug_in", evse=1)
    evse(sim, lambda e: e["cp"] == "B")
    if state:
        ok(sim, "ev_state", evse=1, state=state)  # the EV takes it up once the PWM is on


def charging(sim):
    return evse(sim, lambda e: e["contactor"] and e["power_w"] > 0)


def unplug(sim):
    ok(sim, "ev_state", evse=1, state="B")
    evse(sim, lambda e: e["cp"] == "B" and not e["contactor"])
    ok(sim, "plug_out", evse=1)
    evse(sim, lambda e: e["cp"] == "A")


def tx_frames(st, start=0):
    return [
        f for f in st.frames[start:] if f.direction == "in" and f.kind == "call" and f.action == TX
    ]


def events(st, start=0):
    return [f.payload for f in tx_frames(st, start)]


def wait_events(csms, st, n, start=0, timeout=20):
    """The first `n` TransactionEvents from frame `start` on, once they are all there."""
    deadline = time.monotonic() + timeout
    while len(events(st, start)) < n:
        if time.monotonic() > deadline:
            raise AssertionError(
                "%d events, wanted %d: %r" % (len(events(st, start)), n, events(st, start))
            )
        time.sleep(0.1)
    return events(st, start)[:n]


def wait_ended(csms, st, start=0, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        evs = events(st, start)
        for i, p in enumerate(evs):
            if p["eventType"] == "Ended":
                return evs[: i + 1]
        if time.monotonic() > deadline:
            raise AssertionError("no Ended: %r" % evs)
        time.sleep(0.1)


def shape(p, tx_id=None):
    """`p` with its varying parts checked and replaced: timestamps by "T", the transaction id
    by "TX" (equal to `tx_id` when given), meterValue by the list of (context, measurands).
    `offline` is always there (tests that care look at it) and removed."""
    p = copy.deepcopy(p)
    assert ISO.match(p.pop("timestamp")), p
    assert type(p.pop("offline")) is bool, p
    info = p["transactionInfo"]
    assert re.match(r"^[0-9a-f]{32}$", info["transactionId"]), info
    if tx_id is not None:
        assert info["transactionId"] == tx_id
    info["transactionId"] = "TX"
    if "meterValue" in p:
        p["meterValue"] = [meter_shape(mv) for mv in p["meterValue"]]
    return p


def meter_shape(mv):
    assert ISO.match(mv["timestamp"])
    contexts = {sv.get("context", "Sample.Periodic") for sv in mv["sampledValue"]}
    assert len(contexts) == 1, mv
    names = []
    for sv in mv["sampledValue"]:
        assert isinstance(sv["value"], (int, float))
        name = sv.get("measurand", "Energy.Active.Import.Register")
        names.append(name + ("@" + sv["phase"] if "phase" in sv else ""))
    return (contexts.pop(), tuple(names))


def energy(mv):
    for sv in mv["sampledValue"]:
        if sv.get("measurand", "Energy.Active.Import.Register") == "Energy.Active.Import.Register":
            assert sv["unitOfMeasure"] == {"unit": "Wh"}
            return sv["value"]
    raise AssertionError("no energy register in %r" % mv)


def seq_ok(evs):
    """One transaction: seqNo 0, 1, 2, ... in order, exactly one Started first, one Ended last."""
    assert [p["seqNo"] for p in evs] == list(range(len(evs)))
    kinds = [p["eventType"] for p in evs]
    assert kinds[0] == "Started" and kinds.count("Started") == 1
    assert kinds[-1] == "Ended" and kinds.count("Ended") == 1
    assert len({p["transactionInfo"]["transactionId"] for p in evs}) == 1


BEGIN = ("Transaction.Begin", ("Energy.Active.Import.Register",))
END = ("Transaction.End", ("Energy.Active.Import.Register",))


def started(trigger, **fields):
    """The shape of a Started event at plug-in or authorization (EV connected, no energy)."""
    p = {
        "eventType": "Started",
        "triggerReason": trigger,
        "seqNo": 0,
        "transactionInfo": {"transactionId": "TX", "chargingState": "EVConnected"},
        "evse": EVSE1,
        "meterValue": [BEGIN],
    }
    p.update(fields)
    return p


def changed(seq, state):
    """The shape of an Updated ChargingStateChanged event."""
    return {
        "eventType": "Updated",
        "triggerReason": "ChargingStateChanged",
        "seqNo": seq,
        "transactionInfo": {"transactionId": "TX", "chargingState": state},
    }


def ended(seq, trigger, state, reason, **fields):
    p = {
        "eventType": "Ended",
        "triggerReason": trigger,
        "seqNo": seq,
        "transactionInfo": {
            "transactionId": "TX",
            "chargingState": state,
            "stoppedReason": reason,
        },
        "meterValue": [BEGIN, END],
    }
    p.update(fields)
    return p


# -- local authorization: card then plug, plug then card (E03, E04, E06, E15) ---------------


def test_plug_in_then_card_then_the_same_card_stops(csms, sims):
    sim = sims(csms.url, config=config())
    st = accepted(csms, sim)
    plug_in(sim)
    assert evse(sim)["tx_id"] is None
    ok(sim, "swipe", token="GOOD")
    e = charging(sim)
    tx_id = e["tx_id"]
    ok(sim, "swipe", token="good")  # its own card (idToken is case-insensitive): no Authorize
    evs = wait_ended(csms, st)
    assert [shape(p, tx_id) for p in evs] == [
        started("Authorized", idToken=GOOD),
        changed(1, "SuspendedEV"),
        changed(2, "Charging"),
        ended(
            3,
            "StopAuthorized",
            "EVConnected",
            "Local",
            idToken={"idToken": "good", "type": "ISO14443"},
        ),
    ]
    assert [p["offline"] for p in evs] == [False] * 4  # sent as they happened, online
    # Energy was cut before Ended: its end value is final, and what the meter counted.
    end = evse(sim, lambda e: not e["contactor"] and e["tx_id"] is None)
    billed = energy(evs[3]["meterValue"][1]) - energy(evs[3]["meterValue"][0])
    assert billed > 0
    assert abs(evs[3]["meterValue"][1]["sampledValue"][0]["value"] - end["energy_wh"]) < 0.5
    authorizes = [f for f in st.frames if f.action == "Authorize" and f.kind == "call"]
    assert len(authorizes) == 1
    unplug(sim)
    time.sleep(0.5)
    assert len(events(st)) == 4  # nothing after Ended


def test_card_then_plug_in_starts_at_the_plug_and_unplug_ends(csms, sims):
    sim = sims(csms.url, config=config())
    st = accepted(csms, sim)
    ok(sim, "swipe", token="GOOD")
    time.sleep(0.5)
    assert events(st) == []  # PowerPathClosed: authorized, but no EV yet
    plug_in(sim)
    tx_id = charging(sim)["tx_id"]
    unplug(sim)
    evs = wait_ended(csms, st)
    assert [shape(p, tx_id) for p in evs] == [
        started("CablePluggedIn", idToken=GOOD),
        changed(1, "SuspendedEV"),
        changed(2, "Charging"),
        changed(3, "SuspendedEV"),
        ended(4, "EVCommunicationLost", "Idle", "EVDisconnected"),
    ]


def test_invalid_token_starts_nothing_and_ev_connection_timeout_ends_a_wait(csms, sims):
    csms.csms.handlers["Authorize"] = lambda station, p: {
        "idTokenInfo": {"status": "Accepted" if p["idToken"]["idToken"] == "GOOD" else "Invalid"}
    }
    sim = sims(csms.url, config=config({("TxCtrlr", "EVConnectionTimeOut"): "10"}))
    st = accepted(csms, sim)
    plug_in(sim)
    ok(sim, "swipe", token="BAD")
    time.sleep(1.0)
    e = evse(sim)
    assert e["tx_id"] is None and not e["contactor"] and e["pwm_duty"] == 100.0
    unplug(sim)
    # Authorized ahead of the plug, and no EV comes: the authorization lapses after 10 s.
    ok(sim, "swipe", token="GOOD")
    time.sleep(11.0)
    plug_in(sim)
    time.sleep(1.0)
    e = evse(sim)
    assert e["tx_id"] is None and not e["contactor"]
    assert events(st) == []


def test_start_at_ev_connected_then_authorized_then_remote_stop(csms, sims):
    cfg = config({("TxCtrlr", "TxStartPoint"): "EVConnected"})
    sim = sims(csms.url, config=cfg)
    st = accepted(csms, sim)
    plug_in(sim, state=None)
    tx_id = evse(sim, lambda e: e["tx_id"] is not None)["tx_id"]
    ok(sim, "swipe", token="GOOD")
    ok(sim, "ev_state", evse=1, state="C")
    charging(sim)
    assert csms.call(st, "RequestStopTransaction", {"transactionId": "nope"}) == {
        "status": "Rejected"
    }
    assert csms.call(st, "RequestStopTransaction", {"transactionId": tx_id}) == {
        "status": "Accepted"
    }
    evs = wait_ended(csms, st)
    assert [shape(p, tx_id) for p in evs] == [
        started("CablePluggedIn"),
        {
            "eventType": "Updated",
            "triggerReason": "Authorized",
            "seqNo": 1,
            "transactionInfo": {"transactionId": "TX"},
            "idToken": GOOD,
        },
        changed(2, "SuspendedEV"),
        changed(3, "Charging"),
        ended(4, "RemoteStop", "EVConnected", "Remote"),
    ]


# -- remote start (F01, F02) ------------------------------------------------------------------


def test_remote_start_then_plug_in_then_remote_stop(csms, sims):
    sim = sims(csms.url, config=config())
    st = accepted(csms, sim)
    central = {"idToken": "CSMS-1", "type": "Central"}
    bad = csms.call(
        st, "RequestStartTransaction", {"idToken": central, "remoteStartId": 7, "evseId": 2}
    )
    assert bad == {"status": "Rejected"}  # no EVSE 2
    resp = csms.call(st, "RequestStartTransaction", {"idToken": central, "remoteStartId": 7})
    assert resp == {"status": "Accepted"}
    plug_in(sim)
    tx_id = charging(sim)["tx_id"]
    again = csms.call(st, "RequestStartTransaction", {"idToken": central, "remoteStartId": 8})
    assert again == {"status": "Rejected"}  # the EVSE is taken
    assert csms.call(st, "GetTransactionStatus", {"transactionId": tx_id}) == {
        "ongoingIndicator": True,
        "messagesInQueue": False,
    }
    assert (
        csms.call(st, "RequestStopTransaction", {"transactionId": tx_id})["status"] == "Accepted"
    )
    evs = wait_ended(csms, st)
    assert shape(evs[0], tx_id) == {
        "eventType": "Started",
        "triggerReason": "CablePluggedIn",
        "seqNo": 0,
        "transactionInfo": {
            "transactionId": "TX",
            "chargingState": "EVConnected",
            "remoteStartId": 7,
        },
        "evse": EVSE1,
        "idToken": central,
        "meterValue": [BEGIN],
    }
    assert shape(evs[-1], tx_id)["triggerReason"] == "RemoteStop"
    assert evs[-1]["transactionInfo"]["stoppedReason"] == "Remote"
    assert "idToken" not in evs[-1]
    seq_ok(evs)
    assert not [f for f in st.frames if f.action == "Authorize"]  # AuthorizeRemoteStart false
    assert csms.call(st, "GetTransactionStatus", {"transactionId": tx_id}) == {
        "ongoingIndicator": False,
        "messagesInQueue": False,
    }
    assert csms.call(st, "GetTransactionStatus", {}) == {"messagesInQueue": False}


def test_remote_start_with_an_ev_plugged_and_authorize_remote_start(csms, sims):
    cfg = config({("AuthCtrlr", "AuthorizeRemoteStart"): "true"})
    sim = sims(csms.url, config=cfg)
    st = accepted(csms, sim)
    plug_in(sim)
    token = {"idToken": "APP-1", "type": "eMAID"}
    resp = csms.call(
        st, "RequestStartTransaction", {"idToken": token, "remoteStartId": 3, "evseId": 1}
    )
    assert resp == {"status": "Accepted"}
    tx_id = charging(sim)["tx_id"]
    f = csms.wait_call(st, "Authorize")
    assert f.payload == {"idToken": token}
    evs = wait_events(csms, st, 1)
    assert shape(evs[0], tx_id) == {
        "eventType": "Started",
        "triggerReason": "RemoteStart",
        "seqNo": 0,
        "transactionInfo": {
            "transactionId": "TX",
            "chargingState": "EVConnected",
            "remoteStartId": 3,
        },
        "evse": EVSE1,
        "idToken": token,
        "meterValue": [BEGIN],
    }
    assert tx_frames(st)[0].index > f.index  # Authorize first, then the transaction


# -- the CSMS's idTokenInfo in TransactionEventResponse (C15, E05) ----------------------------


@pytest.mark.parametrize("stop", ["true", "false"])
def test_a_token_the_csms_rejects_in_the_started_answer(csms, sims, stop):
    def tx_answer(station, p):
        if "idToken" in p:
            return {"idTokenInfo": {"status": "Blocked"}}
        return {}

    csms.csms.handlers[TX] = tx_answer
    # Offline with an unknown token: allowed by OfflineTxForUnknownIdEnabled.
    cfg = config(
        {
            ("AuthCtrlr", "OfflineTxForUnknownIdEnabled"): "true",
            ("TxCtrlr", "StopTxOnInvalidId"): stop,
        }
    )
    sim = sims(csms.url, config=cfg)
    st = accepted(csms, sim)
    ok(sim, "ws_disconnect")
    sim.wait_status(lambda s: not s["connected"])
    plug_in(sim)
    ok(sim, "swipe", token="NEW1")
    tx_id = charging(sim)["tx_id"]
    ok(sim, "ws_connect")
    st = reconnected(csms, st)
    if stop == "true":
        evs = wait_ended(csms, st)
        assert shape(evs[-1], tx_id) == {
            "eventType": "Ended",
            "triggerReason": "Deauthorized",
            "seqNo": len(evs) - 1,
            "transactionInfo": {
                "transactionId": "TX",
                "chargingState": "EVConnected",
                "stoppedReason": "DeAuthorized",
            },
            "meterValue": [BEGIN, END],
        }
        assert [p.get("offline") for p in evs] == [True] * (len(evs) - 1) + [False]
        evse(sim, lambda e: not e["contactor"] and e["tx_id"] is None)
    else:
        # Suspended (MaxEnergyOnInvalidId 0): no energy, the transaction goes on.
        e = evse(sim, lambda e: not e["contactor"] and e["pwm_duty"] == 100.0)
        assert e["tx_id"] == tx_id
        time.sleep(0.5)
        last = events(st)[-1]
        assert last["transactionInfo"].get("chargingState") == "SuspendedEVSE"
        assert last["triggerReason"] == "ChargingStateChanged"
        unplug(sim)
        evs = wait_ended(csms, st)
        assert evs[-1]["transactionInfo"]["stoppedReason"] == "EVDisconnected"
    # The answer went into the cache: the token is now known as Blocked, refused offline too.
    ok(sim, "ws_disconnect")
    sim.wait_status(lambda s: not s["connected"])
    if stop == "true":
        unplug(sim)
    plug_in(sim)
    ok(sim, "swipe", token="NEW1")
    time.sleep(1.0)
    assert evse(sim)["tx_id"] is None


# -- offline (E40, C13, C15) -------------------------------------------------------------------


def test_a_session_offline_with_a_cached_token_is_delivered_in_order(csms, sims):
    sim = sims(csms.url, config=config())
    st = accepted(csms, sim)
    plug_in(sim)
    ok(sim, "swipe", token="GOOD")  # Authorize: Accepted, cached
    charging(sim)
    ok(sim, "swipe", token="GOOD")
    wait_ended(csms, st)
    unplug(sim)
    ok(sim, "ws_disconnect")
    sim.wait_status(lambda s: not s["connected"])
    plug_in(sim)
    ok(sim, "swipe", token="GOOD")
    tx_id = charging(sim)["tx_id"]
    status = sim.cmd("status")
    assert status["evse"][0]["connector_status"] == "Occupied"
    unplug(sim)
    evse(sim, lambda e: e["tx_id"] is None)
    ok(sim, "ws_connect")
    st = reconnected(csms, st)
    evs = wait_ended(csms, st)
    seq_ok(evs)
    assert all(p["offline"] is True for p in evs)
    assert evs[0]["transactionInfo"]["transactionId"] == tx_id
    assert evs[0]["idToken"] == GOOD
    assert not [f for f in st.frames if f.action == "Authorize"]  # offline: the cache decided
    stamps = [p["timestamp"] for p in evs]
    assert stamps == sorted(stamps)


def test_an_outage_mid_session_queues_the_events_in_order(csms, sims):
    cfg = config({("SampledDataCtrlr", "TxUpdatedInterval"): "1"})
    sim = sims(csms.url, config=cfg)
    st = accepted(csms, sim)
    plug_in(sim)
    ok(sim, "swipe", token="GOOD")
    tx_id = charging(sim)["tx_id"]
    wait_events(csms, st, 4)
    ok(sim, "ws_disconnect")
    sim.wait_status(lambda s: not s["connected"])
    online_seen = len(events(st))
    time.sleep(3.5)
    ok(sim, "swipe", token="GOOD")
    evse(sim, lambda e: e["tx_id"] is None)
    ok(sim, "ws_connect")
    st2 = reconnected(csms, st)
    after = wait_ended(csms, st2)
    evs = events(st)[:online_seen] + after
    seq_ok(evs)
    assert {p["transactionInfo"]["transactionId"] for p in evs} == {tx_id}
    periodic = [p for p in after if p["triggerReason"] == "MeterValuePeriodic"]
    assert len(periodic) >= 2
    for p in after:
        assert p["offline"] is True
        assert shape(p)  # whole and valid
    for p in periodic:
        assert [meter_shape(mv) for mv in p["meterValue"]] == [
            (
                "Sample.Periodic",
                (
                    "Energy.Active.Import.Register",
                    "Power.Active.Import",
                    "Current.Import@L1",
                    "Current.Import@L2",
                    "Current.Import@L3",
                ),
            )
        ]
    values = [energy(p["meterValue"][0]) for p in periodic]
    assert values == sorted(values)


# -- retries (E13: TC_E_41/42/50/51) ----------------------------------------------------------


@pytest.mark.parametrize("failure", ["timeout", "callerror"])
def test_retries_follow_message_attempts_and_interval(csms, sims, failure):
    """Started always fails: sent MessageAttempts times, I x k apart (plus the timeout), then
    dropped (TC_E_41/50). The next event fails once: sent again after I, then done
    (TC_E_42/51)."""
    from tools.csms import NO_REPLY

    seen = set()

    def tx_answer(station, p):
        if p["seqNo"] == 0 or p["seqNo"] not in seen:
            seen.add(p["seqNo"])
            if failure == "timeout":
                return NO_REPLY
            raise RuntimeError("CSMS says no")  # a CALLERROR InternalError
        return {}

    cfg = config(
        {
            ("OCPPCommCtrlr", "MessageAttempts:TransactionEvent"): "3",
            ("OCPPCommCtrlr", "MessageAttemptInterval:TransactionEvent"): "1",
            ("OCPPCommCtrlr", "MessageTimeout:Default"): "1",
        }
    )
    sim = sims(csms.url, config=cfg)
    st = accepted(csms, sim)
    csms.csms.handlers[TX] = tx_answer
    plug_in(sim, state=None)  # the EV stays in B: Started, then SuspendedEV, then nothing
    ok(sim, "swipe", token="GOOD")
    wait_events(csms, st, 5, timeout=30)
    time.sleep(3.0)
    frames = tx_frames(st)
    assert [f.payload["seqNo"] for f in frames] == [0, 0, 0, 1, 1]
    assert len({f.unique_id for f in frames}) == 5  # every attempt a new message id
    assert frames[0].payload == frames[1].payload == frames[2].payload
    assert frames[3].payload == frames[4].payload
    timeout = 1.0 if failure == "timeout" else 0.0
    gaps = [frames[i + 1].t - frames[i].t for i in range(4)]
    for gap, k in zip(gaps, (1, 2, None, 1)):  # noqa: B905 (MicroPython-style zip)
        if k is not None:
            expect = 1.0 * k + timeout  # I x k after failed attempt k
            assert expect - 0.3 < gap < expect + 0.8, gaps


# -- power loss (E: PowerLoss) ----------------------------------------------------------------


def test_sigkill_during_a_session_ends_it_with_power_loss(csms, sims, tmp_path):
    cfg = config({("SampledDataCtrlr", "TxUpdatedInterval"): "1"})
    sim = sims(csms.url, config=cfg, state_dir=tmp_path / "state")
    st = accepted(csms, sim)
    plug_in(sim)
    ok(sim, "swipe", token="GOOD")
    tx_id = charging(sim)["tx_id"]
    time.sleep(2.5)
    before = evse(sim)["energy_wh"]
    sim.kill()
    sent = events(st)
    sim = sims(csms.url, config=cfg, state_dir=tmp_path / "state")
    st2 = reconnected(csms, st)
    csms.wait_call(st2, "BootNotification")
    after = wait_ended(csms, st2)
    evs = sent + after
    seq_ok(evs)
    assert {p["transactionInfo"]["transactionId"] for p in evs} == {tx_id}
    end = after[-1]
    assert end["triggerReason"] == "AbnormalCondition"
    assert end["transactionInfo"]["stoppedReason"] == "PowerLoss"
    assert "idToken" not in end
    assert end["meterValue"][-1]["sampledValue"][0]["context"] == "Transaction.End"
    assert energy(end["meterValue"][-1]) >= before - 0.06  # status rounds to 0.1 Wh
    # The EV is still plugged in after the power came back: no new transaction without a token.
    time.sleep(1.0)
    assert evse(sim)["tx_id"] is None
    assert evse(sim)["cp"] in "BC"


def test_sigkill_during_delivery_loses_and_duplicates_nothing(csms, sims, tmp_path):
    cfg = config({("SampledDataCtrlr", "TxUpdatedInterval"): "1"})
    sim = sims(csms.url, config=cfg, state_dir=tmp_path / "state")
    st = accepted(csms, sim)
    ok(sim, "ws_disconnect")
    sim.wait_status(lambda s: not s["connected"])
    plug_in(sim)
    ok(sim, "ev_state", evse=1, state="C")
    ok(sim, "button", evse=1)  # NoAuthorization: charging needs nobody's consent
    tx_id = charging(sim)["tx_id"]
    time.sleep(4.0)
    ok(sim, "button", evse=1)
    evse(sim, lambda e: e["tx_id"] is None)
    # Slow answers, and the power goes while the queue is being delivered.
    csms.csms.handlers[TX] = _slow_tx
    ok(sim, "ws_connect")
    st = reconnected(csms, st)
    wait_events(csms, st, 2)
    sim.kill()
    csms.csms.handlers[TX] = lambda station, p: {}
    got = events(st)
    sim = sims(csms.url, config=cfg, state_dir=tmp_path / "state")
    st2 = reconnected(csms, st)
    csms.wait_call(st2, "BootNotification")
    rest = wait_ended(csms, st2)
    # At-least-once: an event answered just before the kill may come again; the CSMS keys
    # them by (transactionId, seqNo). With that, the sequence is whole.
    merged = {}
    for p in got + rest:
        merged.setdefault(p["seqNo"], p)
    evs = [merged[k] for k in sorted(merged)]
    seq_ok(evs)
    assert {p["transactionInfo"]["transactionId"] for p in evs} == {tx_id}
    assert evs[0]["idToken"] == {"idToken": "", "type": "NoAuthorization"}
    assert evs[-1]["transactionInfo"]["stoppedReason"] == "Local"
    assert all(p["offline"] is True for p in evs)


async def _slow_tx(station, p):
    import asyncio

    await asyncio.sleep(0.3)
    return {}


# -- meter values (J01, J02) ------------------------------------------------------------------


def test_sampled_and_clock_aligned_values(csms, sims):
    cfg = config(
        {
            ("SampledDataCtrlr", "TxUpdatedInterval"): "2",
            ("SampledDataCtrlr", "TxEndedInterval"): "2",
            (
                "SampledDataCtrlr",
                "TxStartedMeasurands",
            ): "Energy.Active.Import.Register,Current.Offered",
            ("AlignedDataCtrlr", "Interval"): "3",
            ("AlignedDataCtrlr", "Measurands"): "Energy.Active.Import.Register,Voltage",
        }
    )
    sim = sims(csms.url, config=cfg)
    st = accepted(csms, sim)
    # Idle: MeterValues at each multiple of 3 s, context Sample.Clock.
    f = csms.wait_call(st, "MeterValues", timeout=10)
    mv = f.payload
    assert mv["evseId"] == 1
    stamp = mv["meterValue"][0]["timestamp"]
    assert int(stamp[17:19]) % 3 == 0
    assert meter_shape(mv["meterValue"][0]) == (
        "Sample.Clock",
        ("Energy.Active.Import.Register", "Voltage@L1-N", "Voltage@L2-N", "Voltage@L3-N"),
    )
    plug_in(sim)
    ok(sim, "swipe", token="GOOD")
    charging(sim)
    time.sleep(6.5)
    ok(sim, "swipe", token="GOOD")
    evs = wait_ended(csms, st)
    seq_ok(evs)
    assert [meter_shape(m) for m in evs[0]["meterValue"]] == [
        ("Transaction.Begin", ("Energy.Active.Import.Register", "Current.Offered"))
    ]
    triggers = [p["triggerReason"] for p in evs]
    assert triggers.count("MeterValuePeriodic") >= 2
    assert triggers.count("MeterValueClock") >= 1
    for p in evs:
        if p["triggerReason"] == "MeterValueClock":
            assert int(p["meterValue"][0]["timestamp"][17:19]) % 3 == 0
            assert meter_shape(p["meterValue"][0])[0] == "Sample.Clock"
    ended = [meter_shape(m) for m in evs[-1]["meterValue"]]
    assert ended[0] == BEGIN and ended[-1] == END
    assert ended.count(("Sample.Periodic", ("Energy.Active.Import.Register",))) >= 2
    # No idle MeterValues while the transaction ran: its values went into Updated events.
    t0, t1 = tx_frames(st)[0].t, tx_frames(st)[-1].t
    idle = [
        f for f in st.frames if f.action == "MeterValues" and f.kind == "call" and t0 < f.t < t1
    ]
    assert idle == []


# -- trigger, reset ------------------------------------------------------------------------------


def test_trigger_message_transaction_event_and_immediate_reset(csms, sims):
    sim = sims(csms.url, config=config())
    st = accepted(csms, sim)
    req = {"requestedMessage": "TransactionEvent"}
    assert csms.call(st, "TriggerMessage", req) == {"status": "Rejected"}  # none runs
    plug_in(sim)
    ok(sim, "swipe", token="GOOD")
    tx_id = charging(sim)["tx_id"]
    n = len(wait_events(csms, st, 3))
    assert csms.call(st, "TriggerMessage", dict(req, evse={"id": 1})) == {"status": "Accepted"}
    p = wait_events(csms, st, n + 1)[-1]
    assert shape(p, tx_id) == {
        "eventType": "Updated",
        "triggerReason": "Trigger",
        "seqNo": n,
        "transactionInfo": {"transactionId": "TX"},
        "meterValue": [
            (
                "Trigger",
                (
                    "Energy.Active.Import.Register",
                    "Power.Active.Import",
                    "Current.Import@L1",
                    "Current.Import@L2",
                    "Current.Import@L3",
                ),
            )
        ],
    }
    assert csms.call(st, "Reset", {"type": "OnIdle"}) == {"status": "Scheduled"}
    assert csms.call(st, "Reset", {"type": "Immediate"}) == {"status": "Accepted"}
    evs = wait_ended(csms, st)
    assert shape(evs[-1], tx_id)["triggerReason"] == "ResetCommand"
    assert evs[-1]["transactionInfo"]["stoppedReason"] == "ImmediateReset"
    assert "idToken" not in evs[-1]
    st2 = reconnected(csms, st)
    boot = csms.wait_call(st2, "BootNotification")
    assert boot.payload["reason"] == "RemoteReset"
    time.sleep(1.0)
    assert events(st2) == []  # nothing left to recover


def test_immediate_reset_cuts_the_energy_before_ended_and_bills_all_of_it(csms, sims):
    """Reset Immediate while charging: the energy is cut first, Ended carries a register read
    after the cut (equal to the register after the reboot) and the new chargingState, and the
    reboot comes only after it."""
    sim = sims(csms.url, config=config())
    st = accepted(csms, sim)
    plug_in(sim)
    ok(sim, "swipe", token="GOOD")
    charging(sim)
    wait_events(csms, st, 3)
    time.sleep(1.5)  # energy flows at 22 kW: some 9 Wh a second and a half
    assert csms.call(st, "Reset", {"type": "Immediate"}) == {"status": "Accepted"}
    evs = wait_ended(csms, st)
    end = evs[-1]
    assert shape(end) == ended(
        len(evs) - 1, "ResetCommand", "EVConnected", "ImmediateReset", meterValue=[BEGIN, END]
    )
    st2 = reconnected(csms, st)
    assert csms.wait_call(st2, "BootNotification").payload["reason"] == "RemoteReset"
    sim.wait_status(lambda s: s["registration"] == "Accepted" and s["connected"])
    assert [f.action for f in tx_frames(st2)] == []  # nothing to recover: it ended before
    req = {"requestedMessage": "MeterValues", "evse": {"id": 1}}
    assert csms.call(st2, "TriggerMessage", req) == {"status": "Accepted"}
    after = csms.wait_call(st2, "MeterValues").payload["meterValue"][0]
    assert abs(energy(after) - energy(end["meterValue"][-1])) <= 0.01
    assert energy(end["meterValue"][-1]) > energy(end["meterValue"][0])


# -- StatusNotification among the transaction events ---------------------------------------------


def calls(st, start=0):
    """(action, status or eventType) of each CALL the station sent from frame `start` on."""
    out = []
    for f in st.frames[start:]:
        if f.direction == "in" and f.kind == "call" and f.action != "Heartbeat":
            p = f.payload
            out.append((f.action, p.get("connectorStatus") or p.get("eventType")))
    return out


def test_a_plug_in_after_a_card_reports_occupied_before_started(csms, sims):
    sim = sims(csms.url, config=config())
    st = accepted(csms, sim)
    csms.wait_frame(st, lambda f: f.action == "StatusNotification" and f.kind == "result")
    ok(sim, "swipe", token="GOOD")
    csms.wait_call(st, "Authorize")
    time.sleep(0.3)
    start = len(st.frames)
    plug_in(sim, state=None)
    wait_events(csms, st, 1, start)
    time.sleep(0.3)
    assert calls(st, start)[:2] == [("StatusNotification", "Occupied"), (TX, "Started")]


def test_statuses_after_an_outage_carry_the_time_of_the_change_after_earlier_events(csms, sims):
    sim = sims(csms.url, config=config())
    st = accepted(csms, sim)
    plug_in(sim)
    ok(sim, "swipe", token="GOOD")
    charging(sim)
    wait_events(csms, st, 3)
    ok(sim, "ws_disconnect")
    sim.wait_status(lambda s: not s["connected"])
    unplug(sim)  # Ended, then the connector is Available: both offline
    evse(sim, lambda e: e["tx_id"] is None and e["connector_status"] == "Available")
    t_change = time.time()
    time.sleep(2.5)
    t_connect = time.time()
    ok(sim, "ws_connect")
    st2 = reconnected(csms, st)
    wait_ended(csms, st2)
    status = csms.wait_call(st2, "StatusNotification")
    time.sleep(0.5)
    sent = calls(st2)
    assert sent[sent.index((TX, "Ended")) :] == [
        (TX, "Ended"),
        ("StatusNotification", "Available"),
    ]
    ts = rfc3339_seconds(status.payload["timestamp"])
    assert t_change - 2 <= ts <= t_connect - 2  # when it became Available, not the reconnect


def rfc3339_seconds(text):
    import calendar

    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))
