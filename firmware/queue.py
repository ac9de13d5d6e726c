# queue: the messages the CSMS must get (TransactionEvent, critical security events), kept in
# an append-only journal on flash and sent in order with the E13 retries. MIT licence.
"""Durable, ordered message queue.

Journal format, version 1: one record per line, each written with one write() and flushed:

    Q1 <next seq>\\n           header; only compaction writes it (so it is always whole)
    A <seq> <json>\\n          a message: json = [action, transactionId|null, kind|null, payload]
    D <seq>\\n                 message <seq> was answered by the CSMS, or dropped

A message is live from its A record to its D record. Replay ignores a torn last line (no
newline: the power went while it was written) and any line that does not parse; it then
rewrites the journal when it found either, since the next append must not extend a torn line.
Compaction writes the live messages to `<path>.tmp` and renames it over `<path>`; a leftover
`.tmp` is an interrupted compaction (the journal is still whole) and is removed at boot.
RAM holds only an index (sequence, offset, length, action, transaction, kind) of each message;
payloads stay on flash and are read back when sent.
"""

import asyncio
import gc
import json
import os
import sys
import time

from micropython import const

import log
import ocppj
import store

TRANSACTION_EVENT = "TransactionEvent"
STARTED = "Started"
UPDATED = "Updated"
ENDED = "Ended"
_KINDS = (STARTED, UPDATED, ENDED)

_TAG = const("queue")
_MICROPYTHON = sys.implementation.name == "micropython"
_VERSION = const(1)  # journal format; bump it with any change to the records
_TMP = const(".tmp")
_SEP = const((",", ":"))
_ATTEMPTS = const("OCPPCommCtrlr/MessageAttempts:TransactionEvent")
_INTERVAL = const("OCPPCommCtrlr/MessageAttemptInterval:TransactionEvent")
_DEFAULT_ATTEMPTS = const(3)  # when the device model lacks the variable
_DEFAULT_INTERVAL_S = const(60)
_COMPACT_BYTES = const(16384)  # compact once the journal is larger than this ...
_COMPACT_RATIO = const(3)  # ... and than this many times the live records
_PAUSE_MS = const(1000)  # after a send found the link gone while `ready` was still set, or
# found no memory to load or send the message
_CHUNK = const(512)  # replay reads the journal in pieces of this size

# An entry: what RAM knows of one queued message (a list, so compaction can move it).
_SEQ = const(0)  # sequence number: increasing in journal order, never reused by one journal
_OFF = const(1)  # byte offset of its A record in the journal; -1: not on flash (see _ram)
_LEN = const(2)  # byte length of that record with its newline; 0: gone (answered or dropped)
_ACT = const(3)  # action
_TX = const(4)  # transactionId, or None
_KIND = const(5)  # eventType of a TransactionEvent, else None


