# network_profile: OCPP block B09: SetNetworkProfile, checked and kept as a network connection
# profile for the connection to try (firmware/network.py; B10 migration and fallback there).
# MIT licence.

import log
import ws
from firmware import network
from firmware.blocks.certificates import CSMS as CSMS_ROOT

ACCEPTED = "Accepted"
REJECTED = "Rejected"
# statusInfo.reasonCode of a rejection. The first three are the spec's own (B09.FR.02/04/05,
# errata 2025-09); the other two are ours.
INVALID_SLOT = "InvalidConfSlot"  # configurationSlot not in the priority's valuesList
INVALID_CONF = "InvalidNetworkConf"  # not OCPP20/JSON, bad URL for the profile, VPN, timeout
NO_DOWNGRADE = "NoSecurityDowngrade"  # securityProfile below the one in use
ACTIVE_SLOT = "ActiveConfSlot"  # the slot of the connection in use
NO_CERTIFICATE = "MissingCertificate"  # profile 2/3 without CSMS root, 3 without client cert


class NetworkProfile:
    def __init__(self, router, dm, connection, certificates, security, settings, certify=None):
        """settings: the board's (the client certificate and key files). certify(why): ask
        for a certificate of the station's own key (the station certificate block), None: no
        such block."""
        self.dm = dm
        self.certify = certify
        self.connection = connection
        self.certificates = certificates
        self.security = security
        self.settings = settings
        router.on("SetNetworkProfile", self.on_set_network_profile)

    def on_set_network_profile(self, req):
        profiles = self.connection.profiles  # made when the connection started
        slot = req["configurationSlot"]
        data = req["connectionData"]
        why = self._check(profiles, slot, data)
        if why:
            log.info("network", "SetNetworkProfile slot %d rejected: %s" % (slot, why))
            return {"status": REJECTED, "statusInfo": {"reasonCode": why}}
        profiles.put(slot, data)
        info = "slot %d, security profile %d" % (slot, data["securityProfile"])
        self.security.event("ReconfigurationOfSecurityParameters", info)  # log-only
        return {"status": ACCEPTED}

    def _check(self, profiles, slot, data):
        """None when the profile may be stored in `slot`, else the reasonCode refusing it."""
        if slot not in network.allowed_slots(self.dm):
            return INVALID_SLOT
        if slot == profiles.active:
            return ACTIVE_SLOT
        sp = data["securityProfile"]
        if sp < profiles.security_profile():
            return NO_DOWNGRADE
        if sp not in (1, 2, 3):
            return INVALID_CONF
        if sp >= 2 and not self.certificates.roots(CSMS_ROOT):
            return NO_CERTIFICATE  # an installed CSMS root, the one TLS will trust
        if data["ocppVersion"] != "OCPP20" or data["ocppTransport"] != "JSON":
            return INVALID_CONF
        if "vpn" in data or data["messageTimeout"] < 1:
            return INVALID_CONF  # no VPN client here; a timeout must be a time
        try:
            tls = ws.parse_url(data["ocppCsmsUrl"])[0]
        except ValueError:
            return INVALID_CONF
        if tls != (sp >= 2):
            return INVALID_CONF  # profile 1 is ws://, profiles 2 and 3 are wss:// (§1.2)
        if sp == 3 and profiles.client_certificate() is None:
            # The station makes its own (A02): asked for now, on the current link; the CSMS
            # sends this profile again once it has signed it. Last: only for a profile that
            # is fine otherwise.
            if self.certify is not None:
                self.certify("security profile 3 without a client certificate")
            return NO_CERTIFICATE
        return None
