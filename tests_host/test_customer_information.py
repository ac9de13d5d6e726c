"""CustomerInformation (N09, N10): firmware/blocks/customer_information.py, CPython.

The authorization cache, the local list and the message queue are the real ones on tmp_path;
a fake session records what the station sends (every payload validated against the official
OCPP 2.0.1 schemas) and the bays of the transactions block are stand-ins with what the block
reads of them. Requests go through the router as from the CSMS (schema check included)."""

import asyncio
import json
from types import SimpleNamespace

import pytest

import ocppj
from clock import Clock
from firmware.auth_cache import AuthCache
from firmware.blocks import customer_information as cimod
from firmware.blocks.customer_information import CustomerInformation
from firmware.blocks.local_list import LocalList
from firmware.device_model import DeviceModel
from firmware.queue import MessageQueue
from firmware.variables import declarations
from ocpp_oracle import valid
from store import Store

NOW = 1795285000  # 2026-11-21T18:16:40Z
NOW_ISO = "2026-11-21T18:16:40Z"
TE = "TransactionEvent"
GOOD = {"idToken": "AABBCCDD", "type": "ISO14443"}
OTHER = {"idToken": "11223344", "type": "ISO14443"}
NOTIFY = "NotifyCustomerInformation"


class FakeSession:
    """Records each call; answers {} (or raises the next of `fail`)."""

    def __init__(self):
        self.sent = []
        self.fail = []
        self.in_len = 100

    async def call(self, action, payload):
        self.sent.append((action, valid(action + "Request", json.loads(json.dumps(payload)))))
        if self.fail:
            raise self.fail.pop(0)
        return valid(action + "Response", {})


def hw():
    return SimpleNamespace(phases=3, max_a=32, cable_a=None, phase_switch=None)


def station(tmp_path, local_list=False):
    store = Store(str(tmp_path))
    dm = DeviceModel(store, declarations([hw()]))
    clock = Clock(lambda: NOW)
    session = FakeSession()
    router = ocppj.Router()
    conn = SimpleNamespace(ready=asyncio.Event())  # offline: queued events stay queued
    queue = MessageQueue(str(tmp_path / "queue.jnl"), session, conn, dm)
    st = SimpleNamespace(
        store=store,
        dm=dm,
        clock=clock,
        session=session,
        router=router,
        queue=queue,
        cache=AuthCache(store, dm, clock),
        local_list=None,
        bays=[bay(1), bay(2)],
        spawned=[],
    )
    if local_list:
        st.local_list = LocalList(router, session, dm, store, clock)
    st.spawn = st.spawned.append
    st.block = CustomerInformation(
        router, session, clock, st.cache, lambda: st.local_list, st.bays, queue, st.spawn
    )
    return st


def bay(n, token=None, tx=None, samples=()):
    return SimpleNamespace(n=n, token=token, tx=tx, samples=list(samples))


def sample(t, wh, context="Sample.Periodic"):
    return {
        "timestamp": t,
        "sampledValue": [
            {
                "value": wh,
                "measurand": "Energy.Active.Import.Register",
                "context": context,
                "unitOfMeasure": {"unit": "Wh"},
            }
        ],
    }


def request(st, payload):
    """Send CustomerInformation as from the CSMS: (answer, [parts sent after it])."""
    handler, after = st.router.entry("CustomerInformation")
    from schema import validate

    validate("CustomerInformationRequest", payload)
    resp = handler(payload)
    valid("CustomerInformationResponse", resp)
    after(payload, resp)
    n = len(st.session.sent)
    while st.spawned:
        asyncio.run(st.spawned.pop(0))
    return resp, [p for a, p in st.session.sent[n:] if a == NOTIFY]


def ask(report=True, clear=False, rid=7, **ids):
    p = {"requestId": rid, "report": report, "clear": clear}
    p.update(ids)
    return p


def data(parts):
    return "".join(p["data"] for p in parts)


def one(parts, text, rid=7):
    assert parts == [
        {"data": text, "tbc": False, "seqNo": 0, "generatedAt": NOW_ISO, "requestId": rid}
    ]