class MessageQueue:
    """Messages that must reach the CSMS, kept on flash until it answers them.

    `post` appends a message to the journal before it returns; `run` sends the oldest one
    whenever `connection.ready` is set, one at a time, and retries it per E13 with
    MessageAttempts/MessageAttemptInterval[TransactionEvent] (security events too: the spec
    names no other attempt counts). `on_reply[action](payload, response)` runs once the CSMS
    answered, also for messages replayed after a reboot.
    """

    def __init__(self, path, session, connection, dm, capacity=200, ticks=time.ticks_ms):
        self.path = path
        self.session = session
        self.connection = connection
        self.dm = dm
        self.capacity = capacity  # eviction starts here; Started/Ended may go up to twice it
        self.ticks = ticks
        self.on_reply = {}  # action -> callable(payload, response)
        self.bytes_written = 0  # journal bytes written since construction (wear figure)
        self.compact_bytes = _COMPACT_BYTES
        self.unit_ms = 1000  # one second of MessageAttemptInterval (tests shorten it)
        self.pause_ms = _PAUSE_MS
        self.heap_probe = False  # make bench: log the heap a backlog's delivery takes
        self._heap = None  # [baseline, peak above it, messages] while a backlog is delivered
        self._live = []  # entries of the live messages, oldest first
        self._ram = {}  # seq -> A record bytes: not (yet) on flash, or posted mid-compaction
        self._next = 1  # sequence number of the next message
        self._size = 0  # journal length in bytes
        self._live_bytes = 0  # sum of the live records' lengths
        self._f = None  # the journal open for appending; None: closed, compact before appending
        self._compacting = False
        self._busy = None  # seq of the message being sent: never evicted meanwhile
        self._thin = 0  # seq of the last Updated event thinned out (see _thinnable)
        self._wake = asyncio.Event()  # a message was posted, or a hold may have lifted
        # Order with what goes out beside the queue (StatusNotification, see availability):
        # `hold(seq)` True keeps message seq back for now; `on_gone()` runs when one leaves.
        self.hold = None
        self.on_gone = None
        self._running = False  # run() is under way: compactions may start
        self._compaction = None  # the compaction task under way, or None
        self._replay()

    # -- queries ----------------------------------------------------------------------------

    def pending(self, tx_id=None, action=None):
        """Messages not answered yet: all, or those of transaction `tx_id` and/or `action`."""
        n = 0
        for e in self._live:
            if (tx_id is None or e[_TX] == tx_id) and (action is None or e[_ACT] == action):
                n += 1
        return n

    def mark(self):
        """Where the queue is now: every message posted from here on comes after it."""
        return self._next

    def before(self, mark):
        """Every message posted before `mark` has left the queue (answered or dropped)."""
        return not self._live or self._live[0][_SEQ] >= mark

    def kick(self):
        """A `hold` may have lifted: the sender looks again."""
        self._wake.set()

    def messages(self):
        """(action, payload, tx_id) of each queued message, oldest first, read from flash.

        For boot time (continuing seqNo): do not await while iterating.
        """
        src = self._reader()
        try:
            for e in self._live[:]:
                m = self._load(src, e)
                if m is not None:
                    yield m[0], m[3], m[1]
        finally:
            if src:
                src.close()

    def seqs(self, action=None):
        """Sequence numbers of the queued messages (of `action`), oldest first: a snapshot of
        small ints, to read one by one with `read` (awaiting between reads is fine)."""
        return [e[_SEQ] for e in self._live if action is None or e[_ACT] == action]

    def read(self, seq):
        """(action, payload, tx_id) of queued message `seq`, read from flash (the journal
        opened for this read only, so a compaction meanwhile does no harm); None when it has
        left the queue or is unreadable. Read-only."""
        for e in self._live:
            if e[_SEQ] == seq:
                m = self._load(None, e)
                return None if m is None else (m[0], m[3], m[1])
        return None

    # -- posting ----------------------------------------------------------------------------

    def post(self, action, payload, tx_id=None, kind=None):
        """Queue a message; it is on flash (flushed) when this returns.

        A TransactionEvent says whether it happened offline: `offline` is true when it is
        posted while the link is not ready, else false (optional in the schema, but peers
        auditing a queue expect it); `kind` defaults to its eventType. Returns False when the
        queue is full of messages it must not drop (see _make_room), True otherwise.
        """
        if tx_id is not None and (type(tx_id) is not str or not tx_id):
            raise ValueError("tx_id")
        if action == TRANSACTION_EVENT:
            if kind is None:
                kind = payload.get("eventType")
            if kind not in _KINDS:
                kind = None
            payload["offline"] = not self.connection.ready.is_set()
        else:
            kind = None
        if len(self._live) >= self.capacity and not self._make_room(action, kind):
            return False
        seq = self._next
        self._next = seq + 1
        doc = json.dumps([action, tx_id, kind, payload], separators=_SEP)
        rec = ("A %d %s\n" % (seq, doc)).encode()
        off = self._append(rec)
        if off < 0:
            log.error(_TAG, "%s %d kept in RAM only: lost if the power goes" % (action, seq))
        if off < 0 or self._compacting:
            self._ram[seq] = rec  # a compaction under way copies it from here
        self._live.append([seq, off, len(rec), action, tx_id, kind])
        self._live_bytes += len(rec)
        self._wake.set()
        self._check_size()
        return True

    def _make_room(self, action, kind):
        """Drop one message so another fits; False when none may go (then refuse the new one).

        Order: an Updated event thinned out (_thinnable); else the oldest Updated event; else
        the oldest message that is no TransactionEvent. Started and Ended are never dropped:
        a new one is kept beyond capacity, up to twice it, and only past that refused,
        loudly: flash and RAM stay bounded, and with the default capacity it takes some 200
        sessions offline to get there.
        """
        victim = self._thinnable() or self._oldest(_is_updated) or self._oldest(_not_tx)
        if victim is not None:
            log.warn(_TAG, "full: dropped %s %s %d" % (victim[_ACT], victim[_KIND], victim[_SEQ]))
            self._remove(victim)
            return True
        if kind in (STARTED, ENDED) and len(self._live) < 2 * self.capacity:
            log.error(_TAG, "full of Started/Ended: %s kept beyond capacity" % kind)
            return True
        log.error(_TAG, "full: new %s %s refused" % (action, kind))
        return False

    def _thinnable(self):
        """The Updated event to drop first: in the oldest transaction with three or more of
        them queued, every second one, walking from its oldest; its first and newest Updated
        stay. `_thin` holds where the last walk stopped; at the end a new walk starts over the
        survivors, so sampling thins out evenly (E11.FR.04/05 wording unconfirmed)."""
        seen = []
        for e in self._live:
            t = e[_TX]
            if e[_KIND] != UPDATED or e[_ACT] != TRANSACTION_EVENT or t in seen:
                continue
            seen.append(t)
            ups = [u for u in self._live if u[_TX] == t and _is_updated(u)]
            if len(ups) < 3:
                continue
            victim = _after_kept(ups, self._thin, self._busy)
            if victim is None:
                victim = _after_kept(ups, 0, self._busy)  # a new walk
            if victim is not None:
                self._thin = victim[_SEQ]
                return victim
        return None

    def _oldest(self, pred):
        for e in self._live:
            if pred(e) and e[_SEQ] != self._busy:
                return e
        return None

    def _remove(self, e):
        """Message `e` leaves the queue: D record first, then RAM."""
        seq = e[_SEQ]
        self._append(b"D %d\n" % seq)  # if this fails, compaction drops it (or it goes twice)
        self._live.remove(e)
        self._live_bytes -= e[_LEN]
        e[_LEN] = 0  # gone (compaction looks)
        self._ram.pop(seq, None)
        self._check_size()
        if self.on_gone is not None:
            self.on_gone()

    # -- sending ----------------------------------------------------------------------------

    async def run(self):
        """The sender (and the compactions it starts): run it as one background task."""
        self._running = True
        self._check_size()
        try:
            await self._sender()
        finally:
            self._running = False
            if self._compaction is not None:
                self._compaction.cancel()

    async def _sender(self):
        ready = self.connection.ready
        seq = None  # the message `attempts` counts for
        attempts = 0
        while True:
            if not self._live:
                self._wake.clear()
                await self._wake.wait()
                continue
            await ready.wait()  # set while connected and Accepted
            if not self._live:
                continue
            e = self._live[0]
            if self.hold is not None and self.hold(e[_SEQ]):
                self._wake.clear()
                await self._wake.wait()  # kick() or the next post
                continue
            if e[_SEQ] != seq:
                seq, attempts = e[_SEQ], 0
            if self.heap_probe:
                self._probe(True)
            try:
                m = self._load(None, e)
            except MemoryError:
                # No room to read it back now (a small, fragmented heap): the message stays
                # on flash; collect, give the other tasks a moment, and read it again.
                m = None
                log.warn(_TAG, "%d: no memory to load it, again soon" % seq)
                gc.collect()
                await asyncio.sleep_ms(self.pause_ms)
                continue
            if m is None:
                log.error(_TAG, "%d unreadable: dropped" % seq)
                self._remove(e)
                continue
            action, payload = m[0], m[3]
            if self.heap_probe:
                self._probe()
            self._busy = seq
            t0 = self.ticks()
            try:
                response = await self.session.call(action, payload)  # MessageTimeout bounds it
            except Exception as err:
                self._busy = None
                if isinstance(err, MemoryError):
                    # Ours, not the CSMS's: no failed attempt (E13 would drop the message
                    # after MessageAttempts); collect and send it again.
                    payload = m = None
                    log.warn(
                        _TAG, "%d: no memory to send it, again in %d ms" % (seq, self.pause_ms)
                    )
                    gc.collect()
                    await asyncio.sleep_ms(self.pause_ms)
                    continue
                if _link_lost(err):
                    # No failed attempt: the same message goes again once the link is back.
                    if ready.is_set():
                        await asyncio.sleep_ms(self.pause_ms)
                    continue
                attempts += 1  # a CALLERROR, no answer in time, or a bug
                await self._failed(e, action, attempts, err, time.ticks_diff(self.ticks(), t0))
                continue
            self._busy = None
            if self.heap_probe:
                self._probe()
            if e[_LEN]:
                self._remove(e)
            fn = self.on_reply.get(action)
            if fn is not None:
                try:
                    fn(payload, response)
                except Exception as err:
                    log.exc(_TAG, "on_reply for %s failed" % action, err)
            if self._heap is not None and not self._live:
                h, self._heap = self._heap, None
                log.info(_TAG, "delivered %d messages, heap peak +%d B" % (h[2], h[1]))

    def _probe(self, start=False):
        """The heap in use above where the delivery began, sampled once a message is loaded
        and once it is answered, after a collection before each message (as the reports
        block measures a report)."""
        if start:
            gc.collect()
            if self._heap is None:
                self._heap = [gc.mem_alloc(), 0, 0]
            self._heap[2] += 1
            return
        h = self._heap
        h[1] = max(h[1], gc.mem_alloc() - h[0])

    async def _failed(self, e, action, k, err, took_ms):
        """Failed transmission `k` of `e` (E13): wait I x k s and resend, or drop it at A."""
        limit = max(1, self._setting(_ATTEMPTS, _DEFAULT_ATTEMPTS))
        if type(err) is ocppj.CallError:
            why = "CALLERROR %s" % err.code
        elif isinstance(err, asyncio.TimeoutError):
            why = "no answer"
        else:
            why = repr(err)
        if k >= limit:
            log.error(_TAG, "%s %d dropped after %d attempts: %s" % (action, e[_SEQ], k, why))
            if e[_LEN]:
                self._remove(e)  # E13.FR.04
            return
        wait_s = max(0, self._setting(_INTERVAL, _DEFAULT_INTERVAL_S)) * k
        msg = "%s %d attempt %d: %s after %d ms, again in %d s"
        log.warn(_TAG, msg % (action, e[_SEQ], k, why, took_ms, wait_s))
        await asyncio.sleep_ms(wait_s * self.unit_ms)

    def _setting(self, key, default):
        try:
            return self.dm.get_int(key)
        except (KeyError, ValueError):
            return default

    # -- journal ----------------------------------------------------------------------------

    def close(self):
        """Close the journal (an orderly shutdown; tests restarting on the same file)."""
        self._close()

    def _close(self):
        f, self._f = self._f, None
        _close(f)

    def _open(self):
        try:
            self._f = open(self.path, "ab")
        except OSError as e:
            log.error(_TAG, "journal not writable: %r" % e)
            self._f = None

    def _reader(self):
        try:
            return open(self.path, "rb")
        except OSError:
            return None

    def _append(self, rec):
        """Append one record in one write, then flush; its offset, or -1 when that failed."""
        if self._f is None and not self._compacting:
            self.compact()  # a failed write may have left a torn tail: rewrite first
        f = self._f
        if f is None:
            return -1
        off = self._size
        try:
            f.write(rec)
            f.flush()
        except OSError as e:
            log.error(_TAG, "journal write failed: %r" % e)
            self._close()  # its tail is unknown now: the next append compacts first
            return -1
        self._size = off + len(rec)
        self.bytes_written += len(rec)
        return off

    def _record(self, src, e):
        """The A record of `e` (bytes), from RAM or the journal `src`; None when unreadable."""
        rec = self._ram.get(e[_SEQ])
        if rec is not None:
            return rec
        if e[_OFF] < 0 or src is None:
            return None
        try:
            src.seek(e[_OFF])
            rec = src.read(e[_LEN])
        except OSError:
            return None
        head = b"A %d " % e[_SEQ]
        if not rec.startswith(head) or rec[-1:] != b"\n":
            return None
        return rec

    def _load(self, src, e):
        """[action, tx_id, kind, payload] of `e`, or None when unreadable."""
        own = src is None
        if own:
            src = self._reader()
        try:
            rec = self._record(src, e)
        finally:
            if own and src:
                src.close()
        if rec is None:
            return None
        try:
            return _json(rec, rec.index(b" ", 2) + 1)
        except ValueError:
            return None

    def _oversized(self):
        size = self._size
        return size > self.compact_bytes and size > _COMPACT_RATIO * self._live_bytes

    def _check_size(self):
        """Start a compaction task when the journal is worth compacting: one at a time, only
        while run() is under way, none waiting the rest of the time."""
        if self._running and self._compaction is None and self._oversized():
            self._compaction = asyncio.create_task(self._compactor())

    async def _compactor(self):
        steps = self._compact_steps()
        try:
            for _ in steps:
                await asyncio.sleep_ms(0)  # one message per slice: the loop keeps going
        finally:
            steps.close()
            self._compaction = None

    def compact(self):
        """Rewrite the journal with the live messages only, in one go."""
        for _ in self._compact_steps():
            pass

    def _compact_steps(self):
        """Compaction as a generator yielding after each message copied, so the sender can
        run it in slices. Messages posted meanwhile are in _ram and copied at the end; those
        answered or dropped meanwhile get a D record there; the end runs without a yield."""
        self._compacting = True
        tmp = self.path + _TMP
        moved = self._live[:]  # the entries copied, then those posted meanwhile
        offs = []  # their offsets in the new journal; -1: not copied
        src = dst = None
        done = False
        try:
            src = self._reader()
            dst = open(tmp, "wb")
            pos = self._write(dst, b"Q%d %d\n" % (_VERSION, self._next))
            for e in moved:
                rec = self._record(src, e) if e[_LEN] else None
                offs.append(pos if rec else -1)
                if rec:
                    pos += self._write(dst, rec)
                    yield
            # From here on nothing yields: posts and answers wait until the rename is done.
            n = len(moved)
            last = moved[-1][_SEQ] if n else -1
            for e in self._live:
                if e[_SEQ] > last:  # posted meanwhile
                    rec = self._record(src, e)
                    moved.append(e)
                    offs.append(pos if rec else -1)
                    if rec:
                        pos += self._write(dst, rec)
            for i in range(n):
                if offs[i] >= 0 and not moved[i][_LEN]:
                    pos += self._write(dst, b"D %d\n" % moved[i][_SEQ])  # left meanwhile
            dst.flush()
            dst.close()
            dst = None
            self._close()
            os.rename(tmp, self.path)  # the commit point
            done = True
        except OSError as err:
            log.error(_TAG, "compaction failed: %r" % err)
        finally:
            _close(src)
            _close(dst)
            if not done:
                store.remove_file(tmp)
                if self._f is None:
                    self._open()
            self._compacting = False
        if not done:
            return
        self._ram = {}
        self._size = pos
        self._live_bytes = 0
        for i, e in enumerate(moved):
            if not e[_LEN]:
                continue
            if offs[i] < 0:  # unreadable, so not copied: nothing left to send
                log.error(_TAG, "%s %d unreadable: dropped" % (e[_ACT], e[_SEQ]))
                self._live.remove(e)
                e[_LEN] = 0
                continue
            e[_OFF] = offs[i]
            self._live_bytes += e[_LEN]
        self._open()

    def _write(self, f, data):
        f.write(data)
        self.bytes_written += len(data)
        return len(data)

    # -- replay -----------------------------------------------------------------------------

    def _replay(self):
        # An interrupted compaction; the journal itself is whole.
        store.remove_file(self.path + _TMP)
        f = self._reader()
        repair = True  # no journal yet: compaction creates one with its header
        if f is not None:
            try:
                repair = self._parse(f)
            finally:
                f.close()
        if repair or self._oversized():
            self.compact()
        else:
            self._open()
        log.info(_TAG, "%d queued, journal %d B" % (len(self._live), self._size))

    def _parse(self, f):
        """Read the journal into the index; True when it needs rewriting."""
        live = {}  # seq -> entry
        order = []  # entries in journal order, including those a D record ended
        off = 0
        bad = 0
        torn = False
        nxt = 1
        tx = None  # the previous transactionId: entries of one transaction share the string
        for line in _lines(f):
            n = len(line)
            if line[-1:] != b"\n":
                torn = True  # only the last line can lack its newline
                break
            try:
                if line[0] == 65:  # A
                    e = _entry(line, off, n, tx)
                    if e[_SEQ] in live:
                        raise ValueError("twice")
                    live[e[_SEQ]] = e
                    order.append(e)
                    tx = e[_TX] or tx
                    nxt = max(nxt, e[_SEQ] + 1)
                elif line[0] == 68 and line[1] == 32:  # D
                    seq = int(line[2:])
                    live.pop(seq, None)
                    nxt = max(nxt, seq + 1)
                elif off == 0 and line[0] == 81:  # Q, the header
                    version, start = line[1:].split()
                    if int(version) != _VERSION:
                        return self._unknown(version)
                    nxt = max(nxt, int(start))
                else:
                    raise ValueError("record")
            except (ValueError, TypeError, IndexError):
                bad += 1
            off += n
        order = [e for e in order if live.get(e[_SEQ]) is e]
        live = None
        # The entries were made between the garbage of parsing each line: left where they
        # are they would cut the whole heap into pieces of a line's size. Copied after a
        # collection they sit together low in the heap, and the rest is free in one piece.
        if _MICROPYTHON:  # CPython's heap does not fragment so (and collects slowly)
            gc.collect()
            for i, e in enumerate(order):
                order[i] = list(e)
        self._live = order
        self._live_bytes = 0
        for e in order:
            self._live_bytes += e[_LEN]
        self._next = nxt
        self._size = off
        if torn or bad:
            log.warn(_TAG, "journal: %d bad lines, torn end %s: rewritten" % (bad, torn))
        return torn or bad > 0

    def _unknown(self, version):
        """A journal of another format version: set it aside, start an empty one."""
        log.error(_TAG, "journal version %s unknown: moved to %s.old" % (version, self.path))
        try:
            os.rename(self.path, self.path + ".old")
        except OSError:
            pass
        self._live = []
        self._size = self._live_bytes = 0
        return True


