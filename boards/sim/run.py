# run: entry point of the virtual wallbox on the MicroPython unix port (see tools/wallbox-sim).
# MIT licence.

import sys

from boards.sim import Board
from firmware import main

main.run(Board(sys.argv[1:]))