def post_session(st, token=GOOD, tx_id="tx-1", ended=True):
    q = st.queue
    q.post(
        TE,
        {
            "eventType": "Started",
            "timestamp": "2026-11-21T18:00:00Z",
            "triggerReason": "Authorized",
            "seqNo": 0,
            "transactionInfo": {"transactionId": tx_id},
            "idToken": token,
            "meterValue": [sample("2026-11-21T18:00:00Z", 100.0, "Transaction.Begin")],
        },
        tx_id,
    )
    q.post(
        TE,
        {
            "eventType": "Updated",
            "timestamp": "2026-11-21T18:05:00Z",
            "triggerReason": "ChargingStateChanged",
            "seqNo": 1,
            "transactionInfo": {"transactionId": tx_id, "chargingState": "Charging"},
        },
        tx_id,
    )
    if ended:
        q.post(
            TE,
            {
                "eventType": "Ended",
                "timestamp": "2026-11-21T18:10:00Z",
                "triggerReason": "EVCommunicationLost",
                "seqNo": 2,
                "transactionInfo": {"transactionId": tx_id, "stoppedReason": "EVDisconnected"},
                "meterValue": [
                    sample("2026-11-21T18:00:00Z", 100.0, "Transaction.Begin"),
                    sample("2026-11-21T18:10:00Z", 1234.5, "Transaction.End"),
                ],
            },
            tx_id,
        )


QUEUED = (
    "queued TransactionEvent Started 0 of transaction tx-1, 2026-11-21T18:00:00Z, Authorized\n"
    "queued TransactionEvent Updated 1 of transaction tx-1, 2026-11-21T18:05:00Z,"
    " ChargingStateChanged\n"
    "queued TransactionEvent Ended 2 of transaction tx-1, 2026-11-21T18:10:00Z,"
    " EVCommunicationLost, EVDisconnected\n"
    "  sample 2026-11-21T18:00:00Z: Energy.Active.Import.Register 100.0 Wh\n"
    "  sample 2026-11-21T18:10:00Z: Energy.Active.Import.Register 1234.5 Wh"
)


# -- Invalid (N09.FR.09) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ids",
    [
        {},
        {"idToken": GOOD, "customerIdentifier": "C1"},
        {
            "idToken": GOOD,
            "customerCertificate": {
                "hashAlgorithm": "SHA256",
                "issuerNameHash": "a",
                "issuerKeyHash": "b",
                "serialNumber": "c",
            },
        },
    ],
)
def test_not_exactly_one_identifier_is_invalid_and_sends_nothing(tmp_path, ids):
    st = station(tmp_path)
    st.cache.put(GOOD, {"status": "Accepted"})
    resp, parts = request(st, ask(clear=True, **ids))
    assert resp == {"status": "Invalid"}
    assert parts == []
    assert st.cache.entry("ISO14443:aabbccdd") is not None  # nothing cleared


# -- report -------------------------------------------------------------------------------------


def test_report_of_a_cached_token(tmp_path):
    st = station(tmp_path)
    st.cache.put(
        GOOD,
        {
            "status": "Accepted",
            "cacheExpiryDateTime": "2026-12-01T00:00:00Z",
            "groupIdToken": {"idToken": "SECRETGROUP", "type": "Central"},
        },
    )
    resp, parts = request(st, ask(idToken=dict(GOOD, idToken="aabbccdd")))  # case-insensitive
    assert resp == {"status": "Accepted"}
    one(
        parts,
        "cache: Accepted, expires 2026-12-01T00:00:00Z, in a group, last used %s, 1 uses"
        % NOW_ISO,
    )
    assert "AABBCCDD" not in parts[0]["data"] and "SECRET" not in parts[0]["data"]


def test_report_of_a_local_list_entry(tmp_path):
    st = station(tmp_path, local_list=True)
    handler, _ = st.router.entry("SendLocalList")
    req = {
        "versionNumber": 3,
        "updateType": "Full",
        "localAuthorizationList": [
            {"idToken": GOOD, "idTokenInfo": {"status": "Blocked", "evseId": [1, 2]}}
        ],
    }
    assert handler(req) == {"status": "Accepted"}
    resp, parts = request(st, ask(idToken=GOOD))
    assert resp == {"status": "Accepted"}
    one(parts, "local list v3: Blocked, EVSE 1 2")


def test_report_of_an_open_transaction_with_its_samples(tmp_path):
    st = station(tmp_path)
    st.bays[1].token = dict(GOOD)
    st.bays[1].tx = {"id": "tx-9", "seq": 3, "t0": NOW - 600}
    st.bays[1].samples = [sample("2026-11-21T18:06:40Z", 0.0, "Transaction.Begin")]
    st.bays[0].token = dict(OTHER)  # someone else's
    st.bays[0].tx = {"id": "tx-8", "seq": 1, "t0": NOW}
    resp, parts = request(st, ask(idToken=GOOD))
    assert resp == {"status": "Accepted"}
    one(
        parts,
        "open transaction tx-9 on EVSE 2, started 2026-11-21T18:06:40Z\n"
        "  sample 2026-11-21T18:06:40Z: Energy.Active.Import.Register 0.0 Wh",
    )


