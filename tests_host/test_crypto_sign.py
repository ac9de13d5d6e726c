"""The station's own key: ECDSA key generation and signing (lib/ecdsa.py, RFC 6979 nonces),
the key's SEC 1 / PKCS#8 storage and the PKCS#10 CSR (lib/csr.py), against `cryptography`,
and the same bytes on the MicroPython unix port."""

import hashlib
import hmac
import os
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID
from hypothesis import given, settings
from hypothesis import strategies as st
from test_crypto_steps import counted

import asn1
import csr
import ecdsa

ROOT = Path(__file__).resolve().parent.parent
MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"
N256 = ecdsa.P256.n
CURVES = {"P-256": (ecdsa.P256, ec.SECP256R1()), "P-384": (ecdsa.P384, ec.SECP384R1())}

# RFC 6979 A.2.5 (P-256) and A.2.6 (P-384), SHA-256: (message, k, r, s).
X256 = 0xC9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721
U256 = (
    0x60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6,
    0x7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299,
)
A25 = [
    (
        b"sample",
        0xA6E3C57DD01ABE90086538398355DD4C3B17AA873382B0F24D6129493D8AAD60,
        0xEFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716,
        0xF7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8,
    ),
    (
        b"test",
        0xD16B6AE827F17175E040871A1C7EC3500192C4C92677336EC2537ACAEE0008E0,
        0xF1ABB023518351CD71D881567B1EA663ED3EFCF6C5132B354F28D3B0B7D38367,
        0x019F4113742A2B14BD25926B49C649155F267E60D3814B4C0CC84250E46F0083,
    ),
]
X384 = int(
    "6B9D3DAD2E1B8C1C05B19875B6659F4DE23C3B667BF297BA9AA47740787137D8"
    "96D5724E4C70A825F872C9EA60D2EDF5",
    16,
)
A26 = (
    b"sample",
    int(
        "180AE9F9AEC5438A44BC159A1FCB277C7BE54FA20E7CF404B490650A8ACC414E"
        "375572342863C899F9F2EDF9747A9B60",
        16,
    ),
    int(
        "21B13D1E013C7FA1392D03C5F99AF8B30C570C6F98D4EA8E354B63A21D3DAA33"
        "BDE1E888E63355D92FA2B3C36D8FB2CD",
        16,
    ),
    int(
        "F3AA443FB107745BF4BD77CB3891674632068A10CA67E3D45DB2266FA7D1FEEB"
        "EFDC63ECCD1AC42EC0CB8668A4FA0AB0",
        16,
    ),
)


def theirs(key):
    """cryptography's private key for ours."""
    return ec.derive_private_key(key.d, CURVES[key.curve.name][1])


def same_public(ours, their_public):
    pn = their_public.public_numbers()
    return (ours.x, ours.y) == (pn.x, pn.y)


def verify_theirs(key, data, sig, h=hashes.SHA256()):
    try:
        theirs(key).public_key().verify(sig, data, ec.ECDSA(h))
        return True
    except InvalidSignature:
        return False


def draws(*values, size=32):
    """A fake random source giving these integers in turn."""
    it = iter(values)
    return lambda n: next(it).to_bytes(size, "big")[:n]


def counter_source(seed):
    """A fake but well-spread random source: SHA-256 of seed and a counter."""
    state = [0]

    def urandom(n):
        out = b""
        while len(out) < n:
            state[0] += 1
            out += hashlib.sha256(b"%s %d" % (seed, state[0])).digest()
        return out[:n]

    return urandom


# --- RFC 6979 ---


@pytest.mark.parametrize("msg, k, r, s", A25)
def test_rfc6979_p256_vectors(msg, k, r, s):
    key = ecdsa.PrivateKey(ecdsa.P256, X256)
    pub = key.public_key()
    assert (pub.x, pub.y) == U256
    digest = hashlib.sha256(msg).digest()
    assert next(ecdsa._nonces(ecdsa.P256, X256, digest)) == k
    assert key.sign_rs(digest) == (r, s)
    assert key.sign_digest(digest) == encode_dss_signature(r, s)
    assert verify_theirs(key, msg, key.sign_digest(digest))


