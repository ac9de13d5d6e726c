# run: entry point of the virtual wallbox on the MicroPython unix port: tools/wallbox-sim runs
# `micropython -m boards.sim.run ARGS`.
# MIT licence.
#
# First the boot selector (lib/bootsel.py) picks the application slot installed in the state
# directory, if any, and puts it first on sys.path: the rest then loads from the slot.

import sys

import bootsel


def _state_dir(argv):
    for i in range(len(argv) - 1):
        if argv[i] == "--state-dir":
            return argv[i + 1]
    return None


_root = _state_dir(sys.argv[1:])
if _root:
    bootsel.activate(_root)

from boards.sim import Board  # noqa: E402  (after the slot is on sys.path)
from firmware import main  # noqa: E402

main.run(Board(sys.argv[1:]))
