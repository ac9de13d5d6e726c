# main: build the station from a board (store, device model, OCPP session, blocks) and run it.
# MIT licence.

import asyncio
import binascii
import gc
import sys

import bootsel
import log
import ocppj
from clock import Clock
from firmware.blocks.authorization import Authorization
from firmware.blocks.availability import Availability
from firmware.blocks.certificates import Certificates
from firmware.blocks.local_list import LocalList
from firmware.blocks.provisioning import Provisioning
from firmware.blocks.security import Security
from firmware.blocks.transactions import Transactions
from firmware.connection import Connection
from firmware.device_model import DeviceModel
from firmware.evse import Evse
from firmware.queue import MessageQueue
from firmware.supervisor import Supervisor
from firmware.variables import declarations
from store import Store

# One class per OCPP functional block, constructed with the station once it has its EVSEs.
BLOCKS = (
    Transactions,  # first: the others ask it whether an EVSE is busy, from the start
    Provisioning,
    Availability,
    Security,
    Certificates,
    LocalList,
    Authorization,
)
# Blocks that only answer CALLs are imported and built on the first CALL of one of their
# actions (ocppj.Router.later): (actions, module, class). Until then they cost no RAM.
LAZY = (
    (("GetBaseReport", "GetReport"), "firmware.blocks.reports", "Reports"),
    (("TriggerMessage", "UnlockConnector"), "firmware.blocks.remote_control", "RemoteControl"),
    (("DataTransfer",), "firmware.blocks.data_transfer", "DataTransfer"),
    (("SetNetworkProfile",), "firmware.blocks.network_profile", "NetworkProfile"),
)
# The firmware update block has work at boot only while an update is under way (its record
# on flash: firmware_update._STORE) or a new bundle slot is on trial; else it loads with the
# first UpdateFirmware. (TriggerMessage(FirmwareStatusNotification) says Idle without it.)
_UPDATE = (("UpdateFirmware",), "firmware.blocks.firmware_update", "FirmwareUpdate")
_UPDATE_DOC = "firmware"

_BOOT = "boot"  # store document: {"count": boots so far, "reason": reason for the next boot}
_WDT_MS = 5000  # watchdog timeout; the supervisor feeds it every 100 ms while all is well
_STEP_LATE_MS = 500  # a safety loop silent this long is dead
_POLL_LATE_MS = 10000  # a meter loop silent this long is dead
_GC_EVERY = 8192  # bytes allocated between collections (see _gc_often)


