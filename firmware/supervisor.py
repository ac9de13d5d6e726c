# supervisor: feeds the watchdog only while every critical task makes progress, and measures
# how long the asyncio loop stalls. MIT licence.

import asyncio
import time

from micropython import const

import log

_PERIOD_MS = const(100)  # how often the supervisor looks; also the stall probe's sleep


class Supervisor:
    """Watches tasks; `run()` feeds `wdt` only while all of them are alive and on time.

    A watched item is an EVSE (firmware/evse.py), whose safety loop and meter loop note the
    ticks of their latest step in `last_step` and `last_poll` (None before the first), or a
    task, which must not be done. (The EVSE itself and not a closure per loop, and a name put
    together only when one is late: heap.) When any is late the watchdog starves and resets
    the board.
    """

    def __init__(self, wdt, ticks=time.ticks_ms):
        self.wdt = wdt
        self.ticks = ticks
        self.items = []
        self.max_stall_ms = 0  # the longest the loop came back late, since boot
        self._late = None  # name of the item that is late, for one log line per episode

    def watch(self, evse, step_ms, poll_ms):
        """EVSE `evse`: its safety loop must step within step_ms, its meter loop poll within
        poll_ms."""
        self.items.append((evse, step_ms, poll_ms))

    def watch_task(self, name, task):
        self.items.append((name, task, 0))

    def late(self, now):
        """The name of the first late or dead item, or None when all are well."""
        for a, b, c in self.items:
            if c == 0:  # a task: (name, task, 0)
                if b.done():
                    return a
                continue
            t = a.last_step
            if t is not None and time.ticks_diff(now, t) > b:
                return "evse %d" % a.id
            t = a.last_poll
            if t is not None and time.ticks_diff(now, t) > c:
                return "meter %d" % a.id
        return None

    async def run(self):
        before = self.ticks()
        while True:
            await asyncio.sleep_ms(_PERIOD_MS)
            now = self.ticks()
            stall = time.ticks_diff(now, before) - _PERIOD_MS
            before = now
            if stall > self.max_stall_ms:
                self.max_stall_ms = stall
            late = self.late(now)
            if late is None:
                self.wdt.feed()
            elif late != self._late:
                log.error("sup", "%s is not making progress: watchdog starving" % late)
            self._late = late
