# ecdsa: ECDSA on NIST P-256 and P-384 (FIPS 186-4 §6.4, SEC 1 §4.1): signature verification,
# and key generation and signing (RFC 6979 nonces) for the station's own key. MIT licence.
# Ours because MicroPython has no public-key cryptography and no maintained package offers it.
#
#   P256, P384                          the curves (Curve: name, oid, p, b, g, n, size, hash)
#   PublicKey(curve, x, y)              ValueError unless (x, y) is a point on the curve
#   PublicKey.from_bytes(curve, b)      from SEC 1 uncompressed bytes 04 || X || Y
#   key.to_bytes()                      the same uncompressed bytes
#   key.verify_digest(hash_name, digest, sig) -> bool   sig: DER SEQUENCE { r, s }
#   key.verify_rs(digest, r, s) -> bool
#   key.verify_steps(hash_name, digest, sig)   verify_digest as steps (steps.py): a pause
#                                       after each of two inversions, then every 4 bits of
#                                       the scalars (66 pauses on P-256)
#   key.default_hash                    "sha256" on P-256, "sha384" on P-384
#   encode_signature(r, s), decode_signature(der)   DER SEQUENCE { r, s } and back
#
#   PrivateKey(curve, d, public=None)   ValueError unless 0 < d < n; public (a PublicKey) is
#                                       trusted, and computed on first need when None
#   PrivateKey.generate(urandom, curve=P256)   a new key from urandom(n) -> n random bytes
#                                       (os.urandom); generate_steps(...) the same as steps
#   priv.public_key() -> PublicKey      public_steps() the same as steps
#   priv.sign_digest(digest) -> DER signature; sign_steps(digest) the same as steps (a pause
#                                       every 4 bits of the nonce and after each of two
#                                       inversions: 66 on P-256); sign_rs(digest) -> (r, s)
#
# Any digest length goes with either curve: a longer one is cut to the bit length of the
# group order (SHA-384 on P-256), a shorter one is used whole (SHA-256 on P-384). hash_name
# is there only so that rsa.PublicKey and this class are called alike.
#
# Verification handles only public data. Points are in Jacobian coordinates (X, Y, Z)
# standing for (X/Z^2, Y/Z^3); Z == 0 is the point at infinity. u1*G + u2*Q is one pass over
# the bits of both scalars (Shamir's trick).
#
# Signing and key generation handle secrets (the key d, the nonce k), and nothing here runs
# in constant time: Python's big integers do not, and double-and-add takes longer for more
# one bits. Constant time is out of reach in Python; the station signs a CSR now and then,
# so no one gets to time thousands of signatures. What is guaranteed is RFC 6979: the nonce
# is HMAC-derived from the key and the digest alone, so a weak or broken random source can
# never leak the key through a repeated or biased nonce (it still must be good for the key
# itself). The HMAC is HMAC-SHA-256 on both curves (RFC 6979 A.2.5's vectors on P-256 with
# SHA-256, and A.2.6's SHA-256 ones on P-384).

import hashlib

from micropython import const

import asn1
import steps

_KEY_TRIES = const(16)  # random draws outside [1, n-1] before the source is deemed broken


class Curve:
    """A short Weierstrass curve y^2 = x^3 - 3x + b over GF(p) with a prime-order group."""

    def __init__(self, name, oid, p, b, gx, gy, n, hash_name):
        self.name = name
        self.oid = oid  # the namedCurve OID of X.509 keys
        self.p = p
        self.b = b
        self.g = (gx, gy)
        self.n = n  # the group order; cofactor 1
        self.size = (asn1.bit_length(p) + 7) // 8  # bytes per coordinate
        self.n_bits = asn1.bit_length(n)
        self.hash = hash_name

    def on_curve(self, x, y):
        p = self.p
        return 0 <= x < p and 0 <= y < p and (y * y - x * x * x + 3 * x - self.b) % p == 0


# FIPS 186-4 appendix D.1.2.3 and D.1.2.4.
P256 = Curve(
    "P-256",
    "1.2.840.10045.3.1.7",
    2**256 - 2**224 + 2**192 + 2**96 - 1,
    0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B,
    0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
    0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
    0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    "sha256",
)
P384 = Curve(
    "P-384",
    "1.3.132.0.34",
    2**384 - 2**128 - 2**96 + 2**32 - 1,
    int(
        "B3312FA7E23EE7E4988E056BE3F82D19181D9C6EFE8141120314088F5013875A"
        "C656398D8A2ED19D2A85C8EDD3EC2AEF",
        16,
    ),
    int(
        "AA87CA22BE8B05378EB1C71EF320AD746E1D3B628BA79B9859F741E082542A38"
        "5502F25DBF55296C3A545E3872760AB7",
        16,
    ),
    int(
        "3617DE4A96262C6F5D9E98BF9292DC29F8F41DBD289A147CE9DA3113B5F0B8C0"
        "0A60B1CE1D7E819D7A431D7C90EA0E5F",
        16,
    ),
    int(
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF"
        "581A0DB248B0A77AECEC196ACCC52973",
        16,
    ),
    "sha384",
)


