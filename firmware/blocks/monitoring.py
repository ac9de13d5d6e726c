# monitoring: OCPP block N monitoring (N02-N08): variable monitors, NotifyEvent, monitoring
# reports, monitoring level and base. MIT licence.

import asyncio

from micropython import const

import log
import ocppj
from firmware import monitors as fixed  # the hard-wired and pre-configured monitors
from firmware.blocks.reports import component_variable, json_len, matches, split_key
from firmware.monitors import FIRST_ID

_TAG = const("monitor")
# store document: {"next": the next monitor id, "level": ActiveMonitoringLevel, "base":
# ActiveMonitoringBase, "m": [[id, key, type, value, severity, transaction], ...], "off": [ids
# of the pre-configured monitors cleared or replaced]}. Removed when it holds nothing but
# defaults: the block is built at boot only while it exists.
STORE = const("monitoring")
_MAX = const(60)  # custom monitors kept at most
_EVERY_MS = const(1000)  # how often the monitored values are looked at
_PART_ITEMS = const(10)  # eventData per NotifyEvent, variableMonitoring per report part
_PART_BYTES = const(3500)  # ... and at most this much of them as JSON (a part < 4 KB)
_LEVEL = const("MonitoringCtrlr/ActiveMonitoringLevel")
_BASE = const("MonitoringCtrlr/ActiveMonitoringBase")
_ENABLED = const("MonitoringCtrlr/Enabled")
_OFFLINE = const("MonitoringCtrlr/OfflineQueuingSeverity")
_SET_ITEMS = const("MonitoringCtrlr/ItemsPerMessage:SetVariableMonitoring")
_SET_BYTES = const("MonitoringCtrlr/BytesPerMessage:SetVariableMonitoring")
_CLEAR_ITEMS = const("MonitoringCtrlr/ItemsPerMessage:ClearVariableMonitoring")
_CLEAR_BYTES = const("MonitoringCtrlr/BytesPerMessage:ClearVariableMonitoring")

# MonitorEnumType, by index: the type of a monitor is its index here.
TYPES = const(("UpperThreshold", "LowerThreshold", "Delta", "Periodic", "PeriodicClockAligned"))
_UPPER = const(0)
_LOWER = const(1)
_DELTA = const(2)
_PERIODIC = const(3)
_ALIGNED = const(4)
# MonitoringCriterionEnumType of each type.
_CRITERIA = const(
    (
        "ThresholdMonitoring",
        "ThresholdMonitoring",
        "DeltaMonitoring",
        "PeriodicMonitoring",
        "PeriodicMonitoring",
    )
)
_TRIGGERS = const(("Alerting", "Alerting", "Delta", "Periodic", "Periodic"))

# A monitor: a list [id, key, type, value, severity, transaction, state] (the first six are
# what the store keeps). key: the declaration key; state: thresholds, True while the value is
# beyond it (an Alerting event went out and no cleared one yet); Delta, the value last
# reported (a float for numbers, else the string); the periodic types, the clock second of the
# next event; None: not looked at yet (or a transaction monitor outside a transaction).
_ID = const(0)
_KEY = const(1)
_TYPE = const(2)
_VALUE = const(3)
_SEV = const(4)
_TX = const(5)
_STATE = const(6)


def _number(v):
    """The float of value string `v`, None when it is no number."""
    try:
        return float(v)
    except ValueError:
        return None


def _whole(m):
    """True when stored entry `m` is [id, key, type, value, severity, transaction]."""
    return (
        type(m) is list
        and len(m) == 6
        and type(m[0]) is int
        and type(m[1]) is str
        and m[2] in (0, 1, 2, 3, 4)
        and type(m[3]) in (int, float)
        and m[4] in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9)
        and type(m[5]) is bool
    )


