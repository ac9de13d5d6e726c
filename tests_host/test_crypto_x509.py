"""lib/x509.py against certificates made by `cryptography`: every field, issuer checks,
chains, data signatures, PEM, and mangled input that must give CertError and nothing else.

build() and sign_data() are also used by test_crypto_micropython.py."""

import datetime
import hashlib
import io

import pytest
from cryptography import x509 as cx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding
from cryptography.hazmat.primitives.asymmetric import rsa as crsa
from cryptography.x509.ocsp import OCSPRequestBuilder
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import asn1
import pem as pemlib
import sha2
import x509
from tools import ota
from x509 import CertError

NOW = 1748779200  # 2025-06-01T12:00:00Z
DAY = 86400
HASHES = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}
USAGES = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
)
RSA_KEYS = [crsa.generate_private_key(65537, 2048) for _ in range(2)]


def ec_key(curve="P-256"):
    return ec.generate_private_key(ec.SECP256R1() if curve == "P-256" else ec.SECP384R1())


def dt(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc)


def name(cn):
    if isinstance(cn, cx.Name):
        return cn
    return cx.Name(
        [
            cx.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
            cx.NameAttribute(NameOID.ORGANIZATION_NAME, "mpwallbox Prüfstelle"),
            cx.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def build(
    subject,
    key,
    issuer=None,
    signer=None,
    *,
    ca=None,
    path_len=None,
    usage=None,
    eku=None,
    serial=1,
    not_before=NOW - DAY,
    not_after=NOW + DAY,
    hash_name="sha256",
    pss_salt=None,
    extra=(),
):
    """A certificate made by cryptography: (its DER, x509.Cert of it). ca: basicConstraints
    cA (None: no extension); usage: KeyUsage bit names (None: no extension)."""
    b = (
        cx.CertificateBuilder()
        .subject_name(name(subject))
        .issuer_name(name(issuer or subject))
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(dt(not_before))
        .not_valid_after(dt(not_after))
    )
    if ca is not None:
        b = b.add_extension(cx.BasicConstraints(ca=ca, path_length=path_len), critical=True)
    if usage is not None:
        flags = {u: u in usage for u in USAGES}
        b = b.add_extension(cx.KeyUsage(**flags, encipher_only=False, decipher_only=False), True)
    if eku is not None:
        b = b.add_extension(cx.ExtendedKeyUsage(eku), critical=True)
    for ext, critical in extra:
        b = b.add_extension(ext, critical)
    signer = signer or key
    kw = {}
    if pss_salt is not None:
        kw["rsa_padding"] = padding.PSS(padding.MGF1(HASHES[hash_name]), pss_salt)
    alg = None if isinstance(signer, ed25519.Ed25519PrivateKey) else HASHES[hash_name]
    der = b.sign(signer, alg, **kw).public_bytes(serialization.Encoding.DER)
    return der, x509.Cert.from_der(der)


def _der_len(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def _tlv(tag, body):
    return bytes([tag]) + _der_len(len(body)) + body


def _split(der):
    """(header length, body length) of the DER element at the start of der."""
    n = der[1]
    if n < 0x80:
        return 2, n
    k = n & 0x7F
    return 2 + k, int.from_bytes(der[2 : 2 + k], "big")


def v1(subject, key, issuer=None, signer=None, hash_name="sha256", **kw):
    """A version 1 certificate (no version field, no extensions): (DER, x509.Cert). cryptography
    writes only v3, so its certificate without extensions is rewritten and signed again."""
    der3, _ = build(subject, key, issuer, signer, hash_name=hash_name, **kw)
    c3 = cx.load_der_x509_certificate(der3)
    tbs = c3.tbs_certificate_bytes
    head, _ = _split(tbs)
    body = tbs[head:]
    assert body[:5] == bytes.fromhex("a003020102")  # [0] EXPLICIT INTEGER 2: v3
    tbs1 = _tlv(0x30, body[5:])
    outer, _ = _split(der3)
    alg_at = outer + len(tbs)
    h, n = _split(der3[alg_at:])
    alg = der3[alg_at : alg_at + h + n]
    sig = sign_data(signer or key, tbs1, hash_name=hash_name)
    der = _tlv(0x30, tbs1 + alg + _tlv(0x03, b"\x00" + sig))
    assert cx.load_der_x509_certificate(der).version == cx.Version.v1
    return der, x509.Cert.from_der(der)


def ca_cert(subject, key, issuer=None, signer=None, **kw):
    kw.setdefault("ca", True)
    kw.setdefault("usage", ("key_cert_sign", "crl_sign"))
    return build(subject, key, issuer, signer, **kw)


def sign_data(key, data, how="pkcs1", hash_name="sha256"):
    """A signature over data the way an update could come signed."""
    h = HASHES[hash_name]
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(h))
    if how == "pss":
        return key.sign(data, padding.PSS(padding.MGF1(h), padding.PSS.MAX_LENGTH), h)
    return key.sign(data, padding.PKCS1v15(), h)


def pem(der):
    return cx.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)


# ---- fields


def attrs(n):
    short = ("CN", "C", "O", "OU")
    return tuple(
        (
            a.rfc4514_attribute_name if a.rfc4514_attribute_name in short else a.oid.dotted_string,
            a.value,
        )
        for a in n
    )


KEY_KINDS = ["rsa", "P-256", "P-384"]


def make_key(kind):
    return RSA_KEYS[0] if kind == "rsa" else ec_key(kind)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(KEY_KINDS),
    st.sampled_from(KEY_KINDS),
    st.integers(1, 2**159 - 1),
    st.integers(-631152000, 253402300799 - DAY),  # 1950 .. 9999 (UTCTime and GeneralizedTime)
    st.integers(0, 200 * 365 * DAY),
    # a CN is at most 64 bytes of UTF-8 (RFC 5280 ub-common-name; cryptography refuses more)
    st.text(
        st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=40
    ).filter(lambda s: len(s.encode("utf-8")) <= 64),
    st.sets(st.sampled_from(USAGES)) | st.none(),
    st.booleans() | st.none(),
    st.integers(0, 5) | st.none(),
)
def test_fields_match_cryptography(kind, signer_kind, serial, nb, span, cn, usage, ca, plen):
    key, signer = make_key(kind), make_key(signer_kind)
    na = min(nb + span, 253402300799)
    der, c = build(
        cn,
        key,
        "Issuer CA",
        signer,
        serial=serial,
        not_before=nb,
        not_after=na,
        usage=usage,
        ca=ca,
        path_len=plen if ca else None,
        eku=[ExtendedKeyUsageOID.CODE_SIGNING],
    )
    ref = cx.load_der_x509_certificate(der)
    assert c.der == der
    assert c.version == 3
    assert c.serial == serial
    assert (c.not_before, c.not_after) == (nb, na)
    assert c.tbs == ref.tbs_certificate_bytes
    assert c.signature == ref.signature
    assert c.sig_alg == ref.signature_algorithm_oid.dotted_string
    assert c.subject_der == ref.subject.public_bytes()
    assert c.issuer_der == ref.issuer.public_bytes()
    assert (
        c.subject == attrs(ref.subject) == (("C", "DE"), ("O", "mpwallbox Prüfstelle"), ("CN", cn))
    )
    assert c.issuer == attrs(ref.issuer)
    pub = key.public_key()
    if kind == "rsa":
        assert c.key_alg == "1.2.840.113549.1.1.1"
        assert (c.public_key.n, c.public_key.e) == (pub.public_numbers().n, 65537)
        want_bits = pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    else:
        assert c.key_alg == "1.2.840.10045.2.1"
        assert c.public_key.curve.name == kind
        assert (c.public_key.x, c.public_key.y) == (pub.public_numbers().x, pub.public_numbers().y)
        want_bits = pub.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    assert c.public_key_bits == want_bits
    if usage is None:
        assert c.key_usage is None
    else:
        assert c.key_usage == sum(1 << USAGES.index(u) for u in usage)
    assert c.ca is bool(ca)
    assert c.path_len == (plen if ca else None)
    assert c.ext_key_usage == ("1.3.6.1.5.5.7.3.3",)
    assert c.unknown_critical == ()