def _double(p, x, y, z):
    # 2(X, Y, Z) for a = -3. The point at infinity (Z = 0) stays there: Z3 = 2YZ.
    delta = z * z % p
    gamma = y * y % p
    beta = x * gamma % p
    alpha = 3 * (x - delta) * (x + delta) % p
    x3 = (alpha * alpha - 8 * beta) % p
    y3 = (alpha * (4 * beta - x3) - 8 * gamma * gamma) % p
    return x3, y3, 2 * y * z % p


def _add(p, x1, y1, z1, x2, y2):
    # (X1, Y1, Z1) + the affine point (x2, y2).
    if z1 == 0:
        return x2, y2, 1
    zz = z1 * z1 % p
    h = x2 * zz % p - x1  # U2 - U1: zero when the x coordinates are equal
    r = y2 * z1 * zz % p - y1  # S2 - S1: zero when the y coordinates are equal too
    if h == 0:
        return _double(p, x1, y1, z1) if r == 0 else (0, 1, 0)
    hh = h * h % p
    hhh = h * hh % p
    v = x1 * hh % p
    x3 = (r * r - hhh - 2 * v) % p
    return x3, (r * (v - x3) - y1 * hhh) % p, z1 * h % p


def _inverse(a, p):
    # p is prime: Fermat. (MicroPython's pow(a, -1, p) does not compute inverses.)
    return pow(a, p - 2, p)


def _affine(p, x, y, z):
    zi = _inverse(z, p)
    zi2 = zi * zi % p
    return x * zi2 % p, y * zi2 * zi % p


def _shamir(curve, u1, u2, q):
    """u1*G + u2*Q in Jacobian coordinates, as steps: a pause after the table, then every
    4 bits."""
    p = curve.p
    g = curve.g
    gq = _add(p, g[0], g[1], 1, q[0], q[1])
    both = _affine(p, *gq) if gq[2] else None  # None when Q = -G
    yield  # after an inversion, the longest step
    table = (None, g, q, both)  # indexed by (bit of u2) * 2 + (bit of u1)
    # Bits read by shifts, not from bin() strings: no block of one byte per bit.
    w = asn1.bit_length(u1 if u1 > u2 else u2)
    x, y, z = 0, 1, 0
    for i in range(w - 1, -1, -1):
        x, y, z = _double(p, x, y, z)
        pt = table[((u2 >> i) & 1) * 2 + ((u1 >> i) & 1)]
        if pt:
            x, y, z = _add(p, x, y, z, pt[0], pt[1])
        if i % 4 == 0:
            yield
    return x, y, z


def _mul(curve, k, pt):
    """k * pt (affine, k > 0) in Jacobian coordinates by double-and-add, as steps: a pause
    every 4 bits."""
    p = curve.p
    x, y, z = 0, 1, 0
    for i in range(asn1.bit_length(k) - 1, -1, -1):
        x, y, z = _double(p, x, y, z)
        if (k >> i) & 1:
            x, y, z = _add(p, x, y, z, pt[0], pt[1])
        if i % 4 == 0:
            yield
    return x, y, z


def _bits2int(curve, b):
    # SEC 1 / RFC 6979 bits2int: the leftmost n_bits bits of b as an integer.
    e = int.from_bytes(b, "big")
    if len(b) * 8 > curve.n_bits:
        e >>= len(b) * 8 - curve.n_bits
    return e


def _hmac(key, data):
    # HMAC-SHA-256 (RFC 2104) with a key of at most 64 bytes: MicroPython has no hmac module.
    key += bytes(64 - len(key))
    inner = hashlib.sha256(bytes(c ^ 0x36 for c in key) + data).digest()
    return hashlib.sha256(bytes(c ^ 0x5C for c in key) + inner).digest()


def _nonces(curve, d, digest):
    """RFC 6979 §3.2 nonces for key d and digest, in order (a plain iterator, not steps):
    the first is the one; the next ones only if a signature with it has r or s zero."""
    n = curve.n
    size = (curve.n_bits + 7) // 8
    x = d.to_bytes(size, "big")
    h = (_bits2int(curve, digest) % n).to_bytes(size, "big")  # bits2octets
    v = b"\x01" * 32
    k = _hmac(bytes(32), v + b"\x00" + x + h)
    v = _hmac(k, v)
    k = _hmac(k, v + b"\x01" + x + h)
    v = _hmac(k, v)
    while True:
        t = b""
        while len(t) < size:
            v = _hmac(k, v)
            t += v
        c = _bits2int(curve, t)
        if 0 < c < n:
            yield c
        k = _hmac(k, v + b"\x00")
        v = _hmac(k, v)


