# network: the network connection profiles (B09, B10): slot 1 from the board settings, the
# slots the CSMS wrote, the order to try them in, and a security profile that never goes down.
# MIT licence.

from micropython import const

import log

_TAG = const("network")
# Store document: {"v": 1, "slots": {"<slot>": connectionData as the CSMS sent it},
# "level": the highest security profile the station has connected with (0: none yet)}.
_STORE = const("network")
_VERSION = const(1)
_FACTORY_SLOT = const(1)  # the slot the board settings fill, until the CSMS writes it

PRIORITY = "OCPPCommCtrlr/NetworkConfigurationPriority"
ACTIVE = "OCPPCommCtrlr/ActiveNetworkProfile"
ATTEMPTS = "OCPPCommCtrlr/NetworkProfileConnectionAttempts"
_SECURITY_PROFILE = const("SecurityCtrlr/SecurityProfile")
_TIMEOUT = const("OCPPCommCtrlr/MessageTimeout:Default")
# The station's own certificate and key (firmware/blocks/station_certificate.py), in the state
# directory.
_OWN_CERT = const("/station_cert.pem")


def parse_slots(text):
    """Slot numbers of a comma-separated list ("2,1" -> [2, 1]); junk and repeats dropped."""
    out = []
    for item in (text or "").split(","):
        item = item.strip()
        if item.isdigit() and int(item) not in out:
            out.append(int(item))
    return out


def allowed_slots(dm):
    """The slots a CSMS may write: the valuesList of NetworkConfigurationPriority."""
    lim = dm.decl(PRIORITY)[3]
    return parse_slots(lim[3] if lim else None) or [_FACTORY_SLOT]


class NetworkProfiles:
    """The connection profiles by slot, and which of them the connection may use.

    NetworkConfigurationPriority is read once, here: a change takes effect after a reboot, as
    its RebootRequired flag says. `active` is the slot of this boot's current (or last)
    connection, None before the first one.
    """

    def __init__(self, store, dm, settings):
        self.store = store
        self.dm = dm
        self.settings = settings
        self.active = None
        self.priority = parse_slots(dm.get(PRIORITY))
        self.slots, self.level = self._load()
        self._skipped = set()  # slots whose skip was logged already
        if self.level > self.security_profile():
            dm.set(_SECURITY_PROFILE, str(self.level))  # RO, so not kept by the device model
        try:
            self._active_default = dm.get(ACTIVE)
            dm.provide(ACTIVE, self._active_value)
        except KeyError:
            pass  # not declared in this device model

    def _load(self):
        doc = self.store.load(_STORE)
        if doc is None:
            return {}, 0
        try:
            if doc["v"] != _VERSION:
                raise ValueError("version %r" % doc["v"])
            slots = {}
            for key, p in doc["slots"].items():
                slots[int(key)] = p
            return slots, int(doc["level"])
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            log.error(_TAG, "stored profiles unusable, ignored: %r" % e)
            return {}, 0

    def _save(self):
        slots = {}
        for slot, p in self.slots.items():
            slots[str(slot)] = p
        self.store.save(_STORE, {"v": _VERSION, "slots": slots, "level": self.level})

    def _active_value(self):
        return str(self.active) if self.active is not None else self._active_default

    def security_profile(self):
        """The security profile in use (SecurityCtrlr.SecurityProfile)."""
        return self.dm.get_int(_SECURITY_PROFILE)

    def profile(self, slot):
        """The NetworkConnectionProfile of `slot` (a dict keyed as on the wire), or None."""
        p = self.slots.get(slot)
        if p is None and slot == _FACTORY_SLOT:
            p = self._factory()
        return p

    def _factory(self):
        url = self.settings.get("csms_url")
        if not url:
            return None
        return {
            "ocppVersion": "OCPP20",
            "ocppTransport": "JSON",
            "ocppCsmsUrl": url,
            "messageTimeout": self.dm.get_int(_TIMEOUT),
            "securityProfile": int(self.settings.get("security_profile", 1)),
            "ocppInterface": "Wired0",
        }

    def client_certificate(self):
        """(certificate file, key file) of the TLS client certificate of security profile 3:
        the station's own (A02/A03: one file, the chain, then the key) before the board
        settings client_cert_file and client_key_file; None while there is none."""
        from store import file_size

        own = self.store.root + _OWN_CERT
        if file_size(own) > 0:
            return own, own
        cert = self.settings.get("client_cert_file")
        key = self.settings.get("client_key_file")
        if cert and key and file_size(cert) >= 0 and file_size(key) >= 0:
            return cert, key
        return None

    def put(self, slot, data):
        """Keep the profile the CSMS wrote for `slot` (customData dropped), atomically."""
        p = {}
        for k, v in data.items():
            if k != "customData":
                p[k] = v
        self.slots[slot] = p
        self._skipped.discard(slot)
        self._save()

    def order(self):
        """The slots to try, in NetworkConfigurationPriority order: empty ones and those below
        the security profile in use (it is never lowered) left out."""
        current = self.security_profile()
        out = []
        for slot in self.priority:
            p = self.profile(slot)
            if p is None:
                continue
            if p["securityProfile"] == 3 and self.client_certificate() is None:
                if slot not in self._skipped:
                    self._skipped.add(slot)
                    log.warn(
                        _TAG,
                        "slot %d skipped: security profile 3 without a client "
                        "certificate (the CSMS signs one: TriggerMessage "
                        "SignChargingStationCertificate)" % slot,
                    )
                continue
            if p["securityProfile"] < current:
                if slot not in self._skipped:
                    self._skipped.add(slot)
                    log.warn(
                        _TAG,
                        "slot %d skipped: security profile %d is below the current %d"
                        % (slot, p["securityProfile"], current),
                    )
                continue
            out.append(slot)
        return out

    def connected(self, slot):
        """A connection with `slot`'s profile is open: it is the active slot, and its
        security profile is the one in use from now on."""
        self.active = slot
        sp = self.profile(slot)["securityProfile"]
        if sp > self.security_profile():
            log.info(_TAG, "security profile raised to %d" % sp)
            self.dm.set(_SECURITY_PROFILE, str(sp))
        if sp > self.level:
            self.level = sp
            self._save()


class Rotation:
    """Which slot the next connection attempt uses (B10): the first slot of the order,
    NetworkProfileConnectionAttempts failed attempts in a row on it, then the next slot,
    wrapping around after the last. A successful connection starts the count again.
    """

    def __init__(self, profiles):
        self.profiles = profiles
        self.slot = None  # the slot being tried; None when no slot is usable
        self.failures = 0  # failed attempts in a row on self.slot

    def next(self):
        """The slot for the next attempt, or None when no profile is usable."""
        order = self.profiles.order()
        if self.slot not in order:
            self.slot = order[0] if order else None
            self.failures = 0
        return self.slot

    def failed(self):
        """The attempt on the current slot failed."""
        if self.slot is None:
            return
        self.failures += 1
        if self.failures < self.profiles.dm.get_int(ATTEMPTS):
            return
        order = self.profiles.order()
        if self.slot in order:
            following = order[(order.index(self.slot) + 1) % len(order)]
        else:
            following = order[0] if order else None
        if following != self.slot:
            log.warn(
                _TAG,
                "slot %d failed %d times: trying slot %s" % (self.slot, self.failures, following),
            )
        self.slot = following
        self.failures = 0

    def succeeded(self):
        """The attempt on the current slot connected."""
        self.failures = 0
        self.profiles.connected(self.slot)
