# sim: the virtual wallbox board for the MicroPython unix port: host clock, state directory,
# simulated network, an EV with relay, phase relay, RCD, PP and meter per EVSE (ev.py), the
# control channel.
# MIT licence.

import asyncio
import gc
import json
import os
import sys
import time

from micropython import const

import boards
import log
from boards.drivers import EvseHw
from boards.sim.ev import CP_THRESHOLDS, MV_FULL, PP_MV, SimEV
from boards.sim.ev import ticks_us as ev_ticks_us
from store import Store

MODEL = "VirtualWallbox"
VENDOR = "mpwallbox"

_WORLD = "sim_world"  # the simulated world's document, beside the station's own state
_MAINS = "sim_mains"  # the site's load at the grid connection (boards/sim/mains.py)
REBOOT_EXIT = 3  # exit status asking tools/wallbox-sim to start the firmware again in place
WATCHDOG_EXIT = 4  # exit status of a starved watchdog
MAX_A = 32  # the virtual installation's limit per phase
# Only the virtual ESP32 (tools/esp32sim.py) is a 32-bit program: it updates by full images into
# emulated OTA partitions (boards/sim/ota.py); the host target installs bundles (lib/bootsel.py).
ESP32 = sys.maxsize < (1 << 32)
PHASES = 3
_RX_LIMIT = const(16384)
_ROOMY = const(1 << 20)  # a heap this large is the host's, no board's

