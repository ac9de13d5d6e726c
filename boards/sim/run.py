# run: entry point of the virtual wallbox on the MicroPython unix port: tools/wallbox-sim runs
# `micropython -m boards.sim.run ARGS`.
# MIT licence.

import sys

from boards.sim import Board
from firmware import main

main.run(Board(sys.argv[1:]))
