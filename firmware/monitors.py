# monitors: the hard-wired and pre-configured monitors (block N): a connector going Faulted or
# Unavailable, and the fault flags of each EVSE and its parts, reported by NotifyEvent.
# MIT licence.
#
# Data, not objects: the tables below stay in flash, and this module is imported only with
# the first change it reports (availability._note), so that a station that never had a fault
# pays no heap for it. The monitoring block (firmware/blocks/monitoring.py) reports these
# monitors too, refuses to clear or replace the hard-wired ones, and keeps which
# pre-configured ones are off (`off`).

from micropython import const

# One monitor of each row per EVSE n, all of type Delta (value 0: booleans and an option
# list, every change is news): (id of EVSE n's monitor minus n, component, variable,
# severity, the fault codes (evse.py) that make the variable "true"). The first row is the
# connector's AvailabilityState (reports entering and leaving Faulted and Unavailable, with
# the faults as techCode); the others are booleans, "true" while one of their codes is set
# (techCode: those codes), back to "false" with `cleared`.
# Severities: 0 Danger (a residual current), 1 Hardware Failure, 2 System Failure: all at
# or below the default OfflineQueuingSeverity (3), so they are queued while offline.
HARD_WIRED = const(
    (
        (90000, "Connector", "AvailabilityState", 2, ()),
        (90100, "EVSE", "Problem", 2, None),  # None: any fault code
        (90200, "RCD", "Tripped", 0, ("rcd_trip",)),
        (90300, "PowerContactor", "Problem", 1, ("contactor_fault", "contactor_welded")),
        (90400, "FiscalMetering", "Problem", 1, ("meter_timeout",)),
    )
)
# The factory set (SetMonitoringBase All and FactoryDefault), as HARD_WIRED: the pilot's
# faults (a shorted pilot, an EV without its diode), which come from EVs and cables more
# than from the station: the EVSE's hard-wired Problem reports them already, so an operator
# who finds them noisy may clear or replace this one without losing news.
PRECONFIGURED = const(((95000, "CPPWMController", "Problem", 4, ("cp_short", "diode_fault")),))
FIRST_ID = const(90001)  # ids from here on are hard-wired or pre-configured: custom ones below
_ALERTS = const(("Faulted", "Unavailable"))  # the states the connector's monitor reports
_LEVEL = const("MonitoringCtrlr/ActiveMonitoringLevel")
_OFFLINE = const("MonitoringCtrlr/OfflineQueuingSeverity")
_ENABLED = const("MonitoringCtrlr/Enabled")
_BASE = const("MonitoringCtrlr/ActiveMonitoringBase")

_next = 0  # the last eventId given; 0: none yet (see _event_id)
_seen = {}  # EVSE id -> its fault codes at the last look (none before the first)
off = ()  # ids of the pre-configured monitors cleared or replaced (set by the monitoring block)


def key(row, n):
    if row[1] == "Connector":
        return "Connector.%d.1/%s" % (n, row[2])
    return "%s.%d/%s" % (row[1], n, row[2])


def find(mid, n_evses):
    """(row, EVSE id, pre-configured) of monitor id `mid`, None when it is neither a
    hard-wired nor a pre-configured one."""
    n = mid % 100
    if not 1 <= n <= n_evses:
        return None
    for table, pre in ((HARD_WIRED, False), (PRECONFIGURED, True)):
        for row in table:
            if row[0] + n == mid:
                return row, n, pre
    return None


def active(dm, mid):
    """Pre-configured monitor `mid` is on: not cleared or replaced, and the base not
    HardWiredOnly."""
    return mid not in off and dm.get(_BASE) != "HardWiredOnly"


def listed(dm, n_evses):
    """[id, key, severity] of every hard-wired and active pre-configured monitor (for
    reports), EVSE by EVSE."""
    out = []
    for n in range(1, n_evses + 1):
        for row in HARD_WIRED:
            out.append([row[0] + n, key(row, n), row[3]])
        for row in PRECONFIGURED:
            if active(dm, row[0] + n):
                out.append([row[0] + n, key(row, n), row[3]])
    return out


def _on(row, faults):
    """The fault codes of `faults` that make row's variable true (sorted)."""
    codes = row[4]
    return sorted(c for c in faults if codes is None or c in codes)


def live(evses, key):
    """The value of a fault flag variable (EVSE.1/Problem, RCD.1/Tripped, ...), None when
    `key` is none."""
    head, _, var = key.partition("/")
    comp, _, n = head.partition(".")
    if not n.isdigit() or not 1 <= int(n) <= len(evses):
        return None
    for row in HARD_WIRED[1:] + PRECONFIGURED:
        if row[1] == comp and row[2] == var:
            return "true" if _on(row, evses[int(n) - 1].faults) else "false"
    return None


def _event_id(now):
    """eventIds apart from the monitoring block's (boot * 100000 + n): from the clock, tens
    of seconds apart per event, so that they stay unique across reboots."""
    global _next
    if _next == 0:
        _next = 1000000000 + (now % 100000000) * 10
    _next += 1
    return _next


def _event(row, n, pre, now, when, actual, tech, cleared):
    ev = {
        "eventId": _event_id(now),
        "timestamp": when,
        "trigger": "Delta",
        "actualValue": actual,
        "eventNotificationType": "PreconfiguredMonitor" if pre else "HardWiredMonitor",
        "variableMonitoringId": row[0] + n,
        "component": {"name": row[1], "evse": {"id": n}},
        "variable": {"name": row[2]},
    }
    if row[1] == "Connector":
        ev["component"]["evse"]["connectorId"] = 1
    if tech:
        ev["techCode"] = ",".join(tech)[:50]
    if cleared:
        ev["cleared"] = True
    return ev


def changed(dm, queue, ready, clock, e, old, new, when):
    """EVSE `e` was looked at: its connector went from status `old` (None: the first look)
    to `new` at `when` (RFC 3339; None: the status did not change, now), or its faults may
    have changed. Post the NotifyEvent of what the monitors find to the durable queue (in
    order after the StatusNotification of the change), one eventData a monitor, leaving out
    those that the monitoring level filters, and offline (`ready` not set) those with a
    severity above OfflineQueuingSeverity."""
    faults = sorted(e.faults)
    was = _seen.get(e.id, ())
    if faults == was and (old == new or old is None):
        return
    _seen[e.id] = faults
    if dm.get(_ENABLED) != "true":
        return
    now = clock.now()
    if when is None:
        when = clock.iso()
    level = int(dm.get(_LEVEL))
    if not ready.is_set():
        level = min(level, int(dm.get(_OFFLINE)))
    n = e.id
    out = []
    row = HARD_WIRED[0]
    if old is not None and old != new and (old in _ALERTS or new in _ALERTS):
        if row[3] <= level:
            tech = faults if new == "Faulted" else ()
            out.append(_event(row, n, False, now, when, new, tech, new not in _ALERTS))
    for table, pre in ((HARD_WIRED[1:], False), (PRECONFIGURED, True)):
        for row in table:
            before, after = _on(row, was), _on(row, faults)
            if bool(before) == bool(after) or row[3] > level:
                continue
            if pre and not active(dm, row[0] + n):
                continue
            tech = after or before
            out.append(_event(row, n, pre, now, when, "true" if after else "false", tech,
                              not after))  # fmt: skip
    if out:
        queue.post("NotifyEvent", {"generatedAt": when, "seqNo": 0, "eventData": out})