def encode_signature(r, s):
    """DER SEQUENCE { INTEGER r, INTEGER s }."""
    return asn1.tlv(asn1.SEQUENCE, asn1.integer(r) + asn1.integer(s))


def decode_signature(sig):
    """(r, s) from a DER SEQUENCE { INTEGER r, INTEGER s }, or None if it is not one."""
    try:
        seq = asn1.one(sig)
        rs = seq.integer(), seq.integer()
        seq.finish()
        return rs
    except asn1.DerError:
        return None


class PublicKey:
    def __init__(self, curve, x, y):
        if not curve.on_curve(x, y):
            raise ValueError("point not on %s" % curve.name)
        self.curve = curve
        self.x = x
        self.y = y
        self.default_hash = curve.hash

    @classmethod
    def from_bytes(cls, curve, data):
        """From SEC 1 §2.3.3 uncompressed form (compressed points are not supported)."""
        n = curve.size
        if len(data) != 2 * n + 1 or data[0] != 4:
            raise ValueError("not an uncompressed %s point" % curve.name)
        return cls(
            curve, int.from_bytes(data[1 : n + 1], "big"), int.from_bytes(data[n + 1 :], "big")
        )

    def to_bytes(self):
        """SEC 1 §2.3.3 uncompressed form: 04 || X || Y."""
        n = self.curve.size
        return b"\x04" + self.x.to_bytes(n, "big") + self.y.to_bytes(n, "big")

    def verify_digest(self, hash_name, digest, sig):
        return steps.run(self.verify_steps(hash_name, digest, sig))

    def verify_rs(self, digest, r, s):
        return steps.run(self._verify_rs(digest, r, s))

    def verify_steps(self, hash_name, digest, sig):
        """verify_digest as steps (see steps.py)."""
        rs = decode_signature(sig)
        if rs is None:
            return False
        return (yield from self._verify_rs(digest, rs[0], rs[1]))

    def _verify_rs(self, digest, r, s):
        c = self.curve
        n = c.n
        if not (0 < r < n and 0 < s < n):
            return False
        e = _bits2int(c, digest)
        w = _inverse(s, n)
        yield
        x, _, z = yield from _shamir(c, e * w % n, r * w % n, (self.x, self.y))
        if z == 0:
            return False
        # The affine x (X / Z^2, below p) is r or r + n modulo n; comparing X with r Z^2
        # spares an inversion.
        p = c.p
        zz = z * z % p
        return (r * zz - x) % p == 0 or (r + n < p and ((r + n) * zz - x) % p == 0)


class PrivateKey:
    """An ECDSA private key: the scalar d and its public key. Never log or send d."""

    def __init__(self, curve, d, public=None):
        if not 0 < d < curve.n:
            raise ValueError("private key out of range")
        self.curve = curve
        self.d = d
        self._public = public

    @classmethod
    def generate(cls, urandom, curve=P256):
        return steps.run(cls.generate_steps(urandom, curve))

    @classmethod
    def generate_steps(cls, urandom, curve=P256):
        """generate as steps. Rejection sampling: draws of the order's length until one is
        in [1, n-1] (on P-256 one draw in 2^32 is not); ValueError when the source gives
        the wrong length or _KEY_TRIES draws outside (a stuck source: all zeros, all ones)."""
        size = (curve.n_bits + 7) // 8
        for _ in range(_KEY_TRIES):
            b = urandom(size)
            if len(b) != size:
                raise ValueError("random source gave %d bytes, not %d" % (len(b), size))
            d = _bits2int(curve, b)
            if 0 < d < curve.n:
                key = cls(curve, d)
                yield from key.public_steps()
                return key
        raise ValueError("random source gives no key")

    def public_key(self):
        return steps.run(self.public_steps())

    def public_steps(self):
        """public_key as steps."""
        if self._public is None:
            c = self.curve
            x, y, z = yield from _mul(c, self.d, c.g)
            self._public = PublicKey(c, *_affine(c.p, x, y, z))  # on the curve, or a bug
        return self._public

    def sign_digest(self, digest):
        return steps.run(self.sign_steps(digest))

    def sign_rs(self, digest):
        return steps.run(self._sign_rs(digest))

    def sign_steps(self, digest):
        """sign_digest as steps: the DER signature of digest."""
        r, s = yield from self._sign_rs(digest)
        return encode_signature(r, s)

    def _sign_rs(self, digest):
        c = self.curve
        n = c.n
        e = _bits2int(c, digest)
        for k in _nonces(c, self.d, digest):
            x, y, z = yield from _mul(c, k, c.g)  # z != 0: 0 < k < n
            r = _affine(c.p, x, y, z)[0] % n
            yield
            if r:
                s = _inverse(k, n) * (e + r * self.d) % n
                yield
                if s:
                    return r, s
