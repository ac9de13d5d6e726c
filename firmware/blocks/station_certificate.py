# station_certificate: OCPP block A (A02, A03), the station's own key pair and certificate: a
# key made here, SignCertificate with its CSR (retried), CertificateSigned checked and kept as
# the TLS client certificate of security profile 3, renewal. MIT licence.
#
# Loaded on first use (firmware/main.py): the first CertificateSigned, or a trigger, each
# calling request(why): TriggerMessage SignChargingStationCertificate, a SetNetworkProfile for
# security profile 3 without a client certificate, the certificate near its end (main's
# minute tick compares the date in the store document _STORE with the clock, without loading
# this block, and calls renew()).
#
# Files in the state directory, each written whole or not at all (store.write_file):
#   station_csr.key   the key of the last request (SEC 1 PEM), until its certificate is
#                     accepted; a new request replaces it. The certificate in use stays.
#   station_cert.pem  the certificate in use: its chain as the CSMS sent it (leaf first), then
#                     its key, in one file, so that a power loss never pairs a certificate
#                     with another key. firmware/network.py hands it to the TLS context.
# Store document _STORE: {"v": 1, "renew": Unix time from which to ask for a new one}.
# The key is never logged, reported or sent; only its CSR leaves the station.

import asyncio
import sys

from micropython import const

import log
import ocppj
import store
from firmware.blocks.certificates import CSMS

_TAG = const("pki")
_KIND = const("ChargingStationCertificate")
_EVENT = const("InvalidChargingStationCertificate")
_KEY_FILE = const("station_csr.key")
_CERT_FILE = const("station_cert.pem")  # the same name in firmware/network.py
_STORE = const("station_cert")  # the same name in firmware/main.py
_VERSION = const(1)
_WAIT = const("SecurityCtrlr/CertSigningWaitMinimum")
_REPEAT = const("SecurityCtrlr/CertSigningRepeatTimes")
_IDENTITY = const("SecurityCtrlr/Identity")
_ORG = const("SecurityCtrlr/OrganizationName")
_DAY = const(86400)
# Renewal: when less than 30 days of the certificate are left, or less than a third of its
# lifetime for one valid under 90 days; a renewal that fails is tried again a day later.
_MARGIN = const(2592000)
_ACCEPTED = const("Accepted")
_REJECTED = const("Rejected")
# statusInfo.reasonCode of a rejected CertificateSigned (ours: the spec predefines none).
_NO_REQUEST = const("NoRequest")  # no key waits for a certificate
_INVALID_FORMAT = const("InvalidFormat")  # no PEM certificate that parses
_WRONG_KEY = const("WrongKey")  # the leaf's public key is not the one of our CSR
_WRONG_NAME = const("WrongName")  # the leaf's CN is not SecurityCtrlr.Identity
_NOT_VALID = const("NotValidNow")  # the leaf is expired or not valid yet
_NOT_TRUSTED = const("NotTrusted")  # does not chain to an installed CSMS root
_NOT_SUPPORTED = const("NotSupported")  # V2GCertificate: no ISO 15118 here
_WRITE_FAILED = const("WriteFailed")  # flash refused the file
# The modules a request or a check imports: dropped again after it (heap), as the
# certificates block does, unless the firmware update block may hold objects of theirs.
_CRYPTO = const(("csr", "x509", "ecdsa", "rsa", "asn1", "sha2", "steps"))

block = None  # the instance, once loaded (firmware/main.py asks it)


def _unload():
    mods = sys.modules
    if sys.implementation.name != "micropython" or "firmware.blocks.firmware_update" in mods:
        return
    for m in _CRYPTO:
        mods.pop(m, None)


