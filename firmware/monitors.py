# monitors: the hard-wired monitors (block N): a connector going Faulted or Unavailable, and
# back, reported by NotifyEvent as well as by StatusNotification. MIT licence.
#
# Data, not objects: the table below stays in flash, and this module is imported only with
# the first change it reports (availability._note), so that a station that never had a fault
# pays no heap for it. The monitoring block (firmware/blocks/monitoring.py) reports these
# monitors too and refuses to clear or replace them.

from micropython import const

# One hard-wired monitor per connector: (id of connector n's monitor minus n, component,
# variable, type, value, severity). Severity 2 (System Failure): at or below the default
# OfflineQueuingSeverity (3), so it is queued while offline.
HARD_WIRED = const((90000, "Connector", "AvailabilityState", "Delta", 0, 2))
FIRST_ID = const(90001)  # ids from here on are hard-wired: custom ones stay below
_ALERTS = const(("Faulted", "Unavailable"))  # the states it reports, entering and leaving
_LEVEL = const("MonitoringCtrlr/ActiveMonitoringLevel")
_OFFLINE = const("MonitoringCtrlr/OfflineQueuingSeverity")
_ENABLED = const("MonitoringCtrlr/Enabled")

_next = 0  # the last eventId given; 0: none yet (see _event_id)


def monitor(n):
    """The VariableMonitoringType of connector n's hard-wired monitor (for reports)."""
    h = HARD_WIRED
    return {"id": h[0] + n, "transaction": False, "value": h[4], "type": h[3], "severity": h[5]}


def _event_id(now):
    """eventIds apart from the monitoring block's (boot * 100000 + n): from the clock, tens
    of seconds apart per event, so that they stay unique across reboots."""
    global _next
    if _next == 0:
        _next = 1000000000 + (now % 100000000) * 10
    _next += 1
    return _next


def changed(dm, queue, ready, e, old, new, when, now):
    """Connector 1 of EVSE `e` went from status `old` to `new` at `when` (RFC 3339): post
    its NotifyEvent to the durable queue (in order after the StatusNotification of the
    change), unless the monitoring level filters it, or it happens offline (`ready` not
    set) with a severity above OfflineQueuingSeverity."""
    h = HARD_WIRED
    sev = h[5]
    if dm.get(_ENABLED) != "true" or sev > int(dm.get(_LEVEL)):
        return
    if not ready.is_set() and sev > int(dm.get(_OFFLINE)):
        return
    ev = {
        "eventId": _event_id(now),
        "timestamp": when,
        "trigger": "Delta",
        "actualValue": new,
        "eventNotificationType": "HardWiredMonitor",
        "variableMonitoringId": h[0] + e.id,
        "component": {"name": h[1], "evse": {"id": e.id, "connectorId": 1}},
        "variable": {"name": h[2]},
    }
    if new == "Faulted" and e.faults:
        ev["techCode"] = ",".join(sorted(e.faults))[:50]
    if old in _ALERTS and new not in _ALERTS:
        ev["cleared"] = True
    queue.post("NotifyEvent", {"generatedAt": when, "seqNo": 0, "eventData": [ev]})