def test_ocpp_certificate_hash_data_parts():
    # OCPP's CertificateHashDataType: issuerNameHash over the issuer's DER Name,
    # issuerKeyHash over the issuer's public key BIT STRING contents.
    root_key = ec_key()
    _, root = ca_cert("Root", root_key)
    der, leaf = build("Leaf", ec_key(), "Root", root_key)
    ref = cx.load_der_x509_certificate(der)
    ocsp = OCSPRequestBuilder().add_certificate(
        ref, cx.load_der_x509_certificate(root.der), hashes.SHA256()
    )
    req = ocsp.build()
    assert hashlib.sha256(leaf.issuer_der).digest() == req.issuer_name_hash
    assert hashlib.sha256(root.public_key_bits).digest() == req.issuer_key_hash
    assert leaf.serial == req.serial_number


def test_multi_valued_rdn_and_other_attributes():
    n = cx.Name(
        [
            cx.RelativeDistinguishedName(
                [
                    cx.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Charging"),
                    cx.NameAttribute(NameOID.SERIAL_NUMBER, "WB-0042"),
                ]
            ),
            cx.RelativeDistinguishedName([cx.NameAttribute(NameOID.DOMAIN_COMPONENT, "example")]),
            cx.RelativeDistinguishedName([cx.NameAttribute(NameOID.TITLE, "Box")]),
        ]
    )
    _, c = build(n, ec_key())
    assert sorted(c.subject[:2]) == [("OU", "Charging"), ("serialNumber", "WB-0042")]
    assert c.subject[2:] == (("DC", "example"), ("2.5.4.12", "Box"))


