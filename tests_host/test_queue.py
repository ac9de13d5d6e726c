"""The durable message queue (firmware/queue.py): order, persistence, E13 retries, offline
flag, eviction, compaction, replay of damaged journals, and a property test of the journal."""

import asyncio
import json
import os
import tempfile
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ocppj
from firmware import queue as qmod
from firmware.queue import MessageQueue

TE = "TransactionEvent"
SEC = "SecurityEventNotification"
ATTEMPTS = "OCPPCommCtrlr/MessageAttempts:TransactionEvent"
INTERVAL = "OCPPCommCtrlr/MessageAttemptInterval:TransactionEvent"
UNIT_MS = 20  # one "second" of MessageAttemptInterval in these tests


class FakeDM:
    def __init__(self, attempts=3, interval=3):
        self.values = {ATTEMPTS: str(attempts), INTERVAL: str(interval)}

    def get_int(self, key):
        return int(self.values[key])


class FakeConnection:
    def __init__(self, ready=True):
        self.ready = asyncio.Event()
        if ready:
            self.ready.set()


class Timeout:
    """Script item: no answer; the session gives up after `ms` (MessageTimeout)."""

    def __init__(self, ms):
        self.ms = ms


class Drop:
    """Script item: the link drops while we wait; it is back `ms` later."""

    def __init__(self, conn, ms):
        self.conn = conn
        self.ms = ms


class FakeSession:
    """Answers each call() with the next scripted outcome ({} once the script is used up)."""

    def __init__(self, script=()):
        self.script = list(script)
        self.calls = []  # (monotonic s, action, copy of the payload)

    async def call(self, action, payload):
        self.calls.append((time.monotonic(), action, json.loads(json.dumps(payload))))
        out = self.script.pop(0) if self.script else {}
        if isinstance(out, Timeout):
            await asyncio.sleep(out.ms / 1000)
            raise asyncio.TimeoutError()
        if isinstance(out, Drop):
            out.conn.ready.clear()
            asyncio.get_running_loop().call_later(out.ms / 1000, out.conn.ready.set)
            raise ocppj.NotConnected()
        if isinstance(out, BaseException):
            raise out
        return out


def make(path, session=None, conn=None, dm=None, compact_bytes=None, **kw):
    q = MessageQueue(
        str(path), session or FakeSession(), conn or FakeConnection(), dm or FakeDM(), **kw
    )
    if compact_bytes:
        q.compact_bytes = compact_bytes
    q.unit_ms = UNIT_MS
    q.pause_ms = 5
    return q


def run_until(q, cond, timeout=5.0):
    """Run the sender until cond() holds (then a little longer, to catch extra sends)."""

    async def go():
        task = asyncio.create_task(q.run())
        t0 = time.monotonic()
        while not cond():
            if time.monotonic() - t0 > timeout:
                task.cancel()
                raise AssertionError("condition not reached")
            await asyncio.sleep(0.002)
        await asyncio.sleep(0.05)
        task.cancel()

    asyncio.run(go())


def ev(kind, n, tx="T1"):
    return {
        "eventType": kind,
        "timestamp": "2024-01-01T00:00:00Z",
        "triggerReason": "MeterValuePeriodic",
        "seqNo": n,
        "transactionInfo": {"transactionId": tx},
    }


def seqnos(q):
    return [p.get("seqNo", p.get("type")) for _, p, _ in q.messages()]


def reopen(q):
    q.close()
    return make(q.path, q.session, q.connection, q.dm, capacity=q.capacity)


# -- order, persistence, replies ------------------------------------------------------------


def test_fifo_order_and_on_reply(tmp_path):
    s = FakeSession([{"n": 1}, {"n": 2}, {"n": 3}])
    q = make(tmp_path / "q.jnl", s)
    replies = []
    q.on_reply[TE] = lambda p, r: replies.append((p["seqNo"], r))
    q.on_reply[SEC] = lambda p, r: replies.append((p["type"], r))
    q.post(TE, ev("Started", 0), "T1")
    q.post(SEC, {"type": "StartupOfTheDevice", "timestamp": "2024-01-01T00:00:00Z"})
    q.post(TE, ev("Updated", 1), "T1")
    run_until(q, lambda: q.pending() == 0)
    assert [(c[1], c[2].get("seqNo")) for c in s.calls] == [(TE, 0), (SEC, None), (TE, 1)]
    assert replies == [(0, {"n": 1}), ("StartupOfTheDevice", {"n": 2}), (1, {"n": 3})]
    assert seqnos(reopen(q)) == []


