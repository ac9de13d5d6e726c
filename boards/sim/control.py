# control: the virtual wallbox's control channel: JSON commands on stdin, one reply line each
# on stdout, as shared/docs/sim-control.md specifies.
# MIT licence.

import asyncio
import gc
import json
import select
import sys

from micropython import const

import log
from boards.sim.ev import FAULTS
from firmware.version import VERSION

_MAX_LINE = const(4096)  # a longer command line is refused, not buffered without bound
_CABLES = const((13, 20, 32, 63))
# status "target": only the virtual ESP32 (tools/esp32sim.py) is a 32-bit program
_TARGET = "esp32" if sys.maxsize < (1 << 32) else "host"


class CommandError(Exception):
    """A well-formed command that cannot be carried out: `ok: false` with this reason."""


class Control:
    def __init__(self, board, station):
        self.board = board
        self.station = station

    async def run(self):
        reader = asyncio.StreamReader(sys.stdin.buffer)
        line = bytearray()
        while True:
            b = await reader.read(1)  # the loop runs on until input arrives
            # The rest of the line, as far as the pipe holds it, is read in this same turn of
            # the loop: a command written at once is never cut in two by a reboot (another
            # task), whose new boot would read its tail as a malformed line. One byte per
            # read, so a partial line never blocks the loop; one line per turn at most, and
            # past _MAX_LINE (refused anyway) one byte per turn, so a flood cannot hold it.
            more = None  # a poller while a line comes in only (not idle heap, not in `heap`)
            while b and b != b"\n" and len(line) <= _MAX_LINE:
                line.extend(b)
                if more is None:
                    more = select.poll()
                    more.register(sys.stdin.buffer, select.POLLIN)
                if not more.poll(0):
                    break
                b = sys.stdin.buffer.read(1)
            more = None
            if not b:
                log.info("sim", "control channel closed (stdin at end)")
                return
            if b == b"\n":
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
        except CommandError as e:
            reply = {"ok": False, "error": str(e)}
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
        if name == "quit":
            return {"ok": True, "quit": True}  # replied to first, then shut down
        if name == "heap":
            # Not in the contract: the live heap for make bench (esp32_idle_heap_bytes), read
            # here so that no measuring code of its own sits in the heap it measures.
            gc.collect()
            return {"ok": True, "alloc": gc.mem_alloc(), "free": gc.mem_free()}
        handler = getattr(self, "cmd_" + name, None) if type(name) is str else None
        if handler is None:
            return {"ok": False, "error": "unknown command: %r" % (name,)}
        handler(cmd)
        self.board.save_world()
        return {"ok": True}

    # -- the EV and the hardware (shared/docs/sim-control.md) -------------------------------

    def _ev(self, cmd):
        """(station EVSE, simulated EV) named by the command's "evse" (default 1)."""
        n = cmd.get("evse", 1)
        if type(n) is not int or not 1 <= n <= len(self.board.evs):
            raise CommandError("unknown evse %r" % (n,))
        return self.station.evses[n - 1], self.board.evs[n - 1]

    def cmd_plug_in(self, cmd):
        _, ev = self._ev(cmd)
        cable = cmd.get("cable_a", 32)
        if cable not in _CABLES:
            raise CommandError("cable_a must be one of 13, 20, 32, 63")
        if "stop_delay_s" in cmd:
            ev.stop_delay_ms = int(_number(cmd, "stop_delay_s") * 1000)
        ev.plug_in(cable)

    def cmd_ev_state(self, cmd):
        _, ev = self._ev(cmd)
        state = cmd.get("state")
        if state not in ("B", "C", "D"):
            raise CommandError("state must be B, C or D")
        ev.set_request(state)

    def cmd_ev_current(self, cmd):
        _, ev = self._ev(cmd)
        phases = cmd.get("phases", ev.ev_phases)
        if phases not in (1, 2, 3):
            raise CommandError("phases must be 1, 2 or 3")
        ev.set_current(_number(cmd, "a"), phases)

    def cmd_plug_out(self, cmd):
        self._ev(cmd)[1].plug_out()

    def cmd_swipe(self, cmd):
        token = cmd.get("token")
        kind = cmd.get("type", "ISO14443")
        if type(token) is not str or not token or type(kind) is not str:
            raise CommandError("swipe needs a token string")
        log.info("sim", "card %s (%s) at the reader" % (token, kind))
        self.station.transactions.card(token, kind)

    def cmd_button(self, cmd):
        self.station.transactions.button(self._ev(cmd)[0])

    def cmd_raise_error(self, cmd):
        self._fault(cmd, True)

    def cmd_clear_error(self, cmd):
        self._fault(cmd, False)

    def _fault(self, cmd, on):
        code = cmd.get("error")
        if cmd.get("evse") == 0:  # the site: only its mains meter can fail
            if code != "meter_timeout":
                raise CommandError("evse 0 (the mains meter) has only meter_timeout")
            self.board.mains_meter.silent = on
            return
        _, ev = self._ev(cmd)
        if code not in FAULTS:
            raise CommandError("error must be one of " + ", ".join(FAULTS))
        (ev.raise_error if on else ev.clear_error)(code)

    def cmd_mains_load(self, cmd):
        a = cmd.get("a")
        if type(a) is not list or len(a) != 3:
            raise CommandError("a must be a list of 3 currents (A)")
        for x in a:
            if type(x) not in (int, float):
                raise CommandError("a must be a list of 3 currents (A)")
        self.board.mains_meter.load_a = [float(x) for x in a]

    def cmd_ws_disconnect(self, cmd):
        self.board.net_up = False
        self.station.connection.drop()

    def cmd_ws_connect(self, cmd):
        self.board.net_up = True

    def status(self):
        st = self.station
        reg = st.connection.registration
        return {
            "ok": True,
            "firmware_version": VERSION,
            "target": _TARGET,
            "boot_count": st.boot_count,
            "registration": reg if reg else "None",
            "connected": st.connection.connected,
            "max_stall_ms": st.supervisor.max_stall_ms,
            "display": [] if self.board.display is None else self.board.display.lines,
            "evse": [_evse_status(e, self.board.evs[e.id - 1], st) for e in st.evses],
        }

    async def _quit(self):
        log.info("sim", "quit: shutting down")
        await self.station.shutdown()  # then the process exits with status 0


def _number(cmd, key):
    v = cmd.get(key)
    if type(v) not in (int, float) or v < 0:
        raise CommandError("%s must be a number >= 0" % key)
    return v


def _evse_status(e, ev, st):
    r = e.reading
    lim = e.limit_a
    return {
        "id": e.id,
        "cp": e.cp,
        "pwm_duty": round(e.hw.pilot.duty_pct, 1),
        "offered_a": float(e.offered_a),
        "contactor": e.hw.contactor.closed,
        "energy_wh": round(r.energy_wh, 1) if r else 0.0,
        "power_w": round(r.power_w, 1) if r else 0.0,
        "connector_status": st.availability.status(e),  # what the CSMS is told
        "tx_id": st.transactions.tx_id(e),
        "faults": sorted(e.faults),
        "max_open_ms": ev.max_open_ms,
        "phases": e.phases,
        # Null when nothing limits below the hardware (sim-control.md).
        "limit_a": float(lim) if lim is not None and lim < e.max_a else None,
        "phase_switches_under_load": ev.phase_switches_under_load,
    }
