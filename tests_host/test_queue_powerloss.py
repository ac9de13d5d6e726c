"""Power loss: the queue on the MicroPython unix port, SIGKILLed at random moments while it
posts, sends, acknowledges and compacts; after each kill the journal must replay to exactly
the messages posted and not acknowledged, in order, each once."""

import os
import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from firmware.queue import MessageQueue

ROOT = Path(__file__).resolve().parent.parent
MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"
BUDGET_S = 18  # wall time for the kill rounds
MIN_ROUNDS = 20

# Posts messages numbered from argv[2] while the sender acknowledges them; prints what the
# journal holds at start, then "posted N" once post() returned (the A record is flushed) and
# "acked N" from on_reply (after the D record is flushed). Compacts often, both ways. argv[3]
# names where the test kills it: at a random moment, or where the script halts for it.
SCRIPT = r"""
import asyncio
import random
import sys

import os
import time

import firmware.queue
import log
import ocppj
from firmware.queue import MessageQueue

log.level = 3
out = sys.stdout.write
MODE = sys.argv[3]


# os for the queue; in modes "before" and "after" it halts the script right before or right
# after the commit point of a compaction, for the test to kill it exactly there.
class Os:

    def rename(self, a, b):
        if MODE == "before":
            out("renaming\n")
            time.sleep(10)
        os.rename(a, b)
        if MODE == "after":
            out("renamed\n")
            time.sleep(10)

    def remove(self, path):
        os.remove(path)


firmware.queue.os = Os()


class Conn:
    def __init__(self):
        self.ready = asyncio.Event()
        self.ready.set()


class DM:
    def get_int(self, key):
        return 10 if "Attempts:" in key else 1


class Session:
    async def call(self, action, payload):
        await asyncio.sleep_ms(random.randint(0, 6))
        r = random.randint(0, 29)
        if r == 0:
            raise asyncio.TimeoutError()
        if r == 1:
            raise ocppj.CallError("GenericError", "", None, True)
        if r == 2:
            raise ocppj.NotConnected()
        return {}


q = MessageQueue(sys.argv[1], Session(), Conn(), DM(), capacity=100000)
q.compact_bytes = 1500
q.unit_ms = 1
q.pause_ms = 1


def replied(payload, response):
    out("acked %d\n" % payload["seqNo"])
    if MODE == "reply":
        time.sleep(10)  # halted right after the first answer, for the test to kill it here


q.on_reply["TransactionEvent"] = replied
out("live %s\n" % " ".join(str(p["seqNo"]) for a, p, t in q.messages()))


backlog = random.randint(5, 60)


async def poster(n):
    while True:
        while q.pending() > backlog:  # a bounded backlog, as a station's would be
            await asyncio.sleep_ms(2)
        for _ in range(random.randint(1, 8)):
            payload = {"eventType": "Updated", "seqNo": n, "pad": "x" * random.randint(0, 300)}
            q.post("TransactionEvent", payload, "T%d" % (n // 50))
            out("posted %d\n" % n)
            n += 1
            if n % 4 == 0:
                q.compact()
        await asyncio.sleep_ms(random.randint(0, 12))


async def main():
    asyncio.create_task(q.run())
    await poster(int(sys.argv[2]))


asyncio.run(main())
"""


class _Conn:
    def __init__(self):
        import asyncio

        self.ready = asyncio.Event()


def replay(path):
    """The seqNos a boot finds in the journal, replayed under CPython."""
    q = MessageQueue(str(path), None, _Conn(), None, capacity=100000)
    try:
        return [p["seqNo"] for _, p, _ in q.messages()]
    finally:
        q.close()


def whole_lines(data):
    """The complete lines printed before the kill (a cut last line confirms nothing)."""
    text = data.decode(errors="replace")
    return text.split("\n")[:-1]


def test_sigkill_at_random_moments_loses_and_duplicates_nothing(tmp_path):
    if not MICROPYTHON.exists():
        pytest.skip("no MicroPython unix port in .venv")
    script = tmp_path / "poster.py"
    script.write_text(SCRIPT)
    path = tmp_path / "q.jnl"
    env = dict(os.environ, MICROPYPATH=".frozen:%s:%s" % (ROOT / "lib", ROOT))
    rnd = random.Random(20240601)
    posted = set()  # confirmed posts
    acked = set()  # confirmed acknowledgements
    gone = set()  # seen absent after a kill: must never come back
    expected = []  # what the last replay showed: the next boot must start from it
    nxt = 0
    rounds = tmp_seen = halted = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < BUDGET_S or rounds < MIN_ROUNDS:
        start = nxt
        mode = ("random", "before", "after", "reply")[rounds % 4]
        proc = subprocess.Popen(
            [str(MICROPYTHON), str(script), str(path), str(start), mode],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        if mode == "random":
            time.sleep(rnd.uniform(0.02, 0.35))
            head = b""
        else:  # at a compaction's commit point, or in on_reply: read until it is there
            watchdog = threading.Timer(10, proc.kill)
            watchdog.start()
            head = line = b""
            while not line.startswith(b"acked " if mode == "reply" else b"renam"):
                line = proc.stdout.readline()
                assert line, "the script ended early"
                head += line
            watchdog.cancel()
            halted += 1
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == -signal.SIGKILL, (err.decode(), out[-2000:])
        lines = [ln for ln in whole_lines(head + out) if not ln.startswith("renam")]
        run_posted = [int(ln.split()[1]) for ln in lines if ln.startswith("posted ")]
        run_acked = [int(ln.split()[1]) for ln in lines if ln.startswith("acked ")]
        if lines and lines[0].startswith("live"):
            # The MicroPython boot replayed what the last CPython replay showed.
            assert [int(x) for x in lines[0].split()[1:]] == expected
        posted.update(run_posted)
        acked.update(run_acked)
        assert not acked - posted - set(expected)
        in_flight = (max(run_posted) + 1) if run_posted else start  # maybe half-posted
        tmp_seen += (tmp_path / "q.jnl.tmp").exists()

        got = replay(path)
        assert got == sorted(set(got)), "out of order or duplicated: %s" % got
        assert not set(got) & acked, "acknowledged messages came back"
        assert not set(got) & gone, "lost messages came back"
        # The sender acknowledges the oldest message first, one at a time: only that one
        # may be gone without its "acked" line (the kill came between the flush and print).
        unacked = sorted((posted | set(expected)) - acked)
        missing = (posted - acked) - set(got)
        assert not missing - set(unacked[:1]), "posted, not acknowledged, yet gone: %s" % sorted(
            missing
        )
        assert set(got) <= posted | {in_flight}, "never posted"
        posted.update(got)  # a half-posted message that made it is posted now
        acked |= missing  # acknowledged, only its line was cut
        gone |= posted - set(got)
        expected = got
        nxt = in_flight + 1
        rounds += 1
    print(
        "%d kills (%d at a chosen point), %d posted, %d acked, .tmp left %d times"
        % (rounds, halted, nxt, len(acked), tmp_seen)
    )
    assert len(acked) > 100 and len(posted) > 200  # the runs did real work
