"""The fleet relay's bookkeeping (tools/fleet.py Book) with scripted frames: answer times and
their percentiles, messages, CALLERRORs, sessions, and the heartbeat and meter value rules."""

import json

from tools.fleet import Book, percentile, station_ids


def call(uid, action, payload=None):
    return json.dumps([2, uid, action, payload if payload is not None else {}])


def result(uid, payload=None):
    return json.dumps([3, uid, payload if payload is not None else {}])


def error(uid, code="InternalError"):
    return json.dumps([4, uid, code, "", {}])


def boot(book, sid="S1", t=0.0, interval=10, status="Accepted"):
    """Connect at t and register: BootNotification answered 5 ms later."""
    book.connected(sid, t)
    book.frame(sid, "up", call("b%s" % t, "BootNotification"), t)
    answer = {"status": status, "interval": interval, "currentTime": "2026-01-01T00:00:00Z"}
    book.frame(sid, "down", result("b%s" % t, answer), t + 0.005)


def tx_event(uid, event, txid, seq, trigger="Authorized", offline=False):
    p = {
        "eventType": event,
        "timestamp": "2026-01-01T00:00:00Z",
        "triggerReason": trigger,
        "seqNo": seq,
        "transactionInfo": {"transactionId": txid},
    }
    if offline:
        p["offline"] = True
    return call(uid, "TransactionEvent", p)


def test_percentile_is_the_nearest_rank():
    assert percentile([], 50) is None
    assert percentile([3.0], 99) == 3.0
    values = list(range(1, 101))  # 1..100
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([5, 1, 4, 2, 3], 50) == 3  # sorted first
    assert percentile([1, 2], 50) == 1
    assert percentile([1, 2, 3, 4, 1000], 99) == 1000


def test_station_ids_are_numbered_after_the_prefix():
    assert station_ids("FLEET", 3) == ["FLEET0001", "FLEET0002", "FLEET0003"]
    assert station_ids("B", 1) == ["B0001"]


def test_answer_times_are_from_the_forwarded_call_to_its_answer():
    book = Book(heartbeat_s=10, updated_s=10)
    boot(book)
    book.frame("S1", "up", call("h1", "Heartbeat"), 1.0)
    book.frame("S1", "up", call("h2", "StatusNotification"), 1.5)
    book.frame("S1", "down", result("h2"), 1.52)  # answers may come in any order
    book.frame("S1", "down", result("h1"), 1.1)
    assert [round(a, 3) for a in book.answers] == [0.005, 0.02, 0.1]
    # an answer to nothing forwarded, and a second answer to the same id, are not answer times
    book.frame("S1", "down", result("nothing"), 2.0)
    book.frame("S1", "down", result("h1"), 2.0)
    assert len(book.answers) == 3
    assert book.frames == 2 + 4 + 2


def test_callerrors_are_counted_by_direction():
    book = Book(heartbeat_s=10, updated_s=10)
    boot(book)
    book.frame("S1", "up", call("a", "Authorize", {"idToken": {}}), 1.0)
    book.frame("S1", "down", error("a", "FormatViolation"), 1.01)  # the CSMS refuses a CALL
    book.frame("S1", "down", call("c", "GetVariables"), 2.0)
    book.frame("S1", "up", error("c", "NotImplemented"), 2.01)  # the station refuses one
    book.frame("S1", "up", error("c", "NotImplemented"), 2.02)
    assert (book.errors_csms, book.errors_station) == (1, 2)
    assert len(book.answers) == 2  # a CALLERROR is an answer too


def test_frames_that_are_not_ocpp_j_are_counted_and_ignored():
    book = Book(heartbeat_s=10, updated_s=10)
    boot(book)
    for raw in ("not json", "{}", "[]", "[2]", '[2, 1, "Heartbeat", {}]', b"\xff\x00"):
        book.frame("S1", "up", raw, 1.0)
    assert book.frames == 2 + 6 and book.problems == []