def test_unsupported_keys_parse_without_a_key():
    _, c = build("Ed", ed25519.Ed25519PrivateKey.generate(), signer=RSA_KEYS[0])
    assert c.key_alg == "1.3.101.112" and c.public_key is None and len(c.public_key_bits) == 32
    _, c = build("P521", ec.generate_private_key(ec.SECP521R1()), signer=RSA_KEYS[0])
    assert c.key_alg == "1.2.840.10045.2.1" and c.public_key is None
    _, c = build("RSA1024", crsa.generate_private_key(65537, 1024), signer=RSA_KEYS[0])
    assert c.key_alg == "1.2.840.113549.1.1.1" and c.public_key is None


# ---- issuer checks


@pytest.mark.parametrize("ca_kind", KEY_KINDS)
@pytest.mark.parametrize("hash_name", ["sha256", "sha384", "sha512"])
def test_signed_by_each_kind_of_ca(ca_kind, hash_name):
    ca_key = make_key(ca_kind)
    _, ca = ca_cert("CA", ca_key, hash_name=hash_name)
    _, leaf = build("Leaf", ec_key(), "CA", ca_key, hash_name=hash_name)
    leaf.verify_signed_by(ca)
    ca.verify_signed_by(ca)
    with pytest.raises(CertError, match="issuer is not"):
        ca.verify_signed_by(leaf)


@pytest.mark.parametrize("hash_name", ["sha256", "sha384", "sha512"])
@pytest.mark.parametrize("salt", [padding.PSS.DIGEST_LENGTH, padding.PSS.MAX_LENGTH, 0])
def test_rsassa_pss_signed_certificates(hash_name, salt):
    _, ca = ca_cert("PSS CA", RSA_KEYS[0], hash_name=hash_name, pss_salt=salt)
    _, leaf = build("Leaf", ec_key(), "PSS CA", RSA_KEYS[0], hash_name=hash_name, pss_salt=salt)
    assert ca.sig_alg == "1.2.840.113549.1.1.10"
    ca.verify_signed_by(ca)
    leaf.verify_signed_by(ca)


