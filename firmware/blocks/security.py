# security: OCPP block A, security events: every event is logged; the critical ones go to the
# CSMS with SecurityEventNotification through the durable queue. MIT licence.

import log

_TAG = "security"
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


class Security:
    """Security events: all logged; the critical ones posted to the station's durable queue,
    so they survive a power loss and reach the CSMS in order once it is online."""

    def __init__(self, station):
        self.station = station
        station.connection.on_accepted.append(self._booted)
        station.security = self

    def event(self, kind, tech_info=None):
        """Record a security event (never with a secret in tech_info)."""
        log.info(_TAG, "event %s%s" % (kind, " (%s)" % tech_info if tech_info else ""))
        if kind not in CRITICAL:
            return
        payload = {"type": kind, "timestamp": self.station.clock.iso()}
        if tech_info:
            payload["techInfo"] = tech_info[:255]
        if not self.station.queue.post("SecurityEventNotification", payload):
            log.error(_TAG, "queue full: %s not kept" % kind)

    def _booted(self):
        power_up = self.station.boot_reason == "PowerUp"
        self.event("StartupOfTheDevice" if power_up else "ResetOrReboot")
