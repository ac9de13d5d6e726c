# availability: OCPP block G: connector statuses reported with StatusNotification, and
# ChangeAvailability for the station, an EVSE or a connector, persisted. MIT licence.

import asyncio

from micropython import const

import log
import ocppj

# store document: {"0" | "<evse>" | "<evse>.<connector>": "Inoperative"}
_STORE = const("availability")
_INOPERATIVE = const("Inoperative")
_OPERATIVE = const("Operative")
_TAG = const("avail")
_ALERTS = const(("Faulted", "Unavailable"))  # what the hard-wired monitors report (monitors.py)


class Availability:
    """Which EVSEs may be used, and what each connector's status is.

    The CSMS's wish (`Operative` / `Inoperative` for the station "0", an EVSE "1" or a
    connector "1.1") is persisted at once; it takes effect on an EVSE as soon as that EVSE is
    idle, so a running session finishes first (the answer was then Scheduled).

    The status loop reports each connector whose status differs from what the CSMS last heard,
    whenever the station is online and Accepted. So nothing queues while offline: after a short
    outage only the changed connectors go out, after one longer than OfflineThreshold (or a
    reboot) all of them (B04, G01).

    A StatusNotification tells the time of the change, and keeps its place among the queued
    messages (TransactionEvents): it goes out after those posted before the change, and those
    posted after it (the Started that a plug-in causes) wait for it. So the EVSEs' listener of
    this block runs before the others', and the queue asks `_holds`.
    """

    def __init__(self, router, session, connection, queue, dm, store, clock, evses, txs, spawn):
        """txs: the transactions block, asked whether a transaction is open on an EVSE
        (`busy`) and whether a reservation holds it (`held`)."""
        self.session = session
        self.connection = connection
        self.dm = dm
        self.store = store
        self.clock = clock
        self.evses = evses
        self.txs = txs
        self.wish = store.load(_STORE) or {}  # only Inoperative entries are stored
        self.reported = {}  # EVSE id -> the status the CSMS last heard
        self.held = False  # every EVSE kept Unavailable for a while (firmware install); not saved
        # EVSE id -> (status, time of the change, the queue's mark then): the current status
        # and where it belongs in the order of messages.
        self.since = {}
        self._wake = asyncio.Event()
        self.queue = queue
        queue.hold = self._holds
        queue.on_gone = self._wake.set
        for e in evses:
            e.on_change.insert(0, self._changed)  # first: before the events the change causes
            self._apply(e)
        router.on("ChangeAvailability", self.on_change_availability, self._after_change)
        connection.on_accepted.append(self.report_all)
        connection.on_online.append(self._online)
        dm.live = self._live
        spawn(self.run())

    def _live(self, key):
        """AvailabilityState and Available of the station, an EVSE or its connector, for the
        device model (DeviceModel.live); None for any other key. Keys come as declared:
        "ChargingStation/Available", "EVSE.1/AvailabilityState", "Connector.1.1/Available"."""
        # Asked on every DeviceModel.get: the other keys go without allocating anything.
        if key.endswith("/Power"):
            # EVSE.<n>/Power: the active power of the meter's last reading, whole watts ("0"
            # without one). Here because the device model has one live function (no closure
            # and dict entry per EVSE, heap); inline: a method more grows the class's dict.
            parts = key[: len(key) - 6].split(".")
            n = int(parts[1]) if len(parts) == 2 and parts[1].isdigit() else 0
            if parts[0] != "EVSE" or not 1 <= n <= len(self.evses):
                return None
            r = self.evses[n - 1].reading
            return "%d" % round(r.power_w) if r is not None else "0"
        if key.endswith("/Problem") or key.endswith("/Tripped"):
            # The fault flags of an EVSE's parts (EVSE.1/Problem, RCD.1/Tripped, ...).
            from firmware import monitors

            return monitors.live(self.evses, key)
        if key.endswith("/AvailabilityState"):
            var = "AvailabilityState"
        elif key.endswith("/Available"):
            var = "Available"
        else:
            return None
        head = key[: len(key) - len(var) - 1]
        if head == "ChargingStation":
            st = "Unavailable" if self.wish.get("0") else "Available"
        else:
            parts = head.split(".")
            n = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
            if not 1 <= n <= len(self.evses):
                return None
            st = self.status(self.evses[n - 1])
        if var == "Available":
            return "false" if st == "Unavailable" else "true"
        return st

    # -- what each connector is ---------------------------------------------------------------

    def operative(self, e):
        """The CSMS wants this EVSE usable: station, EVSE and its connector all Operative."""
        w = self.wish
        return not (self.held or w.get("0") or w.get(str(e.id)) or w.get("%d.1" % e.id))

    def hold(self, on):
        """Make every EVSE Unavailable as soon as it is idle (on), or give them back to the
        CSMS's wish (off). Not persisted: a reboot ends the hold."""
        self.held = bool(on)
        for e in self.evses:
            self._apply(e)
        self._wake.set()

    def status(self, e):
        if e.faults:
            return "Faulted"  # also while Inoperative: a fault is news
        if not e.available:
            return "Unavailable"
        txs = self.txs
        busy = txs.busy(e)
        if not busy and txs.held(e.id):
            return "Reserved"  # also while another driver's EV is plugged in (it gets nothing)
        if e.plugged or busy:
            return "Occupied"
        return "Available"

    def _apply(self, e):
        """Make the wish real on `e` where it can be: going unavailable waits for idle."""
        want = self.operative(e)
        if want != e.available and (want or not self.txs.busy(e)):
            e.set_available(want)
            log.info(_TAG, "EVSE %d %s" % (e.id, "operative" if want else "inoperative"))

    def _changed(self, e):
        self._apply(e)
        self._note(e)
        self._wake.set()

    def _note(self, e):
        """(status, time, mark) of `e`'s current status, noted when it changed."""
        st = self.status(e)
        cur = self.since.get(e.id)
        old = st  # the status before, None at the first look
        when = None  # the time of a change of status
        if cur is None or cur[0] != st:
            old = None if cur is None else cur[0]
            cur = self.since[e.id] = (st, self.clock.iso(), self.queue.mark())
            when = cur[1]
        # The hard-wired and pre-configured monitors' news (firmware/monitors.py): a change
        # into or out of Faulted or Unavailable, or the faults (only while Faulted: a fault
        # makes it so). Imported with the first (no heap before); whatever goes wrong there,
        # the statuses go on.
        if st == "Faulted" or (
            old != st and old is not None and (old in _ALERTS or st in _ALERTS)
        ):
            try:
                from firmware import monitors

                monitors.changed(
                    self.dm, self.queue, self.connection.ready, self.clock, e, old, st, when
                )
            except Exception as ex:
                log.exc(_TAG, "hard-wired monitor", ex)
        return cur

    def _holds(self, seq):
        """Queued message `seq` waits: a change before it is not reported yet."""
        for e in self.evses:
            cur = self.since.get(e.id)
            if cur is not None and cur[2] <= seq and self.reported.get(e.id) != cur[0]:
                return True
        return False

    # -- ChangeAvailability (G03, G04) ----------------------------------------------------------

    def _targets(self, req):
        """(store key, affected EVSEs), or (None, reasonCode) for an unknown target."""
        evse = req.get("evse")
        if evse is None:
            return "0", self.evses
        n = evse["id"]
        if not 1 <= n <= len(self.evses):
            return None, "UnknownEvse"
        if "connectorId" in evse:
            if evse["connectorId"] != 1:
                return None, "UnknownConnector"
            return "%d.1" % n, [self.evses[n - 1]]
        return str(n), [self.evses[n - 1]]

    def on_change_availability(self, req):
        key, affected = self._targets(req)
        if key is None:
            return {"status": "Rejected", "statusInfo": {"reasonCode": affected}}
        inop = req["operationalStatus"] == _INOPERATIVE
        if inop:
            self.wish[key] = _INOPERATIVE
        else:
            self.wish.pop(key, None)
        self.store.save(_STORE, self.wish)
        waiting = False
        for e in affected:
            self._apply(e)
            waiting = waiting or (e.available != self.operative(e))
        return {"status": "Scheduled" if waiting else "Accepted"}

    def _after_change(self, req, resp):
        self._wake.set()

    # -- StatusNotification (G01, B04) ----------------------------------------------------------

    def report_all(self):
        """Forget what the CSMS heard: every connector is reported again."""
        self.reported = {}
        self._wake.set()

    def _online(self, offline_ms):
        threshold = self.dm.get_int("OCPPCommCtrlr/OfflineThreshold") * 1000
        if offline_ms is not None and offline_ms > threshold:
            self.report_all()
        else:
            self._wake.set()

    async def send(self, e):
        """Send the status of `e`'s connector now (also for TriggerMessage), with the time it
        took that status."""
        st, t, _ = self._note(e)
        payload = {
            "timestamp": t,
            "connectorStatus": st,
            "evseId": e.id,
            "connectorId": 1,
        }
        self.reported[e.id] = st  # also when refused: a CALLERROR is not worth a retry
        # What waited for this status may go: the queue's CALL takes the session's lock
        # after this one, which takes it without a pause.
        self.queue.kick()
        await self.session.call("StatusNotification", payload)

    async def run(self):
        ready = self.connection.ready
        while True:
            await ready.wait()
            self._wake.clear()
            try:
                for e in self.evses:
                    st, _, mark = self._note(e)
                    if self.reported.get(e.id) != st and self.queue.before(mark):
                        await self.send(e)
            except ocppj.CallError as ex:
                log.warn(_TAG, "StatusNotification refused: %r" % ex)  # not sent again
            except (asyncio.TimeoutError, ocppj.NotConnected) as ex:
                log.warn(_TAG, "StatusNotification: %r" % ex)
                await asyncio.sleep_ms(1000)  # offline: try again once ready
                continue
            await self._wake.wait()
