# control: the virtual wallbox's control channel: JSON commands on stdin, one reply line each
# on stdout, as shared/docs/sim-control.md specifies.
# MIT licence.

import asyncio
import json
import sys

import log
from firmware.version import VERSION

_MAX_LINE = 4096  # a longer command line is refused, not buffered without bound
_EV_COMMANDS = ("plug_in", "ev_state", "ev_current", "plug_out", "swipe", "button")
_FAULT_COMMANDS = ("raise_error", "clear_error")


class Control:
    def __init__(self, board, station):
        self.board = board
        self.station = station

    async def run(self):
        reader = asyncio.StreamReader(sys.stdin.buffer)
        line = bytearray()
        while True:
            # One byte per read, so a reboot never leaves a half-read command behind in our
            # buffer and a partial line never blocks the loop.
            b = await reader.read(1)
            if not b:
                log.info("sim", "control channel closed (stdin at end)")
                return
            if b != b"\n":
                if len(line) <= _MAX_LINE:
                    line.extend(b)
                continue
            if line.strip():
                await self.execute(bytes(line))
            line = bytearray()

    async def execute(self, raw):
        cid = None
        try:
            if len(raw) > _MAX_LINE:
                raise ValueError("line too long")
            cmd = json.loads(raw)
            if type(cmd) is not dict:
                raise ValueError("not a JSON object")
            cid = cmd.get("id")
            reply = await self.dispatch(cmd)
        except ValueError as e:
            reply = {"ok": False, "error": "malformed command: %s" % e}
        except Exception as e:
            log.exc("sim", "command failed", e)
            reply = {"ok": False, "error": repr(e)}
        quit = reply.pop("quit", False)
        if cid is not None:
            reply["id"] = cid
        sys.stdout.write(json.dumps(reply) + "\n")
        if quit:
            await self._quit()

    async def dispatch(self, cmd):
        name = cmd.get("cmd")
        if name == "status":
            return self.status()
        if name == "ws_disconnect":
            self.board.net_up = False
            self.station.connection.drop()
            return {"ok": True}
        if name == "ws_connect":
            self.board.net_up = True
            return {"ok": True}
        if name == "quit":
            return {"ok": True, "quit": True}  # replied to first, then shut down
        if name in _EV_COMMANDS or name in _FAULT_COMMANDS:
            return {"ok": False, "error": "%s: the simulated EV is not built yet" % name}
        return {"ok": False, "error": "unknown command: %r" % (name,)}

    def status(self):
        st = self.station
        reg = st.connection.registration
        return {
            "ok": True,
            "firmware_version": VERSION,
            "boot_count": st.boot_count,
            "registration": reg if reg else "None",
            "connected": st.connection.connected,
            "evse": [],
        }

    async def _quit(self):
        log.info("sim", "quit: shutting down")
        await self.station.shutdown()  # then the process exits with status 0
