# clock: the station's wall clock, set from the CSMS or NTP, over an injected time source.
# MIT licence. Ours because the OCPP clock is an offset over the board's RTC, nothing more.

import time

import rfc3339


class Clock:
    """UTC wall clock in whole seconds. `source()` is the board's time since 1970, seconds.

    `set()` moves the clock to the CSMS's time by keeping an offset over the source. A board
    whose TLS library checks certificate dates against its own clock (an ESP32's RTC) passes
    `setter(unix_s)`: that clock is set too, when it is off (the offset is then about 0).
    Integers only: on an ESP32 floats are single precision, which near 1.8e9 s would round to
    whole minutes.
    """

    # Class attributes until set (no slot in every instance, heap): the board clock's setter,
    # and the minute (unix_s // 60: a small int) last saved on flash by firmware/connection.py
    # and firmware/timesync.py, 0: none this boot.
    _setter = None
    saved = 0

    def __init__(self, source, setter=None):
        self._source = source
        if setter is not None:
            self._setter = setter
        self.offset = 0  # seconds added to the source; 0 until the CSMS has told the time
        self.on_step = []  # callables(step_s, old_now) run after each set() that moved it

    def now(self):
        return int(self._source()) + self.offset

    def set(self, unix_s):
        old = self.now()
        if self._setter is not None and int(unix_s) != int(self._source()):
            self._setter(int(unix_s))
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
