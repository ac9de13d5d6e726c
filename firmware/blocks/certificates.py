# certificates: OCPP block A (use cases M03-M05), the CSMS and manufacturer root certificates:
# InstallCertificate, GetInstalledCertificateIds, DeleteCertificate, kept on flash. MIT licence.
#
# For other blocks (firmware/main.py hands them this block):
#   roots(kind)         [x509.Cert] installed of kind CSMS or MANUFACTURER, in install order,
#                       read from flash at each call
#   installed(kind)     how many roots of kind are installed
#   issuers(kind, cert) the installed roots of kind whose subject is cert's issuer, parsed one
#                       at a time (a generator): the index's issuerNameHash picks them
#   csms_ca_path()      a PEM file with every installed CSMS root (for the TLS context),
#                       rewritten atomically on every change; None while there is none
#   hash_data(cert)     its certificateHashData (SHA256)
#
# x509 (with asn1, rsa, ecdsa, pem), sha2 and steps are imported inside the functions that parse or
# hash a certificate, never at module level: the boot reads the index (see Certificates) and
# parses nothing, so none of them takes heap on a station that is only running. MicroPython
# keeps a module once imported: _unload() drops them again after each use (they are some 5 KB of
# heap), so the next use imports them anew.

import binascii
import gc
import hashlib
import os
import sys

from micropython import const

import log
import ocppj
import store

_CSMS = const("CSMSRootCertificate")
_MFR = const("ManufacturerRootCertificate")
CSMS = _CSMS  # for other blocks
MANUFACTURER = _MFR
# The kinds kept here: (certificateType, file name prefix, board setting naming the factory
# file installed at the first boot of a state directory).
_KINDS = const(
    (
        (_CSMS, "csms", "csms_ca_file"),
        (_MFR, "mfr", "manufacturer_root_file"),
    )
)

_TAG = const("certs")
_DIR = const("certs")  # in the state directory: one "<prefix>-<seq>.pem" per certificate
_CA_FILE = const("csms_ca.pem")  # in the state directory: all CSMS roots, for the TLS context
_OWN_CERT = const("/station_cert.pem")  # the station's own (firmware/blocks/station_certificate)
_TMP = const(".tmp")
# Store document: {"v": 1, "factory": [certificateTypes whose factory file was installed],
#  "seq": highest file number used, "certs": [[certificateType, seq, issuerNameHash,
#  issuerKeyHash, serialNumber], ...] (the entries, see Certificates) in install order,
#  "skip": [file names that do not read as a root]}: the index the boot reads instead of the
#  PEM files.
# "seq", "certs" and "skip" are new in the same version: a document without them (the firmware
# before the index) only has no index, and older firmware reading this one ignores them.
_STORE = const("certificates")
_VERSION = const(1)
_ENTRIES = const("SecurityCtrlr/CertificateEntries")
_PROFILE = const("SecurityCtrlr/SecurityProfile")
# RFC 5280 §4.1.2.2: at most 20 octets (and 40 hex digits on the wire)
_MAX_SERIAL_BITS = const(160)

_ACCEPTED = const("Accepted")
_REJECTED = const("Rejected")
_FAILED = const("Failed")
_NOT_FOUND = const("NotFound")
# statusInfo.reasonCode of the answers. Ours: the spec predefines none for these messages.
_INVALID_FORMAT = const("InvalidFormat")  # not exactly one PEM certificate that parses
_NOT_SUPPORTED = const("NotSupported")  # V2G and MO roots: no ISO 15118 here
_NOT_CA = const("NotCA")  # not a CA (x509.Cert.is_ca), or key usage without keyCertSign
_NOT_SELF_SIGNED = const("NotSelfSigned")  # issuer is not the subject: not a root
_UNSUPPORTED_KEY = const(
    "UnsupportedKey"
)  # key x509.py cannot use (RSA < 2048 bits, other curves)
_INVALID_CERT = const("InvalidCertificate")  # serial out of range, unknown critical extension
_EXPIRED = const("Expired")  # notAfter before the station's clock
_NOT_YET_VALID = const("NotYetValid")  # notBefore after the station's clock
_INVALID_SIGNATURE = const("InvalidSignature")  # the self-signature does not verify
_STORAGE_FULL = const("StorageFull")  # CertificateEntries at its maxLimit
_WRITE_FAILED = const("WriteFailed")  # flash refused the file
_LAST_CSMS_ROOT = const("LastCsmsRoot")  # the only CSMS root while SecurityProfile >= 2 (AQ-1)
_OWN_CERTIFICATE = const("OwnCertificate")  # the station's client certificate (M04.FR.06)