def test_on_flash_before_post_returns(tmp_path):
    path = tmp_path / "q.jnl"
    q = make(path)
    q.post(TE, ev("Started", 0), "T1")
    q.post(TE, ev("Updated", 1), "T1")
    text = path.read_bytes()
    assert text.endswith(b"\n") and text.count(b"\nA ") == 2
    # A second queue on the same file, the first never closed: what a reboot finds.
    q2 = make(path)
    assert list(q2.messages()) == [
        (TE, dict(ev("Started", 0), offline=False), "T1"),
        (TE, dict(ev("Updated", 1), offline=False), "T1"),
    ]
    assert q2.pending() == 2 and q2.pending("T1") == 2 and q2.pending("T2") == 0


def test_replayed_messages_are_sent_and_answered(tmp_path):
    q = make(tmp_path / "q.jnl", conn=FakeConnection(ready=False))
    q.post(TE, ev("Started", 0), "T1")
    q.post(TE, ev("Ended", 1), "T1")
    s = FakeSession([{"idTokenInfo": {"status": "Accepted"}}])
    q2 = make(q.path, s)
    got = []
    q2.on_reply[TE] = lambda p, r: got.append((p["seqNo"], p["offline"], r))
    run_until(q2, lambda: q2.pending() == 0)
    assert got == [(0, True, {"idTokenInfo": {"status": "Accepted"}}), (1, True, {})]


def test_waits_for_ready(tmp_path):
    conn = FakeConnection(ready=False)
    s = FakeSession()
    q = make(tmp_path / "q.jnl", s, conn)
    q.post(TE, ev("Started", 0), "T1")

    async def go():
        task = asyncio.create_task(q.run())
        await asyncio.sleep(0.05)
        before = len(s.calls)
        conn.ready.set()
        await asyncio.sleep(0.05)
        task.cancel()
        return before

    assert asyncio.run(go()) == 0
    assert len(s.calls) == 1 and q.pending() == 0


# -- order with messages sent beside the queue (StatusNotification) --------------------------


def test_mark_before_hold_kick_and_on_gone(tmp_path):
    s = FakeSession()
    q = make(tmp_path / "q.jnl", s)
    gone = []
    q.on_gone = lambda: gone.append(q.pending())
    assert q.before(q.mark())  # empty
    q.post(TE, ev("Started", 0), "T1")
    m = q.mark()  # a change between the two messages
    q.post(TE, ev("Updated", 1), "T1")
    assert not q.before(m)
    held = [True]
    q.hold = lambda seq: held[0] and seq >= m

    async def go():
        task = asyncio.create_task(q.run())
        while q.pending() == 2:
            await asyncio.sleep(0.002)
        await asyncio.sleep(0.05)
        first = [c[2]["seqNo"] for c in s.calls]
        ok_before = q.before(m)
        held[0] = False
        q.kick()
        while q.pending():
            await asyncio.sleep(0.002)
        task.cancel()
        return first, ok_before

    first, ok_before = asyncio.run(go())
    assert first == [0] and ok_before  # the message after the mark waited for the kick
    assert [c[2]["seqNo"] for c in s.calls] == [0, 1]
    assert gone == [1, 0]


# -- E13 retries ----------------------------------------------------------------------------


def gaps_ms(calls):
    return [round((b[0] - a[0]) * 1000) for a, b in zip(calls, calls[1:], strict=False)]


def test_callerror_retries_interval_times_k_then_drop(tmp_path):
    err = ocppj.CallError("InternalError", "", None, True)
    s = FakeSession([err, err, err, {}])
    q = make(tmp_path / "q.jnl", s, dm=FakeDM(attempts=3, interval=3))
    replies = []
    q.on_reply[TE] = lambda p, r: replies.append(p["seqNo"])
    q.post(TE, ev("Updated", 5), "T1")
    q.post(TE, ev("Updated", 6), "T1")
    run_until(q, lambda: q.pending() == 0)
    # Three transmissions of seqNo 5 (same payload), I x 1 then I x 2 apart; then dropped.
    assert [c[2]["seqNo"] for c in s.calls] == [5, 5, 5, 6]
    assert s.calls[0][2] == s.calls[1][2] == s.calls[2][2]
    g = gaps_ms(s.calls)
    assert 3 * UNIT_MS <= g[0] < 3 * UNIT_MS + 40
    assert 6 * UNIT_MS <= g[1] < 6 * UNIT_MS + 40
    assert g[2] < 40  # the drop (E13.FR.04) is followed by the next message at once
    assert replies == [6]
    assert seqnos(reopen(q)) == []


