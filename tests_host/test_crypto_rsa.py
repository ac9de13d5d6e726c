"""lib/rsa.py against signatures made by `cryptography`: PKCS #1 v1.5 and PSS, every salt
length, tampering of every kind, and hand-made encodings that are almost right."""

import hashlib
import random

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric import rsa as crsa
from hypothesis import given, settings
from hypothesis import strategies as st

import rsa

HASHES = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}


def probable_prime(rng, bits):
    small = [p for p in range(3, 2000, 2) if all(p % d for d in range(3, int(p**0.5) + 1, 2))]
    while True:
        n = rng.getrandbits(bits) | 3 << (bits - 2) | 1  # top two bits set: full-size products
        if any(n % p == 0 for p in small) or pow(65537, n - 1, n) != 1:
            continue
        if all(pow(a, n - 1, n) == 1 for a in (2, 3, 5, 7, 11)):
            return n


def key_2049_bits():
    # cryptography makes whole-byte moduli only; 2049 bits is the case where PSS's encoded
    # message is one byte shorter than the signature.
    rng = random.Random(2049)
    p, q = probable_prime(rng, 1025), probable_prime(rng, 1024)
    e = 65537
    d = pow(e, -1, (p - 1) * (q - 1))
    pub = crsa.RSAPublicNumbers(e, p * q)
    return crsa.RSAPrivateNumbers(
        p, q, d, d % (p - 1), d % (q - 1), crsa.rsa_crt_iqmp(p, q), pub
    ).private_key()


KEYS = [
    crsa.generate_private_key(65537, 2048),
    crsa.generate_private_key(3, 2048),
    key_2049_bits(),
    crsa.generate_private_key(65537, 3072),
    crsa.generate_private_key(65537, 4096),
]


def ours(key):
    nums = key.public_key().public_numbers()
    return rsa.PublicKey(nums.n, nums.e)


PUB = [ours(k) for k in KEYS]
OTHER = crsa.generate_private_key(65537, 2048)


def test_key_sizes():
    assert [k.bits for k in PUB] == [2048, 2048, 2049, 3072, 4096]
    assert [k.size for k in PUB] == [256, 256, 257, 384, 512]


def pkcs1(key, msg, h):
    return key.sign(msg, padding.PKCS1v15(), HASHES[h])


def pss(key, msg, h, salt):
    return key.sign(msg, padding.PSS(padding.MGF1(HASHES[h]), salt), HASHES[h])