def pss_params(hash_oid, mgf_hash_oid, salt=b"\x02\x01\x20", trailer=b""):
    def alg(oid):
        return b"\x30" + bytes([len(oid) + 4]) + b"\x06" + bytes([len(oid)]) + oid + b"\x05\x00"

    def ctx(n, v):
        return bytes([0xA0 | n, len(v)]) + v

    mgf1 = b"\x06\x09" + bytes.fromhex("2a864886f70d010108") + alg(mgf_hash_oid)
    body = ctx(0, alg(hash_oid)) + ctx(1, b"\x30" + bytes([len(mgf1)]) + mgf1)
    body += ctx(2, salt) + (ctx(3, trailer) if trailer else b"")
    return b"\x30" + bytes([len(body)]) + body


SHA256_OID = bytes.fromhex("608648016503040201")
SHA384_OID = bytes.fromhex("608648016503040202")
SHA1_OID = bytes.fromhex("2b0e03021a")


@pytest.mark.parametrize(
    "params,ok",
    [
        (pss_params(SHA256_OID, SHA256_OID), "sha256"),
        (pss_params(SHA256_OID, SHA256_OID, trailer=b"\x02\x01\x01"), "sha256"),
        (pss_params(SHA256_OID, SHA256_OID, trailer=b"\x02\x01\x02"), None),
        (pss_params(SHA256_OID, SHA384_OID), None),
        (pss_params(SHA1_OID, SHA1_OID), None),
        (b"\x30\x00", None),  # all defaults: SHA-1
        (None, None),
        (b"\x30\x03\x02\x01\x20", None),  # not tagged
        (pss_params(SHA256_OID, SHA256_OID) + b"\x00", None),
    ],
)
def test_pss_parameters(params, ok):
    _, c = build("x", ec_key())
    c.sig_alg = "1.2.840.113549.1.1.10"
    c.sig_params = params
    if ok:
        assert c._scheme() == ("pss", ok, 32)
    else:
        with pytest.raises(CertError):
            c._scheme()


def test_wrong_ca_key_same_name():
    _, ca = ca_cert("CA", ec_key())
    _, leaf = build("Leaf", ec_key(), "CA", ec_key())
    with pytest.raises(CertError, match="bad signature"):
        leaf.verify_signed_by(ca)
    _, ca = ca_cert("CA", RSA_KEYS[0])
    _, leaf = build("Leaf", ec_key(), "CA", RSA_KEYS[1])
    with pytest.raises(CertError, match="bad signature"):
        leaf.verify_signed_by(ca)
    _, leaf = build("Leaf", ec_key(), "CA", ec_key())  # an ECDSA signature, an RSA CA
    with pytest.raises(CertError, match="does not fit"):
        leaf.verify_signed_by(ca)


@pytest.mark.parametrize(
    "kw,error",
    [
        ({"ca": None}, "not a CA"),
        ({"ca": False}, "not a CA"),
        ({"ca": True, "usage": ("digital_signature", "crl_sign")}, "key usage"),
        ({"ca": True, "usage": None}, None),
        ({"ca": True, "usage": ("key_cert_sign",)}, None),
    ],
)
def test_issuer_must_be_a_ca(kw, error):
    key = ec_key()
    _, issuer = build("CA", key, **kw)
    _, leaf = build("Leaf", ec_key(), "CA", key)
    if error:
        with pytest.raises(CertError, match=error):
            leaf.verify_signed_by(issuer)
    else:
        leaf.verify_signed_by(issuer)


