# sha2: streaming SHA-384 and SHA-512 in pure Python (FIPS 180-4), and hashes by name.
# MIT licence. Ours because MicroPython's hashlib on the ESP32 has only sha256, sha1 and md5,
# and no maintained package offers the SHA-512 family for MicroPython.
#
#   new(name, data=b"")       a hash object with update(data) and digest(): hashlib's when it
#                             has `name`, else SHA384/SHA512 below; name is "sha256",
#                             "sha384" or "sha512" (ValueError for anything else)
#   SIZES[name]               digest length in bytes
#   digest_stream(name, f)    the digest of everything f.readinto() gives, read in 4 KB pieces
#   digest_steps(name, data)  the digest of bytes or a stream as steps (steps.py)
#   SHA384(data), SHA512(data)   the pure-Python ones, also usable directly
#
# Words are 64 bits, kept as Python ints and masked after each addition; MicroPython's ints
# grow to arbitrary precision, so this runs on 32-bit ports too (slowly: every word is a
# big integer there). digest() may be called any number of times and update() goes on after
# it, unlike MicroPython's hashlib, whose objects are final after digest().
#
# Speed: about 400 KB/s on the unix port; not measured on an ESP32, where it is likely tens
# of times slower. Code hashing a download with SHA384 between other asyncio tasks should
# feed it a few 128-byte blocks per turn; hashlib's sha256 is C and takes 4 KB per turn.

import hashlib
import struct

import steps

_M = 0xFFFFFFFFFFFFFFFF

SIZES = {"sha256": 32, "sha384": 48, "sha512": 64}

# FIPS 180-4 §4.2.3: the first 64 bits of the fractional parts of the cube roots of the first
# 80 primes (tests_host/test_crypto_sha2.py derives them again).
_K = (
    0x428A2F98D728AE22, 0x7137449123EF65CD, 0xB5C0FBCFEC4D3B2F, 0xE9B5DBA58189DBBC,
    0x3956C25BF348B538, 0x59F111F1B605D019, 0x923F82A4AF194F9B, 0xAB1C5ED5DA6D8118,
    0xD807AA98A3030242, 0x12835B0145706FBE, 0x243185BE4EE4B28C, 0x550C7DC3D5FFB4E2,
    0x72BE5D74F27B896F, 0x80DEB1FE3B1696B1, 0x9BDC06A725C71235, 0xC19BF174CF692694,
    0xE49B69C19EF14AD2, 0xEFBE4786384F25E3, 0x0FC19DC68B8CD5B5, 0x240CA1CC77AC9C65,
    0x2DE92C6F592B0275, 0x4A7484AA6EA6E483, 0x5CB0A9DCBD41FBD4, 0x76F988DA831153B5,
    0x983E5152EE66DFAB, 0xA831C66D2DB43210, 0xB00327C898FB213F, 0xBF597FC7BEEF0EE4,
    0xC6E00BF33DA88FC2, 0xD5A79147930AA725, 0x06CA6351E003826F, 0x142929670A0E6E70,
    0x27B70A8546D22FFC, 0x2E1B21385C26C926, 0x4D2C6DFC5AC42AED, 0x53380D139D95B3DF,
    0x650A73548BAF63DE, 0x766A0ABB3C77B2A8, 0x81C2C92E47EDAEE6, 0x92722C851482353B,
    0xA2BFE8A14CF10364, 0xA81A664BBC423001, 0xC24B8B70D0F89791, 0xC76C51A30654BE30,
    0xD192E819D6EF5218, 0xD69906245565A910, 0xF40E35855771202A, 0x106AA07032BBD1B8,
    0x19A4C116B8D2D0C8, 0x1E376C085141AB53, 0x2748774CDF8EEB99, 0x34B0BCB5E19B48A8,
    0x391C0CB3C5C95A63, 0x4ED8AA4AE3418ACB, 0x5B9CCA4F7763E373, 0x682E6FF3D6B2B8A3,
    0x748F82EE5DEFB2FC, 0x78A5636F43172F60, 0x84C87814A1F0AB72, 0x8CC702081A6439EC,
    0x90BEFFFA23631E28, 0xA4506CEBDE82BDE9, 0xBEF9A3F7B2C67915, 0xC67178F2E372532B,
    0xCA273ECEEA26619C, 0xD186B8C721C0C207, 0xEADA7DD6CDE0EB1E, 0xF57D4F7FEE6ED178,
    0x06F067AA72176FBA, 0x0A637DC5A2C898A6, 0x113F9804BEF90DAE, 0x1B710B35131C471B,
    0x28DB77F523047D84, 0x32CAAB7B40C72493, 0x3C9EBE0A15C9BEBC, 0x431D67C49C100D4C,
    0x4CC5D4BECB3E42B6, 0x597F299CFC657E2A, 0x5FCB6FAB3AD6FAEC, 0x6C44198C4A475817,
)  # fmt: skip


