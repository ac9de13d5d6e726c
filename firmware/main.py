# main: build the station from a board (store, device model, OCPP session, blocks) and run it.
# MIT licence.

import asyncio
import binascii
import gc
import sys

from micropython import const

import bootsel
import log
import ocppj
from clock import Clock
from firmware.blocks.authorization import Authorization
from firmware.blocks.availability import Availability
from firmware.blocks.certificates import Certificates
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

# Blocks that are not always needed are imported and built on the first CALL of one of their
# actions (ocppj.Router.later), or at boot when their document is on flash: until then they
# cost no RAM. Station._load hands each what it uses. The tables are constants (in flash on
# a board): (actions, module), or (actions, module, document).

# Blocks that only answer CALLs.
LAZY = const(
    (
        (("GetBaseReport", "GetReport"), "firmware.blocks.reports"),
        (("TriggerMessage", "UnlockConnector"), "firmware.blocks.remote_control"),
        (("DataTransfer",), "firmware.blocks.data_transfer"),
        (("SetNetworkProfile",), "firmware.blocks.network_profile"),
        (("CustomerInformation",), "firmware.blocks.customer_information"),
        (("GetLog",), "firmware.blocks.diagnostics"),
        (("CertificateSigned",), "firmware.blocks.station_certificate"),
    )
)
# Blocks built at boot only when their store document is on flash. The local list when a
# list is there (local_list._STORE; authorization asks it for tokens), else it loads with the
# first SendLocalList or GetLocalListVersion.
_LOCAL_LIST = const(
    (("SendLocalList", "GetLocalListVersion"), "firmware.blocks.local_list", "local_list")
)
# The firmware update block while an update is under way (its record: firmware_update._STORE)
# or a new bundle slot is on trial; else it loads with the first UpdateFirmware.
# (TriggerMessage(FirmwareStatusNotification) says Idle without it.)
_UPDATE = const((("UpdateFirmware",), "firmware.blocks.firmware_update", "firmware"))
# Smart charging when profiles are on flash (charging_profiles._STORE: they apply from boot,
# offline too) or local load management is on (LoadManagement.Mode, watched), else with its
# first CALL.
_SMART = const(
    (
        (
            "SetChargingProfile",
            "GetChargingProfiles",
            "ClearChargingProfile",
            "GetCompositeSchedule",
        ),
        "firmware.blocks.smart_charging",
        "charging_profiles",
    )
)

# Reservations while some are on flash (reservation._STORE: they expire, hold EVSEs and
# show Reserved from boot), else with the first ReserveNow or CancelReservation.
_RESERVE = const(
    (("ReserveNow", "CancelReservation"), "firmware.blocks.reservation", "reservations")
)

# Tariff and cost, on a board with a display only: with the first CostUpdated, or when the
# transactions block finds a tariff or a cost in an answer (Transactions._cost).
_COST = const((("CostUpdated",), "firmware.blocks.tariff_cost"))

# Display messages while some are on flash (display_messages._STORE: the display shows them
# from boot), else with the first of their CALLs.
_MESSAGES = const(
    (
        ("SetDisplayMessage", "GetDisplayMessages", "ClearDisplayMessage"),
        "firmware.blocks.display_messages",
        "display_messages",
    )
)

# Monitoring while monitors (or a monitoring level or base) are on flash (monitoring.STORE:
# they watch from boot), else with the first of its CALLs.
_MONITOR = const(
    (
        (
            "SetVariableMonitoring",
            "ClearVariableMonitoring",
            "SetMonitoringLevel",
            "SetMonitoringBase",
            "GetMonitoringReport",
        ),
        "firmware.blocks.monitoring",
        "monitoring",
    )
)