def test_the_boot_answer_sets_registration_and_heartbeat_interval():
    book = Book(heartbeat_s=60, updated_s=10)
    boot(book, "A", interval=20)
    boot(book, "B", interval=0)  # 0: the station keeps its own HeartbeatInterval
    boot(book, "C", status="Pending")
    assert book.stations["A"].accepted and book.stations["A"].heartbeat_s == 20
    assert book.stations["B"].accepted and book.stations["B"].heartbeat_s == 60
    assert not book.stations["C"].accepted and book.stations["C"].registration == "Pending"


def test_a_heartbeat_on_time_is_no_problem_a_late_one_is():
    book = Book(heartbeat_s=10, updated_s=60)
    boot(book)  # the BootNotification CALL at 0
    book.frame("S1", "up", call("h1", "Heartbeat"), 10.9)  # 0.9 s late: within the slack
    book.frame("S1", "up", call("s1", "StatusNotification"), 15.0)  # any CALL restarts it
    book.frame("S1", "up", call("h2", "Heartbeat"), 25.5)
    assert book.problems == [] and book.checked["heartbeat"] == 2
    book.frame("S1", "up", call("h3", "Heartbeat"), 37.0)  # 11.5 s after h2: 1.5 s late
    assert len(book.problems) == 1
    sid, text = book.problems[0]
    assert sid == "S1" and "Heartbeat 1.5 s late" in text and "interval 10 s" in text


def test_a_heartbeat_after_a_reconnection_counts_from_the_new_connection():
    book = Book(heartbeat_s=10, updated_s=60)
    boot(book)
    book.frame("S1", "up", call("h1", "Heartbeat"), 10.0)
    book.closed("S1", 12.0)  # an outage of 30 s
    book.connected("S1", 42.0)
    book.frame("S1", "up", call("h2", "Heartbeat"), 42.2)  # idle since 10: goes at once
    book.frame("S1", "up", call("h3", "Heartbeat"), 52.3)
    assert book.problems == []
    book.closed("S1", 53.0)
    book.connected("S1", 54.0)
    book.frame("S1", "up", call("h4", "Heartbeat"), 65.5)  # 11.5 s after the reconnection
    assert len(book.problems) == 1 and "1.5 s late" in book.problems[0][1]


def test_a_heartbeat_that_never_comes_is_overdue_once():
    book = Book(heartbeat_s=10, updated_s=60)
    boot(book)
    book.overdue(10.9)
    assert book.problems == []
    book.overdue(11.5)
    book.overdue(20.0)  # the same silence: reported once
    assert len(book.problems) == 1 and "no Heartbeat" in book.problems[0][1]
    book.frame("S1", "up", call("h1", "Heartbeat"), 21.0)  # late when it comes: the same
    assert len(book.problems) == 1
    book.overdue(30.0)
    book.overdue(32.5)  # a new silence
    assert len(book.problems) == 2
    # not while disconnected, nor before the station is accepted
    book.closed("S1", 31.0)
    book.overdue(100.0)
    boot(book, "P", t=0.0, status="Pending")
    book.overdue(100.0)
    assert len(book.problems) == 2


def test_periodic_meter_values_keep_their_interval():
    book = Book(heartbeat_s=300, updated_s=10)
    boot(book)
    book.frame("S1", "up", tx_event("t0", "Started", "TX1", 0), 5.0)
    book.frame("S1", "up", tx_event("t1", "Updated", "TX1", 1, "MeterValuePeriodic"), 15.8)
    book.frame("S1", "up", tx_event("t2", "Updated", "TX1", 2, "ChargingStateChanged"), 18.0)
    book.frame("S1", "up", tx_event("t3", "Updated", "TX1", 3, "MeterValuePeriodic"), 25.2)
    assert book.problems == []
    book.frame("S1", "up", tx_event("t4", "Updated", "TX1", 4, "MeterValuePeriodic"), 36.5)
    book.frame("S1", "up", tx_event("t5", "Updated", "TX1", 5, "MeterValuePeriodic"), 44.0)
    assert book.checked["meter value"] == 4
    assert [p[1] for p in book.problems] == [
        "periodic meter value of TX1 11.3 s after the previous one (interval 10 s)",
        "periodic meter value of TX1 7.5 s after the previous one (interval 10 s)",
    ]


