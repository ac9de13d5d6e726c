# security: OCPP block A, security events: every event is logged, and kept in the security log
# on flash; the critical ones go to the CSMS with SecurityEventNotification through the durable
# queue. MIT licence.

from micropython import const

import log

_TAG = const("security")
# Events the spec calls critical (pushed to the CSMS); the others are only logged.
CRITICAL = (
    "FirmwareUpdated",
    "SettingSystemTime",
    "StartupOfTheDevice",
    "ResetOrReboot",
    "SecurityLogWasCleared",
    "MemoryExhaustion",
    "TamperDetectionActivated",
    "InvalidFirmwareSignature",
    "InvalidFirmwareSigningCertificate",
    "InvalidCsmsCertificate",
    "InvalidChargingStationCertificate",
    "InvalidTLSVersion",
    "InvalidTLSCipherSuite",
)


# Security settings whose change is the log-only event ReconfigurationOfSecurityParameters.
_RECONFIGURED = (
    "SecurityCtrlr/BasicAuthPassword",
    "SecurityCtrlr/OrganizationName",
    "SecurityCtrlr/SecurityProfile",
)


class Security:
    """Security events: all logged, and written to `journal` (the security log, a
    lib/logfile.LogFiles, flushed at once: the events are rare and precious; None: none); the
    critical ones posted to the station's durable queue, so they survive a power loss and reach
    the CSMS in order once it is online."""

    def __init__(self, dm, clock, queue, connection, boot_reason, journal=None):
        self.dm = dm
        self.journal = journal
        self.clock = clock
        self.queue = queue
        self.boot_reason = boot_reason
        connection.on_accepted.append(self._booted)
        clock.on_step.append(self._clock_stepped)
        for key in _RECONFIGURED:
            try:
                dm.watch(key, lambda value, key=key: self._reconfigured(key))
            except KeyError:
                pass  # not declared on this station

    def event(self, kind, tech_info=None):
        """Record a security event (never with a secret in tech_info)."""
        text = "event %s%s" % (kind, " (%s)" % tech_info if tech_info else "")
        log.info(_TAG, text)
        j = self.journal
        if j is not None:
            j.write(log.line(1, _TAG, text))
            j.flush()
        if kind not in CRITICAL:
            return
        payload = {"type": kind, "timestamp": self.clock.iso()}
        if tech_info:
            payload["techInfo"] = tech_info[:255]
        if not self.queue.post("SecurityEventNotification", payload):
            log.error(_TAG, "queue full: %s not kept" % kind)

    def _clock_stepped(self, step_s, old):
        """SettingSystemTime when the clock moved by more than
        ClockCtrlr.TimeAdjustmentReportingThreshold seconds (the first time from the CSMS
        after a boot without a real-time clock counts too)."""
        limit = self.dm.setting("ClockCtrlr/TimeAdjustmentReportingThreshold", 0)
        if abs(step_s) > limit:
            self.event("SettingSystemTime", "moved %+d s" % step_s)

    def _reconfigured(self, key):
        # The name of what changed, never its value (A01: the password is a secret).
        self.event("ReconfigurationOfSecurityParameters", key + " changed")

    def _booted(self):
        power_up = self.boot_reason == "PowerUp"
        self.event("StartupOfTheDevice" if power_up else "ResetOrReboot")