def test_rfc6979_p384_sha256_vector():
    msg, k, r, s = A26
    key = ecdsa.PrivateKey(ecdsa.P384, X384)
    digest = hashlib.sha256(msg).digest()
    assert next(ecdsa._nonces(ecdsa.P384, X384, digest)) == k
    assert key.sign_rs(digest) == (r, s)
    assert verify_theirs(key, msg, key.sign_digest(digest))


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=64), st.binary(max_size=300))
def test_hmac_sha256_matches_the_standard_library(key, data):
    assert ecdsa._hmac(key, data) == hmac.new(key, data, hashlib.sha256).digest()


def test_a_zero_s_takes_the_next_nonce(monkeypatch):
    # A digest chosen so that the first nonce gives s = 0: e = -r d (mod n).
    d, k1, k2 = 12345, 777, 888
    r1 = ec.derive_private_key(k1, ec.SECP256R1()).public_key().public_numbers().x % N256
    digest = (-r1 * d % N256).to_bytes(32, "big")
    monkeypatch.setattr(ecdsa, "_nonces", lambda curve, d, digest: iter((k1, k2)))
    key = ecdsa.PrivateKey(ecdsa.P256, d)
    r, s = key.sign_rs(digest)
    assert r == ec.derive_private_key(k2, ec.SECP256R1()).public_key().public_numbers().x % N256
    assert s and key.public_key().verify_rs(digest, r, s)


# --- signing, against cryptography and our verifier ---


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(sorted(CURVES)),
    st.integers(1, 2**384),
    st.binary(max_size=200),
    st.sampled_from(["sha256", "sha384"]),
)
def test_signatures_verify(name, d, msg, hash_name):
    curve, their_curve = CURVES[name]
    d = d % (curve.n - 1) + 1
    key = ecdsa.PrivateKey(curve, d)
    pub = key.public_key()
    assert same_public(pub, ec.derive_private_key(d, their_curve).public_key())
    digest = hashlib.new(hash_name, msg).digest()
    sig = key.sign_digest(digest)
    h = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384()}[hash_name]
    assert verify_theirs(key, msg, sig, h)
    assert pub.verify_digest(hash_name, digest, sig)
    assert key.sign_digest(digest) == sig  # deterministic
    assert not pub.verify_digest(hash_name, hashlib.new(hash_name, msg + b"!").digest(), sig)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**400), st.integers(0, 2**400))
def test_encode_signature_matches_cryptography(r, s):
    der = ecdsa.encode_signature(r, s)
    assert der == encode_dss_signature(r, s)
    assert ecdsa.decode_signature(der) == (r, s)


def test_steps_give_the_same_results():
    key = ecdsa.PrivateKey(ecdsa.P256, X256)
    digest = hashlib.sha256(b"sample").digest()
    sig, pauses = counted(key.sign_steps(digest))
    assert sig == key.sign_digest(digest)
    assert 60 <= pauses <= 66

    src = counter_source(b"steps")
    key2, pauses = counted(ecdsa.PrivateKey.generate_steps(counter_source(b"steps")))
    key3 = ecdsa.PrivateKey.generate(src)
    assert key2.d == key3.d and key2.public_key().to_bytes() == key3.public_key().to_bytes()
    assert 60 <= pauses <= 65

    der, pauses = counted(csr.request_steps(ecdsa.PrivateKey(ecdsa.P256, X256), "CS-1", "Org"))
    assert der == csr.request_der(ecdsa.PrivateKey(ecdsa.P256, X256), "CS-1", "Org")
    assert pauses > 120  # the public key, then the signature


# --- key generation ---


def test_generate_rejects_draws_outside_the_group():
    good = N256 - 1
    key = ecdsa.PrivateKey.generate(draws(0, N256, 2**256 - 1, good))
    assert key.d == good
    pem = csr.key_pem(key)
    loaded = serialization.load_pem_private_key(pem, None)
    assert loaded.private_numbers().private_value == good
    assert same_public(key.public_key(), loaded.public_key())


