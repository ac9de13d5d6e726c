"""lib/ecdsa.py against `cryptography`: P-256 and P-384 with SHA-256/384/512, the point
arithmetic's special cases, tampering, and malformed signatures and points."""

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from hypothesis import given, settings
from hypothesis import strategies as st

import ecdsa
import steps

CURVES = {"P-256": (ecdsa.P256, ec.SECP256R1()), "P-384": (ecdsa.P384, ec.SECP384R1())}
HASHES = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}


def ours(private):
    pn = private.public_key().public_numbers()
    curve = ecdsa.P256 if pn.curve.name == "secp256r1" else ecdsa.P384
    return ecdsa.PublicKey(curve, pn.x, pn.y)


def sign(private, msg, h):
    return private.sign(msg, ec.ECDSA(HASHES[h]))


def flip(b, bit):
    b = bytearray(b)
    b[bit // 8 % len(b)] ^= 1 << bit % 8
    return bytes(b)


@pytest.mark.parametrize("name", CURVES)
def test_curve_constants(name):
    c, cc = CURVES[name]
    assert c.on_curve(*c.g)
    g = ec.derive_private_key(1, cc).public_key().public_numbers()
    assert (g.x, g.y) == c.g
    assert steps.run(ecdsa._shamir(c, c.n - 1, 1, c.g))[2] == 0  # (n - 1)G + G = nG = infinity
    assert c.size * 8 == c.n_bits == {"P-256": 256, "P-384": 384}[name]


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(sorted(CURVES)), st.integers(1, 2**384), st.integers(0, 2**384))
def test_scalar_multiples_match_cryptography(name, a, b):
    # x(a*G + b*Q) with Q = 7G is x((a + 7b) G): checks doubling, addition and the table.
    c, cc = CURVES[name]
    a %= c.n
    b %= c.n
    q = ec.derive_private_key(7, cc).public_key().public_numbers()
    k = (a + 7 * b) % c.n
    x, y, z = steps.run(ecdsa._shamir(c, a, b, (q.x, q.y)))
    if k == 0:
        assert z == 0
    else:
        pn = ec.derive_private_key(k, cc).public_key().public_numbers()
        assert ecdsa._affine(c.p, x, y, z) == (pn.x, pn.y)


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(sorted(CURVES)),
    st.sampled_from(sorted(HASHES)),
    st.binary(max_size=200),
    st.integers(0, 2**16),
)
def test_signatures_by_cryptography_verify(name, h, msg, bit):
    key = ec.generate_private_key(CURVES[name][1])
    pub = ours(key)
    sig = sign(key, msg, h)
    d = hashlib.new(h, msg).digest()
    assert pub.verify_digest(h, d, sig)
    used = min(8 * len(d), pub.curve.n_bits)  # bits of a longer digest beyond these are cut
    assert not pub.verify_digest(h, flip(d, bit % used), sig)
    assert not pub.verify_digest(h, d, flip(sig, bit))
    assert not ours(ec.generate_private_key(CURVES[name][1])).verify_digest(h, d, sig)


@pytest.mark.parametrize("name", CURVES)
def test_extreme_private_keys(name):
    # Q = G makes G + Q a doubling; Q = -G makes it the point at infinity.
    c, cc = CURVES[name]
    for d in (1, 2, c.n - 1, c.n - 2):
        key = ec.derive_private_key(d, cc)
        for msg in (b"a", b"b", b"c"):
            sig = sign(key, msg, c.hash)
            assert ours(key).verify_digest(c.hash, hashlib.new(c.hash, msg).digest(), sig)


@pytest.mark.parametrize("name", CURVES)
def test_r_and_s_ranges(name):
    c, cc = CURVES[name]
    key = ec.generate_private_key(cc)
    pub = ours(key)
    d = hashlib.new(c.hash, b"m").digest()
    r, s = decode_dss_signature(sign(key, b"m", c.hash))
    assert pub.verify_rs(d, r, s)
    assert pub.verify_rs(d, r, c.n - s)  # the other s verifies too (no low-s rule)
    for rr, ss in ((0, s), (r, 0), (r + c.n, s), (r, s + c.n), (c.n, s), (r, c.n), (-r, s)):
        assert not pub.verify_rs(d, rr, ss)
        if rr >= 0 and ss >= 0:
            assert not pub.verify_digest(c.hash, d, encode_dss_signature(rr, ss))


