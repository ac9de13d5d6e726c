# x509: X.509 certificates (RFC 5280): parsing, issuer checks, chains, and data signatures.
# MIT licence. Ours because no maintained MicroPython package parses certificates or verifies
# their signatures.
#
#   load_pem(text) -> [Cert]          every CERTIFICATE block of a PEM text (str or bytes)
#   Cert.from_der(der) -> Cert
#   cert.verify_signed_by(ca)         CertError unless ca issued and signed cert
#                                     (anchor=True: ca is a trusted root, see Cert.is_ca)
#   cert.valid_at(now_s) -> bool      notBefore <= now_s <= notAfter (int Unix seconds)
#   verify_chain(chain, roots, now_s) CertError unless chain[0] leads to one of roots
#   verify_data_signature(cert, data, signature, hash_name=None) -> bool
#
# The three verifications take from milliseconds (RSA) to a second (P-384 on an ESP32). Each
# also exists as steps (steps.py) for asyncio code, which must not stall the safety loop:
#   await steps.run_async(x509.chain_steps(chain, roots, now_s))
#   await steps.run_async(cert.signed_by_steps(ca))
#   ok = await steps.run_async(x509.data_signature_steps(cert, data, signature))
#
# Everything raises CertError (a ValueError) for malformed input, whatever the bytes.
#
# A Cert has: der (all of it), tbs (the signed tbsCertificate, raw: a memoryview of der),
# version (1 to 3), serial (int), issuer / subject (tuples of (name, value) in order, name a
# short name such as "CN" or else a dotted OID), issuer_der / subject_der (the raw DER
# Names), not_before / not_after (Unix seconds), key_alg (dotted OID), public_key (rsa.PublicKey or
# ecdsa.PublicKey; None for other algorithms and curves, and for RSA keys outside 2048-4096
# bits), public_key_bits (the subjectPublicKey BIT STRING contents: the bytes OCSP and OCPP
# hash for issuerKeyHash), key_usage (int, bit i = RFC 5280 KeyUsage bit i, see KU_*; None
# when absent), ca and path_len (basicConstraints: False / None when absent), ext_key_usage
# (tuple of dotted OIDs, None when absent), unknown_critical (OIDs of critical extensions
# processed nowhere here), sig_alg (dotted OID), sig_params (raw DER or None), signature.
# tbs, public_key_bits and signature are memoryviews of der (not copies: heap on a board).
#
# Signature algorithms: sha256/384/512WithRSAEncryption, RSASSA-PSS (SHA-256/384/512 with
# MGF1 of the same hash), ecdsa-with-SHA256/384/512. Keys: RSA 2048 to 4096 bits, EC P-256
# and P-384 (uncompressed points).


import asn1
import pem
import rfc3339
import sha2
import steps

KU_DIGITAL_SIGNATURE = 1 << 0
KU_NON_REPUDIATION = 1 << 1
KU_KEY_CERT_SIGN = 1 << 5

_RSA = "1.2.840.113549.1.1.1"
_PSS = "1.2.840.113549.1.1.10"
_MGF1 = "1.2.840.113549.1.1.8"
_EC = "1.2.840.10045.2.1"
# namedCurve OID -> the ecdsa curve's name. rsa and ecdsa are imported where a key needs one:
# a certificate check takes only the one its key uses (heap on a board).
_CURVES = {"1.2.840.10045.3.1.7": "P256", "1.3.132.0.34": "P384"}
_HASHES = {
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
}
# signatureAlgorithm OID -> (scheme, hash); RSASSA-PSS carries its hash in the parameters.
_SIG_ALGS = {
    "1.2.840.113549.1.1.11": ("pkcs1", "sha256"),
    "1.2.840.113549.1.1.12": ("pkcs1", "sha384"),
    "1.2.840.113549.1.1.13": ("pkcs1", "sha512"),
    "1.2.840.10045.4.3.2": ("ecdsa", "sha256"),
    "1.2.840.10045.4.3.3": ("ecdsa", "sha384"),
    "1.2.840.10045.4.3.4": ("ecdsa", "sha512"),
}
_BASIC_CONSTRAINTS = "2.5.29.19"
_KEY_USAGE = "2.5.29.15"
_EXT_KEY_USAGE = "2.5.29.37"
# Extensions that may be critical without making the certificate unusable here: the three
# above, and the subject's alternative names, which no check here looks at.
_KNOWN = (_BASIC_CONSTRAINTS, _KEY_USAGE, _EXT_KEY_USAGE, "2.5.29.17")
_NAMES = {
    "2.5.4.3": "CN",
    "2.5.4.5": "serialNumber",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "1.2.840.113549.1.9.1": "emailAddress",
    "0.9.2342.19200300.100.1.25": "DC",
}


