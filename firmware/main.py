# main: build the station from a board (store, device model, OCPP session, blocks) and run it.
# MIT licence.

import asyncio
import binascii

import log
import ocppj
from clock import Clock
from firmware.blocks.provisioning import Provisioning
from firmware.connection import Connection
from firmware.device_model import DeviceModel
from firmware.variables import VARIABLES
from store import Store

_BOOT = "boot"  # store document: {"count": boots so far, "reason": reason for the next boot}


class Station:
    """Everything one charging station is made of, wired together once at boot."""

    def __init__(self, board):
        self.board = board
        self._stopped = asyncio.Event()
        self.clock = Clock(board.unix_time)
        log.clock = self.clock
        self.store = Store(board.state_dir)
        self.boot_count, self.boot_reason = self._boot_record()
        self.dm = DeviceModel(
            self.store, VARIABLES, board.factory_variables(), board.settings.get("variables", ())
        )
        self.dm.provide("ClockCtrlr/DateTime", self.clock.iso)
        self.router = ocppj.Router()
        timeout = self.dm.get_int("OCPPCommCtrlr/MessageTimeout:Default")
        self.session = ocppj.Session(self.router, self.new_id, timeout)
        self.connection = Connection(self)
        Provisioning(self)

    def _boot_record(self):
        rec = self.store.load(_BOOT) or {}
        count = rec.get("count", 0) + 1
        reason = rec.get("reason") or "PowerUp"
        self.store.save(_BOOT, {"count": count})
        log.info("main", "boot %d, reason %s" % (count, reason))
        return count, reason

    def new_id(self):
        """A fresh OCPP message id: 128 random bits, so never reused, not even after a reboot."""
        return binascii.hexlify(self.board.urandom(16)).decode()

    def reboot(self, reason):
        """Reboot the station; the next BootNotification will carry `reason`."""
        self.store.save(_BOOT, {"count": self.boot_count, "reason": reason})
        log.info("main", "rebooting (%s)" % reason)
        self.board.reboot()

    async def run(self):
        """Run until `shutdown` (or a reboot or power loss, which never come back here)."""
        tasks = [asyncio.create_task(self.connection.run())]
        tasks += [asyncio.create_task(c) for c in self.board.tasks(self)]
        await self._stopped.wait()
        for t in tasks:
            t.cancel()

    async def shutdown(self):
        """Orderly stop: close the CSMS connection (bounded in time), then let `run` return."""
        try:
            await asyncio.wait_for_ms(self.connection.close(), 3000)
        except Exception as e:
            log.warn("main", "close on shutdown: %r" % e)
        self._stopped.set()


def run(board):
    asyncio.run(Station(board).run())
