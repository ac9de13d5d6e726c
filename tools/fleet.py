# fleet: `make fleet`: many virtual wallboxes against one CSMS, through a measuring relay.
# MIT licence.
"""A fleet of virtual wallboxes for CSMS load tests.

Starts N virtual wallboxes (tools/wallbox-sim, ids PREFIX0001...) with their boots spread over
a ramp, drives each through its own seeded pattern of sessions (plug in, card, the EV asks for
energy, pauses, stops, plug out) and network outages, over each station's control channel
(shared/docs/sim-control.md), and prints a summary every few seconds and at the end.

The stations do not talk to the CSMS directly: they connect to a WebSocket relay in this
process (127.0.0.1, a free port), which opens the matching connection to the CSMS (same
identity path segment, subprotocol ocpp2.0.1, the station's Authorization header) and forwards
every frame unchanged, in order. The relay timestamps the frames, which gives, without touching
the firmware:

- the CSMS's answer times: from a station's CALL forwarded to the CSMS until its CALLRESULT or
  CALLERROR came back (what the station sees, less one loopback hop through the relay);
- messages per second (both directions), CALLERRORs (from the CSMS and from the stations),
  sessions (TransactionEvent Started and Ended);
- timing checks: a Heartbeat more than SLACK (1 s) later than HeartbeatInterval after the
  station's previous CALL (the firmware sends one only when no other CALL went out for the
  interval: firmware/connection.py); a periodic meter value (TransactionEvent Updated,
  MeterValuePeriodic) more than SLACK off TxUpdatedInterval after the previous one of its
  transaction (or its Started). Frames across an outage (a reconnection, or offline true)
  start the count again.

Each summary also asks every station for its `status`: the safety loop's longest stall since
boot (`max_stall_ms`; over 10 ms is a problem).

Without --csms the development CSMS (tools/csms.py) runs in this process, in a thread of its
own, answering Heartbeats at HeartbeatInterval. Exit status 0 when every station was accepted,
every transaction seen was whole (Started ... Ended, seqNo without gaps) and no timing problem
was seen; 1 otherwise, with the stations and the reasons.

Ctrl-C (or the end of --minutes) winds down: no new sessions, the running ones end (EV
unplugged, network back), up to --drain seconds for their Ended to reach the CSMS, then `quit`
to every station and SIGKILL to the process group of any that has not exited. A second Ctrl-C
skips the wait. The processes are killed on any exception too.

    .venv/bin/python tools/fleet.py -n 100 [--csms ws://...] [--rate 6] [--minutes 10]
"""

import argparse
import asyncio
import collections
import json
import math
import os
import random
import shutil
import signal
import ssl
import sys
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import websockets  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402
from websockets.asyncio.server import serve  # noqa: E402

from tools.harness import SIM, variables  # noqa: E402

SUBPROTOCOL = "ocpp2.0.1"
SLACK_S = 1.0  # how late a heartbeat or a meter value may be
STALL_LIMIT_MS = 10  # the safety loop's longest stall allowed

_KINDS = {(2, 4): "call", (3, 3): "result", (4, 5): "error"}