def test_timeout_is_an_attempt_and_success_ends_retries(tmp_path):
    s = FakeSession([Timeout(40), {}])
    q = make(tmp_path / "q.jnl", s, dm=FakeDM(attempts=3, interval=2))
    replies = []
    q.on_reply[TE] = lambda p, r: replies.append(p["seqNo"])
    q.post(TE, ev("Updated", 1), "T1")
    run_until(q, lambda: q.pending() == 0)
    assert len(s.calls) == 2 and replies == [1]
    assert 40 + 2 * UNIT_MS <= gaps_ms(s.calls)[0] < 40 + 2 * UNIT_MS + 40  # timeout + I x 1


def test_attempts_one_means_no_resend(tmp_path):
    s = FakeSession([ocppj.CallError("GenericError", "", None, True)])
    q = make(tmp_path / "q.jnl", s, dm=FakeDM(attempts=1, interval=1))
    q.post(TE, ev("Updated", 1), "T1")
    run_until(q, lambda: q.pending() == 0)
    assert len(s.calls) == 1


def test_dropped_link_is_not_an_attempt(tmp_path):
    conn = FakeConnection()
    err = ocppj.CallError("InternalError", "", None, True)
    s = FakeSession([Drop(conn, 30), Drop(conn, 30), err, Drop(conn, 30), {}])
    q = make(tmp_path / "q.jnl", s, conn, FakeDM(attempts=2, interval=1))
    replies = []
    q.on_reply[TE] = lambda p, r: replies.append(p["seqNo"])
    q.post(TE, ev("Updated", 3), "T1")
    run_until(q, lambda: q.pending() == 0)
    # Five transmissions of the same message, only one of them a failed attempt (of two).
    assert [c[2]["seqNo"] for c in s.calls] == [3] * 5 and replies == [3]
    assert min(gaps_ms(s.calls)[:2]) >= 30  # resent only once the link was back


def test_out_of_memory_is_no_attempt_and_the_sender_lives_on(tmp_path, monkeypatch):
    s = FakeSession([MemoryError(), MemoryError(), {}])
    q = make(tmp_path / "q.jnl", s, dm=FakeDM(attempts=1, interval=1))  # one failure drops
    replies = []
    q.on_reply[TE] = lambda p, r: replies.append(p["seqNo"])
    load = q._load
    fails = [1]

    def short_of_memory(src, e):
        if fails[0]:
            fails[0] -= 1
            raise MemoryError("allocating 2624 bytes")
        return load(src, e)

    monkeypatch.setattr(q, "_load", short_of_memory)
    q.post(TE, ev("Ended", 4), "T1")
    run_until(q, lambda: q.pending() == 0)
    assert [c[2]["seqNo"] for c in s.calls] == [4] * 3 and replies == [4]


def test_settings_are_the_device_models(tmp_path):
    from firmware.device_model import DeviceModel
    from firmware.variables import VARIABLES
    from store import Store

    dm = DeviceModel(Store(str(tmp_path / "st")), VARIABLES)
    q = make(tmp_path / "q.jnl", dm=dm)
    assert q._setting(qmod._ATTEMPTS, 0) == 3 and q._setting(qmod._INTERVAL, 0) == 60


# -- offline flag ---------------------------------------------------------------------------


def test_offline_flag_says_whether_posted_while_not_ready(tmp_path):
    conn = FakeConnection(ready=False)
    q = make(tmp_path / "q.jnl", conn=conn)
    a, b, c = ev("Started", 0), ev("Updated", 1), {"type": "TamperDetectionActivated"}
    q.post(TE, a, "T1")
    q.post(SEC, c)
    conn.ready.set()
    q.post(TE, b, "T1")
    assert a["offline"] is True and b["offline"] is False and "offline" not in c
    assert [p.get("offline") for _, p, _ in reopen(q).messages()] == [True, None, False]


# -- eviction -------------------------------------------------------------------------------