def _entry(line, off, n, prev_tx):
    """The index entry of an A record (raises ValueError for a malformed one)."""
    sp = line.index(b" ", 2)
    seq = int(line[2:sp])
    action, tx, kind, payload = _json(line, sp + 1)
    if type(action) is not str or type(payload) is not dict:
        raise ValueError("fields")
    if tx is not None and type(tx) is not str:
        raise ValueError("tx")
    if tx == prev_tx:
        tx = prev_tx
    if action == TRANSACTION_EVENT:
        action = TRANSACTION_EVENT  # one string in RAM for them all
        kind = _KINDS[_KINDS.index(kind)] if kind in _KINDS else None
    else:
        kind = None
    return [seq, off, n, action, tx, kind]


def _json(b, i):
    """The JSON in bytes `b` from index `i`; MicroPython parses it in place (no copy of a
    record that may be a few KB)."""
    try:
        return json.loads(memoryview(b)[i:])
    except TypeError:  # CPython's json takes no memoryview
        return json.loads(b[i:])


def _lines(f):
    """The lines of the binary file `f`, newline included; the last one may lack it."""
    buf = b""
    while True:
        chunk = f.read(_CHUNK)
        if not chunk:
            break
        buf += chunk
        start = 0
        while True:
            i = buf.find(b"\n", start)
            if i < 0:
                break
            yield buf[start : i + 1]
            start = i + 1
        buf = buf[start:]
    if buf:
        yield buf


def _after_kept(ups, after, busy):
    """In `ups` (Updated events of one transaction, oldest first) the event right after the
    first one newer than seq `after`, unless that is the newest (kept) or being sent."""
    last = len(ups) - 1
    for i in range(last):
        if ups[i][_SEQ] > after:
            v = ups[i + 1]
            if i + 1 < last and v[_SEQ] != busy:
                return v
            return None
    return None


def _link_lost(err):
    """True when `err` from session.call means the link went (CPython's TimeoutError is an
    OSError, and no lost link)."""
    if isinstance(err, asyncio.TimeoutError):
        return False
    return isinstance(err, (ocppj.NotConnected, OSError))


def _is_updated(e):
    return e[_KIND] == UPDATED and e[_ACT] == TRANSACTION_EVENT


def _not_tx(e):
    return e[_ACT] != TRANSACTION_EVENT


def _close(f):
    if f is not None:
        try:
            f.close()
        except OSError:
            pass