def test_report_of_a_queued_transaction(tmp_path):
    st = station(tmp_path)
    post_session(st, OTHER, "tx-0")  # another customer's: not reported
    post_session(st)
    resp, parts = request(st, ask(idToken=GOOD))
    assert resp == {"status": "Accepted"}
    one(parts, QUEUED)


def test_unknown_token_and_other_identifiers_find_no_data(tmp_path):
    st = station(tmp_path)
    st.cache.put(GOOD, {"status": "Accepted"})
    post_session(st)
    for ids in (
        {"idToken": OTHER},
        {"customerIdentifier": "CUSTOMER-1"},
        {
            "customerCertificate": {
                "hashAlgorithm": "SHA256",
                "issuerNameHash": "a",
                "issuerKeyHash": "b",
                "serialNumber": "c",
            }
        },
    ):
        resp, parts = request(st, ask(clear=True, **ids))
        assert resp == {"status": "Accepted"}
        one(parts, "No data")
    assert st.cache.entry("ISO14443:aabbccdd") is not None
    assert st.queue.pending() == 3


def test_neither_report_nor_clear_is_accepted_with_no_data(tmp_path):
    st = station(tmp_path)
    st.cache.put(GOOD, {"status": "Accepted"})
    resp, parts = request(st, ask(report=False, idToken=GOOD))
    assert resp == {"status": "Accepted"}
    one(parts, "No data")
    assert st.cache.entry("ISO14443:aabbccdd") is not None


# -- clear --------------------------------------------------------------------------------------


def test_clear_removes_the_cache_entry_and_keeps_the_queue(tmp_path):
    st = station(tmp_path)
    st.cache.put(GOOD, {"status": "Accepted"})
    st.cache.put(OTHER, {"status": "Accepted"})
    post_session(st)
    resp, parts = request(st, ask(report=True, clear=True, idToken=GOOD))
    assert resp == {"status": "Accepted"}
    one(parts, QUEUED)  # what remains
    assert st.cache.entry("ISO14443:aabbccdd") is None
    assert st.cache.entry("ISO14443:11223344") is not None
    # On flash too.
    assert AuthCache(st.store, st.dm, st.clock).entry("ISO14443:aabbccdd") is None
    # The queued transaction is still delivered, whole.
    st.queue.connection.ready.set()

    async def deliver():
        task = asyncio.create_task(st.queue.run())
        for _ in range(100):
            if not st.queue.pending():
                break
            await asyncio.sleep(0.01)
        task.cancel()

    n = len(st.session.sent)
    asyncio.run(deliver())
    sent = st.session.sent[n:]
    assert [(a, p["seqNo"]) for a, p in sent] == [(TE, 0), (TE, 1), (TE, 2)]
    assert sent[0][1]["idToken"] == GOOD


def test_clear_alone_says_what_it_cleared(tmp_path):
    st = station(tmp_path)
    st.cache.put(GOOD, {"status": "Accepted"})
    resp, parts = request(st, ask(report=False, clear=True, idToken=GOOD))
    assert resp == {"status": "Accepted"}
    one(parts, "cleared: cache entry")
    resp, parts = request(st, ask(report=False, clear=True, idToken=GOOD, rid=8))
    one(parts, "No data", 8)  # nothing left to clear


def test_clear_never_touches_the_local_list(tmp_path):
    st = station(tmp_path, local_list=True)
    handler, _ = st.router.entry("SendLocalList")
    req = {
        "versionNumber": 1,
        "updateType": "Full",
        "localAuthorizationList": [{"idToken": GOOD, "idTokenInfo": {"status": "Accepted"}}],
    }
    handler(req)
    resp, parts = request(st, ask(clear=True, idToken=GOOD))
    one(parts, "local list v1: Accepted")
    assert LocalList(ocppj.Router(), st.session, st.dm, st.store, st.clock).entries


