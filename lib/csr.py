# csr: the station's own key on flash, and its PKCS#10 certificate signing request (RFC 2986)
# for SignCertificateRequest (OCPP 2.0.1 A02/A03). MIT licence. Ours because MicroPython has
# no X.509 writer and no maintained package offers one.
#
#   key = ecdsa.PrivateKey.generate(os.urandom)      (or generate_steps: see ecdsa.py)
#   key_der(key) -> bytes         SEC 1 ECPrivateKey (RFC 5915): version 1, d, the named curve,
#                                 the public key; key_pem(key) the same as "EC PRIVATE KEY" PEM.
#                                 mbedTLS (MicroPython's ssl) takes this DER as the client key.
#   load_key(data) -> PrivateKey  from that PEM or DER, or PKCS#8 ("PRIVATE KEY", as openssl
#                                 genpkey writes); ValueError for anything else. The public
#                                 key stored beside d is trusted (no scalar multiplication
#                                 at load); without one it is computed on first need.
#   request_der(key, cn, org="") -> bytes   the CSR, signed with key; request_steps(...) the
#                                 same as steps (steps.py), request_pem(der) -> str its PEM
#
# The CSR: subject O = org (left out when empty), CN = cn, as UTF8Strings; the key as
# id-ecPublicKey with its named curve and the uncompressed point; no attributes; signed
# ecdsa-with-SHA256 (P-256) or ecdsa-with-SHA384 (P-384). Everything is deterministic (RFC
# 6979): the same key and names give the same bytes on every port.
#
# The key's PEM holds the secret d: write it atomically, never log or send it.

import asn1
import ecdsa
import pem
import sha2
import steps

_EC_KEY = "1.2.840.10045.2.1"  # id-ecPublicKey
_SIG_ALGS = {"sha256": "1.2.840.10045.4.3.2", "sha384": "1.2.840.10045.4.3.3"}
_CN = "2.5.4.3"
_O = "2.5.4.10"
_MAX_NAME = 64  # RFC 5280 ub-common-name and ub-organization-name
_KEY_LABEL = b"EC PRIVATE KEY"


def _curve(oid):
    for c in (ecdsa.P256, ecdsa.P384):
        if c.oid == oid:
            return c
    raise ValueError("EC key on an unsupported curve: " + oid)


def key_der(key):
    c = key.curve
    return asn1.tlv(
        asn1.SEQUENCE,
        asn1.integer(1)
        + asn1.tlv(asn1.OCTET_STRING, key.d.to_bytes(c.size, "big"))
        + asn1.tlv(asn1.explicit(0), asn1.oid(c.oid))
        + asn1.tlv(asn1.explicit(1), asn1.bits(key.public_key().to_bytes())),
    )


def key_pem(key):
    return b"".join(pem.lines(key_der(key), _KEY_LABEL))


def _sec1(der, curve):
    # ECPrivateKey; curve from its parameters, else the one given (PKCS#8 names it outside).
    seq = asn1.one(der)
    if seq.integer() != 1:
        raise ValueError("not an ECPrivateKey version 1")
    d = seq.read(asn1.OCTET_STRING)
    params = seq.optional(asn1.explicit(0))
    if params:
        named = _curve(params.oid())
        params.finish()
        if curve and curve is not named:
            raise ValueError("EC key: two different curves")
        curve = named
    if curve is None:
        raise ValueError("EC key without its curve")
    if len(d) != curve.size:
        raise ValueError("EC key: private key of the wrong length")
    public = seq.optional(asn1.explicit(1))
    if public:
        bits, unused = public.bits()
        public.finish()
        if unused:
            raise ValueError("EC key: bad public key")
        public = ecdsa.PublicKey.from_bytes(curve, bits)
    seq.finish()
    return ecdsa.PrivateKey(curve, int.from_bytes(d, "big"), public)


def _pkcs8(der):
    # PrivateKeyInfo / OneAsymmetricKey (RFC 5958): version, AlgorithmIdentifier, the SEC 1 key.
    seq = asn1.one(der)
    if seq.integer() not in (0, 1):
        raise ValueError("not a PKCS#8 key")
    alg = seq.sub()
    if alg.oid() != _EC_KEY:
        raise ValueError("not an EC key")
    curve = _curve(alg.oid())
    alg.finish()
    return _sec1(seq.read(asn1.OCTET_STRING), curve)  # attributes and publicKey may follow


def load_key(data):
    """The PrivateKey of a SEC 1 or PKCS#8 key, PEM (str or bytes) or DER."""
    try:
        if type(data) is str or b"-----BEGIN " in data:
            ders = pem.decode(data, _KEY_LABEL)
            if ders:
                return _sec1(ders[0], None)
            ders = pem.decode(data, b"PRIVATE KEY")
            if not ders:
                raise ValueError("no private key in the PEM text")
            return _pkcs8(ders[0])
        seq = asn1.one(data)
        seq.integer()
        if seq.peek() == asn1.OCTET_STRING:
            return _sec1(data, None)
        return _pkcs8(data)
    except asn1.DerError as e:
        raise ValueError("bad EC private key: %s" % e)


def _name_part(oid, value):
    # RelativeDistinguishedName: SET { SEQUENCE { type, UTF8String value } }.
    if not value or len(value) > _MAX_NAME:
        raise ValueError("subject name of 1 to %d characters" % _MAX_NAME)
    atv = asn1.tlv(asn1.SEQUENCE, asn1.oid(oid) + asn1.tlv(asn1.UTF8_STRING, value.encode()))
    return asn1.tlv(asn1.SET, atv)


def request_der(key, cn, org=""):
    return steps.run(request_steps(key, cn, org))


def request_steps(key, cn, org=""):
    """request_der as steps: the public key (when not known yet) and the signature yield."""
    c = key.curve
    subject = (_name_part(_O, org) if org else b"") + _name_part(_CN, cn)
    public = yield from key.public_steps()
    info = asn1.tlv(
        asn1.SEQUENCE,
        asn1.integer(0)
        + asn1.tlv(asn1.SEQUENCE, subject)
        + asn1.tlv(
            asn1.SEQUENCE,
            asn1.tlv(asn1.SEQUENCE, asn1.oid(_EC_KEY) + asn1.oid(c.oid))
            + asn1.bits(public.to_bytes()),
        )
        + asn1.tlv(asn1.explicit(0), b""),  # attributes: none
    )
    sig = yield from key.sign_steps(sha2.new(c.hash, info).digest())
    return asn1.tlv(
        asn1.SEQUENCE,
        info + asn1.tlv(asn1.SEQUENCE, asn1.oid(_SIG_ALGS[c.hash])) + asn1.bits(sig),
    )


def request_pem(der):
    """The CSR's PEM text ("-----BEGIN CERTIFICATE REQUEST-----"), as SignCertificateRequest's
    csr field carries it."""
    return "".join(line.decode() for line in pem.lines(der, b"CERTIFICATE REQUEST"))