class CertError(ValueError):
    pass


def load_pem(text):
    """The certificates of every BEGIN/END CERTIFICATE block of `text` (str or bytes), in
    order; text around them is ignored (RFC 7468). CertError when there is none."""
    try:
        ders = pem.decode(text, b"CERTIFICATE")
    except ValueError as e:  # UnicodeError too: str with a character UTF-8 cannot encode
        raise CertError("PEM: %s" % e)
    if not ders:
        raise CertError("PEM: no certificate")
    return [Cert.from_der(der) for der in ders]


def _time(r):
    # UTCTime YYMMDDHHMMSSZ (years 1950-2049) or GeneralizedTime YYYYMMDDHHMMSSZ, the only
    # forms RFC 5280 §4.1.2.5 allows, as Unix seconds.
    tag = r.peek()
    if tag == asn1.UTC_TIME:
        t = r.read(tag).decode()
        if len(t) != 13:
            raise CertError("bad UTCTime")
        t = ("19" if t[:2] >= "50" else "20") + t
    else:
        t = r.read(asn1.GENERALIZED_TIME).decode()
    if len(t) != 15 or t[14] != "Z":
        raise CertError("bad time")
    iso = "%s-%s-%sT%s:%s:%sZ" % (t[0:4], t[4:6], t[6:8], t[8:10], t[10:12], t[12:14])
    return rfc3339.parse(iso)


def _name(r):
    # (raw DER, ((short name, value), ...)) of a Name: a SEQUENCE of SETs of attributes.
    der = r.raw()
    seq = asn1.one(der)
    attrs = []
    while not seq.done():
        rdn = seq.sub(asn1.SET)
        while not rdn.done():
            a = rdn.sub()
            oid = a.oid()
            attrs.append((_NAMES.get(oid, oid), a.string()))
            a.finish()
    return der, tuple(attrs)


def _algorithm(r):
    # (OID, raw DER of the parameters or None) of an AlgorithmIdentifier.
    a = r.sub()
    oid = a.oid()
    return oid, a.rest() or None


def _public_key(r):
    # (key algorithm OID, key object or None, BIT STRING contents) of SubjectPublicKeyInfo.
    spki = r.sub()
    alg, params = _algorithm(spki)
    bits, unused = spki.bits()
    view = _view(spki, bits)
    spki.finish()
    if unused:
        raise CertError("public key not whole bytes")
    key = None
    try:
        if alg == _RSA:
            import rsa

            seq = asn1.one(bits)
            n = seq.integer()
            e = seq.integer()
            seq.finish()
            if n <= 0 or e <= 0:
                raise CertError("bad RSA key")
            if rsa.MIN_BITS <= asn1.bit_length(n) <= rsa.MAX_BITS:
                key = rsa.PublicKey(n, e)
        elif alg == _EC and params and params[0] == asn1.OID:
            p = asn1.Reader(params)
            curve = _CURVES.get(p.oid())
            p.finish()
            if curve:
                import ecdsa

                key = ecdsa.PublicKey.from_bytes(getattr(ecdsa, curve), bits)
    except CertError:
        raise
    except ValueError as e:  # DerError, or a key rsa or ecdsa refused
        raise CertError("public key: %s" % e)
    return alg, key, view


def _view(r, contents):
    # The element r has just read (whose contents are a copy, `contents`) as a view of r's
    # data: the copy is garbage then (heap on a board, where a Cert is held during a check).
    return memoryview(r.data)[r.pos - len(contents) : r.pos]