def test_full_queue_thins_updated_every_second_one(tmp_path):
    q = make(tmp_path / "q.jnl", capacity=10)
    q.post(TE, ev("Started", 0), "T1")
    for n in range(1, 18):
        assert q.post(TE, ev("Updated", n), "T1")
    assert q.post(TE, ev("Ended", 18), "T1")
    # Drops, in turn: 2, 4, 6, 8, 10, 12, 14 (the first walk), then 3, 7 (the second).
    assert seqnos(q) == [0, 1, 5, 9, 11, 13, 15, 16, 17, 18]
    assert seqnos(reopen(q)) == [0, 1, 5, 9, 11, 13, 15, 16, 17, 18]


def test_thinning_takes_the_oldest_transaction_first(tmp_path):
    q = make(tmp_path / "q.jnl", capacity=8)
    for n in range(4):
        q.post(TE, ev("Updated", n, "A"), "A")
    for n in range(10, 14):
        q.post(TE, ev("Updated", n, "B"), "B")
    q.post(TE, ev("Updated", 14, "B"), "B")
    assert seqnos(q) == [0, 2, 3, 10, 11, 12, 13, 14]
    q.post(TE, ev("Updated", 15, "B"), "B")  # a new walk over A's survivors
    assert seqnos(q) == [0, 3, 10, 11, 12, 13, 14, 15]
    q.post(TE, ev("Updated", 16, "B"), "B")  # A has only its first and newest left: B's turn
    assert seqnos(q) == [0, 3, 10, 12, 13, 14, 15, 16]


def test_eviction_fallbacks_and_started_ended_kept(tmp_path):
    q = make(tmp_path / "q.jnl", capacity=4)
    sec = lambda name: {"type": name, "timestamp": "2024-01-01T00:00:00Z"}  # noqa: E731
    q.post(SEC, sec("A"))
    q.post(TE, ev("Started", 0), "T1")
    q.post(TE, ev("Updated", 1), "T1")
    q.post(TE, ev("Updated", 2), "T1")
    q.post(TE, ev("Updated", 3), "T1")  # two Updated: no thinning; the oldest Updated goes
    assert seqnos(q) == ["A", 0, 2, 3]
    q.post(TE, ev("Ended", 4), "T1")
    q.post(TE, ev("Started", 0, "T2"), "T2")
    assert seqnos(q) == ["A", 0, 4, 0]
    q.post(SEC, sec("B"))  # no Updated left: the oldest non-transaction message goes
    assert seqnos(q) == [0, 4, 0, "B"]
    q.post(TE, ev("Ended", 1, "T2"), "T2")
    assert seqnos(q) == [0, 4, 0, 1]
    assert q.post(SEC, sec("C")) is False  # only Started/Ended left: refused
    assert q.post(TE, ev("Updated", 2, "T2"), "T2") is False
    for n, kind in enumerate(("Started", "Ended", "Started", "Ended", "Started")):
        ok = q.post(TE, ev(kind, n, "T%d" % (n + 3)), "T%d" % (n + 3))
        assert ok is (n < 4)  # kept beyond capacity, up to twice it
    assert q.pending() == 8 and q.pending("T2") == 2
    assert seqnos(reopen(q)) == [0, 4, 0, 1, 0, 1, 2, 3]


def test_the_message_being_sent_is_not_evicted(tmp_path):
    q = make(tmp_path / "q.jnl", capacity=2)
    q.post(TE, ev("Updated", 1), "T1")
    q.post(TE, ev("Updated", 2), "T1")
    q._busy = q._live[0][0]
    q.post(TE, ev("Updated", 3), "T1")
    assert seqnos(q) == [1, 3]


# -- pending --------------------------------------------------------------------------------


def test_pending_per_transaction_and_action(tmp_path):
    q = make(tmp_path / "q.jnl")
    q.post(TE, ev("Started", 0, "A"), "A")
    q.post(TE, ev("Started", 0, "B"), "B")
    q.post(TE, ev("Updated", 1, "A"), "A")
    q.post(SEC, {"type": "X", "timestamp": "2024-01-01T00:00:00Z"})
    assert (q.pending(), q.pending("A"), q.pending("B"), q.pending("C")) == (4, 2, 1, 0)
    assert q.pending(action=TE) == 3
    q._remove(q._live[0])
    assert q.pending("A") == 1 and reopen(q).pending("A") == 1


# -- compaction -----------------------------------------------------------------------------


def post_n(q, first, count, pad=0):
    for n in range(first, first + count):
        q.post(TE, dict(ev("Updated", n), pad="x" * pad), "T1")


