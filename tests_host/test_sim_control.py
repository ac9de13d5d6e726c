"""boards/sim/control.py on the MicroPython unix port: a command written at once is read and
answered in one turn of the loop, so a reboot (another task exiting the process) never cuts it
in two. It did: one byte a turn, the new boot read the rest as a malformed line and the test
driving the station got `malformed command: syntax error in JSON` for its `status`."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"

SCRIPT = """
import sys
sys.path[:0] = [%r, %r]
import asyncio, time
from boards.sim.control import Control
async def main():
    time.sleep_ms(300)  # the test's input is all in the pipe before the loop starts
    asyncio.create_task(Control(None, None).run())
    for _ in range(3):
        await asyncio.sleep(0)
    sys.stdout.write("reboot\\n")
    sys.exit(3)
asyncio.run(main())
""" % (str(ROOT / "lib"), str(ROOT))


def test_commands_in_the_pipe_are_answered_before_a_reboot_three_turns_later():
    proc = subprocess.Popen(
        [str(MICROPYTHON), "-c", SCRIPT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    # Two commands and the start of a third, in one write; stdin stays open.
    proc.stdin.write(b'{"cmd":"one","id":1}\n\n{"cmd":"two","id":2}\n{"cmd":"th')
    proc.stdin.flush()
    try:
        assert proc.wait(30) == 3, proc.stderr.read()
    finally:
        proc.kill()
        proc.stdin.close()
    assert proc.stdout.read().decode().splitlines() == [
        '{"id": 1, "error": "unknown command: \'one\'", "ok": false}',
        '{"id": 2, "error": "unknown command: \'two\'", "ok": false}',
        "reboot",
    ]