class Cert:
    def __init__(self, der):
        """Use from_der: this raises other ValueErrors too."""
        self.der = der
        cert = asn1.one(der)
        start = cert.pos
        cert.sub()
        # A view, not a copy: 0.5 to 1 KB less per certificate held (heap on a board).
        self.tbs = memoryview(der)[start : cert.pos]
        sig_alg = cert.raw()
        self.sig_alg, self.sig_params = _algorithm(asn1.Reader(sig_alg))
        bits, unused = cert.bits()
        cert.finish()
        if unused:
            raise CertError("signature not whole bytes")
        self.signature = _view(cert, bits)

        tbs = asn1.one(self.tbs)
        v = tbs.optional(asn1.explicit(0))
        self.version = 1
        if v:
            self.version = v.integer() + 1
            v.finish()
            if not 2 <= self.version <= 3:  # v1 is encoded by leaving the field out
                raise CertError("bad version")
        self.serial = tbs.integer()
        if tbs.raw() != sig_alg:
            raise CertError("signature algorithm differs inside and outside the signed part")
        self.issuer_der, self.issuer = _name(tbs)
        validity = tbs.sub()
        self.not_before = _time(validity)
        self.not_after = _time(validity)
        validity.finish()
        self.subject_der, self.subject = _name(tbs)
        self.key_alg, self.public_key, self.public_key_bits = _public_key(tbs)
        for tag in (0x81, 0x82):  # issuerUniqueID, subjectUniqueID: skipped
            if tbs.peek() == tag:
                tbs.read(tag)
        self.key_usage = None
        self.ca = False
        self.path_len = None
        self.ext_key_usage = None
        self.unknown_critical = ()
        ext = tbs.optional(asn1.explicit(3))
        tbs.finish()
        if ext:
            if self.version != 3:
                raise CertError("extensions in a v%d certificate" % self.version)
            self._extensions(ext.sub())
            ext.finish()

    @classmethod
    def from_der(cls, der):
        try:
            return cls(bytes(der))
        except CertError:
            raise
        except ValueError as e:  # DerError, a time rfc3339 refused, text not UTF-8
            raise CertError(str(e))

    def _extensions(self, exts):
        seen = []
        unknown = []
        while not exts.done():
            e = exts.sub()
            oid = e.oid()
            critical = e.boolean() if e.peek() == asn1.BOOLEAN else False
            value = e.read(asn1.OCTET_STRING)
            e.finish()
            if oid in seen:
                raise CertError("extension %s twice" % oid)
            seen.append(oid)
            if oid == _BASIC_CONSTRAINTS:
                bc = asn1.one(value)
                self.ca = bc.boolean() if bc.peek() == asn1.BOOLEAN else False
                if bc.peek() == asn1.INTEGER:
                    self.path_len = bc.integer()
                    if self.path_len < 0:
                        raise CertError("negative pathLenConstraint")
                bc.finish()
            elif oid == _KEY_USAGE:
                r = asn1.Reader(value)
                data, _ = r.bits()
                r.finish()
                self.key_usage = 0
                for i in range(8 * len(data)):  # bit 0 is the first byte's highest bit
                    if data[i >> 3] & (0x80 >> (i & 7)):
                        self.key_usage |= 1 << i
            elif oid == _EXT_KEY_USAGE:
                seq = asn1.one(value)
                usages = []
                while not seq.done():
                    usages.append(seq.oid())
                self.ext_key_usage = tuple(usages)
            elif critical and oid not in _KNOWN:
                unknown.append(oid)
        self.unknown_critical = tuple(unknown)

    def valid_at(self, now_s):
        return self.not_before <= now_s <= self.not_after

    def is_ca(self, anchor=False):
        """May issue certificates: basicConstraints cA is true; or, for a trust anchor (a
        root the station trusts, never an intermediate), a self-issued version 1
        certificate, which has no extension to say so. RFC 5280 §6.1.4 (k) leaves v1 CAs to
        the application; OpenSSL and mbedTLS accept such roots, and so do we."""
        if self.ca:
            return True
        return anchor and self.version == 1 and self.issuer_der == self.subject_der

    def verify_signed_by(self, ca, anchor=False):
        """CertError unless ca's subject is this certificate's issuer, ca is a CA allowed to
        sign certificates (anchor: ca is a trusted root, see is_ca), and its key made this
        certificate's signature. Validity times and path lengths are verify_chain's
        business."""
        steps.run(self.signed_by_steps(ca, anchor))

    def signed_by_steps(self, ca, anchor=False):
        """verify_signed_by as steps (steps.py)."""
        if self.issuer_der != ca.subject_der:
            raise CertError("issuer is not the CA's subject")
        if not ca.is_ca(anchor):
            raise CertError("issuer is not a CA")
        if ca.key_usage is not None and not ca.key_usage & KU_KEY_CERT_SIGN:
            raise CertError("issuer's key usage excludes certificate signing")
        key = ca.public_key
        if key is None:
            raise CertError("issuer's public key algorithm not supported")
        scheme, hash_name, salt_len = self._scheme()
        if (scheme == "ecdsa") != hasattr(key, "curve"):  # an ecdsa.PublicKey
            raise CertError("signature algorithm does not fit the issuer's key")
        digest = yield from sha2.digest_steps(hash_name, self.tbs)
        if scheme == "ecdsa":
            ok = yield from key.verify_steps(hash_name, digest, self.signature)
        else:
            ok = yield from key.verify_steps(hash_name, digest, self.signature, scheme, salt_len)
        if not ok:
            raise CertError("bad signature")

    def _scheme(self):
        # (scheme, hash, PSS salt length) of the signature algorithm.
        if self.sig_alg != _PSS:
            if self.sig_alg not in _SIG_ALGS:
                raise CertError("signature algorithm %s not supported" % self.sig_alg)
            return _SIG_ALGS[self.sig_alg] + (None,)
        # RSASSA-PSS-params (RFC 4055 §3.1): [0] hash, [1] mask generation function, [2] salt
        # length, [3] trailer field. The defaults of [0] and [1] are SHA-1: not supported.
        try:
            p = asn1.one(self.sig_params or b"")
            hash_oid = _field(p, 0, lambda r: _algorithm(r)[0])
            mgf, mgf_params = _field(p, 1, _algorithm) or (None, None)
            salt_len = _field(p, 2, asn1.Reader.integer)
            trailer = _field(p, 3, asn1.Reader.integer)
            p.finish()
            if mgf == _MGF1:  # its parameter names the hash
                r = asn1.Reader(mgf_params or b"")
                mgf = _algorithm(r)[0]
                r.finish()
        except asn1.DerError as e:
            raise CertError("bad RSASSA-PSS parameters: %s" % e)
        hash_name = _HASHES.get(hash_oid)
        if not hash_name or mgf != hash_oid or trailer not in (None, 1):
            raise CertError("RSASSA-PSS parameters not supported")
        return "pss", hash_name, 20 if salt_len is None else salt_len


