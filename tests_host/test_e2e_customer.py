"""End to end: CustomerInformation (N09, N10) on the MicroPython unix port against the
development CSMS: the answer and every NotifyCustomerInformation part compared whole (the
time fields checked by format, then replaced), for a cached token, a transaction of that
token still in the offline queue (which a clear leaves to be delivered), two identifiers
(Invalid) and a token the station does not know ("No data")."""

import re
import time

import pytest

from tools.harness import FAST, variables

pytestmark = pytest.mark.e2e

TX = "TransactionEvent"
NOTIFY = "NotifyCustomerInformation"
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
GOOD = {"idToken": "CUST01", "type": "ISO14443"}
QUIET = {  # no periodic or clock-aligned values: the events of a session are known
    ("SampledDataCtrlr", "TxUpdatedInterval"): "0",
    ("SampledDataCtrlr", "TxEndedInterval"): "0",
    ("AlignedDataCtrlr", "Interval"): "0",
    ("AlignedDataCtrlr", "TxEndedInterval"): "0",
}


def config(extra=None):
    values = dict(FAST)
    values.update(QUIET)
    values.update(extra or {})
    return {"variables": variables(values)}


def accepted(csms, sim):
    st = csms.station(timeout=15)
    csms.wait_call(st, "BootNotification")
    sim.wait_status(lambda s: s["registration"] == "Accepted" and s["connected"])
    return st