_BOOT = "boot"  # store document: {"count": boots so far, "reason": reason for the next boot}
_WDT_MS = const(5000)  # watchdog timeout; the supervisor feeds it every 100 ms while all is well
_STEP_LATE_MS = const(500)  # a safety loop silent this long is dead
_POLL_LATE_MS = const(10000)  # a meter loop silent this long is dead
_GRACE_MS = const(500)  # before a reboot: time for the last answer or status to leave
_CLOSE_MS = const(3000)  # the longest a reboot or shutdown waits for the WebSocket close
_GC_EVERY = const(8192)  # bytes allocated between collections (see _gc_often)
_TURN_MS = const(100)  # Station.run's turn: how soon it sees a shutdown
_FLUSH_TURNS = const(10)  # the logs on flash are written every 10 turns (1 s; errors at once)
_CACHE_TURNS = const(600)  # the authorization cache's use times every minute
_MODE = const("LoadManagement/Mode")  # local load management: Off, Capacity, Solar
_LOG_LEVEL = const("DiagnosticsCtrlr/LogLevel")  # the lowest level the diagnostics log keeps
_LEVELS = const(("Debug", "Info", "Warning", "Error"))  # its values, log's levels 0..3
# The station's own certificate: its renewal date (station_certificate._STORE), looked at
# every minute without loading that block.
_OWN_CERT = const("station_cert")