def test_a_storage_error_while_clearing_is_rejected_and_logged(tmp_path, logged, monkeypatch):
    st = station(tmp_path)
    st.cache.put(GOOD, {"status": "Accepted"})

    def broken(name, doc):
        raise OSError(28)

    monkeypatch.setattr(st.store, "save", broken)
    resp, parts = request(st, ask(clear=True, idToken=GOOD))
    assert resp == {"status": "Rejected", "statusInfo": {"reasonCode": "InternalError"}}
    assert parts == []
    assert "cache entry not cleared" in logged.getvalue()


# -- parts --------------------------------------------------------------------------------------


def test_a_long_report_goes_in_parts_of_at_most_512_characters(tmp_path):
    st = station(tmp_path)
    for i in range(60):
        post_session(st, GOOD, "tx-%02d" % i, ended=i % 2 == 0)
    resp, parts = request(st, ask(idToken=GOOD, rid=3))
    assert resp == {"status": "Accepted"}
    assert len(parts) > 10
    assert [p["seqNo"] for p in parts] == list(range(len(parts)))
    assert [p["tbc"] for p in parts] == [True] * (len(parts) - 1) + [False]
    assert all(0 < len(p["data"]) <= 512 for p in parts)
    assert {p["requestId"] for p in parts} == {3}
    # Whole lines per part: joined again they are the report, line for line.
    text = "\n".join(p["data"] for p in parts)
    lines = text.split("\n")
    assert len([x for x in lines if x.startswith("queued TransactionEvent Started")]) == 60
    assert len([x for x in lines if x.startswith("  sample")]) == 60  # 30 Ended, 2 each
    for p, q in zip(parts, parts[1:]):  # noqa: B905
        # A part ends only where the next line would not fit.
        assert len(p["data"]) + 1 + len(q["data"].split("\n")[0]) > 512


def test_a_line_longer_than_a_part_is_cut(tmp_path):
    st = station(tmp_path)
    long = [sample("2026-11-21T18:%02d:00Z" % i, float(i)) for i in range(40)]
    mv = {"timestamp": "2026-11-21T18:00:00Z", "sampledValue": []}
    for s in long:
        mv["sampledValue"] += s["sampledValue"]
    st.bays[0].token = GOOD
    st.bays[0].tx = {"id": "tx-1", "seq": 1, "t0": NOW}
    st.bays[0].samples = [mv]
    resp, parts = request(st, ask(idToken=GOOD))
    line = cimod.sample_line(mv)
    assert len(line) > 1024
    assert [len(p["data"]) for p in parts[1:-1]] == [512] * (len(parts) - 2)
    assert parts[0]["data"] == "open transaction tx-1 on EVSE 1, started %s" % NOW_ISO
    assert data(parts[1:]) == line
    assert [p["tbc"] for p in parts] == [True] * (len(parts) - 1) + [False]


def test_a_failing_part_ends_the_parts_and_frees_the_block(tmp_path, logged):
    st = station(tmp_path)
    for i in range(20):
        post_session(st, GOOD, "tx-%02d" % i)
    st.session.fail = [asyncio.TimeoutError()]
    resp, parts = request(st, ask(idToken=GOOD))
    assert resp == {"status": "Accepted"}
    assert len(parts) == 1 and parts[0]["tbc"] is True
    assert "stopped at part 0" in logged.getvalue()
    resp, parts = request(st, ask(idToken=OTHER, rid=8))
    one(parts, "No data", 8)


def test_a_second_request_while_parts_go_out_is_rejected(tmp_path):
    st = station(tmp_path)
    handler, after = st.router.entry("CustomerInformation")
    req = ask(idToken=GOOD)
    after(req, handler(req))
    assert handler(ask(idToken=OTHER, rid=8)) == {
        "status": "Rejected",
        "statusInfo": {"reasonCode": "RequestInProgress"},
    }
    asyncio.run(st.spawned.pop(0))
    assert handler(ask(idToken=OTHER, rid=9)) == {"status": "Accepted"}


def test_the_loop_gets_a_turn_after_each_queued_event_read(tmp_path):
    st = station(tmp_path)
    for i in range(4):
        post_session(st, OTHER, "tx-o%d" % i)
    post_session(st)
    lines = list(st.block.lines(ask(idToken=GOOD), []))
    assert lines[:12] == [None] * 12  # the others' events: read, no line
    assert "\n".join(lines[12:]) == QUEUED


def test_lazy_loading_through_main():
    from firmware import main

    entry = [e for e in main.LAZY if "CustomerInformation" in e[0]]
    assert entry and entry[0][1] == "firmware.blocks.customer_information"