@pytest.mark.parametrize(
    "source",
    [lambda n: bytes(n), lambda n: b"\xff" * n, lambda n: os.urandom(n - 1)],
    ids=["zeros", "ones", "short"],
)
def test_generate_refuses_a_broken_source(source):
    with pytest.raises(ValueError):
        ecdsa.PrivateKey.generate(source)


@pytest.mark.parametrize("name", sorted(CURVES))
def test_generated_keys_load_in_cryptography(name):
    curve = CURVES[name][0]
    for _ in range(3):
        key = ecdsa.PrivateKey.generate(os.urandom, curve)
        loaded = serialization.load_pem_private_key(csr.key_pem(key), None)
        assert loaded.private_numbers().private_value == key.d
        assert same_public(key.public_key(), loaded.public_key())
        # The exact bytes OpenSSL writes for the same key.
        assert csr.key_der(key) == loaded.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )


def test_private_key_range():
    for d in (0, N256, -1):
        with pytest.raises(ValueError):
            ecdsa.PrivateKey(ecdsa.P256, d)


# --- the key on flash ---


def test_load_key_formats():
    key = ecdsa.PrivateKey.generate(counter_source(b"load"))
    theirs_ = theirs(key)

    def enc(encoding, fmt):
        return theirs_.private_bytes(encoding, fmt, serialization.NoEncryption())

    pem8 = enc(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8)
    texts = [
        csr.key_pem(key),
        csr.key_pem(key).decode(),
        csr.key_der(key),
        pem8,
        pem8.decode(),
        enc(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8),
        b"-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
        + csr.key_pem(key),  # as `openssl ecparam -genkey` writes it
    ]
    for text in texts:
        loaded = csr.load_key(text)
        assert loaded.d == key.d and loaded.curve is ecdsa.P256
        assert loaded.public_key().to_bytes() == key.public_key().to_bytes()
    # SEC 1 without the optional curve and public key: the curve is needed, the point computed.
    bare = asn1.tlv(
        asn1.SEQUENCE, asn1.integer(1) + asn1.tlv(asn1.OCTET_STRING, key.d.to_bytes(32, "big"))
    )
    with pytest.raises(ValueError):
        csr.load_key(bare)
    p8 = asn1.tlv(
        asn1.SEQUENCE,
        asn1.integer(0)
        + asn1.tlv(asn1.SEQUENCE, asn1.oid("1.2.840.10045.2.1") + asn1.oid(ecdsa.P256.oid))
        + asn1.tlv(asn1.OCTET_STRING, bare),
    )
    loaded = csr.load_key(p8)
    assert loaded.public_key().to_bytes() == key.public_key().to_bytes()


def test_load_key_refuses_other_things():
    key = ecdsa.PrivateKey.generate(counter_source(b"bad"))
    der = csr.key_der(key)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    p521 = ec.generate_private_key(ec.SECP521R1())
    bad = [
        b"",
        "",
        b"garbage",
        der[:-1],
        der + b"\x00",
        der.replace(b"\x02\x01\x01", b"\x02\x01\x02", 1),  # version 2
        b"-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n",
        b"-----BEGIN EC PRIVATE KEY-----\n!!!!\n-----END EC PRIVATE KEY-----\n",
        rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        p521.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ),
        # d = 0, and a public point off the curve
        der[:7] + bytes(32) + der[39:],
        der[:-1] + bytes((der[-1] ^ 1,)),
    ]
    for text in bad:
        with pytest.raises(ValueError):
            csr.load_key(text)


# --- the CSR ---


def parse_csr(key, cn, org=""):
    text = csr.request_pem(csr.request_der(key, cn, org))
    assert text.startswith("-----BEGIN CERTIFICATE REQUEST-----\n")
    assert text.endswith("-----END CERTIFICATE REQUEST-----\n")
    assert all(len(line) <= 64 for line in text.splitlines())
    return x509.load_pem_x509_csr(text.encode())