def test_unsupported_issuer_key_or_algorithm():
    ed = ed25519.Ed25519PrivateKey.generate()
    _, ca = ca_cert("Ed CA", ed)
    _, leaf = build("Leaf", ec_key(), "Ed CA", ed)
    with pytest.raises(CertError, match="not supported"):
        leaf.verify_signed_by(ca)
    _, ca = ca_cert("CA", RSA_KEYS[0])
    _, leaf = build("Leaf", ec_key(), "CA", RSA_KEYS[0])
    leaf.sig_alg = "1.2.840.113549.1.1.5"  # sha1WithRSAEncryption
    with pytest.raises(CertError, match="not supported"):
        leaf.verify_signed_by(ca)


def flip(b, i, bit=1):
    b = bytearray(b)
    b[i % len(b)] ^= bit
    return bytes(b)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(KEY_KINDS), st.integers(0, 10**6), st.integers(0, 7))
def test_tampered_certificates_fail(kind, at, bit):
    ca_key = make_key(kind)
    _, ca = ca_cert("CA", ca_key)
    der, leaf = build("Leaf", ec_key(), "CA", ca_key)
    leaf.verify_signed_by(ca)
    tbs_at = der.index(leaf.tbs)
    for d in (
        flip(der, tbs_at + at % len(leaf.tbs), 1 << bit),  # the signed part
        der[: -len(leaf.signature)] + flip(leaf.signature, at, 1 << bit),  # the signature
    ):
        try:
            c = x509.Cert.from_der(d)
        except CertError:
            continue
        with pytest.raises(CertError):
            c.verify_signed_by(ca)


# ---- chains


def chain3(leaf_kw=None, mid_kw=None, root_kw=None):
    root_key, mid_key = ec_key("P-384"), RSA_KEYS[1]
    _, root = ca_cert("Root", root_key, **(root_kw or {}))
    _, mid = ca_cert("Mid", mid_key, "Root", root_key, **(mid_kw or {}))
    _, leaf = build("Signer", ec_key(), "Mid", mid_key, **(leaf_kw or {}))
    return leaf, mid, root


def test_chain_accepted():
    leaf, mid, root = chain3(root_kw={"path_len": 1}, mid_kw={"path_len": 0})
    x509.verify_chain([leaf, mid], [root], NOW)
    x509.verify_chain([leaf, mid, root], [root], NOW)  # sent with its root
    _, other = ca_cert("Other root", ec_key())
    x509.verify_chain([leaf, mid], [other, root], NOW)
    x509.verify_chain([mid], [root], NOW)
    x509.verify_chain([root], [root], NOW)


UNKNOWN_CRITICAL = (
    cx.UnrecognizedExtension(cx.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b""),
    True,
)


@pytest.mark.parametrize(
    "leaf_kw,mid_kw,root_kw,error",
    [
        ({"not_after": NOW - 1}, {}, {}, "certificate 0 not valid"),
        ({"not_before": NOW + 1}, {}, {}, "certificate 0 not valid"),
        ({}, {"not_after": NOW - 1}, {}, "certificate 1 not valid"),
        ({}, {}, {"not_after": NOW - 1}, "root not valid"),
        ({}, {}, {"path_len": 0}, "path length"),
        ({}, {"ca": False, "usage": None}, {}, "not a CA"),
        ({}, {"ca": None, "usage": None}, {}, "not a CA"),
        ({}, {"usage": ("digital_signature",)}, {}, "key usage"),
        ({"extra": [UNKNOWN_CRITICAL]}, {}, {}, "unknown critical"),
        ({}, {"extra": [UNKNOWN_CRITICAL]}, {}, "unknown critical"),
    ],
)
def test_chain_refused(leaf_kw, mid_kw, root_kw, error):
    leaf, mid, root = chain3(leaf_kw, mid_kw, root_kw)
    with pytest.raises(CertError, match=error):
        x509.verify_chain([leaf, mid], [root], NOW)


def test_chain_boundaries_of_validity_are_inclusive():
    leaf, mid, root = chain3({"not_before": NOW, "not_after": NOW + 10})
    x509.verify_chain([leaf, mid], [root], NOW)
    x509.verify_chain([leaf, mid], [root], NOW + 10)
    assert not leaf.valid_at(NOW - 1) and not leaf.valid_at(NOW + 11)