class Station:
    """Everything one charging station is made of, wired together once at boot: each part is
    handed what it uses, in the order below."""

    # Parts that a station may never build, None until built (class attributes: no slot in
    # the instance until then, heap): the lazy blocks that others ask for (_LOCAL_LIST,
    # _UPDATE, LAZY's diagnostics) and the display (boards without one).
    local_list = None
    firmware = None
    diagnostics = None
    display = None

    def __init__(self, board):
        self.board = board
        self._stopped = asyncio.Event()
        self._tasks = None  # background tasks once running; before that, coroutines waiting
        self._waiting = []
        self.clock = clock = Clock(board.unix_time)
        log.clock = clock
        if board.set_time is not None:
            # The board's TLS checks certificate dates against its own clock (an ESP32's RTC,
            # from 2000 at power-up): it follows every step, and the offset is then 0.
            def rtc(step, old):
                board.set_time(clock.now())
                clock.offset = 0

            clock.on_step.append(rtc)
        self.store = store = Store(board.state_dir)
        # The logs on flash (built empty: files are looked at with the first flush); imported
        # here, not at the top: no global for it.
        from logfile import LogFiles

        # Not kept on the station (heap): the diagnostics log is log.file, the security log
        # the security block's journal.
        logs = store.root + "/logs"
        log.file = LogFiles(logs, "diagnostics", board.log_size, board.log_count)
        journal = LogFiles(logs, "security", board.security_log_size, board.log_count)
        self.boot_count, self.boot_reason = self._boot_record()
        hws = [board.evse_hw(i) for i in range(1, board.evses + 1)]  # built once
        self.dm = dm = DeviceModel(
            store,
            declarations(hws, board.display is not None),
            board.factory_variables(),
            # popped: the config file's variables are the device model's now (heap)
            board.settings.pop("variables", ()),
        )
        dm.provide("ClockCtrlr/DateTime", clock.iso)
        dm.watch(_LOG_LEVEL, _file_level)
        _file_level(dm.get(_LOG_LEVEL))
        self.router = router = ocppj.Router(self._load)  # it loads the lazy blocks
        timeout = dm.get_int("OCPPCommCtrlr/MessageTimeout:Default")
        self.session = session = ocppj.Session(router, self.new_id, timeout)
        spawn = self.spawn
        # The connection's TLS trusts the CSMS roots of the certificates block, and it reports
        # failed attempts as security events: both blocks are built below, before it runs.
        self.connection = conn = Connection(
            board,
            dm,
            session,
            store,
            clock,
            spawn,
            self.boot_reason,
            lambda: self.certificates.csms_ca_path(),
            lambda kind, info: self.security.event(kind, info),
        )
        router.gate = conn.gate
        # Durable, ordered delivery of transaction and critical security messages.
        self.queue = queue = MessageQueue(store.root + "/queue.jnl", session, conn, dm)
        spawn(queue.run())
        self.evses = evses = [Evse(i, hw) for i, hw in enumerate(hws, 1)]
        # The OCPP functional blocks, each registering its handlers with the router.
        self.authorization = auth = Authorization(
            router, session, conn, dm, store, clock, lambda: self.local_list
        )
        # Before the blocks that ask it whether an EVSE is busy, from the start.
        self.transactions = txs = Transactions(
            router,
            session,
            conn,
            queue,
            dm,
            store,
            clock,
            evses,
            auth,
            spawn,
            board.urandom,
            self.boot_reason,
        )
        self.provisioning = Provisioning(router, session, dm, conn, txs, evses, spawn, self.reboot)
        self.availability = Availability(
            router, session, conn, queue, dm, store, clock, evses, txs, spawn
        )
        # What the driver sees: the display and the status LED, where the board has them.
        if board.display is not None or board.led is not None:
            from firmware.display import Display

            self.display = Display(board.display, board.led, txs, self.availability, conn, clock)
        self.security = Security(dm, clock, queue, conn, self.boot_reason, journal)
        self.certificates = Certificates(router, dm, store, clock, board.settings)
        for entry in LAZY:
            router.later(entry)
        if board.display is not None:
            router.later(_COST)  # costs need a display to be shown on
        for entry, now in (
            (_LOCAL_LIST, store.exists(_LOCAL_LIST[2])),
            (_UPDATE, bootsel.trial or store.exists(_UPDATE[2])),
            (_SMART, store.exists(_SMART[2]) or dm.get(_MODE) != "Off"),
            (_RESERVE, store.exists(_RESERVE[2])),
            (_MESSAGES, store.exists(_MESSAGES[2])),
            (_MONITOR, store.exists(_MONITOR[2])),
        ):
            if now:
                self._load(entry)
            else:
                router.later(entry)
        dm.watch(_MODE, self._mode)
        # The watchdog last: what the boot does before the loop runs (the factory roots'
        # signatures above: seconds on a board) must not starve it into a reset loop.
        self.supervisor = Supervisor(board.wdt(_WDT_MS))

    def _mode(self, value):
        """LoadManagement.Mode changed: load management runs in the smart-charging block."""
        if value != "Off":
            self.router.entry(_SMART[0][0])  # loads the block unless it is loaded

    def _load(self, entry):
        """Import and build the block of `entry` (actions, module, ...): it registers its
        handlers. One branch per block, each handing it what it uses (no factory function and
        no table entry in RAM for each)."""
        name = entry[1]
        log.info("main", "loading %s" % name)
        if name == "firmware.blocks.reports":
            from firmware.blocks.reports import Reports

            Reports(self.router, self.session, self.dm, self.clock)
        elif name == "firmware.blocks.remote_control":
            from firmware.blocks.remote_control import RemoteControl

            RemoteControl(
                self.router,
                self.session,
                self.dm,
                self.clock,
                self.connection,
                self.evses,
                self.transactions,
                self.availability,
                self.spawn,
                self.firmware_status,
                self.log_status,
                self.certify,
            )
        elif name == "firmware.blocks.data_transfer":
            from firmware.blocks.data_transfer import DataTransfer

            DataTransfer(self.router)
        elif name == "firmware.blocks.network_profile":
            from firmware.blocks.network_profile import NetworkProfile

            NetworkProfile(
                self.router,
                self.dm,
                self.connection,
                self.certificates,
                self.security,
                self.board.settings,
                self.certify,
            )
        elif name == "firmware.blocks.station_certificate":
            from firmware.blocks.station_certificate import StationCertificate

            StationCertificate(
                self.router,
                self.session,
                self.dm,
                self.store,
                self.clock,
                self.connection,
                self.certificates,
                self.security,
                self.spawn,
                self.board.urandom,
            )
        elif name == "firmware.blocks.customer_information":
            from firmware.blocks.customer_information import CustomerInformation

            CustomerInformation(
                self.router,
                self.session,
                self.clock,
                self.authorization.cache,
                lambda: self.local_list,
                self.transactions.bays,
                self.queue,
                self.spawn,
            )
        elif name == "firmware.blocks.diagnostics":
            from firmware.blocks.diagnostics import Diagnostics

            logs = (log.file, self.security.journal)  # the diagnostics log, the security log
            self.diagnostics = Diagnostics(
                self.router, self.session, self.connection, self.dm, self.clock, self.board, logs
            )
        elif name == "firmware.blocks.local_list":
            from firmware.blocks.local_list import LocalList

            self.local_list = LocalList(self.router, self.session, self.dm, self.store, self.clock)
        elif name == "firmware.blocks.firmware_update":
            from firmware.blocks.firmware_update import FirmwareUpdate

            self.firmware = FirmwareUpdate(
                self.router,
                self.session,
                self.connection,
                self.store,
                self.clock,
                self.board,
                self.spawn,
                self.reboot,
                self.security,
                self.certificates,
                self.availability,
                self.transactions,
                self.dm,
            )
        elif name == "firmware.blocks.smart_charging":
            from firmware.blocks.smart_charging import SmartCharging

            SmartCharging(
                self.router,
                self.session,
                self.dm,
                self.store,
                self.clock,
                self.evses,
                self.transactions,
                self.spawn,
                self.connection.ready,
                self.board.mains_meter,
            )
        elif name == "firmware.blocks.tariff_cost":
            from firmware.blocks.tariff_cost import TariffCost

            TariffCost(self.router, self.session, self.dm, self.transactions, self.display)
        elif name == "firmware.blocks.reservation":
            from firmware.blocks.reservation import Reservations

            Reservations(
                self.router,
                self.queue,
                self.dm,
                self.store,
                self.clock,
                self.evses,
                self.transactions,
                self.spawn,
            )
        elif name == "firmware.blocks.monitoring":
            from firmware.blocks.monitoring import Monitoring

            Monitoring(
                self.router,
                self.session,
                self.connection,
                self.queue,
                self.dm,
                self.store,
                self.clock,
                self.evses,
                self.transactions,
                self.spawn,
                self.boot_count,
            )
        elif name == "firmware.blocks.display_messages":
            from firmware.blocks.display_messages import DisplayMessages

            DisplayMessages(
                self.router,
                self.session,
                self.dm,
                self.store,
                self.clock,
                self.transactions,
                self.spawn,
                self.display,
            )

    def certify(self, why):
        """Ask the CSMS for a new certificate of the station's own key (A02/A03), loading the
        block that does it; why None: the certificate in use is near its end."""
        self.router.entry("CertificateSigned")  # loads the block unless it is loaded
        from firmware.blocks import station_certificate

        b = station_certificate.block
        if why is None:
            b.renew()
        else:
            b.request(why)

    def firmware_status(self):
        """(status, requestId) of the firmware update for TriggerMessage: Idle while its block
        is not loaded (no update under way)."""
        fw = self.firmware
        return fw.status() if fw is not None else ("Idle", None)

    def log_status(self):
        """(status, requestId) of the log upload for TriggerMessage: Idle while the
        diagnostics block is not loaded (no upload)."""
        d = self.diagnostics
        return d.status() if d is not None else ("Idle", None)

    def _boot_record(self):
        rec = self.store.load(_BOOT) or {}
        count = rec.get("count", 0) + 1
        reason = rec.get("reason") or self.board.boot_reason() or "PowerUp"
        self.store.save(_BOOT, {"count": count})
        log.boot = count  # for the stamps of file records before the clock is set
        log.info("main", "boot %d, reason %s" % (count, reason))
        return count, reason

    def spawn(self, coro):
        """Run `coro` in the background, owned by the station: kept, cancelled at shutdown, and
        its failure logged (_task_failed). Before `run` it waits to be started there."""
        if self._tasks is None:
            self._waiting.append(coro)
            return
        self._tasks = [t for t in self._tasks if not t.done()]
        self._tasks.append(asyncio.create_task(coro))

    def new_id(self):
        """A fresh OCPP message id: 128 random bits, so never reused, not even after a reboot."""
        return binascii.hexlify(self.board.urandom(16)).decode()

    async def reboot(self, reason):
        """Reboot the station, the one way every block does it; the next BootNotification will
        carry `reason`. The last answers get _GRACE_MS to leave, then the CSMS connection is
        closed (bounded in time) and the contactors opened."""
        await asyncio.sleep_ms(_GRACE_MS)
        await self._close()
        self.store.save(_BOOT, {"count": self.boot_count, "reason": reason})
        for e in self.evses:
            e.hw.contactor.open()  # never leave it to the reset
        log.info("main", "rebooting (%s)" % reason)
        log.file.flush()
        self.security.journal.flush()
        self.board.reboot()

    async def run(self):
        """Run until `shutdown` (or a reboot or power loss, which never come back here).

        This task flushes the logs on flash and redraws the display every second and does the
        minute's chores (_minute); no task of their own: heap. At most one flash write a
        second for the lines below error (error lines and security events are written at
        once); a flush with nothing buffered returns at once. Its frame lives as long as the
        station: the start and the minute's work are methods of their own, their locals not
        in it."""
        self._start()
        turns = 0
        while not self._stopped.is_set():
            await asyncio.sleep_ms(_TURN_MS)
            turns += 1
            if turns % _FLUSH_TURNS == 0:
                log.file.flush()
                self.security.journal.flush()
                if self.display is not None:
                    await self.display.tick()
            if turns == _CACHE_TURNS:
                turns = 0
                self._minute()
        for t in self._tasks:
            t.cancel()

    def _start(self):
        """Start the station's tasks: the safety loops first."""
        asyncio.get_event_loop().set_exception_handler(_task_failed)
        sup = self.supervisor
        self._tasks = tasks = []
        for e in self.evses:
            tasks.append(asyncio.create_task(e.run()))
            tasks.append(asyncio.create_task(e.notify()))  # the listeners, off the tick
            tasks.append(asyncio.create_task(e.meter_loop()))
            sup.watch(e, _STEP_LATE_MS, _POLL_LATE_MS)
        conn = asyncio.create_task(self.connection.run())
        sup.watch_task("ocpp", conn)
        tasks.append(conn)
        tasks += [asyncio.create_task(c) for c in self.board.tasks(self)]
        tasks.append(asyncio.create_task(sup.run()))
        for coro in self._waiting:
            self.spawn(coro)
        self._waiting = None  # spawn starts them at once from now on

    def _minute(self):
        """Every minute: the authorization cache's use times, the station's own certificate
        near its end (renewed while online, A03), the daily NTP sync."""
        self.authorization.flush()
        if self.connection.ready.is_set() and self.store.exists(_OWN_CERT):
            doc = self.store.load(_OWN_CERT)
            renew = doc.get("renew") if type(doc) is dict else None
            if type(renew) is int and self.clock.now() >= renew:
                self.certify(None)
        if "NTP" in self.dm.get("ClockCtrlr/TimeSource"):
            from firmware import timesync

            if timesync.due():
                self.spawn(timesync.sync(self.connection))

    async def shutdown(self):
        """Orderly stop: close the CSMS connection (bounded in time), then let `run` return."""
        await self._close()
        log.file.flush()
        self.security.journal.flush()
        self._stopped.set()

    async def _close(self):
        try:
            await asyncio.wait_for_ms(self.connection.close(), _CLOSE_MS)
        except Exception as e:
            log.warn("main", "closing the connection: %r" % e)


def _file_level(value):
    """The DiagnosticsCtrlr/LogLevel watcher: the lowest level the diagnostics log keeps."""
    log.file_level = _LEVELS.index(value) if value in _LEVELS else 1


def _task_failed(loop, context):
    """The loop's handler for an exception that ended a task nobody awaits: a background task
    failed. No wrapper coroutine per task: MicroPython calls it as the task ends, CPython when
    the ended task is collected."""
    log.exc("main", "background task failed", context.get("exception"))


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
    if sys.implementation.name == "micropython":
        gc.threshold(_GC_EVERY)