class Station:
    """Everything one charging station is made of, wired together once at boot."""

    def __init__(self, board):
        self.board = board
        self._stopped = asyncio.Event()
        self._tasks = None  # background tasks once running; before that, coroutines waiting
        self._waiting = []
        self.clock = Clock(board.unix_time)
        log.clock = self.clock
        self.store = Store(board.state_dir)
        self.boot_count, self.boot_reason = self._boot_record()
        hws = [board.evse_hw(i) for i in range(1, board.evses + 1)]  # built once
        self.dm = DeviceModel(
            self.store,
            declarations(hws),
            board.factory_variables(),
            board.settings.get("variables", ()),
        )
        self.dm.provide("ClockCtrlr/DateTime", self.clock.iso)
        self.router = ocppj.Router()
        timeout = self.dm.get_int("OCPPCommCtrlr/MessageTimeout:Default")
        self.session = ocppj.Session(self.router, self.new_id, timeout)
        self.connection = Connection(self)
        # Durable, ordered delivery of transaction and critical security messages.
        self.queue = MessageQueue(
            self.store.root + "/queue.jnl", self.session, self.connection, self.dm
        )
        self.spawn(self.queue.run())
        self.evses = [Evse(i, hw) for i, hw in enumerate(hws, 1)]
        self.supervisor = Supervisor(board.wdt(_WDT_MS))
        # The OCPP functional blocks, each registering its handlers with the router.
        self.blocks = [block(self) for block in BLOCKS]
        for actions, module, name in LAZY:
            self.router.later(actions, lambda m=module, n=name: self._load(m, n))
        actions, module, name = _UPDATE
        if bootsel.trial or self.store.exists(_UPDATE_DOC):
            self._load(module, name)
        else:
            self.router.later(actions, lambda: self._load(module, name))

    def _load(self, module, name):
        """Import block `name` of `module` and build it: it registers its handlers."""
        log.info("main", "loading %s" % module)
        mod = __import__(module, None, None, (name,))
        self.blocks.append(getattr(mod, name)(self))

    def _boot_record(self):
        rec = self.store.load(_BOOT) or {}
        count = rec.get("count", 0) + 1
        reason = rec.get("reason") or self.board.boot_reason() or "PowerUp"
        self.store.save(_BOOT, {"count": count})
        log.info("main", "boot %d, reason %s" % (count, reason))
        return count, reason

    def spawn(self, coro):
        """Run `coro` in the background, owned by the station: kept, cancelled at shutdown, and
        its failure logged. Before `run` it waits to be started there."""
        if self._tasks is None:
            self._waiting.append(coro)
            return
        self._tasks = [t for t in self._tasks if not t.done()]
        self._tasks.append(asyncio.create_task(_guarded(coro)))

    def busy(self, evse):
        """A transaction is open on `evse`."""
        return self.transactions.busy(evse)

    def new_id(self):
        """A fresh OCPP message id: 128 random bits, so never reused, not even after a reboot."""
        return binascii.hexlify(self.board.urandom(16)).decode()

    def reboot(self, reason):
        """Reboot the station; the next BootNotification will carry `reason`."""
        self.store.save(_BOOT, {"count": self.boot_count, "reason": reason})
        for e in self.evses:
            e.hw.contactor.open()  # never leave it to the reset
        log.info("main", "rebooting (%s)" % reason)
        self.board.reboot()

    async def run(self):
        """Run until `shutdown` (or a reboot or power loss, which never come back here)."""
        sup = self.supervisor
        self._tasks = tasks = []
        for e in self.evses:
            tasks.append(asyncio.create_task(e.run()))
            tasks.append(asyncio.create_task(e.notify()))  # the listeners, off the tick
            tasks.append(asyncio.create_task(e.meter_loop()))
            sup.watch("evse%d" % e.id, lambda e=e: e.last_step, _STEP_LATE_MS)
            sup.watch("meter%d" % e.id, lambda e=e: e.last_poll, _POLL_LATE_MS)
        conn = asyncio.create_task(self.connection.run())
        sup.watch_task("ocpp", conn)
        tasks.append(conn)
        tasks += [asyncio.create_task(c) for c in self.board.tasks(self)]
        tasks.append(asyncio.create_task(sup.run()))
        for coro in self._waiting:
            self.spawn(coro)
        self._waiting = []
        await self._stopped.wait()
        for t in self._tasks:
            t.cancel()

    async def shutdown(self):
        """Orderly stop: close the CSMS connection (bounded in time), then let `run` return."""
        try:
            await asyncio.wait_for_ms(self.connection.close(), 3000)
        except Exception as e:
            log.warn("main", "close on shutdown: %r" % e)
        self._stopped.set()


async def _guarded(coro):
    try:
        await coro
    except Exception as e:  # CancelledError is not an Exception in MicroPython nor CPython
        log.exc("main", "background task failed", e)


def run(board):
    _gc_often()
    asyncio.run(Station(board).run())


def _gc_often():
    """Collect after every _GC_EVERY bytes allocated, not only when the heap is full: the
    allocator starts again from the bottom after each collection, so what lives long packs
    low and the rest of the heap stays in one piece for the few large buffers (a 4 KB
    frame, an RSA-4096 product). Without it the survivors of a busy minute lie scattered
    over the whole heap, and at 96 KiB a 1 KB block could no longer be had. MicroPython
    only (CPython's gc has no threshold())."""
    fn = getattr(gc, "threshold", None)
    if fn is not None and sys.implementation.name == "micropython":
        fn(_GC_EVERY)