_CHECK_ROOM = const(4096)  # bytes kept free for an InstallCertificate's parse and check
_CRYPTO = const(("x509", "ecdsa", "rsa", "asn1", "sha2", "steps"))


def _unload():
    """Forget the crypto modules a certificate operation imported: RAM for the rare next one.
    Not while the firmware update block is loaded: it may hold objects of theirs (two copies of
    a module at once would not know each other's exceptions); not on CPython (tests hold them).
    """
    mods = sys.modules
    if sys.implementation.name != "micropython" or "firmware.blocks.firmware_update" in mods:
        return
    for m in _CRYPTO:
        mods.pop(m, None)


def _hex(b):
    return binascii.hexlify(b).decode()


def _digest(alg, data):
    import sha2

    return _hex(sha2.new(alg.lower(), data).digest())  # hashAlgorithm: SHA256, SHA384, SHA512


def _hash_data(cert, issuer_key_bits, alg="SHA256"):
    """certificateHashData (§2.9, as OCSP's CertID): hashes of cert's DER issuer Name and of
    the issuer's public key BIT STRING contents, the serial in lower-case hex, no leading
    zeros."""
    return {
        "hashAlgorithm": alg,
        "issuerNameHash": _digest(alg, cert.issuer_der),
        "issuerKeyHash": _digest(alg, issuer_key_bits),
        "serialNumber": "%x" % cert.serial,
    }


def _entry(kind, seq, cert):
    """The RAM entry of a root: (certificateType, seq, issuerNameHash, issuerKeyHash,
    serialNumber), its SHA256 certificateHashData in three strings (a dict per entry would
    take about 100 B more of the heap)."""
    hd = _hash_data(cert, cert.public_key_bits)
    return (kind, seq, hd["issuerNameHash"], hd["issuerKeyHash"], hd["serialNumber"])


def _hd(e):
    """The certificateHashData (SHA256) of an entry."""
    return {
        "hashAlgorithm": "SHA256",
        "issuerNameHash": e[2],
        "issuerKeyHash": e[3],
        "serialNumber": e[4],
    }


def _same(a, b):
    """Two certificateHashData name the same certificate: compared case-insensitively
    (M04.FR.07), the serial also regardless of leading zeros."""
    return (
        a["issuerNameHash"].lower() == b["issuerNameHash"].lower()
        and a["issuerKeyHash"].lower() == b["issuerKeyHash"].lower()
        and a["serialNumber"].lower().lstrip("0") == b["serialNumber"].lower().lstrip("0")
    )


def _problem(cert, now):
    """None when cert can be a trusted root at Unix time `now` (None: any time), else
    (reasonCode, why). The self-signature is checked apart: it takes long on a board."""
    import asn1
    import x509

    if cert.serial < 0 or asn1.bit_length(cert.serial) > _MAX_SERIAL_BITS:
        return _INVALID_CERT, "serial number out of range"
    if not cert.is_ca(True):  # a root: a self-signed v1 certificate counts as a CA
        return _NOT_CA, "basicConstraints cA is not true"
    if cert.key_usage is not None and not cert.key_usage & x509.KU_KEY_CERT_SIGN:
        return _NOT_CA, "key usage excludes certificate signing"
    if cert.issuer_der != cert.subject_der:
        return _NOT_SELF_SIGNED, "issuer differs from subject"
    if cert.public_key is None:
        return _UNSUPPORTED_KEY, "public key %s not supported" % cert.key_alg
    if cert.unknown_critical:
        return _INVALID_CERT, "unknown critical extension %s" % cert.unknown_critical[0]
    if now is not None and now < cert.not_before:
        return _NOT_YET_VALID, "valid from %d, now %d" % (cert.not_before, now)
    if now is not None and now > cert.not_after:
        return _EXPIRED, "valid until %d, now %d" % (cert.not_after, now)
    return None


