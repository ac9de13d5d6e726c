# clock: the station's wall clock, set from the CSMS or NTP, over an injected time source.
# MIT licence. Ours because the OCPP clock is an offset over the board's RTC, nothing more.

import time

import rfc3339


class Clock:
    """UTC wall clock in whole seconds. `source()` is the board's time since 1970, seconds.

    `set()` moves the clock to the CSMS's time by keeping an offset, so that the board's own
    clock (RTC or host) is never written from here (a board whose TLS reads its RTC sets it in
    an on_step callback: firmware/main.py). Integers only: on an ESP32 floats are
    single precision, which near 1.8e9 s would round to whole minutes.
    """

    def __init__(self, source):
        self._source = source
        self.offset = 0  # seconds added to the source; 0 until the CSMS has told the time
        self.on_step = []  # callables(step_s, old_now) run after each set() that moved it
        # The minute (unix_s // 60: a small int) last saved on flash by firmware/connection.py
        # and timesync.py, 0: none this boot. (An instance slot: the instance dict has room.)
        self.saved = 0

    def now(self):
        return int(self._source()) + self.offset

    def set(self, unix_s):
        old = self.now()
        self.offset = int(unix_s) - int(self._source())
        step = self.now() - old
        if step:
            for fn in self.on_step:
                fn(step, old)

    def iso(self):
        """Now as RFC 3339 UTC with whole seconds, as OCPP messages carry it."""
        return rfc3339.format(self.now())

    def stamp(self):
        """Now as HH:MM:SS.mmm for log lines (the milliseconds from the tick counter)."""
        s = self.now() % 86400
        return "%02d:%02d:%02d.%03d" % (s // 3600, s // 60 % 60, s % 60, time.ticks_ms() % 1000)
