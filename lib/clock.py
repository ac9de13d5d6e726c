# clock: the station's wall clock, set from the CSMS, over an injected monotonic-ish time source.
# MIT licence. Ours because the OCPP clock is an offset over the board's RTC, nothing more.

import rfc3339


class Clock:
    """UTC wall clock. `source()` is the board's time in seconds since 1970 (a float or int).

    `set()` moves the clock to the CSMS's time by keeping an offset, so that the board's own
    clock (RTC or host) is never written from here.
    """

    def __init__(self, source):
        self._source = source
        self.offset = 0.0  # seconds added to the source; 0 until the CSMS has told the time

    def now(self):
        return self._source() + self.offset

    def set(self, unix_s):
        self.offset = unix_s - self._source()

    def iso(self):
        """Now as RFC 3339 UTC with whole seconds, as OCPP messages carry it."""
        return rfc3339.format(int(self.now()))

    def stamp(self):
        """Now as HH:MM:SS.mmm for log lines."""
        ms = int(self.now() * 1000) % 86400000
        s = ms // 1000
        return "%02d:%02d:%02d.%03d" % (s // 3600, s // 60 % 60, s % 60, ms % 1000)