def test_compaction_keeps_exactly_the_live_messages_in_order(tmp_path):
    path = tmp_path / "q.jnl"
    q = make(path)
    post_n(q, 0, 10)
    for i in (0, 0, 3, 5):  # acknowledged or dropped
        q._remove(q._live[i])
    live = seqnos(q)
    assert live == [2, 3, 4, 6, 7, 9]
    q.compact()
    lines = path.read_bytes().splitlines()
    assert lines[0] == b"Q1 11" and all(ln.startswith(b"A ") for ln in lines[1:])
    assert len(lines) == 7 and not os.path.exists(str(path) + ".tmp")
    assert seqnos(q) == live  # the index follows the new offsets
    q.post(TE, ev("Updated", 10), "T1")
    assert seqnos(reopen(q)) == live + [10]


def test_sender_compacts_and_the_journal_stays_small(tmp_path):
    path = tmp_path / "q.jnl"
    s = FakeSession()
    q = make(path, s)
    q.compact_bytes = 2000
    post_n(q, 0, 200, pad=100)  # about 60 KB of records, all answered
    run_until(q, lambda: q.pending() == 0)
    assert len(s.calls) == 200
    assert path.stat().st_size <= 2000 and q.bytes_written > 60000
    assert seqnos(reopen(q)) == []


def test_compaction_in_slices_with_posts_and_answers_meanwhile(tmp_path):
    path = tmp_path / "q.jnl"
    q = make(path)
    post_n(q, 0, 6)
    steps = q._compact_steps()
    next(steps)
    next(steps)  # two copied
    q._remove(q._live[0])  # answered after it was copied: gets a D record in the new file
    q._remove(q._live[3])  # dropped before it was copied: not copied at all
    post_n(q, 6, 2)  # posted meanwhile: appended to the old journal and copied at the end
    q._remove(q._live[-1])  # ... and one of them already answered
    for _ in steps:
        pass
    assert seqnos(q) == [1, 2, 3, 5, 6]
    assert seqnos(reopen(q)) == [1, 2, 3, 5, 6]
    assert path.read_bytes().count(b"\nD ") == 1


def test_interrupted_compaction_leaves_the_old_journal(tmp_path):
    path = tmp_path / "q.jnl"
    q = make(path)
    post_n(q, 0, 5)
    q._remove(q._live[1])
    steps = q._compact_steps()
    next(steps)
    next(steps)
    # Power loss here: the journal and a half-written .tmp are what the next boot finds.
    journal, tmp = path.read_bytes(), (tmp_path / "q.jnl.tmp").read_bytes()
    steps.close()
    q.close()
    path.write_bytes(journal)
    (tmp_path / "q.jnl.tmp").write_bytes(tmp)
    q2 = make(path)
    assert seqnos(q2) == [0, 2, 3, 4] and not (tmp_path / "q.jnl.tmp").exists()


def test_power_loss_right_after_the_rename(tmp_path, monkeypatch):
    path = tmp_path / "q.jnl"
    q = make(path)
    post_n(q, 0, 4)
    q._remove(q._live[0])
    real = os.rename

    def rename_then_die(a, b):
        real(a, b)
        raise KeyboardInterrupt  # stands for the power going before anything else runs

    monkeypatch.setattr(qmod.os, "rename", rename_then_die)
    with pytest.raises(KeyboardInterrupt):
        q.compact()
    monkeypatch.setattr(qmod.os, "rename", real)
    assert seqnos(make(path)) == [1, 2, 3]


# -- damaged journals -----------------------------------------------------------------------


def test_torn_last_line_is_ignored_at_every_cut(tmp_path):
    """Cut the journal at every byte: the replay is the state after the last whole record,
    and the next post is not glued to the torn line."""
    path = tmp_path / "q.jnl"
    q = make(path)
    states = [(path.stat().st_size, [])]
    model = []
    for n in range(6):
        q.post(TE, ev("Updated", n), "T1")
        model.append(n)
        states.append((path.stat().st_size, list(model)))
        if n % 2:
            q._remove(q._live[0])
            model.pop(0)
            states.append((path.stat().st_size, list(model)))
    q.close()
    whole = path.read_bytes()
    for cut in range(len(whole) + 1):
        path.write_bytes(whole[:cut])
        expected = [m for size, m in states if size <= cut][-1] if cut >= states[0][0] else []
        q = make(path)
        assert seqnos(q) == expected, cut
        q.post(TE, ev("Updated", 99), "T1")
        q.close()
        assert seqnos(make(path)) == expected + [99], cut


