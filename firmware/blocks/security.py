# security: OCPP block A, security events: every event is logged; the critical ones are sent
# to the CSMS with SecurityEventNotification once online. MIT licence.

import asyncio

import log
import ocppj

_TAG = "security"
_QUEUE = 10  # critical events kept while offline; the oldest goes first when full
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
    def __init__(self, station):
        self.station = station
        self.queue = []  # [(type, timestamp, techInfo or None)], oldest first
        self._wake = asyncio.Event()
        station.connection.on_accepted.append(self._booted)
        station.security = self
        station.spawn(self.run())

    def event(self, kind, tech_info=None):
        """Record a security event (never with a secret in tech_info)."""
        log.info(_TAG, "event %s%s" % (kind, " (%s)" % tech_info if tech_info else ""))
        if kind not in CRITICAL:
            return
        if len(self.queue) >= _QUEUE:
            dropped = self.queue.pop(0)
            log.warn(_TAG, "queue full: %s dropped" % dropped[0])
        self.queue.append((kind, self.station.clock.iso(), tech_info))
        self._wake.set()

    def _booted(self):
        power_up = self.station.boot_reason == "PowerUp"
        self.event("StartupOfTheDevice" if power_up else "ResetOrReboot")

    async def run(self):
        ready = self.station.connection.ready
        while True:
            await ready.wait()
            self._wake.clear()
            while self.queue:
                kind, stamp, info = self.queue[0]
                payload = {"type": kind, "timestamp": stamp}
                if info:
                    payload["techInfo"] = info[:255]
                try:
                    await self.station.session.call("SecurityEventNotification", payload)
                except ocppj.CallError as e:
                    log.warn(_TAG, "%s refused: %r" % (kind, e))  # not sent again
                except (asyncio.TimeoutError, ocppj.NotConnected):
                    await asyncio.sleep_ms(1000)
                    break  # offline: again once ready
                self.queue.pop(0)
            if not self.queue:
                await self._wake.wait()