def test_known_critical_and_unknown_non_critical_extensions_pass():
    extra = [
        (cx.SubjectAlternativeName([cx.DNSName("wallbox.example")]), True),
        (cx.UnrecognizedExtension(cx.ObjectIdentifier("1.3.6.1.4.1.55555.2"), b"\x05\x00"), False),
    ]
    leaf, mid, root = chain3({"extra": extra})
    assert leaf.unknown_critical == ()
    x509.verify_chain([leaf, mid], [root], NOW)


@pytest.mark.parametrize("kind", ["ec", "rsa"])
def test_a_self_signed_v1_certificate_is_a_ca_only_as_a_trust_anchor(kind):
    key = ec_key() if kind == "ec" else RSA_KEYS[0]
    _, root = v1("Root", key)
    assert root.version == 1 and root.ca is False and root.key_usage is None
    assert root.is_ca(anchor=True) and not root.is_ca()
    root.verify_signed_by(root, anchor=True)  # its self-signature
    _, leaf = build("Signer", ec_key(), "Root", key)
    x509.verify_chain([leaf], [root], NOW)
    x509.verify_chain([leaf, root], [root], NOW)  # sent with its root
    x509.verify_chain([root], [root], NOW)
    leaf.verify_signed_by(root, anchor=True)
    with pytest.raises(CertError, match="not a CA"):
        leaf.verify_signed_by(root)  # not known as a trusted root
    # Still a v3 CA below it: the anchor rule is for the root alone.
    mid_key = RSA_KEYS[1]
    _, mid = ca_cert("Mid", mid_key, "Root", key)
    _, leaf = build("Signer", ec_key(), "Mid", mid_key)
    x509.verify_chain([leaf, mid], [root], NOW)
    # Its key must still have made the signature.
    _, stranger = v1("Root", ec_key() if kind == "ec" else RSA_KEYS[1])
    with pytest.raises(CertError, match="bad signature"):
        x509.verify_chain([leaf, mid], [stranger], NOW)


def test_a_v1_certificate_is_never_an_intermediate_ca():
    root_key, mid_key = ec_key("P-384"), RSA_KEYS[1]
    _, root = ca_cert("Root", root_key)
    _, mid = v1("Mid", mid_key, "Root", root_key)  # issued by the root: not self-issued
    _, leaf = build("Signer", ec_key(), "Mid", mid_key)
    assert not mid.is_ca(anchor=True)
    with pytest.raises(CertError, match="not a CA"):
        x509.verify_chain([leaf, mid], [root], NOW)
    with pytest.raises(CertError, match="not a CA"):
        x509.verify_chain([leaf, mid, root], [root], NOW)
    # A self-issued v1 certificate in the middle of a chain is no CA either.
    _, mid = v1("Root", mid_key, "Root", root_key)
    _, leaf = build("Signer", ec_key(), "Root", mid_key)
    with pytest.raises(CertError, match="not a CA"):
        x509.verify_chain([leaf, mid], [root], NOW)


def test_chain_without_its_root_or_with_a_stranger():
    leaf, mid, root = chain3()
    _, stranger = ca_cert("Root", ec_key("P-384"))  # same name, other key
    with pytest.raises(CertError, match="bad signature"):
        x509.verify_chain([leaf, mid], [stranger], NOW)
    with pytest.raises(CertError, match="issuer unknown"):
        x509.verify_chain([leaf], [root], NOW)
    with pytest.raises(CertError, match="issuer unknown"):
        x509.verify_chain([leaf, root], [root], NOW)  # the middle link missing
    with pytest.raises(CertError, match="issuer is not"):
        x509.verify_chain([mid, leaf], [root], NOW)  # the wrong order
    with pytest.raises(CertError):
        x509.verify_chain([], [root], NOW)
    with pytest.raises(CertError):
        x509.verify_chain([leaf, mid], [], NOW)