def _one(pem):
    """The one certificate of a PEM text; CertError when there is none or more."""
    import x509

    certs = x509.load_pem(pem)
    if len(certs) != 1:
        raise x509.CertError("PEM: %d certificates, one expected" % len(certs))
    return certs[0]


def _name(cert):
    return ",".join("%s=%s" % a for a in cert.subject)


class Certificates:
    """The root certificates the station trusts: CSMS roots for the TLS connection,
    manufacturer roots for signed firmware.

    Each is a file `certs/<prefix>-<seq>.pem` in the state directory, written atomically;
    `seq` grows with every install, so the files sort in install order. RAM holds one entry per
    certificate (_entry: its type, seq and SHA256 certificateHashData); the certificates
    themselves are read from flash when asked for. A file that does not read as a
    root is logged and ignored, never trusted.

    The boot parses no certificate: it reads the entries from the index in the store document
    (_STORE), written after every change, and checks that it names exactly the files of the
    folder. Every change writes the files first and the index last (install: the PEM file, the
    CA file, the index; delete: the CA file, the removals, the index), each file whole or not at
    all; a power loss in between leaves a file the index does not name, or names one that is
    gone, and the next boot rebuilds the index by parsing the files (_scan), as it does when
    there is no index (the firmware before it). The index never names a file not yet written.

    Only self-signed CA certificates are installed (an intermediate CA's issuerKeyHash would
    need a key the station does not have); a self-signed version 1 certificate, which has no
    extensions, counts as a CA here, as OpenSSL-based stations count it. V2G and MO roots are
    Rejected: no ISO 15118 here.

    Factory roots: at boot, the PEM files named by the board settings csms_ca_file and
    manufacturer_root_file are installed for their kind until one install of that kind
    succeeds, once per state directory: roots the CSMS deleted later stay deleted. Once a root
    of the kind is installed, by the CSMS too, the factory file is not read again. Their
    validity times are not checked then (a board without RTC does not know the date before it
    talks to the CSMS; the TLS handshake and verify_chain check them in use).
    """

    def __init__(self, router, dm, store, clock, settings):
        """settings: the board's (factory files, the client certificate)."""
        self.dm = dm
        self.store = store
        self.clock = clock
        self.settings = settings
        root = store.root
        self._dir = root + "/" + _DIR
        self._ca_path = root + "/" + _CA_FILE
        self._ca_ok = False  # the CA file holds exactly the installed CSMS roots
        self.capacity = self.dm.decl(_ENTRIES)[3][2]  # maxLimit of CertificateEntries
        try:
            os.mkdir(self._dir)
        except OSError:
            pass  # exists already
        self.entries = []
        self._seq = 0  # highest file number seen or used
        self._skip = []  # names of the certificate files that do not read as a root
        self._done = []  # certificateTypes whose factory file is installed
        doc = self._doc()
        found = self._list()
        if self._from_index(doc, found):
            self._check_ca()
        else:
            self._scan(found)
            self._write_ca(self.entries)
            self._save()
        self._factory(settings)
        _unload()
        self.dm.provide(_ENTRIES, lambda: str(len(self.entries)))
        r = router
        r.on("InstallCertificate", self.on_install_certificate)
        r.on("GetInstalledCertificateIds", self.on_get_installed_certificate_ids)
        r.on("DeleteCertificate", self.on_delete_certificate)

    # -- for other blocks -------------------------------------------------------------------

    def roots(self, kind):
        """The installed certificates of `kind` (CSMS or MANUFACTURER), in install order.
        Expired ones too: checking the validity at use is the user's business."""
        out = []
        for e in self.entries:
            if e[0] == kind:
                cert = self._cert(e)
                if cert is not None:
                    out.append(cert)
        return out

    def installed(self, kind):
        """How many roots of `kind` are installed."""
        return sum(1 for e in self.entries if e[0] == kind)

    def issuers(self, kind, cert):
        """The installed roots of `kind` whose subject is `cert`'s issuer, in install order, one
        at a time: the index's issuerNameHash (a root's issuer is its subject) picks the files
        to parse, so a check never holds every root at once (heap on a board). Several roots
        may share a name (a renewed key): each is yielded, the caller tries them in turn."""
        want = _hex(hashlib.sha256(cert.issuer_der).digest())
        for e in self.entries:
            if e[0] == kind and e[2] == want:
                ca = self._cert(e)  # None (logged) when unreadable: skipped
                if ca is not None and ca.subject_der == cert.issuer_der:
                    yield ca
                ca = None

    def csms_ca_path(self):
        """Path of the PEM file holding every installed CSMS root, or None while there is none
        (or the file could not be written)."""
        return self._ca_path if self._ca_ok else None

    def hash_data(self, cert, alg="SHA256"):
        """cert's certificateHashData: the issuer is cert itself when self-issued, else an
        installed root whose subject is cert's issuer and whose key signed it (checked here,
        at once: up to a second for a P-384 root on an ESP32). CertError when there is no
        such issuer."""
        import x509

        if cert.issuer_der == cert.subject_der:
            return _hash_data(cert, cert.public_key_bits, alg)
        for kind, _, _ in _KINDS:
            for ca in self.issuers(kind, cert):
                try:
                    cert.verify_signed_by(ca, True)
                except x509.CertError:
                    continue
                return _hash_data(cert, ca.public_key_bits, alg)
        raise x509.CertError("issuer not installed")

    # -- InstallCertificate (M05) -----------------------------------------------------------

    async def on_install_certificate(self, req):
        try:
            # Room for the signature check, held while the imports and the parse scatter their
            # objects over the free blocks: an RSA-4096 check needs several blocks of 1 KB,
            # which a fragmented heap may no longer have afterwards. Best effort: given back
            # when the parse finds no room without it.
            try:
                room = bytearray(_CHECK_ROOM)
            except MemoryError:
                room = None
            import steps
            import x509

            kind = req["certificateType"]
            if self._prefix(kind) is None:
                return ocppj.answer(_REJECTED, _NOT_SUPPORTED, "%s: no ISO 15118 here" % kind)
            # popped: the PEM text (2 KB for an RSA-4096 root) is garbage once parsed
            pem = req.pop("certificate")
            try:
                try:
                    cert = _one(pem)
                except MemoryError:
                    if room is None:
                        raise
                    room = None
                    cert = _one(pem)
            except x509.CertError as e:
                return ocppj.answer(_REJECTED, _INVALID_FORMAT, str(e))
            pem = room = None  # given back: the check allocates there
            why = _problem(cert, self.clock.now())
            if why is None:
                gc.collect()  # an RSA-4096 check wants blocks of 1 KB: the heap at its best
                try:
                    await steps.run_async(cert.signed_by_steps(cert, True))
                except x509.CertError as e:
                    why = _INVALID_SIGNATURE, str(e)
            if why is not None:
                log.warn(_TAG, "%s %s rejected: %s (%s)" % (kind, _name(cert), why[0], why[1]))
                return ocppj.answer(_REJECTED, why[0], why[1])
            return self._install(kind, cert)
        finally:
            _unload()

    def _install(self, kind, cert, save=True):
        """Store a checked root; the InstallCertificateResponse. save: write the index (the
        factory roots write it once, after all of them)."""
        seq = self._seq + 1
        entry = _entry(kind, seq, cert)
        for e in self.entries:
            # The same hash data: the same certificate, unless they differ in validity or
            # extensions; the installed file tells.
            if e[0] == kind and e[2:] == entry[2:] and self._is(e, cert):
                log.info(_TAG, "%s %s installed already" % (kind, _name(cert)))
                return ocppj.answer(_ACCEPTED)
        if len(self.entries) >= self.capacity:
            log.warn(_TAG, "no room for %s %s" % (kind, _name(cert)))
            info = "%d certificates installed" % self.capacity
            return ocppj.answer(_FAILED, _STORAGE_FULL, info)
        path = self._path(entry)
        import pem

        try:
            # Line by line: the whole text is never in RAM at once (an RSA-4096 root's five
            # copies did not fit a fragmented 112 KiB heap).
            store.write_file(path, pem.lines(cert.der))
        except OSError as e:
            log.error(_TAG, "writing %s: %r" % (path, e))
            return ocppj.answer(_FAILED, _WRITE_FAILED)
        entries = self.entries + [entry]
        if kind == _CSMS and not self._write_ca(entries):
            store.remove_file(path)
            self._write_ca(self.entries)
            return ocppj.answer(_FAILED, _WRITE_FAILED)
        self._seq = seq
        self.entries = entries
        if save:
            self._save()  # last: see the class's docstring
        log.info(_TAG, "installed %s %d: %s" % (kind, seq, _name(cert)))
        return ocppj.answer(_ACCEPTED)

    # -- GetInstalledCertificateIds (M03) ---------------------------------------------------

    def on_get_installed_certificate_ids(self, req):
        kinds = req.get("certificateType")  # absent: all
        chain = []
        for e in self.entries:
            if kinds is None or e[0] in kinds:
                chain.append({"certificateType": e[0], "certificateHashData": _hd(e)})
        if not chain:
            return ocppj.answer(_NOT_FOUND)
        return {"status": _ACCEPTED, "certificateHashDataChain": chain}

    # -- DeleteCertificate (M04) ------------------------------------------------------------

    def on_delete_certificate(self, req):
        try:
            want = req["certificateHashData"]
            alg = want["hashAlgorithm"]
            victims = [e for e in self.entries if self._matches(e, want, alg)]
            if not victims:
                if self._own_certificate(want, alg):
                    return ocppj.answer(_FAILED, _OWN_CERTIFICATE)
                return ocppj.answer(_NOT_FOUND)
            csms_left = [e for e in self.entries if e[0] == _CSMS and e not in victims]
            if (
                not csms_left
                and any(e[0] == _CSMS for e in victims)
                and self.dm.get_int(_PROFILE) >= 2
            ):
                return ocppj.answer(_FAILED, _LAST_CSMS_ROOT, "the connection needs a CSMS root")
            if not self._delete(victims):
                return ocppj.answer(_FAILED, _WRITE_FAILED)
            return ocppj.answer(_ACCEPTED)
        finally:
            _unload()

    def _matches(self, e, want, alg):
        if alg == "SHA256":
            return _same(_hd(e), want)
        cert = self._cert(e)  # other algorithms: computed when asked for
        return cert is not None and _same(_hash_data(cert, cert.public_key_bits, alg), want)

    def _delete(self, victims):
        """Remove `victims` from flash: the CA file first, so a root the CSMS deleted is never
        trusted again, whatever fails after. False when something stays."""
        if any(e[0] == _CSMS for e in victims):
            if not self._write_ca([e for e in self.entries if e not in victims]):
                return False
        stuck = []
        for e in victims:
            path = self._path(e)
            if not store.remove_file(path):  # logged there
                stuck.append(e)
            else:
                log.info(_TAG, "deleted %s %d" % (e[0], e[1]))
        self.entries = [e for e in self.entries if e not in victims or e in stuck]
        if stuck:
            self._write_ca(self.entries)
        self._save()
        return not stuck

    def _own_certificate(self, want, alg):
        """The station's client certificate (its own, made with the CSMS (A02), else the board
        setting client_cert_file; the leaf first, maybe with its chain) matches `want`. When
        its issuer is in neither, the issuer's name and the serial decide."""
        path = self.store.root + _OWN_CERT
        if store.file_size(path) <= 0:
            path = self.settings.get("client_cert_file")
        if not path:
            return False
        import x509

        try:
            certs = x509.load_pem(store.read_file(path))
        except (OSError, x509.CertError):
            return False
        leaf = certs[0]
        keys = [c.public_key_bits for c in certs[1:] if c.subject_der == leaf.issuer_der]
        have = _hash_data(leaf, keys[0] if keys else b"", alg)
        if not keys:
            have["issuerKeyHash"] = want["issuerKeyHash"]  # unknown here: name and serial decide
        return _same(have, want)

    # -- flash ------------------------------------------------------------------------------

    def _prefix(self, kind):
        for k, prefix, _ in _KINDS:
            if k == kind:
                return prefix
        return None

    def _path(self, e):
        return "%s/%s-%d.pem" % (self._dir, self._prefix(e[0]), e[1])

    def _cert(self, e):
        """The certificate of entry `e` from flash; None (logged) when it no longer reads."""
        import pem
        import x509

        path = self._path(e)
        try:
            # The text decoded first and dropped before the parse: a root's text, DER and Cert
            # at once did not fit the heap of an update's check on a board.
            ders = pem.decode(store.read_file(path), b"CERTIFICATE")
            if len(ders) != 1:
                raise x509.CertError("PEM: %d certificates, one expected" % len(ders))
            return x509.Cert.from_der(ders.pop())
        except (OSError, ValueError) as err:  # CertError; pem's ValueError, UnicodeError
            log.error(_TAG, "%s unreadable: %r" % (path, err))
            return None

    def _is(self, e, cert):
        """Entry `e` holds `cert`."""
        old = self._cert(e)
        return old is not None and old.der == cert.der

    def _list(self):
        """[(seq, certificateType)] of the certificate files, in install order; removes what
        an interrupted write left, logs what is not a certificate file."""
        found = []
        for name in os.listdir(self._dir):
            path = self._dir + "/" + name
            if name.endswith(_TMP):
                store.remove_file(path)  # an interrupted write
                continue
            kind, seq = self._parse_name(name)
            if kind is None:
                log.warn(_TAG, "%s: not a certificate file, ignored" % path)
                continue
            self._seq = max(self._seq, seq)
            found.append((seq, kind))
        found.sort()
        return found

    def _from_index(self, doc, found):
        """Take the entries from the index `doc`; False when it is missing, unusable or names
        other files than `found` (then the files are parsed)."""
        if "certs" not in doc:
            return not found  # no index (a first boot, an older firmware's document)
        entries = []
        try:
            for kind, seq, name_hash, key_hash, serial in doc["certs"]:
                if self._prefix(kind) is None or type(seq) is not int:
                    raise ValueError("entry %r" % seq)
                for v in (name_hash, key_hash, serial):
                    if type(v) is not str:
                        raise ValueError("entry %d" % seq)
                entries.append((kind, seq, name_hash, key_hash, serial))
            skip = [n for n in doc["skip"] if type(n) is str]
            top = doc["seq"]
            if type(top) is not int:
                raise ValueError("seq %r" % top)
            names = sorted([self._path(e) for e in entries] + [self._dir + "/" + n for n in skip])
            if names != sorted([self._path((kind, seq)) for seq, kind in found]):
                raise ValueError("it names other files than %s holds" % self._dir)
            self._seq = max(self._seq, top)
        except (KeyError, TypeError, ValueError) as e:
            log.warn(_TAG, "index not usable, reading the certificates: %s" % e)
            return False
        self.entries = entries
        self._skip = skip
        return True

    def _scan(self, found):
        """The entries from parsing the certificate files `found` (from _list): the index's
        rebuild."""
        import x509

        entries = []
        fps = []  # SHA-256 of each entry's DER, to find the same certificate twice
        skip = []
        for seq, kind in found:
            path = self._path((kind, seq))
            cert = why = None
            try:
                cert = _one(store.read_file(path))
            except (OSError, x509.CertError) as e:
                log.error(_TAG, "%s unreadable, ignored: %r" % (path, e))
            if cert is not None:
                why = _problem(cert, None)
                if why is not None:
                    log.error(_TAG, "%s ignored: %s" % (path, why[1]))
            fp = None
            if cert is not None and why is None:
                fp = (kind, hashlib.sha256(cert.der).digest())
                if fp in fps:
                    log.warn(_TAG, "%s ignored: the same certificate twice" % path)
                    fp = None
            if fp is None:
                skip.append(path[len(self._dir) + 1 :])
            else:
                fps.append(fp)
                entries.append(_entry(kind, seq, cert))
        self.entries = entries
        self._skip = skip

    def _doc(self):
        """The store document, {} when there is none or it is unusable; takes its factory
        record."""
        doc = self.store.load(_STORE)
        if doc is None:
            return {}
        try:
            if doc["v"] != _VERSION:
                raise ValueError("version %r" % doc["v"])
            self._done = [k for k in doc["factory"] if type(k) is str]
            return doc
        except (KeyError, TypeError, ValueError) as e:
            log.error(_TAG, "stored state unusable, factory roots again: %r" % e)
            return {}

    def _save(self):
        """Write the index (and the factory record). A failure is logged only: the next boot
        finds the index does not match the files and rebuilds it."""
        doc = {
            "v": _VERSION,
            "factory": self._done,
            "seq": self._seq,
            "certs": self.entries,  # tuples: JSON arrays
            "skip": self._skip,
        }
        try:
            self.store.save(_STORE, doc)
        except OSError as e:
            log.error(_TAG, "writing the index: %r" % e)

    def _parse_name(self, name):
        """(certificateType, seq) of a file name "<prefix>-<seq>.pem", or (None, None)."""
        stem, dash, seq = name[:-4].partition("-")
        if name.endswith(".pem") and dash and seq.isdigit():
            for kind, prefix, _ in _KINDS:
                if prefix == stem:
                    return kind, int(seq)
        return None, None

    def _check_ca(self):
        """At a boot from the index: rewrite the CA file only when it is missing or stale,
        without reading it. Its size tells: it is the CSMS roots' files joined, and a power loss
        can only leave it short of or beyond them by whole files."""
        want = 0
        for e in self.entries:
            if e[0] == CSMS:
                want += max(store.file_size(self._path(e)), 0)
        if want and store.file_size(self._ca_path) == want:
            self._ca_ok = True
        else:
            self._write_ca(self.entries)

    def _write_ca(self, entries):
        """Make the CA file hold exactly the CSMS roots of `entries` (none: no file); written
        only when it differs. False when flash refused."""
        texts = []
        for e in entries:
            if e[0] == CSMS:
                try:
                    texts.append(store.read_file(self._path(e)))
                except OSError as err:
                    log.error(_TAG, "%s unreadable: %r" % (self._path(e), err))
        text = b"".join(texts)
        try:
            if not text:
                self._ca_ok = False
                return store.remove_file(self._ca_path)  # logged there when it stays
            ca = self._ca_path
            if store.file_size(ca) != len(text) or store.read_file(ca) != text:
                store.write_file(self._ca_path, (text,))
            self._ca_ok = True
            return True
        except OSError as err:
            log.error(_TAG, "writing %s: %r" % (self._ca_path, err))
            self._ca_ok = False
            return False

    # -- factory roots ----------------------------------------------------------------------

    def _factory(self, settings):
        changed = False
        for kind, _, key in _KINDS:
            path = settings.get(key)
            if kind in self._done or not path:
                continue
            # A root of the kind installed already (by the CSMS, or by a boot that lost power
            # before it recorded the factory file) ends the factory file's turn unread.
            if any(e[0] == kind for e in self.entries) or self._install_file(kind, path):
                self._done.append(kind)
                changed = True
        if changed:
            self._save()  # the index and the factory record together

    def _install_file(self, kind, path):
        """Install every root of the PEM file `path` as `kind`; True when one was. The index
        is left to the caller."""
        try:
            text = store.read_file(path)  # first: a missing file imports nothing
        except OSError as e:
            log.error(_TAG, "factory %s %s skipped: %r" % (kind, path, e))
            return False
        import x509

        try:
            certs = x509.load_pem(text)
        except x509.CertError as e:
            log.error(_TAG, "factory %s %s skipped: %r" % (kind, path, e))
            return False
        del text
        now = self.clock.now()
        ok = False
        for cert in certs:
            why = _problem(cert, None)
            if why is None:
                try:
                    cert.verify_signed_by(cert, True)  # at boot: no task to keep running yet
                except x509.CertError as e:
                    why = _INVALID_SIGNATURE, str(e)
            if why is not None:
                log.error(
                    _TAG, "factory %s %s: %s skipped: %s" % (kind, path, _name(cert), why[1])
                )
                continue
            if not cert.valid_at(now):
                log.warn(_TAG, "factory %s %s not valid at the clock's %d" % (kind, path, now))
            if self._install(kind, cert, False)["status"] == _ACCEPTED:
                ok = True
        return ok