class Monitoring:
    """The custom monitors the CSMS set (SetVariableMonitoring), looked at every second by a
    task of their own (never by the EVSE's safety tick), and what they find sent as
    NotifyEvent: online at once, offline into the durable queue when the severity is at or
    below OfflineQueuingSeverity (else dropped). Events with a severity above
    ActiveMonitoringLevel are not sent at all."""

    def __init__(
        self, router, session, connection, queue, dm, store, clock, evses, txs, spawn, boot=1
    ):
        self.session = session
        self.connection = connection
        self.queue = queue
        self.dm = dm
        self.store = store
        self.clock = clock
        self.evses = evses
        self.txs = txs
        self.spawn = spawn
        doc = store.load(STORE)
        if type(doc) is not dict:
            doc = {}
        # What does not read as a monitor is left out (logged), never a failed boot.
        self.monitors = [list(m) + [None] for m in doc.get("m", ()) if _whole(m)]
        if len(self.monitors) != len(doc.get("m", ())):
            log.error(_TAG, "stored monitors unreadable: left out")
        # Restored: a Delta's reference and the periods start now, from boot.
        self.look(clock.now(), [m for m in self.monitors if m[_TYPE] >= _DELTA])
        self.next_id = doc.get("next", 1)
        # eventIds: unique within a boot, and apart from the last boots' (queued ones).
        self.event_id = (boot % 1000) * 100000
        self.report = None  # requestId of the GetMonitoringReport being sent, None while none
        self._next = None  # the report just accepted, started by the after-hook
        level, base = doc.get("level", 9), doc.get("base", "All")
        if level != 9 and type(level) is int and 0 <= level < 9:
            dm.set(_LEVEL, str(level))
        if base in ("FactoryDefault", "HardWiredOnly"):
            dm.set(_BASE, base)
        fixed.off = tuple(i for i in doc.get("off", ()) if type(i) is int)
        router.on("SetVariableMonitoring", self.on_set)
        router.on("ClearVariableMonitoring", self.on_clear)
        router.on("SetMonitoringLevel", self.on_level)
        router.on("SetMonitoringBase", self.on_base)
        router.on("GetMonitoringReport", self.on_report, self._after_report)
        spawn(self.run())

    # -- persistence --------------------------------------------------------------------------

    def _save(self):
        level = self.dm.get_int(_LEVEL)
        base = self.dm.get(_BASE)
        if not self.monitors and level == 9 and base == "All" and not fixed.off:
            self.store.remove(STORE)  # defaults only: the block need not load at boot
            return
        doc = {
            "next": self.next_id,
            "level": level,
            "base": base,
            "m": [m[:_STATE] for m in self.monitors],
        }
        if fixed.off:
            doc["off"] = list(fixed.off)
        self.store.save(STORE, doc)

    # -- SetVariableMonitoring (N04) ----------------------------------------------------------

    def _limits(self, req, items, size):
        dm = self.dm
        if len(req) > dm.get_int(items):
            raise ocppj.CallError(ocppj.OCCURRENCE_CONSTRAINT_VIOLATION, "ItemsPerMessage")
        if self.session.in_len > dm.get_int(size):
            raise ocppj.CallError(ocppj.FORMAT_VIOLATION, "BytesPerMessage")

    def on_set(self, req):
        data = req["setMonitoringData"]
        self._limits(data, _SET_ITEMS, _SET_BYTES)
        results = []
        changed = False
        for item in data:
            status, reason, mid = self._set(item)
            r = {
                "status": status,
                "type": item["type"],
                "severity": item["severity"],
                "component": item["component"],
                "variable": item["variable"],
            }
            if mid is not None:
                r["id"] = mid
                changed = True
            if reason:
                r["statusInfo"] = {"reasonCode": reason}
            results.append(r)
        if changed:
            self._save()
        return {"setMonitoringResult": results}

    def _set(self, item):
        """(status, reasonCode or None, id when Accepted) of one SetMonitoringData."""
        status, d = self.dm.find(item["component"], item["variable"])
        if d is None:
            return status, None, None
        kind = TYPES.index(item["type"])
        spec = d[1]
        if "~" not in spec or (kind <= _LOWER and spec[0] not in "di"):
            return "UnsupportedMonitorType", None, None
        value, sev = item["value"], item["severity"]
        if not 0 <= sev <= 9:
            return "Rejected", "InvalidSeverity", None
        if kind >= _PERIODIC and value < 1:
            return "Rejected", "InvalidValue", None
        if kind == _DELTA and value < 0:
            return "Rejected", "InvalidValue", None
        lim = d[3]
        if (
            kind <= _LOWER
            and lim
            and (
                (lim[1] is not None and value < lim[1]) or (lim[2] is not None and value > lim[2])
            )
        ):
            return "Rejected", "ValueOutOfRange", None
        mid = item.get("id")
        old = pre = None
        key = d[0]
        if mid is not None:
            old = self._by_id(mid)
            hit = None if old is not None else fixed.find(mid, len(self.evses))
            if hit is not None and not hit[2]:
                return "Rejected", "HardWiredMonitor", None
            if hit is not None and fixed.active(self.dm, mid):
                pre = fixed.key(hit[0], hit[1])  # replaced by a custom one (N04.FR.15)
            elif old is None:
                return "Rejected", "UnknownMonitorId", None
            if (pre or old[_KEY]) != key:
                return "Rejected", "OtherVariable", None  # the same id, the same variable
        if pre is not None:
            old = None
        for m in self.monitors:
            if m is not old and m[_KEY] == key and m[_TYPE] == kind and m[_SEV] == sev:
                return "Duplicate", None, None
        if old is None and len(self.monitors) >= _MAX:
            return "Rejected", "OutOfStorage", None
        tx = item.get("transaction", False)
        if pre is not None:
            fixed.off += (mid,)  # the pre-configured one is off while its id is custom
            old = [mid, key, kind, value, sev, tx, None]
            self.monitors.append(old)
        elif old is None:
            mid = self.next_id
            while self._by_id(mid) is not None:  # after a wrap (below)
                mid += 1
            # Custom ids stay below the hard-wired ones.
            self.next_id = mid + 1 if mid + 1 < FIRST_ID else 1
            old = [mid, key, kind, value, sev, tx, None]
            self.monitors.append(old)
        else:
            old[_KEY:] = [key, kind, value, sev, tx, None]  # the same id, replaced
        if kind >= _DELTA:
            self.look(self.clock.now(), (old,))  # from now: a Delta's reference, the period
        return "Accepted", None, mid

    def _hard_wired(self, mid):
        hit = fixed.find(mid, len(self.evses))
        return hit is not None and not hit[2]

    def _by_id(self, mid):
        for m in self.monitors:
            if m[_ID] == mid:
                return m
        return None

    # -- ClearVariableMonitoring (N06) --------------------------------------------------------

    def on_clear(self, req):
        ids = req["id"]
        self._limits(ids, _CLEAR_ITEMS, _CLEAR_BYTES)
        results = []
        for mid in ids:
            m = self._by_id(mid)
            if self._hard_wired(mid):
                results.append({"status": "Rejected", "id": mid})
            elif m is None and fixed.find(mid, len(self.evses)) and fixed.active(self.dm, mid):
                fixed.off += (mid,)  # a pre-configured one: back with SetMonitoringBase
                results.append({"status": "Accepted", "id": mid})
            elif m is None:
                results.append({"status": "NotFound", "id": mid})
            else:
                self.monitors.remove(m)
                results.append({"status": "Accepted", "id": mid})
        if any(r["status"] == "Accepted" for r in results):
            self._save()
        return {"clearMonitoringResult": results}

    # -- SetMonitoringLevel, SetMonitoringBase (N03, N05) -------------------------------------

    def on_level(self, req):
        sev = req["severity"]
        if not 0 <= sev <= 9:
            return ocppj.answer("Rejected", "InvalidSeverity")
        self.dm.set(_LEVEL, str(sev))
        self._save()
        return {"status": "Accepted"}

    def on_base(self, req):
        base = req["monitoringBase"]
        # All keeps the custom monitors (those that replaced a pre-configured one too) and
        # brings back every pre-configured one whose id is free; FactoryDefault removes the
        # custom ones and brings back the pre-configured ones; HardWiredOnly removes both
        # (N03). The hard-wired ones (monitors.py) always stay.
        if base != "All":
            self.monitors = []
        fixed.off = tuple(m[_ID] for m in self.monitors if m[_ID] >= FIRST_ID)
        self.dm.set(_BASE, base)
        self._save()
        return {"status": "Accepted"}

    # -- GetMonitoringReport (N02) ------------------------------------------------------------

    def on_report(self, req):
        if self.report is not None:
            return ocppj.answer("Rejected", "ReportInProgress")
        crit = req.get("monitoringCriteria")
        cvs = req.get("componentVariable")
        chosen = []
        # The hard-wired and active pre-configured monitors, as custom ones' lists.
        hard = [
            [i, k, _DELTA, 0, sev, False] for i, k, sev in fixed.listed(self.dm, len(self.evses))
        ]
        for m in hard + self.monitors:
            if crit and _CRITERIA[m[_TYPE]] not in crit:
                continue
            if cvs:
                parts = split_key(m[_KEY])
                if not any(matches(cv, parts) for cv in cvs):
                    continue
            chosen.append(m)
        if not chosen:
            return {"status": "EmptyResultSet"}
        chosen.sort(key=lambda m: (m[_KEY], m[_ID]))  # a variable's monitors side by side
        self._next = (req["requestId"], chosen)
        return {"status": "Accepted"}

    def _after_report(self, req, resp):
        job, self._next = self._next, None
        if resp["status"] == "Accepted" and job is not None and self.report is None:
            self.report = job[0]
            self.spawn(self._send_report(job[0], job[1]))

    def report_parts(self, rid, chosen):
        """The NotifyMonitoringReport payloads of monitors `chosen` (sorted by key), made one
        at a time: only the part on its way is in memory."""
        i = seq = 0
        n = len(chosen)
        while i < n:
            items = []
            count = size = 0
            while i < n and count < _PART_ITEMS:
                m = chosen[i]
                vm = {
                    "id": m[_ID],
                    "transaction": m[_TX],
                    "value": m[_VALUE],
                    "type": TYPES[m[_TYPE]],
                    "severity": m[_SEV],
                }
                grow = json_len(vm) + 1
                if items and items[-1][0] == m[_KEY]:
                    entry = None
                else:
                    comp, var = component_variable(m[_KEY])
                    entry = {"component": comp, "variable": var, "variableMonitoring": []}
                    grow += json_len(entry) + 1
                if count and size + grow > _PART_BYTES:
                    break
                if entry is not None:
                    items.append((m[_KEY], entry))
                items[-1][1]["variableMonitoring"].append(vm)
                count += 1
                size += grow
                i += 1
            yield {
                "requestId": rid,
                "seqNo": seq,
                "generatedAt": self.clock.iso(),
                "tbc": i < n,
                "monitor": [e for _, e in items],
            }
            seq += 1

    async def _send_report(self, rid, chosen):
        """Every part, one after the other; a part that fails ends the report (the CSMS can
        ask again)."""
        try:
            for part in self.report_parts(rid, chosen):
                await self.session.call("NotifyMonitoringReport", part)
        except (asyncio.TimeoutError, ocppj.CallError, ocppj.NotConnected) as e:
            log.warn(_TAG, "report %d stopped: %r" % (rid, e))
        finally:
            self.report = None

    # -- evaluation and NotifyEvent (N07, N08) ------------------------------------------------

    async def run(self):
        while True:
            await asyncio.sleep_ms(_EVERY_MS)
            try:
                await self.step()
            except Exception as e:  # a bad monitor must not end monitoring
                log.exc(_TAG, "step failed", e)

    def _tx_of(self, key):
        """The transaction a transaction monitor on `key` belongs to: of its EVSE, or of any
        EVSE for a station-wide variable; None when none runs."""
        evse = split_key(key)[1]
        for e in self.evses:
            if evse is None or e.id == evse:
                t = self.txs.tx_id(e)
                if t is not None:
                    return t
        return None

    def look(self, now, monitors=None):
        """eventData of what the monitors (all, or `monitors`) find at clock second `now`
        (whatever their severity: the level filters when sending). A monitor's first look
        only takes its reference (Delta) or schedules it (periodic types); a threshold one
        fires at once when the value is already beyond it."""
        if not self.dm.get_bool(_ENABLED):
            return []
        events = []
        dm = self.dm
        for m in self.monitors if monitors is None else monitors:
            kind = m[_TYPE]
            tx = None
            if m[_TX]:
                tx = self._tx_of(m[_KEY])
                if tx is None:
                    m[_STATE] = None  # starts afresh with the next transaction
                    continue
            try:
                actual = dm.get(m[_KEY])
            except KeyError:
                continue
            state = m[_STATE]
            fire = cleared = False
            if kind <= _LOWER:
                x = _number(actual)
                if x is None:
                    continue
                beyond = x > m[_VALUE] if kind == _UPPER else x < m[_VALUE]
                if beyond != bool(state):
                    fire, cleared = True, not beyond
                m[_STATE] = beyond
            elif kind == _DELTA:
                # A number keeps a float state, anything else the string: every change of
                # it is news. Which one is decided once, at the first look.
                if state is None:
                    num = dm.decl(m[_KEY])[1][0] in "di"
                else:
                    num = type(state) is float
                x = _number(actual) if num else None
                if x is None:
                    x = actual
                    fire = state is not None and x != state
                else:
                    fire = state is not None and abs(x - state) > m[_VALUE]
                if fire or state is None:
                    m[_STATE] = x  # the value at setting, then at each event
            else:
                period = int(m[_VALUE])
                if state is not None and now >= state:
                    fire = True
                if state is None or fire or state - now > period:  # or a clock step back
                    nxt = (now // period + 1) * period  # PeriodicClockAligned
                    if kind == _PERIODIC:
                        # On its schedule, a look a second late or not; after a clock step
                        # forward, from now.
                        nxt = state + period if fire and state + period > now else now + period
                    m[_STATE] = nxt
            if fire:
                events.append(self._event(m, actual, cleared, tx))
        return events

    def _event(self, m, actual, cleared, tx):
        """(severity, eventData) of an event of monitor `m`."""
        self.event_id += 1
        comp, var = component_variable(m[_KEY])
        ev = {
            "eventId": self.event_id,
            "timestamp": self.clock.iso(),
            "trigger": _TRIGGERS[m[_TYPE]],
            "actualValue": actual[:2500],
            "eventNotificationType": "CustomMonitor",
            "variableMonitoringId": m[_ID],
            "component": comp,
            "variable": var,
        }
        if cleared:
            ev["cleared"] = True
        if tx is not None:
            ev["transactionId"] = tx
        return m[_SEV], ev

    async def step(self):
        events = self.look(self.clock.now())
        if events:
            await self.send(events)

    def _parts(self, events):
        """(events used, NotifyEvent payload) of each part of `events` ((severity, eventData)
        each), seqNo from 0, tbc on all but the last."""
        i = seq = 0
        n = len(events)
        while i < n:
            part = []
            size = 0
            while i < n and len(part) < _PART_ITEMS:
                ev = events[i][1]
                k = json_len(ev) + 1
                if part and size + k > _PART_BYTES:
                    break
                part.append(ev)
                size += k
                i += 1
            msg = {"generatedAt": self.clock.iso(), "seqNo": seq, "eventData": part}
            if i < n:
                msg["tbc"] = True
            seq += 1
            yield i, msg

    async def send(self, events):
        """NotifyEvent of `events` ((severity, eventData) each), in parts. Those above
        ActiveMonitoringLevel are not sent; offline (or when a part cannot go), those at or
        below OfflineQueuingSeverity go into the durable queue, the others are dropped."""
        dm = self.dm
        level = dm.get_int(_LEVEL)
        events = [x for x in events if x[0] <= level]
        if self.connection.ready.is_set():
            done = 0
            try:
                for done_now, msg in self._parts(events):
                    await self.session.call("NotifyEvent", msg)
                    done = done_now
                return
            except ocppj.CallError as e:
                log.warn(_TAG, "NotifyEvent refused: %r" % e)  # not worth a retry
                return
            except (asyncio.TimeoutError, ocppj.NotConnected) as e:
                log.warn(_TAG, "NotifyEvent: %r" % e)
                events = events[done:]
        offline = dm.get_int(_OFFLINE)
        keep = [x for x in events if x[0] <= offline]
        if len(keep) < len(events):
            log.info(_TAG, "offline: %d events dropped" % (len(events) - len(keep)))
        for _, msg in self._parts(keep):
            if not self.queue.post("NotifyEvent", msg):
                log.error(_TAG, "queue full: NotifyEvent lost")