def _compress(h, block):
    """Fold one 128-byte block into the eight state words h (FIPS 180-4 §6.4.2)."""
    w = list(struct.unpack(">16Q", block))
    for t in range(16, 80):
        x = w[t - 15]
        y = w[t - 2]
        s0 = (x >> 1 | x << 63) ^ (x >> 8 | x << 56) ^ (x >> 7)
        s1 = (y >> 19 | y << 45) ^ (y >> 61 | y << 3) ^ (y >> 6)
        w.append((w[t - 16] + (s0 & _M) + w[t - 7] + (s1 & _M)) & _M)
    a, b, c, d, e, f, g, k = h
    for t in range(80):
        # Rotations shift left into bits above 64; the masks drop them.
        s1 = ((e >> 14 | e << 50) ^ (e >> 18 | e << 46) ^ (e >> 41 | e << 23)) & _M
        t1 = k + s1 + (g ^ (e & (f ^ g))) + _K[t] + w[t]
        s0 = ((a >> 28 | a << 36) ^ (a >> 34 | a << 30) ^ (a >> 39 | a << 25)) & _M
        t2 = s0 + ((a & b) | (c & (a | b)))
        k = g
        g = f
        f = e
        e = (d + t1) & _M
        d = c
        c = b
        b = a
        a = (t1 + t2) & _M
    for i, v in enumerate((a, b, c, d, e, f, g, k)):
        h[i] = (h[i] + v) & _M


class SHA512:
    digest_size = 64
    block_size = 128
    # FIPS 180-4 §5.3.5: square roots of the first 8 primes, fractional parts.
    _IV = (
        0x6A09E667F3BCC908, 0xBB67AE8584CAA73B, 0x3C6EF372FE94F82B, 0xA54FF53A5F1D36F1,
        0x510E527FADE682D1, 0x9B05688C2B3E6C1F, 0x1F83D9ABFB41BD6B, 0x5BE0CD19137E2179,
    )  # fmt: skip

    def __init__(self, data=b""):
        self._h = list(self._IV)
        self._buf = bytearray(128)  # the pending part of a block
        self._used = 0  # bytes of _buf in use, always < 128
        self._len = 0  # message bytes so far
        if data:
            self.update(data)

    def update(self, data):
        data = memoryview(data)
        n = len(data)
        self._len += n
        i = 0
        if self._used:
            i = min(128 - self._used, n)
            self._buf[self._used : self._used + i] = data[:i]
            self._used += i
            if self._used < 128:
                return
            _compress(self._h, self._buf)
            self._used = 0
        while n - i >= 128:
            _compress(self._h, data[i : i + 128])
            i += 128
        self._buf[: n - i] = data[i:]
        self._used = n - i

    def digest(self):
        h = list(self._h)
        # 0x80, zeros up to 112 mod 128, then the message length in bits as 128 bits.
        tail = (
            bytes(self._buf[: self._used])
            + b"\x80"
            + bytes((111 - self._used) % 128)
            + (self._len * 8).to_bytes(16, "big")
        )
        for i in range(0, len(tail), 128):
            _compress(h, tail[i : i + 128])
        return struct.pack(">8Q", *h)[: self.digest_size]

    def copy(self):
        c = self.__class__()
        c._h = list(self._h)
        c._buf[:] = self._buf
        c._used = self._used
        c._len = self._len
        return c


class SHA384(SHA512):
    digest_size = 48
    # FIPS 180-4 §5.3.4: square roots of the 9th to 16th primes, fractional parts.
    _IV = (
        0xCBBB9D5DC1059ED8, 0x629A292A367CD507, 0x9159015A3070DD17, 0x152FECD8F70E5939,
        0x67332667FFC00B31, 0x8EB44A8768581511, 0xDB0C2E0D64F98FA7, 0x47B5481DBEFA4FA4,
    )  # fmt: skip


_PURE = {"sha384": SHA384, "sha512": SHA512}


def new(name, data=b""):
    """A hash object for `name`: hashlib's own when it has one (C, fast), else ours."""
    make = getattr(hashlib, name, None) if name in SIZES else None
    if make is None:
        make = _PURE.get(name)
        if make is None:
            raise ValueError("unsupported hash %s" % name)
    return make(data)


def digest_stream(name, f, chunk=4096):
    """The `name` digest of a stream, read with f.readinto() into one reused buffer."""
    return steps.run(digest_steps(name, f, chunk))


def digest_steps(name, data, chunk=None):
    """The `name` digest of data (bytes-like, or a stream read with readinto()) as steps
    (steps.py): a pause after each chunk, by default 4 KB for hashlib's hashes and one
    128-byte block for ours, which are slow."""
    h = new(name)
    if chunk is None:
        chunk = 128 if isinstance(h, SHA512) else 4096
    if hasattr(data, "readinto"):
        buf = bytearray(chunk)
        mv = memoryview(buf)
        while True:
            n = data.readinto(buf)
            if not n:
                return h.digest()
            h.update(mv[:n])
            yield
    mv = memoryview(data)
    for i in range(0, len(mv), chunk):
        h.update(mv[i : i + chunk])
        yield
    return h.digest()