def reconnected(csms, old, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        st = csms.csms.stations.get("CS1")
        if st is not None and st is not old and st.connected:
            return st
        if time.monotonic() > deadline:
            raise AssertionError("no new connection")
        time.sleep(0.05)


def ok(sim, name, **kw):
    assert sim.cmd(name, **kw) == {"ok": True}


def evse(sim, pred=lambda e: True, timeout=15):
    return sim.wait_status(lambda s: pred(s["evse"][0]), timeout)["evse"][0]


def session(sim):
    """Plug in, the card starts charging, the same card stops it, unplug."""
    ok(sim, "plug_in", evse=1)
    evse(sim, lambda e: e["cp"] == "B")
    ok(sim, "ev_state", evse=1, state="C")
    ok(sim, "swipe", token=GOOD["idToken"])
    evse(sim, lambda e: e["contactor"] and e["power_w"] > 0)
    ok(sim, "swipe", token=GOOD["idToken"])
    evse(sim, lambda e: e["pwm_duty"] == 100.0 and not e["contactor"])
    ok(sim, "ev_state", evse=1, state="B")
    ok(sim, "plug_out", evse=1)
    evse(sim, lambda e: e["cp"] == "A" and e["tx_id"] is None)


def events(st, start=0):
    return [
        f.payload
        for f in st.frames[start:]
        if f.direction == "in" and f.kind == "call" and f.action == TX
    ]


def wait_ended(st, start=0, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        evs = events(st, start)
        if evs and evs[-1]["eventType"] == "Ended":
            return evs
        if time.monotonic() > deadline:
            raise AssertionError("no Ended: %r" % evs)
        time.sleep(0.1)


def ask(csms, st, rid, report=True, clear=False, **ids):
    """CustomerInformation on the wire: (the answer, the parts), each part's generatedAt
    checked by format and replaced by "T"."""
    payload = {"requestId": rid, "report": report, "clear": clear}
    payload.update(ids)
    answer, parts = csms.run(st.customer_information(payload, timeout=20), 40)
    for p in parts:
        assert ISO.fullmatch(p["generatedAt"]), p
        p["generatedAt"] = "T"
    return answer, parts


def one(rid, data):
    return [{"data": data, "tbc": False, "seqNo": 0, "generatedAt": "T", "requestId": rid}]


def notifies(st, start=0):
    return [
        f.payload
        for f in st.frames[start:]
        if f.direction == "in" and f.kind == "call" and f.action == NOTIFY
    ]


def num(v):
    return repr(v) if isinstance(v, float) else str(v)


def report_of(evs):
    """The report lines the station gives for queued events `evs` (as the CSMS got them)."""
    out = []
    for p in evs:
        info = p["transactionInfo"]
        line = "queued TransactionEvent %s %d of transaction %s, %s, %s" % (
            p["eventType"],
            p["seqNo"],
            info["transactionId"],
            p["timestamp"],
            p["triggerReason"],
        )
        if "stoppedReason" in info:
            line += ", " + info["stoppedReason"]
        out.append(line)
        if p["eventType"] == "Ended":
            for mv in p.get("meterValue", ()):
                values = []
                for sv in mv["sampledValue"]:
                    t = sv.get("measurand", "Energy.Active.Import.Register")
                    if "phase" in sv:
                        t += " " + sv["phase"]
                    t += " " + num(sv["value"])
                    if "unitOfMeasure" in sv:
                        t += " " + sv["unitOfMeasure"]["unit"]
                    values.append(t)
                out.append("  sample %s: %s" % (mv["timestamp"], ", ".join(values)))
    return out


def test_report_and_clear_of_a_cached_token_invalid_and_unknown(csms, sims):
    sim = sims(csms.url, config=config())
    st = accepted(csms, sim)
    session(sim)  # Authorize: Accepted, cached
    wait_ended(st)
    time.sleep(0.5)
    # Report: the cache entry, nothing else (the session was delivered).
    start = len(st.frames)
    answer, parts = ask(csms, st, 1, idToken=GOOD)
    assert answer == {"status": "Accepted"}
    data = parts[0]["data"]
    m = re.fullmatch(r"cache: Accepted, last used (\S+), (\d+) uses", data)
    assert m and ISO.fullmatch(m.group(1)), data
    assert parts == one(1, data)
    assert GOOD["idToken"] not in data
    # Report and clear: the report tells what remains: nothing.
    answer, parts = ask(csms, st, 2, clear=True, idToken=GOOD)
    assert answer == {"status": "Accepted"}
    assert parts == one(2, "No data")
    answer, parts = ask(csms, st, 3, idToken=GOOD)
    assert parts == one(3, "No data")
    # A token the station never saw; a customerIdentifier (the station keeps none).
    answer, parts = ask(csms, st, 4, idToken={"idToken": "NOBODY", "type": "ISO14443"})
    assert (answer, parts) == ({"status": "Accepted"}, one(4, "No data"))
    answer, parts = ask(csms, st, 5, clear=True, customerIdentifier="C-1")
    assert (answer, parts) == ({"status": "Accepted"}, one(5, "No data"))
    # Two identifiers, or none: Invalid, and no part follows.
    answer, parts = ask(csms, st, 6, idToken=GOOD, customerIdentifier="C-1")
    assert (answer, parts) == ({"status": "Invalid"}, [])
    answer, parts = ask(csms, st, 7)
    assert (answer, parts) == ({"status": "Invalid"}, [])
    time.sleep(1.0)
    assert [p["requestId"] for p in notifies(st, start)] == [1, 2, 3, 4, 5]
    # The frames as the CSMS got them: the answers exactly so.
    results = [
        f.payload
        for f in st.frames[start:]
        if f.direction == "in" and f.kind == "result" and f.action == "CustomerInformation"
    ]
    assert results == [{"status": "Accepted"}] * 5 + [{"status": "Invalid"}] * 2


def test_report_and_clear_with_a_queued_transaction_which_is_still_delivered(csms, sims):
    from tools.csms import NO_REPLY

    hold = [False]  # while True the CSMS leaves TransactionEvents unanswered

    def tx_answer(station, p):
        # No idTokenInfo: the answer to the Started would put the token in the cache again.
        return NO_REPLY if hold[0] else {}

    cfg = config(
        {
            ("OCPPCommCtrlr", "MessageTimeout:Default"): "1",
            ("OCPPCommCtrlr", "MessageAttempts:TransactionEvent"): "10",
            ("OCPPCommCtrlr", "MessageAttemptInterval:TransactionEvent"): "2",
        }
    )
    sim = sims(csms.url, config=cfg)
    st = accepted(csms, sim)
    csms.csms.handlers[TX] = tx_answer
    session(sim)  # online: the token is cached
    wait_ended(st)
    # Offline: the cached token charges; the session waits in the queue.
    ok(sim, "ws_disconnect")
    sim.wait_status(lambda s: not s["connected"])
    session(sim)
    hold[0] = True
    ok(sim, "ws_connect")
    st = reconnected(csms, st)
    csms.wait_call(st, TX, timeout=20)  # the Started, left unanswered: still queued
    answer, parts = ask(csms, st, 11, clear=True, idToken=GOOD)
    assert answer == {"status": "Accepted"}
    hold[0] = False
    evs = wait_ended(st, timeout=30)
    # Every event of the offline session got through, each once answered; the last of
    # each seqNo is the delivered one.
    delivered = {}
    for p in evs:
        delivered[p["seqNo"]] = p
    evs = [delivered[k] for k in sorted(delivered)]
    assert evs[0]["eventType"] == "Started" and evs[0]["idToken"] == GOOD
    assert evs[-1]["eventType"] == "Ended"
    assert all(p["offline"] for p in evs)
    # The report: the queued session, line for line as delivered; the cache entry was
    # cleared first, so it is not in it.
    text = "\n".join(report_of(evs))
    assert len(text) > 512  # two parts at least
    assert [p["seqNo"] for p in parts] == list(range(len(parts)))
    assert [p["tbc"] for p in parts] == [True] * (len(parts) - 1) + [False]
    assert all(len(p["data"]) <= 512 and p["requestId"] == 11 for p in parts)
    assert "\n".join(p["data"] for p in parts) == text
    # Delivered: nothing of the customer is left.
    time.sleep(0.5)
    answer, parts = ask(csms, st, 12, idToken=GOOD)
    assert (answer, parts) == ({"status": "Accepted"}, one(12, "No data"))
