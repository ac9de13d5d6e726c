# log: one-line log records for people reading a station's console or the simulator's stderr.
# MIT licence. Ours because MicroPython's logging package is larger than the four calls we need.

import sys

# Lowest level printed: 0 debug, 1 info, 2 warning, 3 error.
level = 1
# Where records go; the sim board points this at stderr, the device leaves the console.
stream = sys.stdout
# Wall-clock source for the time stamp, set by the firmware once it has a clock (None: no stamp).
clock = None

_NAMES = ("D", "I", "W", "E")


def _emit(lvl, tag, msg):
    if lvl < level:
        return
    stamp = clock.stamp() if clock else ""
    stream.write("%s %s %s: %s\n" % (stamp, _NAMES[lvl], tag, msg))


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