def percentile(values, p):
    """The p-th percentile (0 < p <= 100) of values by the nearest-rank method; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    k = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[k - 1]


async def _sleep_unless(event, seconds):
    """Sleep `seconds`; True at once if `event` is set meanwhile (the fleet winds down)."""
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        return False
    return True


def _parse(raw):
    """(kind, unique id, the list) of an OCPP-J frame; (None, None, None) if it is not one."""
    if isinstance(raw, (bytes, bytearray)):
        raw = bytes(raw).decode("utf-8", "replace")
    try:
        msg = json.loads(raw)
    except (ValueError, RecursionError):
        return None, None, None
    if not isinstance(msg, list) or not msg or type(msg[0]) is not int:
        return None, None, None
    kind = _KINDS.get((msg[0], len(msg)))
    if kind is None or not isinstance(msg[1], str):
        return None, None, None
    return kind, msg[1], msg


class _Station:
    """What the relay knows of one station."""

    def __init__(self, heartbeat_s):
        self.connected = False
        self.connections = 0  # connections opened so far (the epoch of the timing chains)
        self.since = None  # when the current connection opened
        self.heartbeat_s = heartbeat_s  # from the BootNotification answer when it has one
        self.accepted = False
        self.registration = None  # the status of the last BootNotification answer
        self.last_call = None  # when its last CALL went through
        self.overdue_from = None  # the reference of an overdue heartbeat already reported
        self.pending = {}  # unique id -> (action, time forwarded) of its unanswered CALLs
        self.chains = {}  # transactionId -> (time, connection) of the last Started/periodic


class _Tx:
    """One transaction as the relay saw it."""

    def __init__(self, sid):
        self.sid = sid
        self.seq = set()
        self.started = False
        self.ended = 0  # distinct Ended messages (by seqNo; a resend is the same message)


class Book:
    """The relay's bookkeeping, fed with frames and (dis)connections; no I/O, so that it can be
    tested with scripted frames. ``t`` is time.monotonic() seconds.

    Directions: "up" from a station to the CSMS, "down" from the CSMS to a station."""

    def __init__(self, heartbeat_s, updated_s, slack_s=SLACK_S):
        self.heartbeat_s = heartbeat_s
        self.updated_s = updated_s
        self.slack_s = slack_s
        self.stations = {}
        self.txs = {}  # transactionId -> _Tx
        self.frames = 0
        self.answers = []  # every answer time (s)
        self.errors_csms = 0  # CALLERRORs from the CSMS (to stations' CALLs)
        self.errors_station = 0  # CALLERRORs from stations (to the CSMS's CALLs)
        self.started = 0
        self.ended = 0
        self.problems = []  # (station id, text), in the order seen
        self.checked = collections.Counter()  # "heartbeat", "meter value": timings checked
        self._mark = (0, 0)  # frames, answers at the last window()

    def station(self, sid):
        st = self.stations.get(sid)
        if st is None:
            st = self.stations[sid] = _Station(self.heartbeat_s)
        return st

    def problem(self, sid, text):
        self.problems.append((sid, text))

    # -- the connection -------------------------------------------------------------------

    def connected(self, sid, t):
        st = self.station(sid)
        st.connected = True
        st.connections += 1
        st.since = t
        st.overdue_from = None

    def closed(self, sid, t):
        st = self.station(sid)
        st.connected = False
        st.pending.clear()  # answers to these will never come on this connection

    # -- frames ---------------------------------------------------------------------------

    def frame(self, sid, direction, raw, t):
        self.frames += 1
        kind, uid, msg = _parse(raw)
        if kind is None:
            return
        st = self.station(sid)
        if direction == "up":
            if kind == "call":
                self._call(sid, st, uid, msg[2], msg[3], t)
            elif kind == "error":
                self.errors_station += 1
            return
        if kind == "call":
            return
        sent = st.pending.pop(uid, None)
        if sent is None:
            return  # an answer to nothing we forwarded
        action, t0 = sent
        self.answers.append(t - t0)
        if kind == "error":
            self.errors_csms += 1
        elif action == "BootNotification" and isinstance(msg[2], dict):
            status = msg[2].get("status")
            st.registration = status
            st.accepted = status == "Accepted"
            interval = msg[2].get("interval")
            if st.accepted and type(interval) is int and interval > 0:
                st.heartbeat_s = min(interval, 86400)  # as firmware/connection.py applies it

    def _call(self, sid, st, uid, action, payload, t):
        st.pending[uid] = (action, t)
        if action == "Heartbeat" and st.accepted:
            ref = self._reference(st)
            late = t - ref - st.heartbeat_s
            self.checked["heartbeat"] += 1
            if late > self.slack_s and st.overdue_from != ref:  # else reported as overdue
                self.problem(
                    sid,
                    "Heartbeat %.1f s late (%.1f s after the previous CALL, interval %d s)"
                    % (late, t - ref, st.heartbeat_s),
                )
        st.last_call = t
        st.overdue_from = None
        if action == "TransactionEvent" and isinstance(payload, dict):
            self._tx_event(sid, st, payload, t)

    def _reference(self, st):
        """Since when the station has been idle, as far as the relay can tell: its last CALL,
        or the opening of this connection when that came later."""
        if st.last_call is None or st.since is not None and st.last_call < st.since:
            return st.since
        return st.last_call

    def _tx_event(self, sid, st, p, t):
        info = p.get("transactionInfo")
        txid = info.get("transactionId") if isinstance(info, dict) else None
        if not isinstance(txid, str):
            return
        tx = self.txs.get(txid)
        if tx is None:
            tx = self.txs[txid] = _Tx(sid)
        event, seq = p.get("eventType"), p.get("seqNo")
        new = seq not in tx.seq
        if type(seq) is int:
            tx.seq.add(seq)
        offline = p.get("offline") is True
        if event == "Started":
            if not tx.started:
                self.started += 1
            tx.started = True
            st.chains[txid] = None if offline else (t, st.connections)
        elif event == "Ended":
            if new:
                tx.ended += 1
                if tx.ended == 1:
                    self.ended += 1
            st.chains.pop(txid, None)
        elif event == "Updated" and p.get("triggerReason") == "MeterValuePeriodic":
            ref = st.chains.get(txid)
            if ref is not None and not offline and ref[1] == st.connections:
                gap = t - ref[0]
                self.checked["meter value"] += 1
                if abs(gap - self.updated_s) > self.slack_s:
                    self.problem(
                        sid,
                        "periodic meter value of %s %.1f s after the previous one (interval %d s)"
                        % (txid, gap, self.updated_s),
                    )
            st.chains[txid] = None if offline else (t, st.connections)

    # -- looking at it --------------------------------------------------------------------

    def overdue(self, t):
        """Report the connected, accepted stations that have sent no CALL for longer than
        their heartbeat interval and the slack (a Heartbeat that never comes)."""
        for sid, st in self.stations.items():
            if not (st.connected and st.accepted):
                continue
            ref = self._reference(st)
            if ref is None or st.overdue_from == ref:
                continue
            if t - ref - st.heartbeat_s > self.slack_s:
                st.overdue_from = ref
                self.problem(
                    sid,
                    "no Heartbeat %.1f s after the previous CALL (interval %d s)"
                    % (t - ref, st.heartbeat_s),
                )

    def window(self):
        """(frames, answer times) since the last call of window()."""
        f, a = self._mark
        self._mark = (self.frames, len(self.answers))
        return self.frames - f, self.answers[a:]

    def open_transactions(self):
        return [(tx.sid, txid) for txid, tx in self.txs.items() if tx.started and not tx.ended]

    def transaction_problems(self):
        """(station id, text) for each transaction that is not whole: Started ... Ended once,
        seqNo 0..n without gaps."""
        out = []
        for txid, tx in self.txs.items():
            if not tx.started:
                out.append((tx.sid, "transaction %s: no Started" % txid))
            if tx.ended != 1:
                out.append((tx.sid, "transaction %s: %d Ended" % (txid, tx.ended)))
            if tx.seq and tx.seq != set(range(max(tx.seq) + 1)):
                missing = sorted(set(range(max(tx.seq) + 1)) - tx.seq)
                out.append((tx.sid, "transaction %s: seqNo %s missing" % (txid, missing)))
        return out


# ---- the relay ------------------------------------------------------------------------------


class Relay:
    """The WebSocket relay on 127.0.0.1: one upstream connection per station connection."""

    def __init__(self, upstream, book, ca_file=None, open_timeout=20):
        self.upstream = upstream.rstrip("/")
        self.book = book
        self.open_timeout = open_timeout
        self.ssl = None
        if self.upstream.startswith("wss://"):
            self.ssl = ssl.create_default_context(cafile=ca_file)
        self.refused = collections.Counter()  # why the CSMS or the relay refused a station
        self._ups = set()  # the connections to the CSMS, open or closing
        self._tasks = set()
        self._server = None
        self.port = None

    @property
    def url(self):
        return "ws://127.0.0.1:%d/fleet" % self.port

    async def start(self):
        self._server = await serve(
            self._serve,
            "127.0.0.1",
            0,
            subprotocols=[SUBPROTOCOL],
            process_request=self._open,
            process_response=self._opened,
            compression=None,
            ping_interval=None,  # the stations' own pings are answered; no more traffic
            max_size=None,
            max_queue=None,
            open_timeout=self.open_timeout + 10,  # the CSMS's handshake happens inside ours
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self):
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for up in list(self._ups):  # none should be left; none may be
            up.transport.abort()

    async def _open(self, connection, request):
        segment = urllib.parse.urlsplit(request.path).path.rstrip("/").rsplit("/", 1)[-1]
        sid = urllib.parse.unquote(segment)
        connection.fleet = None
        headers = {}
        auth = request.headers.get("Authorization")
        if auth is not None:
            headers["Authorization"] = auth
        try:
            up = await connect(
                self.upstream + "/" + segment,
                subprotocols=[SUBPROTOCOL],
                additional_headers=headers,
                ssl=self.ssl,
                compression=None,
                ping_interval=None,
                max_size=None,
                max_queue=None,
                open_timeout=self.open_timeout,
                user_agent_header=None,
            )
        except websockets.InvalidStatus as e:
            code = e.response.status_code
            self.refused["HTTP %d" % code] += 1
            return connection.respond(code, "the CSMS answered HTTP %d\n" % code)
        except (OSError, TimeoutError, websockets.InvalidHandshake) as e:
            self.refused[type(e).__name__] += 1
            return connection.respond(502, "no connection to the CSMS: %r\n" % (e,))
        connection.fleet = (sid, up)
        connection.fleet_served = False
        self._ups.add(up)
        task = asyncio.create_task(self._reap(connection, up))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return None

    async def _reap(self, down, up):
        """Once the station's connection is gone: the CSMS's goes too if no handler ran for it
        (our handshake with the station failed or timed out after the CSMS's succeeded), else
        once the handler has passed the close on."""
        try:
            await down.wait_closed()
            if not down.fleet_served:
                up.transport.abort()
            await up.wait_closed()
        finally:
            self._ups.discard(up)

    async def _opened(self, connection, request, response):
        fleet = getattr(connection, "fleet", None)
        if response.status_code != 101 and fleet is not None:
            await fleet[1].close()  # our side failed the handshake: the CSMS's side goes too
            connection.fleet = None

    async def _serve(self, down):
        down.fleet_served = True
        sid, up = down.fleet
        book = self.book
        book.connected(sid, time.monotonic())

        async def pump(src, dst, direction):
            try:
                async for msg in src:
                    book.frame(sid, direction, msg, time.monotonic())
                    await dst.send(msg)
            except websockets.ConnectionClosed:
                pass

        to_csms = asyncio.create_task(pump(down, up, "up"))
        to_station = asyncio.create_task(pump(up, down, "down"))
        try:
            await asyncio.wait({to_csms, to_station}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            book.closed(sid, time.monotonic())
            # The side that closed first decides: a drop without a close frame (ws_disconnect,
            # a dead link) is passed on as a drop, a close with its code and reason.
            first, other = (down, up) if to_csms.done() else (up, down)
            await _pass_close(first, other)
            to_csms.cancel()
            to_station.cancel()


async def _pass_close(first, other):
    rcvd = first.protocol.close_rcvd
    try:
        if rcvd is None or rcvd.code in (1005, 1006):
            other.transport.abort()
        else:
            await asyncio.wait_for(other.close(rcvd.code, rcvd.reason), 5)
    except (TimeoutError, websockets.ConnectionClosed, OSError):
        other.transport.abort()


# ---- the stations ---------------------------------------------------------------------------


class Box:
    """One virtual wallbox process group, driven over asyncio pipes."""

    def __init__(self, sid, url, workdir, config_path, esp32=False, heap=None, code=None):
        self.sid = sid
        self.state_dir = Path(workdir) / sid
        self.log_path = Path(workdir) / (sid + ".log")
        self.args = [str(SIM), "--csms", url, "--id", sid, "--state-dir", str(self.state_dir)]
        self.args += ["--config", str(config_path)]
        if heap:
            self.args += ["--heap", heap]
        if code:
            self.args += ["--code", str(code)]
        if esp32:
            self.args.append("--esp32")
        self.proc = None
        self.status = {}  # the last status reply
        self.failed = None  # why the control channel failed, once it did
        self._waiting = collections.deque()
        self._reader = None

    async def start(self):
        shutil.rmtree(self.state_dir, ignore_errors=True)  # a new station, factory settings
        with open(self.log_path, "wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                *self.args,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                start_new_session=True,
                cwd=ROOT,
            )
        self._reader = asyncio.create_task(self._read())

    async def _read(self):
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                break
            if not self._waiting:
                continue  # a reply to nothing: the channel says one line per command
            fut = self._waiting.popleft()  # the oldest command's, even if its asker gave up
            if not fut.done():
                try:
                    fut.set_result(json.loads(line))
                except ValueError as e:
                    fut.set_exception(e)
        while self._waiting:
            fut = self._waiting.popleft()
            if not fut.done():
                fut.set_exception(EOFError("wallbox-sim closed its stdout"))

    async def cmd(self, name, timeout=10, **kw):
        """Send a command; its reply (a dict). Raises EOFError, TimeoutError, OSError."""
        kw["cmd"] = name
        fut = asyncio.get_running_loop().create_future()
        self._waiting.append(fut)
        try:
            self.proc.stdin.write(json.dumps(kw).encode() + b"\n")
        except (OSError, RuntimeError) as e:  # the process is gone
            fut.cancel()
            raise EOFError("wallbox-sim stdin: %r" % (e,)) from None
        return await asyncio.wait_for(fut, timeout)

    def alive(self):
        return self.proc is not None and self.proc.returncode is None

    def kill(self):
        """SIGKILL to the whole process group (wallbox-sim and its micropython)."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    async def stop(self, timeout=10):
        """`quit`, then wait for the exit; SIGKILL to the process group if it does not come."""
        if self.proc is None:
            return
        if self.alive():
            try:
                await self.cmd("quit", timeout)
                await asyncio.wait_for(self.proc.wait(), timeout)
            except (EOFError, TimeoutError, OSError, ValueError):
                pass
        # the group: also a micropython whose wrapper has gone (nothing may outlive us)
        self.kill()
        try:
            await asyncio.wait_for(self.proc.wait(), 5)
        except TimeoutError:
            pass
        if self._reader is not None:
            self._reader.cancel()


class Pattern:
    """The seeded pattern of one station: sessions at `rate` per hour (each one plug in, card,
    the EV asks for energy, maybe pauses, stops asking, maybe the card again, plug out; about
    half of the time charging), outages at `outages` per hour (a few seconds each)."""

    def __init__(self, box, seed, rate, outages, token, stopping, fleet):
        self.box = box
        self.rng = random.Random("%s/%s/sessions" % (seed, box.sid))
        self.net_rng = random.Random("%s/%s/outages" % (seed, box.sid))
        self.cycle_s = 3600.0 / rate
        self.outages = outages
        self.token = token
        self.stopping = stopping
        self.fleet = fleet
        self.plugged = False
        self.offline = False

    async def _wait(self, seconds):
        """Sleep; True if the fleet winds down meanwhile."""
        return await _sleep_unless(self.stopping, seconds)

    async def _do(self, name, **kw):
        try:
            reply = await self.box.cmd(name, **kw)
        except (EOFError, TimeoutError, ValueError) as e:
            self.fleet.control_failed(self.box, "%s: %r" % (name, e))
            return False
        if not reply.get("ok"):
            self.fleet.control_failed(self.box, "%s: %s" % (name, reply.get("error")))
        return True

    async def sessions(self):
        rng = self.rng
        # The first session starts anywhere in a whole cycle: about half the stations charge
        # from the first minutes on, as later (within half a cycle, 85 % charged at once).
        if await self._wait(rng.uniform(0, self.cycle_s)):
            return
        while True:
            if await self.session():
                return
            if await self._wait(rng.uniform(0.25, 0.75) * self.cycle_s):
                return

    async def session(self):
        """One session; True when the fleet winds down (the EV is unplugged first)."""
        rng = self.rng
        charge_s = rng.uniform(0.25, 0.75) * self.cycle_s
        pause = rng.random() < 0.3
        by_card = rng.random() < 0.3
        self.plugged = True
        self.fleet.sessions_driven += 1
        try:
            if not await self._do("plug_in"):
                return True
            if await self._wait(rng.uniform(0.5, 2)):
                return True
            await self._do("swipe", token=self.token)
            if await self._wait(rng.uniform(0.5, 2)):
                return True
            await self._do("ev_state", state="C")
            if pause:
                first = charge_s * rng.uniform(0.2, 0.6)
                if await self._wait(first):
                    return True
                await self._do("ev_state", state="B")  # the EV pauses
                if await self._wait(rng.uniform(2, 6)):
                    return True
                await self._do("ev_state", state="C")
                charge_s -= first
            if await self._wait(charge_s):
                return True
            await self._do("ev_state", state="B")
            if by_card:
                if await self._wait(rng.uniform(0.5, 2)):
                    return True
                await self._do("swipe", token=self.token)
            return await self._wait(rng.uniform(0.5, 2))
        finally:
            await self.unplug()

    async def unplug(self):
        if self.plugged and self.box.alive():
            self.plugged = False
            await self._do("ev_state", state="B")
            await self._do("plug_out")

    async def network(self):
        if self.outages <= 0:
            return
        rng = self.net_rng
        while True:
            if await self._wait(rng.expovariate(self.outages / 3600.0)):
                return
            self.offline = True
            self.fleet.outages += 1
            await self._do("ws_disconnect")
            stop = await self._wait(rng.uniform(2, 8))
            await self.reconnect()
            if stop:
                return

    async def reconnect(self):
        if self.offline and self.box.alive():
            self.offline = False
            await self._do("ws_connect")


# ---- the fleet ------------------------------------------------------------------------------


def station_ids(prefix, n):
    return ["%s%04d" % (prefix, i) for i in range(1, n + 1)]


def settings(args):
    """The stations' factory settings (the config file's variables)."""
    out = {
        ("OCPPCommCtrlr", "HeartbeatInterval"): str(args.heartbeat),
        ("SampledDataCtrlr", "TxUpdatedInterval"): str(args.meter_interval),
        ("AlignedDataCtrlr", "Interval"): str(args.aligned_interval),
        ("OCPPCommCtrlr", "RetryBackOffWaitMinimum"): "2",
        # doubled once at most: the station tries again at most 10 s apart, so it is back
        # within 10 s of the network, also after outages one after the other (firmware
        # Backoff: W + r, then twice that + r, ...)
        ("OCPPCommCtrlr", "RetryBackOffRandomRange"): "2",
        ("OCPPCommCtrlr", "RetryBackOffRepeatTimes"): "1",
    }
    if args.password:
        out[("SecurityCtrlr", "BasicAuthPassword")] = args.password
    return out


class Fleet:
    def __init__(self, args, say=print):
        self.args = args
        self.say = say
        self.book = Book(args.heartbeat, args.meter_interval)
        self.csms = None  # the in-process development CSMS (a harness.CsmsThread), if any
        self.relay = None
        self.boxes = []
        self.stopping = asyncio.Event()
        self.hurry = asyncio.Event()  # a second Ctrl-C: no waiting for the Ended
        self.control_errors = {}  # station id -> the first control channel failure
        self.sessions_driven = 0
        self.outages = 0
        self.max_stall = {}  # station id -> max_stall_ms
        self.stall_at = {}  # station id -> when (s into the run) max_stall_ms last grew
        self.stalls_read = False  # True from the wind-down on
        self.t0 = None
        self._last = None

    def control_failed(self, box, why):
        self.control_errors.setdefault(box.sid, why)

    # -- start and stop -------------------------------------------------------------------

    def start_csms(self):
        from tools.harness import CsmsThread

        self.csms = CsmsThread()
        interval = self.args.heartbeat

        def boot(station, payload):
            return {"status": "Accepted", "interval": interval}

        self.csms.csms.boot_policy = boot
        return self.csms.url

    async def run(self):
        args = self.args
        upstream = args.csms or self.start_csms()
        self.relay = Relay(upstream, self.book, args.ca_file)
        await self.relay.start()
        workdir = Path(args.workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / ("%sconfig.json" % args.prefix)
        # "gc_threshold": on the host target, collect every 256 KB allocated rather than every
        # 8 KB (boards/sim): a fifth less CPU a station; the virtual ESP32 keeps a board's rule
        doc = {"variables": variables(settings(args)), "sim": {"gc_threshold": 1 << 18}}
        config.write_text(json.dumps(doc, indent=1))
        ids = station_ids(args.prefix, args.n)
        self.say(
            "fleet: %d stations %s..%s via the relay %s to %s; logs and state in %s"
            % (len(ids), ids[0], ids[-1], self.relay.url, upstream, workdir)
        )
        self.t0 = self._last = time.monotonic()
        tasks = []
        try:
            poller = asyncio.create_task(self._poller())
            tasks += [asyncio.create_task(self._summaries()), poller]
            ramp = args.ramp / max(1, len(ids))
            for i, sid in enumerate(ids):
                if i and await self._sleep(ramp):
                    break
                box = Box(sid, self.relay.url, workdir, config, args.esp32, args.heap, args.code)
                self.boxes.append(box)
                await box.start()
                token = args.token or sid
                p = Pattern(box, args.seed, args.rate, args.outages, token, self.stopping, self)
                box.pattern = p
                tasks.append(asyncio.create_task(p.sessions()))
                tasks.append(asyncio.create_task(p.network()))
            if args.minutes:
                left = args.minutes * 60 - (time.monotonic() - self.t0)
                await self._sleep(max(0, left))
            else:
                await self.stopping.wait()
            # the stalls as they were in the run: winding down ends every session at once,
            # which no real fleet does
            poller.cancel()
            await self.poll()
            self.stalls_read = True
            self.stopping.set()
            self.say("fleet: winding down (Ctrl-C again to stop at once)")
            await asyncio.gather(*tasks[2:], return_exceptions=True)  # the patterns
            await self._drain()
        finally:
            self.stopping.set()
            for t in tasks:
                t.cancel()
            await self.stop()
        self.summary(final=True)
        return self.verdict()

    async def _sleep(self, seconds):
        return await _sleep_unless(self.stopping, seconds)

    async def _drain(self):
        """Wait (up to --drain s) until every transaction the relay saw has its Ended."""
        end = time.monotonic() + self.args.drain
        while self.book.open_transactions() and time.monotonic() < end:
            if self.hurry.is_set():
                return
            await asyncio.sleep(0.2)

    async def stop(self):
        """quit to every station (in parallel), SIGKILL to stragglers' groups; the relay and
        the CSMS stop after them."""
        try:
            await asyncio.gather(*(b.stop() for b in self.boxes), return_exceptions=True)
        finally:
            self.kill_all()
            if self.relay is not None:
                await self.relay.stop()
            if self.csms is not None:
                # from another thread: its closing handshakes need our loop (the relay's side)
                await asyncio.to_thread(self.csms.stop)

    def kill_all(self):
        for b in self.boxes:
            b.kill()

    def interrupt(self):
        if self.stopping.is_set():
            self.hurry.set()
        self.stopping.set()

    # -- summaries ------------------------------------------------------------------------

    async def _status(self, box):
        """Ask one station for its status: registration, max_stall_ms."""
        if not box.alive():
            return
        try:
            st = await box.cmd("status", 10)
        except (EOFError, TimeoutError, ValueError):
            return
        if st.get("ok"):
            box.status = st
            stall = st.get("max_stall_ms")
            if isinstance(stall, (int, float)) and not self.stalls_read:
                if stall > self.max_stall.get(box.sid, 0):
                    self.stall_at[box.sid] = time.monotonic() - self.t0
                self.max_stall[box.sid] = stall

    async def poll(self, spread_s=2.0):
        """Every station's status, the questions spread over spread_s: asked all at once, a
        hundred processes woken together wait for the CPU, and the stalls measured would be
        the poll's own."""
        boxes = list(self.boxes)
        if not boxes:
            await asyncio.sleep(spread_s)
            return
        gap = spread_s / len(boxes)
        tasks = []
        for box in boxes:
            tasks.append(asyncio.create_task(self._status(box)))
            await asyncio.sleep(gap)
        await asyncio.gather(*tasks)

    async def _poller(self):
        """The stations' statuses, one after the other, each about every --every s."""
        while not self.stalls_read:
            await self.poll(self.args.every)

    async def _summaries(self):
        while True:
            await asyncio.sleep(self.args.every)
            try:
                self.book.overdue(time.monotonic())
                self.summary()
            except Exception as e:  # a summary lost is no reason to lose the fleet
                self.say("fleet: summary failed: %r" % (e,))

    def summary(self, final=False):
        book = self.book
        now = time.monotonic()
        frames, answers = book.window()
        if final:
            frames, answers = book.frames, book.answers
            span = now - self.t0
        else:
            span = now - self._last
            self._last = now
        connected = sum(1 for s in book.stations.values() if s.connected)
        accepted = sum(1 for s in book.stations.values() if s.accepted)
        med = percentile(answers, 50)
        p99 = percentile(answers, 99)
        stall = max(self.max_stall.values(), default=None)
        charging = sum(
            1
            for b in self.boxes
            if b.alive() and any(e.get("cp") == "C" for e in b.status.get("evse", ()))
        )
        line = (
            "%s %4.0fs  stations %d/%d connected, %d accepted, %d charging  sessions %d started"
            " %d ended  %.1f msg/s  CALLERRORs %d from the CSMS, %d from stations  answers"
            " median %s p99 %s  max stall %s  problems %d"
            % (
                "FINAL" if final else "fleet",
                now - self.t0,
                connected,
                len(self.boxes),
                accepted,
                charging,
                book.started,
                book.ended,
                frames / span if span > 0 else 0.0,
                book.errors_csms,
                book.errors_station,
                _ms(med),
                _ms(p99),
                "-"
                if stall is None
                else "%d ms (%d over %d ms)"
                % (
                    stall,
                    sum(v > self.args.stall_limit for v in self.max_stall.values()),
                    self.args.stall_limit,
                ),
                len(book.problems),
            )
        )
        self.say(line)

    def verdict(self):
        """(exit status, [(station id, why)])."""
        book = self.book
        why = []
        for b in self.boxes:
            st = book.stations.get(b.sid)
            if st is None or not st.accepted:
                reg = "never connected" if st is None else "registration %s" % st.registration
                why.append((b.sid, "not accepted (%s)" % reg))
        why += book.problems
        why += book.transaction_problems()
        for sid, stall in sorted(self.max_stall.items()):
            if stall > self.args.stall_limit:
                why.append(
                    (
                        sid,
                        "safety loop stalled %d ms (seen %.0f s into the run)"
                        % (stall, self.stall_at.get(sid, 0)),
                    )
                )
        for sid, e in sorted(self.control_errors.items()):
            why.append((sid, "control channel: %s" % e))
        for reason, n in sorted(self.relay.refused.items() if self.relay else ()):
            why.append(("relay", "%d connections refused: %s" % (n, reason)))
        self.say(
            "fleet: %d sessions driven, %d outages; %d transactions seen; the timing of %d"
            " heartbeats and %d periodic meter values checked"
            % (
                self.sessions_driven,
                self.outages,
                len(book.txs),
                book.checked["heartbeat"],
                book.checked["meter value"],
            )
        )
        if why:
            self.say("fleet: %d problems:" % len(why))
            for sid, text in why[:50]:
                self.say("  %s: %s" % (sid, text))
            if len(why) > 50:
                self.say("  ... and %d more" % (len(why) - 50))
        else:
            self.say("fleet: all stations accepted, no timing problem")
        return (1 if why else 0), why


def _ms(seconds):
    return "-" if seconds is None else "%.1f ms" % (seconds * 1000)


def parser():
    p = argparse.ArgumentParser(
        description="A fleet of virtual wallboxes against one CSMS, with a summary of what "
        "the stations saw (answer times are measured at a relay on 127.0.0.1 between the "
        "stations and the CSMS: what a station sees, less one loopback hop).",
    )
    p.add_argument("-n", type=int, default=10, help="the number of stations (default 10)")
    p.add_argument(
        "--csms",
        help="the CSMS's URL without the station id, ws:// or wss:// (default: the development "
        "CSMS, in this process)",
    )
    p.add_argument("--ca-file", help="the CA certificates (PEM) for a wss:// CSMS")
    p.add_argument("--prefix", default="FLEET", help="station ids PREFIX0001... (default FLEET)")
    p.add_argument(
        "--rate",
        type=float,
        default=6,
        help="sessions per station per hour (default 6: about half of the time charging)",
    )
    p.add_argument(
        "--outages", type=float, default=1, help="network outages per station per hour (1)"
    )
    p.add_argument("--seed", default="1", help="the patterns' seed (default 1)")
    p.add_argument("--token", help="the idToken every card shows (default: the station id)")
    p.add_argument(
        "--password",
        help="every station's BasicAuthPassword (HTTP Basic auth to the CSMS, passed on by the "
        "relay; default: none)",
    )
    p.add_argument("--minutes", type=float, help="run this long, then stop (default: Ctrl-C)")
    p.add_argument(
        "--ramp", type=float, help="spread the boots over this many seconds (default n/4)"
    )
    p.add_argument("--heartbeat", type=int, default=60, help="HeartbeatInterval, s (60)")
    p.add_argument(
        "--meter-interval", type=int, default=60, help="SampledDataCtrlr TxUpdatedInterval, s (60)"
    )
    p.add_argument(
        "--aligned-interval", type=int, default=0, help="AlignedDataCtrlr Interval, s (0: off)"
    )
    p.add_argument("--every", type=float, default=5, help="seconds between summaries (5)")
    p.add_argument(
        "--drain",
        type=float,
        default=30,
        help="at the end, wait this long at most for the running sessions' Ended (30)",
    )
    p.add_argument(
        "--stall-limit",
        type=int,
        default=STALL_LIMIT_MS,
        help="the longest safety-loop stall, ms, that is no problem (%d)" % STALL_LIMIT_MS,
    )
    p.add_argument("--esp32", action="store_true", help="the virtual ESP32 instead")
    p.add_argument("--heap", help="the stations' GC heap (wallbox-sim --heap)")
    p.add_argument(
        "--code",
        help="run the firmware compiled, from DIR (wallbox-sim --code, e.g. build/mpy after "
        "make compile): boots cost a fraction of the CPU",
    )
    p.add_argument(
        "--workdir",
        default=str(ROOT / "build" / "fleet"),
        help="state dirs and logs (build/fleet)",
    )
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    if args.n < 1 or args.rate <= 0:
        raise SystemExit("fleet: -n and --rate must be positive")
    if args.code and args.esp32:
        raise SystemExit("fleet: --code and --esp32 exclude each other (the esp32's is frozen)")
    if args.ramp is None:
        args.ramp = args.n / 4
    return asyncio.run(_main(args))


async def _main(args):
    fleet = Fleet(args, say=lambda line: print(line, flush=True))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, fleet.interrupt)
    try:
        status, _ = await fleet.run()
    finally:
        fleet.kill_all()  # whatever happened: no station outlives us
    return status


if __name__ == "__main__":
    sys.exit(main())