@pytest.mark.parametrize("name", CURVES)
def test_point_x_beyond_the_order(name):
    # A point R whose x lies in [n, p): its r is x - n, and verification must still find it.
    # The key is made to fit: with s = 1, R = e*G + r*Q, so Q = (R - e*G) / r.
    c = CURVES[name][0]
    p, n = c.p, c.n
    x = n + 1  # r = x - n must not be 0
    while pow(x**3 - 3 * x + c.b, (p - 1) // 2, p) != 1:
        x += 1
    y = pow(x**3 - 3 * x + c.b, (p + 1) // 4, p)  # p = 3 mod 4 on both curves
    digest = hashlib.new(c.hash, b"m").digest()
    e, r = int.from_bytes(digest, "big"), x - n
    t = ecdsa._affine(p, *steps.run(ecdsa._shamir(c, n - e % n, 1, (x, y))))  # R - e*G
    q = ecdsa._affine(p, *steps.run(ecdsa._shamir(c, 0, pow(r, -1, n), t)))
    key = ecdsa.PublicKey(c, *q)
    assert key.verify_rs(digest, r, 1)
    assert not key.verify_rs(digest, r + 1, 1)
    assert not key.verify_rs(digest, x, 1)  # r must be below n


def test_digest_cut_to_the_order_length():
    key = ec.generate_private_key(ec.SECP256R1())
    sig = sign(key, b"m", "sha512")
    d = hashlib.sha512(b"m").digest()
    assert ours(key).verify_digest("sha512", d, sig)
    assert ours(key).verify_digest("sha256", d[:32], sig)  # only the first 256 bits count
    assert ours(key).verify_digest("sha512", d[:32] + bytes(32), sig)


def test_malformed_der_signatures():
    key = ec.generate_private_key(ec.SECP256R1())
    pub = ours(key)
    d = hashlib.sha256(b"m").digest()
    sig = sign(key, b"m", "sha256")
    r, s = decode_dss_signature(sig)
    body = sig[2:]
    wrong = [
        b"",
        sig + b"\x00",  # trailing byte
        sig[:-1],
        b"\x31" + sig[1:],  # SET instead of SEQUENCE
        b"\x30\x81" + bytes([len(body)]) + body,  # length not minimal
        b"\x30\x46\x02\x21\x00" + r.to_bytes(32, "big") + b"\x02\x21\x00" + s.to_bytes(32, "big"),
    ]
    if r >> 255 and s >> 255:
        wrong.pop()  # both need their leading zero: the last one is right
    for w in wrong:
        assert ecdsa.decode_signature(w) is None
        assert not pub.verify_digest("sha256", d, w)
    assert not pub.verify_digest("sha256", d, r.to_bytes(32, "big") + s.to_bytes(32, "big"))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=110))
def test_random_signatures_are_false_not_errors(sig):
    pub = ours(ec.derive_private_key(12345, ec.SECP256R1()))
    assert not pub.verify_digest("sha256", hashlib.sha256(b"m").digest(), sig)


@pytest.mark.parametrize("name", CURVES)
def test_points(name):
    c, cc = CURVES[name]
    pn = ec.generate_private_key(cc).public_key().public_numbers()
    n = c.size
    good = b"\x04" + pn.x.to_bytes(n, "big") + pn.y.to_bytes(n, "big")
    key = ecdsa.PublicKey.from_bytes(c, good)
    assert (key.x, key.y, key.default_hash) == (pn.x, pn.y, c.hash)
    wrong = [
        good[:-1],
        good + b"\x00",
        b"\x02" + good[1 : n + 1],  # compressed: not supported
        b"\x03" + good[1:],
        b"\x00",  # the point at infinity
        b"\x04" + pn.x.to_bytes(n, "big") + ((pn.y + 1) % c.p).to_bytes(n, "big"),
        b"\x04" + (pn.x + c.p).to_bytes(n + 1, "big")[1:] + pn.y.to_bytes(n, "big"),
    ]
    for w in wrong:
        with pytest.raises(ValueError):
            ecdsa.PublicKey.from_bytes(c, w)
    for x, y in ((pn.x + c.p, pn.y), (pn.x, pn.y + c.p), (pn.x, c.p - pn.y + c.p), (0, 0)):
        with pytest.raises(ValueError):
            ecdsa.PublicKey(c, x, y)
    assert ecdsa.PublicKey(c, pn.x, c.p - pn.y).y == c.p - pn.y  # -Q is a point too