def test_garbage_lines_are_ignored_and_rewritten(tmp_path):
    path = tmp_path / "q.jnl"
    q = make(path)
    post_n(q, 0, 3)
    q.close()
    lines = path.read_bytes().splitlines(keepends=True)
    junk = [b"\n", b"xyz\n", b"A 77 {not json\n", b"A 78 [1,2]\n", b"D abc\n", b"\xff\x00\n"]
    path.write_bytes(b"".join(lines[:2] + junk + lines[2:] + [b"D 2\n", b'A 5 ["Tr']))
    q = make(path)
    assert seqnos(q) == [0, 2]
    text = path.read_bytes()
    assert b"xyz" not in text and text.count(b"\n") == 3  # rewritten: header and two records
    q.post(TE, ev("Updated", 3), "T1")
    assert seqnos(reopen(q)) == [0, 2, 3]


def test_unknown_version_is_set_aside(tmp_path):
    path = tmp_path / "q.jnl"
    path.write_bytes(b'Q9 5\nA 1 ["TransactionEvent",null,null,{}]\n')
    q = make(path)
    assert q.pending() == 0 and (tmp_path / "q.jnl.old").exists()


def test_write_failure_keeps_the_message_and_repairs_the_journal(tmp_path):
    path = tmp_path / "q.jnl"
    s = FakeSession()
    q = make(path, s, FakeConnection(ready=False))
    post_n(q, 0, 1)

    class Broken:
        def write(self, data):
            real.write(data[:10])  # half a record reaches the flash
            real.flush()
            raise OSError(28)

        def close(self):
            real.close()

    real, q._f = q._f, Broken()
    post_n(q, 1, 1)
    assert seqnos(q) == [0, 1]  # kept in RAM, still to be sent
    assert seqnos(make(path)) == [0]  # the torn half-record is ignored
    post_n(q, 2, 1)  # the next append rewrites the journal first
    assert seqnos(make(path)) == [0, 1, 2]
    q.connection.ready.set()
    run_until(q, lambda: q.pending() == 0)
    assert [c[2]["seqNo"] for c in s.calls] == [0, 1, 2]


# -- the journal as a whole -----------------------------------------------------------------

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("post"), st.integers(0, 300), st.sampled_from(["Updated", "Ended"])),
        st.tuples(st.just("ack")),
        st.tuples(st.just("drop"), st.integers(0, 50)),
        st.tuples(st.just("compact")),
        st.tuples(st.just("slices"), st.integers(0, 5), st.integers(0, 3)),
        st.tuples(st.just("crash_in_compaction"), st.integers(0, 5)),
        st.tuples(st.just("restart")),
        st.tuples(st.just("crash")),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OPS)
def test_replayed_is_posted_minus_acknowledged_in_order(ops):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "q.jnl")
        q = make(path, capacity=10000, compact_bytes=600)
        model = []
        n = 0

        def post(size, kind):
            nonlocal n
            q.post(TE, {"eventType": kind, "seqNo": n, "pad": "é" * size}, "T%d" % (n % 3))
            model.append(n)
            n += 1

        def ack(i):
            if model:
                i %= len(model)
                q._remove(q._live[i])
                model.pop(i)

        for op in ops:
            if op[0] == "post":
                post(op[1], op[2])
            elif op[0] == "ack":
                ack(0)
            elif op[0] == "drop":
                ack(op[1])
            elif op[0] == "compact":
                q.compact()
            elif op[0] == "slices":
                steps = q._compact_steps()
                for _ in zip(range(op[1]), steps, strict=False):
                    pass
                post(op[2] * 50, "Updated")
                ack(op[2])
                for _ in steps:
                    pass
            elif op[0] == "crash_in_compaction":
                steps = q._compact_steps()
                for _ in zip(range(op[1]), steps, strict=False):
                    pass
                files = {
                    p: open(p, "rb").read() for p in (path, path + ".tmp") if os.path.exists(p)
                }
                steps.close()
                q.close()
                for p, data in files.items():
                    open(p, "wb").write(data)
                q = make(path, capacity=10000, compact_bytes=600)
            elif op[0] == "restart":
                q.close()
                q = make(path, capacity=10000, compact_bytes=600)
            else:  # crash: the old queue is never closed
                q = make(path, capacity=10000, compact_bytes=600)
            assert seqnos(q) == model
            assert q.pending() == len(model)
        q.close()
        assert seqnos(make(path, capacity=10000)) == model