@pytest.mark.parametrize(
    "cn, org",
    [("CS-001", "Acme Charging"), ("wallbox_7", ""), ("Zähler-ß", "Ünïcode Ltd"), ("a" * 64, "b")],
)
def test_csr_parses_and_verifies(cn, org):
    key = ecdsa.PrivateKey.generate(counter_source(cn.encode()))
    req = parse_csr(key, cn, org)
    assert req.is_signature_valid
    assert req.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA256
    assert same_public(key.public_key(), req.public_key())
    assert isinstance(req.public_key().curve, ec.SECP256R1)
    want = [(NameOID.ORGANIZATION_NAME, org)] if org else []
    want.append((NameOID.COMMON_NAME, cn))
    assert [(a.oid, a.value) for a in req.subject] == want
    assert len(req.attributes) == 0
    assert list(req.extensions) == []
    # Our own reader takes it too: the signature over the info verifies with our verifier.
    top = asn1.one(csr.request_der(key, cn, org))
    info = top.raw()
    top.sub()
    sig, _ = top.bits()
    assert key.public_key().verify_digest("sha256", hashlib.sha256(info).digest(), sig)


def test_csr_p384():
    key = ecdsa.PrivateKey.generate(counter_source(b"384"), ecdsa.P384)
    req = parse_csr(key, "CS-384", "Org")
    assert req.is_signature_valid
    assert req.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA384
    assert same_public(key.public_key(), req.public_key())


def test_csr_bad_names():
    key = ecdsa.PrivateKey(ecdsa.P256, X256)
    for cn, org in (("", "Org"), ("x" * 65, ""), ("CS", "o" * 65)):
        with pytest.raises(ValueError):
            csr.request_der(key, cn, org)


# --- the encoders ---


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**600))
def test_asn1_integer_round_trip(n):
    assert asn1.Reader(asn1.integer(n)).integer() == n


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2), st.integers(0, 39), st.lists(st.integers(0, 2**70), max_size=6))
def test_asn1_oid_round_trip(a, b, rest):
    dotted = ".".join(str(x) for x in [a, b] + rest)
    der = asn1.oid(dotted)
    assert asn1.Reader(der).oid() == dotted
    assert asn1.Reader(asn1.tlv(asn1.SEQUENCE, der * 40)).sub().rest() == der * 40


# --- the MicroPython unix port: the same bytes ---

MP_SCRIPT = """
import hashlib
import csr
import ecdsa
import steps

state = [0]


def urandom(n):
    out = b""
    while len(out) < n:
        state[0] += 1
        out += hashlib.sha256(b"mp %d" % state[0]).digest()
    return out[:n]


key = ecdsa.PrivateKey.generate(urandom)
print(csr.key_pem(key).decode(), end="")
print(key.sign_digest(hashlib.sha256(b"sample").digest()).hex())
der = csr.request_der(key, "CS-001", "Acme \\u00dc")
print(csr.request_pem(der), end="")
print(steps.run(csr.request_steps(csr.load_key(csr.key_pem(key)), "CS-001", "")).hex())
"""


def test_same_bytes_on_micropython(tmp_path):
    script = tmp_path / "mp_sign.py"
    script.write_text(MP_SCRIPT)
    env = dict(os.environ, MICROPYPATH=".frozen:%s" % (ROOT / "lib"))  # asyncio is frozen
    out = subprocess.run(
        [str(MICROPYTHON), str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr

    state = [0]

    def urandom(n):
        out = b""
        while len(out) < n:
            state[0] += 1
            out += hashlib.sha256(b"mp %d" % state[0]).digest()
        return out[:n]

    key = ecdsa.PrivateKey.generate(urandom)
    want = (
        csr.key_pem(key).decode()
        + key.sign_digest(hashlib.sha256(b"sample").digest()).hex()
        + "\n"
        + csr.request_pem(csr.request_der(key, "CS-001", "Acme \u00dc"))
        + csr.request_der(key, "CS-001", "").hex()
        + "\n"
    )
    assert out.stdout == want
    req = x509.load_pem_x509_csr(out.stdout.split("\n", 6)[-1].encode())
    assert req.is_signature_valid
    assert req.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Acme Ü"