def flip(b, bit):
    b = bytearray(b)
    b[bit // 8 % len(b)] ^= 1 << bit % 8
    return bytes(b)


keys = st.integers(0, len(KEYS) - 1)
names = st.sampled_from(sorted(HASHES))


@settings(max_examples=40, deadline=None)
@given(keys, names, st.binary(max_size=300), st.integers(0, 8 * 512))
def test_pkcs1v15(i, h, msg, bit):
    sig = pkcs1(KEYS[i], msg, h)
    d = hashlib.new(h, msg).digest()
    assert PUB[i].verify_pkcs1v15(h, d, sig)
    assert PUB[i].verify_digest(h, d, sig)
    assert not PUB[i].verify_pss(h, d, sig)
    assert not PUB[i].verify_pkcs1v15(h, d, flip(sig, bit))
    assert not PUB[i].verify_pkcs1v15(h, flip(d, bit), sig)
    assert not PUB[(i + 1) % len(PUB)].verify_digest(h, d, sig)


@settings(max_examples=40, deadline=None)
@given(keys, names, st.binary(max_size=300), st.data())
def test_pss_any_salt_length(i, h, msg, data):
    d = hashlib.new(h, msg).digest()
    largest = (PUB[i].bits - 1 + 7) // 8 - len(d) - 2
    salt = data.draw(st.sampled_from([0, len(d), largest]) | st.integers(0, largest))
    sig = pss(KEYS[i], msg, h, salt)
    assert PUB[i].verify_pss(h, d, sig)
    assert PUB[i].verify_pss(h, d, sig, salt)
    assert not PUB[i].verify_pss(h, d, sig, salt + 1)
    assert PUB[i].verify_digest(h, d, sig)
    assert not PUB[i].verify_pkcs1v15(h, d, sig)
    bit = data.draw(st.integers(0, 8 * len(sig) - 1))
    assert not PUB[i].verify_digest(h, d, flip(sig, bit))
    assert not PUB[i].verify_pss(h, flip(d, bit), sig)


def test_pss_with_cryptographys_named_salt_lengths():
    msg = b"firmware image"
    for key, pub in zip(KEYS, PUB, strict=True):
        d = hashlib.sha256(msg).digest()
        for salt in (padding.PSS.MAX_LENGTH, padding.PSS.DIGEST_LENGTH):
            assert pub.verify_pss("sha256", d, pss(key, msg, "sha256", salt))
        assert pub.verify_pss("sha256", d, pss(key, msg, "sha256", padding.PSS.DIGEST_LENGTH), 32)


def test_wrong_hash_or_key():
    msg = b"x"
    for make in (lambda: pkcs1(KEYS[0], msg, "sha384"), lambda: pss(KEYS[0], msg, "sha384", 48)):
        sig = make()
        assert PUB[0].verify_digest("sha384", hashlib.sha384(msg).digest(), sig)
        assert not PUB[0].verify_digest("sha512", hashlib.sha512(msg).digest(), sig)
        assert not PUB[0].verify_digest("sha256", hashlib.sha384(msg).digest()[:32], sig)
    sig = pkcs1(OTHER, msg, "sha256")
    assert not PUB[0].verify_digest("sha256", hashlib.sha256(msg).digest(), sig)


def test_signature_length_and_range():
    pub = PUB[0]
    d = hashlib.sha256(b"m").digest()
    sig = pkcs1(KEYS[0], b"m", "sha256")
    assert not pub.verify_digest("sha256", d, sig[1:])  # a leading zero byte dropped or not
    assert not pub.verify_digest("sha256", d, b"\x00" + sig)
    assert not pub.verify_digest("sha256", d, b"")
    assert not pub.verify_digest("sha256", d, bytes(256))
    assert not pub.verify_digest("sha256", d, pub.n.to_bytes(256, "big"))  # s = n
    s = int.from_bytes(sig, "big") + pub.n
    if s < 1 << 2048:
        assert not pub.verify_digest("sha256", d, s.to_bytes(256, "big"))  # s + n, same s^e


def test_caller_mistakes_raise_value_error():
    d = hashlib.sha256(b"m").digest()
    sig = pkcs1(KEYS[0], b"m", "sha256")
    for call in (PUB[0].verify_pkcs1v15, PUB[0].verify_pss, PUB[0].verify_digest):
        with pytest.raises(ValueError):
            call("sha1", hashlib.sha1(b"m").digest(), sig)
        with pytest.raises(ValueError):
            call("sha256", d[:31], sig)


@pytest.mark.parametrize(
    "n,e",
    [
        (2**1024 - 1, 65537),  # too small
        (2**4096 + 1, 65537),  # too large
        (2**2048, 65537),  # even
        (0, 65537),
        (-(2**2048) + 1, 65537),
        (2**2048 - 1, 1),
        (2**2048 - 1, 65536),
        (2**2048 - 1, 2**2048 + 1),
    ],
)
def test_bad_keys(n, e):
    with pytest.raises(ValueError):
        rsa.PublicKey(n, e)


# ---- encodings made by hand with the private key, each wrong in one way


def raw_sign(em):
    nums = KEYS[0].private_numbers()
    n = nums.public_numbers.n
    return pow(int.from_bytes(em, "big"), nums.d, n).to_bytes(256, "big")


PREFIX = bytes.fromhex("3031300d060960864801650304020105000420")
D = hashlib.sha256(b"hand made").digest()


def pkcs1_em(pad=0xFF, block=1, prefix=PREFIX, sep=b"\x00", lead=b"\x00", digest=D):
    t = prefix + digest
    return lead + bytes([block]) + bytes([pad]) * (256 - len(t) - 3) + sep + t


def test_hand_made_pkcs1v15_right_and_wrong():
    assert PUB[0].verify_pkcs1v15("sha256", D, raw_sign(pkcs1_em()))
    wrong = [
        pkcs1_em(pad=0xFE),
        pkcs1_em(block=2),
        pkcs1_em(sep=b"\x01"),
        pkcs1_em(lead=b"\x01"),
        pkcs1_em(prefix=bytes.fromhex("302f300b0609608648016503040201") + b"\x04\x20"),  # no NULL
        pkcs1_em(prefix=b"", digest=bytes(19) + D),  # digest without DigestInfo
    ]
    for em in wrong:
        assert len(em) == 256
        assert not PUB[0].verify_pkcs1v15("sha256", D, raw_sign(em))


def mgf1(seed, n):
    out = b""
    for c in range((n + 31) // 32):
        out += hashlib.sha256(seed + c.to_bytes(4, "big")).digest()
    return out[:n]


def pss_em(salt=b"salt", one=b"\x01", trailer=b"\xbc", zeros=bytes(8), top=0):
    # RFC 8017 §9.1.1 for a 2048-bit key: emBits 2047, emLen 256, one padding bit.
    h = hashlib.sha256(zeros + D + salt).digest()
    db = bytes(256 - len(salt) - 32 - 2) + one + salt
    masked = bytes(a ^ b for a, b in zip(db, mgf1(h, len(db)), strict=True))
    masked = bytes([masked[0] & 0x7F | top]) + masked[1:]
    return masked + h + trailer


def test_hand_made_pss_right_and_wrong():
    assert PUB[0].verify_pss("sha256", D, raw_sign(pss_em()))
    assert PUB[0].verify_pss("sha256", D, raw_sign(pss_em(salt=b"")))
    assert PUB[0].verify_pss("sha256", D, raw_sign(pss_em(salt=bytes(222))), 222)  # longest
    wrong = [
        pss_em(trailer=b"\xbd"),
        pss_em(one=b"\x02"),
        pss_em(one=b"\x00"),  # no separator: DB all zeros but the salt
        pss_em(zeros=bytes(7) + b"\x01"),
        pss_em(top=0x80),  # the bit above emBits set
    ]
    for em in wrong:
        assert len(em) == 256
        assert not PUB[0].verify_pss("sha256", D, raw_sign(em))


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=256, max_size=256))
def test_random_signatures_are_false_not_errors(sig):
    d = hashlib.sha256(b"m").digest()
    assert not PUB[0].verify_digest("sha256", d, sig)