class StationCertificate:
    """The station's client certificate, made here (A02; A03 renews it the same way).

    request() generates a P-256 key from the board's random source (os.urandom: the ESP32's
    RNG) and a CSR (CN = SecurityCtrlr.Identity, O = SecurityCtrlr.OrganizationName) signed
    with it, both as steps that yield to the loop, and sends SignCertificate. No accepted
    CertificateSigned within CertSigningWaitMinimum: the same CSR again, the wait doubled,
    CertSigningRepeatTimes times. A Rejected SignCertificate ends the request (TC_A_15).

    A CertificateSigned is Accepted when its leaf holds the key of the last request, its CN is
    the identity, it is valid now and the chain leads to an installed CSMS root; then it is the
    certificate of the next profile 3 connection. Else Rejected, with the security event
    InvalidChargingStationCertificate, and the certificate in use stays.
    """

    def __init__(
        self, router, session, dm, store, clock, connection, certificates, security, spawn, urandom
    ):
        global block
        self.session = session
        self.dm = dm
        self.store = store
        self.clock = clock
        self.connection = connection
        self.certificates = certificates
        self.security = security
        self.spawn = spawn
        self.urandom = urandom
        self.running = False  # a request is under way
        self._signed = asyncio.Event()  # set when a CertificateSigned was accepted
        block = self
        router.on("CertificateSigned", self.on_certificate_signed)

    def _path(self, name):
        return self.store.root + "/" + name

    # -- requests ---------------------------------------------------------------------------

    def request(self, why):
        """Ask the CSMS for a new certificate, unless a request is under way (False then)."""
        if self.running:
            log.info(_TAG, "new certificate wanted (%s): a request is under way" % why)
            return False
        log.info(_TAG, "new certificate wanted (%s)" % why)
        self.running = True
        self.spawn(self._run())
        return True

    def renew(self):
        """The certificate in use nears its end: ask for a new one, and look again in a day
        (a renewal that fails is tried daily, never in a loop)."""
        self._save(self.clock.now() + _DAY)
        self.request("the certificate ends soon")

    async def _run(self):
        try:
            text = await self._make()
            await self._send(text)
        except Exception as e:  # no key, no room, flash refused: logged, the old one stays
            log.error(_TAG, "certificate request failed: %r" % e)
        finally:
            self.running = False
            _unload()

    async def _make(self):
        """A new key, on flash before its CSR leaves (the certificate that comes back needs
        it, after a reboot too), and the CSR's PEM text."""
        import csr
        import ecdsa
        import steps

        key = await steps.run_async(ecdsa.PrivateKey.generate_steps(self.urandom))
        store.write_file(self._path(_KEY_FILE), (csr.key_pem(key),))
        dm = self.dm
        der = await steps.run_async(csr.request_steps(key, dm.get(_IDENTITY), dm.get(_ORG)))
        return csr.request_pem(der)

    async def _send(self, text):
        dm = self.dm
        wait = dm.get_int(_WAIT)
        tries = dm.get_int(_REPEAT) + 1
        payload = {"csr": text, "certificateType": _KIND}
        self._signed.clear()
        for _ in range(tries):
            await self.connection.ready.wait()
            try:
                resp = await self.session.call("SignCertificate", payload)
                if resp["status"] != _ACCEPTED:
                    log.warn(_TAG, "SignCertificate %s: no new certificate" % resp["status"])
                    return
            except (asyncio.TimeoutError, ocppj.CallError, ocppj.NotConnected) as e:
                log.warn(_TAG, "SignCertificate failed: %r" % e)
            if await self._wait(wait):
                return
            log.warn(_TAG, "no CertificateSigned within %d s" % wait)
            wait *= 2
        log.error(_TAG, "no certificate after %d SignCertificate requests: given up" % tries)

    async def _wait(self, seconds):
        """True once a CertificateSigned was accepted, False after `seconds`."""
        try:
            await asyncio.wait_for_ms(self._signed.wait(), seconds * 1000)
            return True
        except asyncio.TimeoutError:
            return False

    # -- CertificateSigned ------------------------------------------------------------------

    async def on_certificate_signed(self, req):
        if req.get("certificateType", _KIND) != _KIND:
            return ocppj.answer(_REJECTED, _NOT_SUPPORTED, "no ISO 15118 here")
        try:
            why = await self._install(req["certificateChain"])
        except OSError as e:
            log.error(_TAG, "keeping the certificate: %r" % e)
            return ocppj.answer(_REJECTED, _WRITE_FAILED)
        finally:
            if not self.running:
                _unload()
        if why is None:
            return {"status": _ACCEPTED}
        reason, info = why
        log.warn(_TAG, "certificate rejected: %s" % info)
        self.security.event(_EVENT, info)
        return ocppj.answer(_REJECTED, reason, info)

    async def _install(self, text):
        """None once the chain `text` is checked and kept, else (reasonCode, why)."""
        import csr
        import pem
        import steps
        import x509

        try:
            key = csr.load_key(store.read_file(self._path(_KEY_FILE)))
        except (OSError, ValueError):
            return _NO_REQUEST, "no certificate request pending"
        try:
            certs = x509.load_pem(text)
        except x509.CertError as e:
            return _INVALID_FORMAT, str(e)
        text = None
        leaf = certs[0]
        # Ours to check: MicroPython's ssl takes a certificate with another key without a word.
        if bytes(leaf.public_key_bits) != key.public_key().to_bytes():
            return _WRONG_KEY, "not the key of the station's request"
        identity = self.dm.get(_IDENTITY)
        cn = [v for n, v in leaf.subject if n == "CN"]
        if cn != [identity]:
            return _WRONG_NAME, "CN %s, not the identity %s" % (",".join(cn), identity)
        now = self.clock.now()
        if not leaf.valid_at(now):
            info = "valid %d to %d, now %d" % (leaf.not_before, leaf.not_after, now)
            return _NOT_VALID, info
        roots = list(self.certificates.issuers(CSMS, certs[-1]))
        try:
            await steps.run_async(x509.chain_steps(certs, roots, now))
        except x509.CertError as e:
            return _NOT_TRUSTED, str(e)

        def parts():
            for c in certs:
                yield from pem.lines(c.der)
            yield csr.key_pem(key)

        store.write_file(self._path(_CERT_FILE), parts())  # the next connection's
        store.remove_file(self._path(_KEY_FILE))
        margin = min(_MARGIN, (leaf.not_after - leaf.not_before) // 3)
        self._save(leaf.not_after - margin)
        log.info(
            _TAG,
            "certificate %s serial %x installed, valid until %d"
            % (identity, leaf.serial, leaf.not_after),
        )
        self._signed.set()
        return None

    def _save(self, renew):
        try:
            self.store.save(_STORE, {"v": _VERSION, "renew": renew})
        except OSError as e:
            log.error(_TAG, "writing the renewal date: %r" % e)