def _field(r, n, read):
    # read(...) of the contents of an optional [n] EXPLICIT field, or None when absent.
    w = r.optional(asn1.explicit(n))
    if w is None:
        return None
    v = read(w)
    w.finish()
    return v


def verify_chain(chain, roots, now_s):
    """CertError unless chain[0] was issued by chain[1], chain[1] by chain[2], ... and the
    last by one of the trusted roots (or is one of them), all valid at now_s, each CA's
    pathLenConstraint kept, and no certificate of the chain has a critical extension not
    understood here. Names are compared byte for byte. A root may be a self-issued version 1
    certificate; an intermediate CA needs basicConstraints cA (Cert.is_ca)."""
    steps.run(chain_steps(chain, roots, now_s))


def chain_steps(chain, roots, now_s):
    """verify_chain as steps (steps.py)."""
    chain = list(chain)
    if not chain:
        raise CertError("empty chain")
    trusted = any(chain[-1].der == r.der for r in roots)
    alone = trusted and len(chain) == 1  # the chain is a trusted root itself
    if trusted and not alone:
        chain.pop()  # the chain came with its root, which is checked as a root below
    for i, c in enumerate(chain):
        if not c.valid_at(now_s):
            raise CertError("certificate %d not valid now" % i)
        if c.unknown_critical:
            raise CertError("certificate %d: unknown critical extension" % i)
        if i:
            _check_path_len(c, i - 1)
            yield from chain[i - 1].signed_by_steps(c)
    if alone:
        return
    last = chain[-1]
    errors = []
    for r in roots:
        if r.subject_der != last.issuer_der:
            continue
        try:
            if not r.valid_at(now_s):
                raise CertError("root not valid now")
            _check_path_len(r, len(chain) - 1)
            yield from last.signed_by_steps(r, True)
            return
        except CertError as e:
            errors.append(str(e))
    raise CertError("no trusted root: " + ("; ".join(errors) or "issuer unknown"))


def _check_path_len(ca, below):
    # below: CA certificates between ca and the end-entity certificate.
    if ca.path_len is not None and below > ca.path_len:
        raise CertError("path length constraint exceeded")


def verify_data_signature(cert, data, signature, hash_name=None):
    """True when signature (raw bytes: DER (r, s) for EC keys) is cert's key's over data.

    data is the signed bytes, a stream (hashed through readinto() in 4 KB pieces) or a hash
    object already fed with them (anything with digest(), e.g. sha2.new(hash_name) updated
    chunk by chunk while downloading). hash_name defaults to the key's: SHA-384 for P-384,
    SHA-256 otherwise. RSA signatures may be PKCS #1 v1.5 or PSS (any salt length).
    CertError when the certificate's key cannot be used: not supported, or a key usage
    without digitalSignature and nonRepudiation."""
    return steps.run(data_signature_steps(cert, data, signature, hash_name))


def data_signature_steps(cert, data, signature, hash_name=None):
    """verify_data_signature as steps (steps.py)."""
    key = cert.public_key
    if key is None:
        raise CertError("public key algorithm not supported")
    usage = cert.key_usage
    if usage is not None and not usage & (KU_DIGITAL_SIGNATURE | KU_NON_REPUDIATION):
        raise CertError("key usage excludes signatures")
    hash_name = hash_name or key.default_hash
    if hasattr(data, "digest"):
        digest = data.digest()
    else:
        digest = yield from sha2.digest_steps(hash_name, data)
    return (yield from key.verify_steps(hash_name, digest, signature))