# PP bands for the proximity driver, ascending (max mV at the pin, cable amps): the midpoints
# between the levels of ev.PP_MV.
PP_BANDS = (
    ((PP_MV[63] + PP_MV[32]) // 2, 63),
    ((PP_MV[32] + PP_MV[20]) // 2, 32),
    ((PP_MV[20] + PP_MV[13]) // 2, 20),
    ((PP_MV[13] + 3300) // 2, 13),
)


class TextDisplay:
    """The sim's display, text only: the lines it shows now are in the control channel's
    `status` ("display"). A display driver (see firmware/display.py) with as many lines and
    columns as the boards' 128 x 64 displays with the 8 x 8 font, so that a screen made on the
    sim fits them too; a QR code is the line "QR:<uri>" (`pixels` False)."""

    cols = 16
    rows = 8
    pixels = False
    lines = ()  # nothing shown yet (a class attribute: no __init__, heap)

    def show(self, lines, qr=None):
        # The lines as given, kept (no copy: the model makes a new list for each screen and
        # cuts them to fit; "QR:<uri>" may be longer).
        self.lines = lines


class Board(boards.Board):
    MODEL = MODEL
    VENDOR = VENDOR
    # The largest incoming message the connection tries to buffer (ws.connect keep): on the
    # virtual ESP32's heap a larger one could never be had whole anyway, so it is read past and
    # answered InternalError "out of memory to read it (N bytes)" (RpcFrameworkError "-1" when
    # its id is not in its first 64 bytes) every time, not as fragmentation happens to allow.
    # The host target: the WebSocket limit alone (64 KiB, larger ones close the link: 1009).
    rx_limit = _RX_LIMIT if ESP32 else None

    def __init__(self, argv):
        opts = _parse(argv)
        self.identity = opts.get("id", "SIM1")
        self.serial = self.identity[:25]
        self.state_dir = opts["state-dir"]
        self.evses = int(opts.get("evses", "1"))
        self.settings = {}
        if "config" in opts:
            with open(opts["config"]) as f:
                self.settings = json.load(f)
        self.settings["csms_url"] = opts.get("csms", "ws://127.0.0.1:9000/ocpp")
        self.net_up = True  # False after the control channel's ws_disconnect
        sim = self.settings.get("sim", {})
        if sim.get("display") is False:
            self.display = None  # a wallbox without a display (the class has one)
        self.evs = [SimEV(PHASES, save=self.save_world) for _ in range(self.evses)]
        for ev in self.evs:
            ev.stop_delay_ms = int(sim.get("ev_stop_delay_s", 1) * 1000)
        if sim.get("clock_1970"):
            # The board's clock starts at 1970-01-01T00:00:00Z, as an RTC after power-up,
            # until the firmware sets it (set_time). The host's TLS still checks certificate
            # dates against the host's clock: what the firmware does first is its own rule.
            skew = [int(time.time())]  # closures, not methods: nothing in the class (heap)

            def set_time(unix_s):
                skew[0] = int(time.time()) - unix_s

            self.unix_time = lambda: int(time.time()) - skew[0]
            self.set_time = set_time
        self._world = Store(self.state_dir)
        world = self._world.load(_WORLD) or ()
        for i in range(min(len(world), len(self.evs))):
            self.evs[i].restore(world[i])
        self._wdt = None
        log.stream = sys.stderr

    display = TextDisplay()  # its lines are in the control channel's status (one sim a process)
    _mains = None  # see mains_meter (a class default: no slot in every board until used)
    unix_time = staticmethod(time.time)
    urandom = staticmethod(os.urandom)
    tls_links = 1 if ESP32 else None  # as a WROOM on the esp32 target (boards.Board.tls_links)

    def save_world(self):
        """Persist the simulated world (car, cable, faults, meter register): it is not part of
        the station, so a reboot or a power loss of the firmware leaves it as it was."""
        self._world.save(_WORLD, [ev.state_doc() for ev in self.evs])
        if self._mains is not None:
            self._world.save(_MAINS, self._mains.state_doc())

    @property
    def mains_meter(self):
        """The site's mains meter (boards/sim/mains.py), built on first use: the smart-charging
        block asks for it, the control channel's mains_load sets its load."""
        if self._mains is None:
            from boards.sim.mains import SimMains

            self._mains = SimMains(self.evs)
            self._mains.restore(self._world.load(_MAINS) or {})
        return self._mains

    def evse_hw(self, evse_id):
        from boards.drivers.contactor import Contactor
        from boards.drivers.lock import Lock
        from boards.drivers.pilot import Pilot
        from boards.drivers.proximity import Proximity
        from boards.drivers.rcd import Rcd

        ev = self.evs[evse_id - 1]
        return EvseHw(
            Pilot(ev.pwm, ev, CP_THRESHOLDS, MV_FULL, ticks_us=ev_ticks_us),  # ev: the CP ADC
            Contactor([ev.relay], mirror=ev.mirror),
            Rcd(ev.rcd_fault, test=ev.rcd_test),
            ev.meter,
            MAX_A,
            phases=PHASES,
            proximity=Proximity(ev.pp_adc, PP_BANDS, MV_FULL),
            lock=Lock(ev.lock_a, ev.lock_b, ev.lock_switch, pulse_ms=100),
            phase_switch=Contactor([ev.phase_relay]) if PHASES == 3 else None,
        )

    def wdt(self, timeout_ms):
        self._wdt = SimWdt(timeout_ms)
        return self._wdt

    def boot_reason(self):
        """Watchdog when the previous run died or starved its watchdog (see wallbox-sim)."""
        last = os.getenv("WALLBOX_SIM_LAST_EXIT")
        return "Watchdog" if last and last not in ("0", str(REBOOT_EXIT)) else None

    def network_up(self):
        return self.net_up

    def tasks(self, station):
        from boards.sim.control import Control

        every = self.settings.get("sim", {}).get("gc_threshold")
        if every and gc.mem_alloc() + gc.mem_free() >= _ROOMY:
            # Config "sim": {"gc_threshold": bytes} (tools/fleet.py): on the host target's own
            # heap (2 MiB, not a board's, not --heap) collect that seldom instead of main.run's
            # every 8 KB, which marks the ~500 KB of compiled sources there each time (0.2 %
            # of a core a station, idle or charging). The firmware's peaks above idle then
            # hold that much garbage: not for make bench.
            gc.threshold(every)
        tasks = [Control(self, station).run()]
        station.queue.heap_probe = bool(os.getenv("WALLBOX_SIM_HEAP_PROBE"))  # make bench
        if self._wdt:
            tasks.append(self._wdt.run())
        return tasks

    def reboot(self):
        sys.exit(REBOOT_EXIT)

    # -- firmware images, esp32 target only (as boards/esp32.py; the firmware's block L) -------

    def app_partition(self):
        """The emulated OTA partition the next image goes to; None on the host target."""
        if not ESP32:
            return None
        from boards.sim import ota

        return ota.running(self.state_dir).get_next_update()

    def running_app(self):
        """The label of the program running now ("factory", "ota_0", "ota_1")."""
        if not ESP32:
            return None
        from boards.sim import ota

        return ota.load(self.state_dir).get("running") or ota.FACTORY

    def confirm_app(self):
        """The running image was Accepted: cancel its rollback."""
        if ESP32:
            from boards.sim import ota

            ota.mark_app_valid_cancel_rollback(self.state_dir)


class SimWdt:
    """machine.WDT for the sim: starved for `timeout` ms, the firmware exits to be restarted.

    It runs as an asyncio task, so it catches dead or stuck tasks but not a loop that never
    yields again; a board's hardware watchdog catches both.
    """

    def __init__(self, timeout):
        self.timeout = timeout
        self.last = time.ticks_ms()

    def feed(self):
        self.last = time.ticks_ms()

    async def run(self):
        while True:
            await asyncio.sleep_ms(self.timeout // 4)
            if time.ticks_diff(time.ticks_ms(), self.last) > self.timeout:
                log.error("wdt", "watchdog starved: reset")
                sys.exit(WATCHDOG_EXIT)


def _parse(argv):
    """--name value pairs into a dict (tools/wallbox-sim checked them already)."""
    opts = {}
    i = 0
    while i < len(argv):
        a = argv[i]
        if not a.startswith("--") or i + 1 >= len(argv):
            raise SystemExit("bad argument: " + a)
        opts[a[2:]] = argv[i + 1]
        i += 2
    return opts