# ---- data signatures


@pytest.mark.parametrize(
    "kind,how,hash_name",
    [
        ("rsa", "pkcs1", None),
        ("rsa", "pss", None),
        ("rsa", "pkcs1", "sha384"),
        ("P-256", "", None),
        ("P-384", "", None),
        ("P-384", "", "sha256"),
        ("P-256", "", "sha384"),
    ],
)
def test_data_signatures(kind, how, hash_name):
    key = make_key(kind)
    _, cert = build("Signer", key, "CA", RSA_KEYS[1], usage=("digital_signature",))
    data = bytes(range(256)) * 40  # 10 KB
    want = hash_name or ("sha384" if kind == "P-384" else "sha256")
    sig = sign_data(key, data, how, want)
    h = sha2.new(want)
    for i in range(0, len(data), 4096):
        h.update(data[i : i + 4096])
    for given_data in (data, io.BytesIO(data), h):
        assert x509.verify_data_signature(cert, given_data, sig, hash_name)
    assert not x509.verify_data_signature(cert, data[:-1] + b"x", sig, hash_name)
    assert not x509.verify_data_signature(cert, data, flip(sig, 20), hash_name)
    assert not x509.verify_data_signature(cert, data, b"", hash_name)
    _, other = build("Other", make_key(kind) if kind != "rsa" else RSA_KEYS[1])
    assert not x509.verify_data_signature(other, data, sig, hash_name)


def test_data_signature_key_usage():
    key = ec_key()
    sig = sign_data(key, b"data")
    for usage, ok in (
        (None, True),
        (("content_commitment",), True),
        (("digital_signature", "key_cert_sign"), True),
        (("key_cert_sign",), False),
        ((), False),
    ):
        _, cert = build("Signer", key, usage=usage)
        if ok:
            assert x509.verify_data_signature(cert, b"data", sig)
        else:
            with pytest.raises(CertError, match="key usage"):
                x509.verify_data_signature(cert, b"data", sig)
    _, cert = build("Ed", ed25519.Ed25519PrivateKey.generate(), signer=key)
    with pytest.raises(CertError, match="not supported"):
        x509.verify_data_signature(cert, b"data", sig)


# ---- PEM


def test_pem_bundle_with_text_around():
    leaf, mid, root = chain3()
    text = b"Subject: Signer\n" + pem(leaf.der) + b"\nsome words\n" + pem(mid.der) + pem(root.der)
    for t in (text, text.decode(), bytearray(text), text.replace(b"\n", b"\r\n")):
        assert [c.der for c in x509.load_pem(t)] == [leaf.der, mid.der, root.der]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "no certificate here",
        "-----BEGIN CERTIFICATE-----\nMIIB",
        "-----BEGIN CERTIFICATE-----\nMIIBx\n-----END CERTIFICATE-----\n",  # bad padding
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",  # not a certificate
        "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n",
        b"\xff\xfe-----BEGIN CERTIFICATE-----",
        "-----BEGIN CERTIFICATE-----\nMIIBé\n-----END CERTIFICATE-----\n",
    ],
)
def test_bad_pem(text):
    with pytest.raises(CertError):
        x509.load_pem(text)


# ---- mangled input: CertError or a certificate, nothing else

_, FUZZ_CA = ca_cert("Fuzz CA", RSA_KEYS[0])
FUZZ_KEY = ec_key()
FUZZ_DER, FUZZ_LEAF = build(
    "Fuzz",
    FUZZ_KEY,
    "Fuzz CA",
    RSA_KEYS[0],
    usage=("digital_signature",),
    eku=[ExtendedKeyUsageOID.CODE_SIGNING],
    extra=[(cx.SubjectAlternativeName([cx.DNSName("a.example")]), False)],
)


