"""boards/sim/control.py on the MicroPython unix port: a reboot (another task ending the
process) never cuts a command line in two. It did: the channel read one byte a turn of the
loop, and the new boot read the rest of the line as a malformed command, so the test driving
the station got `malformed command: syntax error in JSON` for its `status`."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"

# The control channel runs; TURNS turns of the loop later the firmware "reboots": what is
# left on stdin is what the next boot would read.
SCRIPT = """
import sys
sys.path[:0] = [%r, %r]
import asyncio, time
from boards.sim.control import Control
async def main(turns):
    time.sleep_ms(300)  # the test's input is all in the pipe before the loop starts
    asyncio.create_task(Control(None, None).run())
    for _ in range(turns):
        await asyncio.sleep(0)
    sys.stdout.write("reboot\\n")
    sys.stdout.write(sys.stdin.buffer.read().decode() + "\\n")  # what the next boot reads
asyncio.run(main(int(sys.argv[1])))
""" % (str(ROOT / "lib"), str(ROOT))

LINES = b'{"cmd":"one","id":1}\n\n{"cmd":"two","id":2}\n{"cmd":"three","id":3}\n'


def test_a_reboot_at_any_turn_leaves_whole_lines_to_the_next_boot():
    for turns in range(8):
        out = subprocess.run(
            [str(MICROPYTHON), "-c", SCRIPT, str(turns)],
            input=LINES,
            capture_output=True,
            timeout=30,
        )
        assert out.returncode == 0, out.stderr
        text = out.stdout.decode()
        replies, rest = text.split("reboot\n")
        answered = [line for line in replies.splitlines() if line.startswith("{")]
        rest = rest[:-1].encode()
        # What the next boot reads starts at a line, and nothing before it went unanswered.
        read = LINES[: len(LINES) - len(rest)]
        assert LINES.endswith(rest) and (read == b"" or read.endswith(b"\n")), (turns, rest)
        assert len(answered) == len([x for x in read.splitlines() if x]), (turns, text)


def test_a_flood_without_newlines_never_holds_the_loop():
    flood = b"x" * 20000  # a line far past the 4096 bytes a command may have
    out = subprocess.run(
        [str(MICROPYTHON), "-c", SCRIPT, "5"], input=flood, capture_output=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    rest = out.stdout.decode().split("reboot\n")[1][:-1]
    # One line's worth (refused at its end anyway) in the first turn, a byte a turn after it.
    assert len(flood) - 4097 - 5 <= len(rest) < len(flood) - 4096, len(rest)
