# log: one-line log records for people reading a station's console or the simulator's stderr.
# MIT licence. Ours because MicroPython's logging package is larger than the four calls we need.

import sys
import time

# Lowest level printed: 0 debug, 1 info, 2 warning, 3 error.
level = 1
# Where records go; the sim board points this at stderr, the device leaves the console.
stream = sys.stdout
# Wall-clock source for the time stamp, set by the firmware once it has a clock (None: no stamp).
clock = None

# The log on flash (a lib/logfile.LogFiles, set by the firmware; None: console only) and the
# lowest level written there. An error record is flushed to it at once.
file = None
file_level = 1
# The boot count, for file stamps before the clock is set ("boot N +<ms>ms").
boot = 0

# No other globals (each costs heap in the module's table): the level letters are "DIWE"[lvl],
# and a clock before 1577836800 (2020-01-01) has not been set yet.


def _emit(lvl, tag, msg):
    try:
        if lvl >= level:
            stamp = clock.stamp() if clock else ""
            stream.write("%s %s %s: %s\n" % (stamp, "DIWE"[lvl], tag, msg))
        f = file
        if f is not None and lvl >= file_level:
            f.write(line(lvl, tag, msg))
            if lvl == 3:
                f.flush()
    except Exception:  # a closed console, MemoryError: never into the caller
        pass


def line(lvl, tag, msg):
    """A file record: "<stamp> <L> <tag>: <msg>", the stamp "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC,
    the milliseconds from the tick counter) once the clock is set, else "boot N +<ms>ms" (the
    tick counter: ms since the boot on a board; the sim always has the host's clock)."""
    t = clock.now() if clock else 0
    ms = time.ticks_ms()
    if t >= 1577836800:
        return "%s.%03dZ %s %s: %s" % (clock.iso()[:19], ms % 1000, "DIWE"[lvl], tag, msg)
    return "boot %d +%dms %s %s: %s" % (boot, ms, "DIWE"[lvl], tag, msg)


def debug(tag, msg):
    _emit(0, tag, msg)


def info(tag, msg):
    _emit(1, tag, msg)


def warn(tag, msg):
    _emit(2, tag, msg)


def error(tag, msg):
    _emit(3, tag, msg)


def exc(tag, msg, e):
    """Log an unexpected exception with its traceback, then go on."""
    _emit(3, tag, "%s: %r" % (msg, e))
    if level <= 1:
        if hasattr(sys, "print_exception"):
            sys.print_exception(e, stream)  # MicroPython
        else:
            import traceback  # CPython, in host tests

            traceback.print_exception(e, file=stream)
