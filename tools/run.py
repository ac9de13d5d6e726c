# run: `make run`: the development CSMS and one virtual wallbox, wired together, on this PC.
# MIT licence.
"""Start the development CSMS (traffic printed readably) and one virtual wallbox against it.

Interactive (stdin is a terminal): once the station is accepted you drive both from one prompt.
A line starting with `{` goes to the wallbox's control channel (shared/docs/sim-control.md),
e.g. {"cmd":"status"}; any other line is a CSMS console command (type `help`), e.g.
`get OCPPCommCtrlr HeartbeatInterval`. `quit` or Ctrl-D stops both.

Not interactive (stdin is not a terminal, as in CI): a short scripted demo runs, then both stop.
The station keeps its flash in ./state/<id>, so a second `make run` is a power-up, not a new box.
"""

import argparse
import asyncio
import json
import os
import signal
import sys
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools.csms import Console, Csms  # noqa: E402

# The scripted demo: CSMS commands, control-channel lines, and pauses (seconds, as numbers).
DEMO = [
    '{"cmd":"status"}',
    "get OCPPCommCtrlr HeartbeatInterval",
    "set OCPPCommCtrlr HeartbeatInterval 30",
    "get SecurityCtrlr BasicAuthPassword",
    # A charging session: plug in, the EV asks for energy, a card starts it, the same card
    # ends it; the TransactionEvents show on the CSMS side.
    '{"cmd":"plug_in","evse":1}',
    '{"cmd":"ev_state","evse":1,"state":"C"}',
    1,
    '{"cmd":"swipe","token":"04A2B3C4D5E680"}',
    4,
    # The display (status "display") shows the tariff the CSMS gave and the running cost.
    '{"cmd":"status"}',
    '{"cmd":"swipe","token":"04A2B3C4D5E680"}',
    2,
    '{"cmd":"plug_out","evse":1}',
    2,
    '{"cmd":"status"}',
    # What the station holds about that card (its cache entry), in NotifyCustomerInformation.
    "customer 04A2B3C4D5E680",
    1,
]


class Wallbox:
    """tools/wallbox-sim as a child process group: log lines and control replies printed."""

    def __init__(self, url, sid, state_dir):
        self.args = [
            str(ROOT / "tools" / "wallbox-sim"),
            "--csms",
            url,
            "--id",
            sid,
            "--state-dir",
            str(state_dir),
        ]
        self.replies = asyncio.Queue()

    async def start(self):
        self.proc = await asyncio.create_subprocess_exec(
            *self.args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        self.tasks = [
            asyncio.create_task(self._pump(self.proc.stderr, "  station | ", None)),
            asyncio.create_task(self._pump(self.proc.stdout, "  sim ⇐ ", self.replies)),
        ]

    async def _pump(self, stream, prefix, into):
        async for line in stream:
            text = line.decode(errors="replace").rstrip()
            print(prefix + text, flush=True)
            if into is not None:
                into.put_nowait(text)

    async def command(self, line, timeout=10):
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()
        return await asyncio.wait_for(self.replies.get(), timeout)

    async def stop(self):
        if self.proc.returncode is None:
            try:
                await self.command('{"cmd":"quit"}')
                await asyncio.wait_for(self.proc.wait(), 5)
            except (asyncio.TimeoutError, OSError, ConnectionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
                await self.proc.wait()
        for t in self.tasks:
            t.cancel()


async def lines_from_stdin():
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        yield line.strip()


async def wait_accepted(box, timeout=30):
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        status = json.loads(await box.command('{"cmd":"status"}'))
        if status.get("registration") == "Accepted":
            return True
        await asyncio.sleep(0.5)
    return False


async def execute(console, box, line):
    if line.startswith("{"):
        await box.command(line)
    elif line:
        print(await console.execute(line), flush=True)


async def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=9000)
    ap.add_argument("--id", default="CS1")
    ap.add_argument("--demo", action="store_true", help="run the scripted demo and exit")
    ap.add_argument(
        "--tariff",
        default="0.30",
        metavar="EUR_PER_KWH",
        help="the CSMS prices sessions (tariff and costs on the display); 'none': it does not",
    )
    args = ap.parse_args(argv)
    csms = Csms(
        port=args.port,
        tariff=None if args.tariff == "none" else Decimal(args.tariff),
        log=lambda text: print(text, flush=True),
        log_sink=ROOT / "state" / "uploads",  # where GetLog's uploads land (getlog command)
    )
    await csms.start()
    url = "ws://127.0.0.1:%d/ocpp" % csms.port
    print("CSMS listening on %s/<id>" % url, flush=True)
    box = Wallbox(url, args.id, ROOT / "state" / args.id)
    await box.start()
    console = Console(csms)
    try:
        if not await wait_accepted(box):
            print("the station was not accepted within 30 s: see its log above")
            return 1
        print("\n*** %s is accepted by the CSMS ***\n" % args.id, flush=True)
        if args.demo or not sys.stdin.isatty():
            for line in DEMO:
                if not isinstance(line, str):
                    await asyncio.sleep(line)
                    continue
                print("> " + line, flush=True)
                await execute(console, box, line)
            return 0
        print(
            'Type CSMS commands (help) or control-channel JSON ({"cmd":"status"}); '
            "quit or Ctrl-D to stop.",
            flush=True,
        )
        async for line in lines_from_stdin():
            if line == "quit":
                break
            await execute(console, box, line)
        return 0
    finally:
        await box.stop()
        await csms.stop()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