def survives(der):
    try:
        c = x509.Cert.from_der(der)
    except CertError:
        return
    try:
        c.verify_signed_by(FUZZ_CA)
    except CertError:
        return
    assert der == FUZZ_DER  # whatever verifies must be the signed certificate itself
    x509.verify_chain([c], [FUZZ_CA], NOW)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4))
def test_mangled_bytes(changes):
    der = bytearray(FUZZ_DER)
    for at, value in changes:
        der[at % len(der)] = value
    survives(bytes(der))


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 10**6), st.integers(0, 40), st.binary(max_size=8))
def test_cut_and_inserted_bytes(at, cut, insert):
    at %= len(FUZZ_DER)
    survives(FUZZ_DER[:at] + insert + FUZZ_DER[at + cut :])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes(data):
    survives(data)
    survives(b"\x30\x82" + len(data).to_bytes(2, "big") + data)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_random_pem(text):
    for t in (text, "-----BEGIN CERTIFICATE-----\n" + text + "\n-----END CERTIFICATE-----"):
        try:
            x509.load_pem(t)
        except CertError:
            pass


# ---- times


def read_time(tag, text):
    return x509._time(asn1.Reader(bytes([tag, len(text)]) + text.encode("latin-1")))


@pytest.mark.parametrize(
    "tag,text,want",
    [
        (0x17, "500101000000Z", "1950-01-01T00:00:00+00:00"),
        (0x17, "491231235959Z", "2049-12-31T23:59:59+00:00"),
        (0x17, "240229120000Z", "2024-02-29T12:00:00+00:00"),
        (0x18, "20500101000000Z", "2050-01-01T00:00:00+00:00"),
        (0x18, "99991231235959Z", "9999-12-31T23:59:59+00:00"),
        (0x18, "19691231235959Z", "1969-12-31T23:59:59+00:00"),
    ],
)
def test_times(tag, text, want):
    assert read_time(tag, text) == int(datetime.datetime.fromisoformat(want).timestamp())


@pytest.mark.parametrize(
    "tag,text",
    [
        (0x17, "230229120000Z"),  # no 29 February in 2023
        (0x17, "241301000000Z"),
        (0x17, "240101240000Z"),
        (0x17, "2401011200Z"),  # seconds missing
        (0x17, "240101120000+0100"),
        (0x17, "24010112000 Z"),
        (0x17, "+40101120000Z"),
        (0x18, "20240101120000.5Z"),
        (0x18, "2024010112000Z"),
        (0x18, "20240101120000"),
        (0x04, "20240101120000Z"),
        (0x17, "2401011200é0Z"),
    ],
)
def test_bad_times(tag, text):
    with pytest.raises(ValueError):
        read_time(tag, text)


# -- PEM (lib/pem.py): the one codec of x509, the TLS files and the certificate files ----------


def test_pem_lines_and_decode_round_trip_and_match_the_canonical_pem():
    cert, key = ota.make_root(ec_key=True, cn="PEM")
    der = cert.public_bytes(serialization.Encoding.DER)
    text = b"".join(pemlib.lines(der))
    assert text == cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    both = b"a key\n" + key_pem + b"and a certificate\n" + text
    ders = pemlib.decode(both)
    assert len(ders) == 2 and ders[1] == der and ders[0][:1] == b"\x30"
    assert pemlib.decode(both, b"CERTIFICATE") == [der]
    assert pemlib.decode(both.decode(), b"CERTIFICATE") == [der]  # str as bytes
    assert pemlib.decode(b"no PEM here") == []
    assert [c.der for c in x509.load_pem(both)] == [der]  # the key's block is not a certificate


@pytest.mark.parametrize(
    "text, why",
    [
        (b"-----BEGIN CERTIFICATE-----\nAAAA\n", "without END"),
        (b"-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n", "bad base64"),
    ],
)
def test_pem_refuses_broken_blocks(text, why):
    with pytest.raises(ValueError, match=why):
        pemlib.decode(text)
    with pytest.raises(CertError, match=why):
        x509.load_pem(text)