def test_meter_values_across_an_outage_start_the_count_again():
    book = Book(heartbeat_s=300, updated_s=10)
    boot(book)
    book.frame("S1", "up", tx_event("t0", "Started", "TX1", 0), 5.0)
    book.closed("S1", 8.0)
    book.connected("S1", 30.0)
    # queued while offline, all sent at once after the reconnection
    book.frame("S1", "up", tx_event("t1", "Updated", "TX1", 1, "MeterValuePeriodic", True), 30.1)
    book.frame("S1", "up", tx_event("t2", "Updated", "TX1", 2, "MeterValuePeriodic", True), 30.2)
    book.frame("S1", "up", tx_event("t3", "Updated", "TX1", 3, "MeterValuePeriodic"), 35.0)
    book.frame("S1", "up", tx_event("t4", "Updated", "TX1", 4, "MeterValuePeriodic"), 45.0)
    assert book.problems == [] and book.checked["meter value"] == 1  # t4 after t3
    book.frame("S1", "up", tx_event("t5", "Updated", "TX1", 5, "MeterValuePeriodic"), 57.0)
    assert len(book.problems) == 1


def test_sessions_and_whole_transactions():
    book = Book(heartbeat_s=300, updated_s=10)
    boot(book)
    book.frame("S1", "up", tx_event("a0", "Started", "TX1", 0), 1.0)
    book.frame("S1", "up", tx_event("a1", "Ended", "TX1", 1), 2.0)
    book.frame("S1", "up", tx_event("a1b", "Ended", "TX1", 1), 2.5)  # sent again: the same
    book.frame("S1", "up", tx_event("b0", "Started", "TX2", 0), 3.0)
    book.frame("S1", "up", tx_event("b0b", "Started", "TX2", 0), 3.1)
    assert (book.started, book.ended) == (2, 1)
    assert book.open_transactions() == [("S1", "TX2")]
    assert book.transaction_problems() == [("S1", "transaction TX2: 0 Ended")]
    book.frame("S1", "up", tx_event("b2", "Updated", "TX2", 2), 4.0)  # seqNo 1 never came
    book.frame("S1", "up", tx_event("b3", "Ended", "TX2", 3), 5.0)
    book.frame("S1", "up", tx_event("b4", "Ended", "TX2", 4), 6.0)  # a second Ended
    book.frame("S1", "up", tx_event("c1", "Updated", "TX3", 1), 7.0)  # no Started
    assert book.transaction_problems() == [
        ("S1", "transaction TX2: 2 Ended"),
        ("S1", "transaction TX2: seqNo [1] missing"),
        ("S1", "transaction TX3: no Started"),
        ("S1", "transaction TX3: 0 Ended"),
        ("S1", "transaction TX3: seqNo [0] missing"),
    ]
    assert (book.started, book.ended) == (2, 2)


def test_window_gives_what_came_since_the_last_one():
    book = Book(heartbeat_s=10, updated_s=10)
    boot(book)
    assert book.window() == (2, [0.005])
    book.frame("S1", "up", call("h", "Heartbeat"), 1.0)
    book.frame("S1", "down", result("h"), 1.25)
    assert book.window() == (2, [0.25])
    assert book.window() == (0, [])


def test_a_reply_given_up_on_is_not_handed_to_the_next_command(tmp_path):
    # A stand-in for wallbox-sim: one reply line per command, 0.2 s late, echoing its id.
    import asyncio
    import sys

    from tools.fleet import Box

    script = (
        "import json, sys, time\n"
        "for line in sys.stdin:\n"
        "    time.sleep(0.2)\n"
        "    print(json.dumps({'ok': True, 'id': json.loads(line)['id']}), flush=True)\n"
    )

    async def main():
        box = Box("S1", "ws://unused", tmp_path, tmp_path / "config.json")
        box.args = [sys.executable, "-c", script]
        await box.start()
        try:
            try:
                await box.cmd("status", 0.05, id=1)
                raise AssertionError("no timeout")
            except TimeoutError:
                pass
            assert (await box.cmd("status", 5, id=2))["id"] == 2
            assert (await box.cmd("status", 5, id=3))["id"] == 3
        finally:
            await box.stop(2)
        assert box.proc.returncode is not None

    asyncio.run(main())
