"""lib/steps.py, and the crypto modules' verifications as steps: the same results as the
plain calls, errors passed through, and pauses often enough for other asyncio tasks."""

import asyncio
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from test_crypto_x509 import NOW, RSA_KEYS, build, ca_cert, sign_data

import ecdsa
import rsa
import sha2
import steps
import x509


def counted(gen):
    """(result, number of pauses) of a generator of steps."""
    n = 0
    try:
        while True:
            next(gen)
            n += 1
    except StopIteration as e:
        return e.value, n


def test_run_and_run_async():
    def work(x):
        yield
        yield
        return x * 2

    def outer():
        a = yield from work(2)
        return a + (yield from work(10))

    assert steps.run(outer()) == 24
    assert asyncio.run(steps.run_async(outer())) == 24
    assert counted(outer()) == (24, 4)


def test_errors_pass_through():
    def failing():
        yield
        raise x509.CertError("no")

    with pytest.raises(x509.CertError):
        steps.run(failing())
    with pytest.raises(x509.CertError):
        asyncio.run(steps.run_async(failing()))


def test_pauses_of_each_kind_of_work():
    msg = b"m"
    nums = RSA_KEYS[0].public_key().public_numbers()
    key = rsa.PublicKey(nums.n, nums.e)
    d = hashlib.sha256(msg).digest()
    assert counted(key.verify_steps("sha256", d, sign_data(RSA_KEYS[0], msg))) == (True, 16)
    ok, n = counted(key.verify_steps("sha256", d, sign_data(RSA_KEYS[0], msg, "pss")))
    assert ok and n == 16 + 7  # e = 65537, then MGF1 over 223 bytes of DB
    assert counted(key.verify_steps("sha256", d, b"short")) == (False, 0)

    for curve, bits in ((ec.SECP256R1(), 256), (ec.SECP384R1(), 384)):
        k = ec.generate_private_key(curve)
        pn = k.public_key().public_numbers()
        pub = ecdsa.PublicKey(ecdsa.P256 if bits == 256 else ecdsa.P384, pn.x, pn.y)
        ok, n = counted(pub.verify_steps("sha256", d, sign_data(k, msg)))
        assert ok and bits // 4 - 2 <= n <= bits // 4 + 2  # 2 inversions, every 4 bits

    big = bytes(10000)
    assert counted(sha2.digest_steps("sha384", big)) == (hashlib.sha384(big).digest(), 3)
    assert counted(sha2.digest_steps("sha256", b"")) == (hashlib.sha256().digest(), 0)


def test_pure_sha384_pauses_after_every_block(monkeypatch):
    data = bytes(range(250)) * 4
    want = hashlib.sha384(data).digest()
    monkeypatch.delattr(hashlib, "sha384")  # as on an ESP32
    assert counted(sha2.digest_steps("sha384", data)) == (want, 8)


def test_chain_and_data_signature_between_other_tasks():
    root_key = ec.generate_private_key(ec.SECP384R1())
    mid_key = RSA_KEYS[1]
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    _, root = ca_cert("Root", root_key, hash_name="sha384")
    _, mid = ca_cert("Mid", mid_key, "Root", root_key, hash_name="sha384")
    _, leaf = build("Signer", leaf_key, "Mid", mid_key, pss_salt=32)
    data = b"firmware" * 1000
    sig = sign_data(leaf_key, data)

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        t = asyncio.create_task(ticker())
        await steps.run_async(x509.chain_steps([leaf, mid], [root], NOW))
        ok = await steps.run_async(x509.data_signature_steps(leaf, data, sig))
        bad = await steps.run_async(x509.data_signature_steps(leaf, data + b"!", sig))
        with pytest.raises(x509.CertError, match="not valid"):
            await steps.run_async(x509.chain_steps([leaf, mid], [root], NOW + 10**9))
        t.cancel()
        return ok, bad, ticks

    ok, bad, ticks = asyncio.run(main())
    assert ok and not bad
    # P-384 (98 pauses) and RSA (23) for the chain, P-256 (66) twice for the data.
    assert ticks > 96 + 23 + 2 * 60
