"""lib/sha2.py: the pure-Python SHA-384/512 against hashlib, fed in any pieces."""

import hashlib
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sha2


def test_round_constants_are_the_cube_roots_of_the_first_80_primes():
    def iroot(x, k):  # floor of the k-th root: Newton's method from above
        r = 1 << (x.bit_length() // k + 1)
        while True:
            s = ((k - 1) * r + x // r ** (k - 1)) // k
            if s >= r:
                return r
            r = s

    primes = [n for n in range(2, 420) if all(n % d for d in range(2, n))][:80]
    mask = (1 << 64) - 1
    assert sha2._K == tuple(iroot(p << 192, 3) & mask for p in primes)
    assert sha2.SHA512._IV == tuple(iroot(p << 128, 2) & mask for p in primes[:8])
    assert sha2.SHA384._IV == tuple(iroot(p << 128, 2) & mask for p in primes[8:16])


@pytest.mark.parametrize("n", [0, 1, 55, 111, 112, 113, 127, 128, 129, 239, 240, 256, 1000])
def test_padding_boundaries(n):
    data = bytes(i * 31 & 0xFF for i in range(n))
    assert sha2.SHA384(data).digest() == hashlib.sha384(data).digest()
    assert sha2.SHA512(data).digest() == hashlib.sha512(data).digest()


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=700), st.lists(st.integers(0, 700), max_size=6))
def test_any_split_gives_hashlibs_digest(data, cuts):
    for cls, ref in ((sha2.SHA384, hashlib.sha384), (sha2.SHA512, hashlib.sha512)):
        h = cls()
        prev = 0
        for c in sorted(min(c, len(data)) for c in cuts) + [len(data)]:
            h.update(data[prev:c])
            prev = c
        assert h.digest() == ref(data).digest()
        assert h.digest() == ref(data).digest()  # digest() leaves the state alone
        h2 = h.copy()
        h.update(b"more")
        assert h.digest() == ref(data + b"more").digest()
        assert h2.digest() == ref(data).digest()


def test_update_takes_memoryview_and_bytearray():
    h = sha2.SHA384(bytearray(b"ab"))
    h.update(memoryview(b"xcdx")[1:3])
    assert h.digest() == hashlib.sha384(b"abcd").digest()


def test_new_by_name():
    for name, size in sha2.SIZES.items():
        h = sha2.new(name, b"abc")
        assert h.digest() == hashlib.new(name, b"abc").digest()
        assert len(h.digest()) == size
    for bad in ("md5", "sha1", "sha3_256", "blake2b", "", "SHA256"):
        with pytest.raises(ValueError):
            sha2.new(bad)


def test_new_falls_back_to_the_pure_classes(monkeypatch):
    monkeypatch.delattr(hashlib, "sha384")
    h = sha2.new("sha384", b"abc")
    assert isinstance(h, sha2.SHA384)
    assert h.digest() == sha2.SHA384(b"abc").digest()


@pytest.mark.parametrize("name", ["sha256", "sha384", "sha512"])
@pytest.mark.parametrize("n", [0, 1, 4095, 4096, 4097, 10000])
def test_digest_stream_reads_in_pieces(name, n):
    data = bytes(i & 0xFF for i in range(n))
    want = hashlib.new(name, data).digest()
    assert sha2.digest_stream(name, io.BytesIO(data)) == want
    assert sha2.digest_stream(name, io.BytesIO(data), chunk=100) == want
