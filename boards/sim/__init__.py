# sim: the virtual wallbox board for the MicroPython unix port: host clock, state directory,
# simulated network, and the control channel of shared/docs/sim-control.md.
# MIT licence.

import json
import os
import sys
import time

import log

MODEL = "VirtualWallbox"
VENDOR = "mpwallbox"

REBOOT_EXIT = 3  # exit status asking tools/wallbox-sim to start the firmware again in place


class Board:
    MODEL = MODEL
    VENDOR = VENDOR

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
        log.stream = sys.stderr

    unix_time = staticmethod(time.time)
    urandom = staticmethod(os.urandom)

    def factory_variables(self):
        profile = self.settings.get("security_profile", 1)
        return (
            ("SecurityCtrlr/Identity", self.identity),
            ("SecurityCtrlr/SecurityProfile", str(profile)),
        )

    def network_up(self):
        return self.net_up

    def tasks(self, station):
        from boards.sim.control import Control

        return [Control(self, station).run()]

    def reboot(self):
        sys.exit(REBOOT_EXIT)


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
