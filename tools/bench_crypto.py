# bench_crypto: speed of the signature library (lib/rsa, ecdsa, sha2, csr) on the MicroPython
# unix port. MIT licence.
"""Print, each on its own line as `name: value unit`:

- rsa2048_verify_ms: one RSA-2048 PKCS #1 v1.5 SHA-256 verification, digest given
  (rsa.PublicKey.verify_digest), median of 21.
- ecdsa_p256_verify_ms: one ECDSA P-256 verification of a DER signature, digest given
  (ecdsa.PublicKey.verify_digest), median of 21.
- sha256_mb_per_s: SHA-256 over 1 MiB read from an io.BytesIO in 4 KiB pieces through
  sha2.digest_stream, in MiB (2^20 bytes) per second, the best of 3.
- key_generation_ms: one P-256 key pair from os.urandom (ecdsa.PrivateKey.generate: the
  draw and the public key's scalar multiplication), median of 5.
- csr_signature_ms: the station's CSR for that key (csr.request_der: the DER and one RFC 6979
  signature), median of 5; the CSR must verify in `cryptography`.

Keys and signatures are made with `cryptography` at bench time; every verification must
succeed or the bench fails. The library's .py sources run on the unix port (64-bit, with
the host's speed): a figure for comparing changes, not for what an ESP32 takes.

`figures()` returns the first three values as a dict, `key_figures()` the last two; `main()`
prints them all.
"""

import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

ROOT = Path(__file__).resolve().parent.parent
MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"

SCRIPT = """
import time

import ecdsa
import rsa
import sha2


def median_us(verify, n=21):
    times = []
    for _ in range(n):
        t = time.ticks_us()
        ok = verify()
        times.append(time.ticks_diff(time.ticks_us(), t))
        if not ok:
            raise SystemExit("verification failed")
    times.sort()
    return times[n // 2]


n, e, digest, sig = V["rsa"]
key = rsa.PublicKey(n, e)
print("rsa_us", median_us(lambda: key.verify_digest("sha256", digest, sig)))

x, y, digest, sig = V["ec"]
key = ecdsa.PublicKey(ecdsa.P256, x, y)
print("ecdsa_us", median_us(lambda: key.verify_digest("sha256", digest, sig)))

class Stream:
    # 1 MiB as 256 pieces of the same 4 KiB: a download never has to fit in RAM.
    block = bytes(range(256)) * 16

    def __init__(self):
        self.left = 256

    def readinto(self, buf):
        if not self.left:
            return 0
        self.left -= 1
        n = len(buf)
        buf[:n] = self.block[:n]
        return n


best = None
for _ in range(3):
    t = time.ticks_us()
    d = sha2.digest_stream("sha256", Stream(), 4096)
    us = time.ticks_diff(time.ticks_us(), t)
    best = us if best is None else min(best, us)
if d != V["sha256"]:
    raise SystemExit("wrong SHA-256")
print("sha256_us", best, 1 << 20)
"""


def vectors():
    msg = b"mpwallbox bench"
    digest = hashlib.sha256(msg).digest()
    rk = rsa.generate_private_key(65537, 2048)
    rn = rk.public_key().public_numbers()
    ek = ec.generate_private_key(ec.SECP256R1())
    en = ek.public_key().public_numbers()
    return {
        "rsa": (rn.n, rn.e, digest, rk.sign(msg, padding.PKCS1v15(), hashes.SHA256())),
        "ec": (en.x, en.y, digest, ek.sign(msg, ec.ECDSA(hashes.SHA256()))),
        "sha256": hashlib.sha256(bytes(range(256)) * 4096).digest(),
    }


KEY_SCRIPT = """
import binascii
import os
import time

import csr
import ecdsa


def median_us(fn, n=5):
    times = []
    for _ in range(n):
        t = time.ticks_us()
        out = fn()
        times.append(time.ticks_diff(time.ticks_us(), t))
    times.sort()
    return times[n // 2], out


us, key = median_us(lambda: ecdsa.PrivateKey.generate(os.urandom))
print("key_us", us)
us, der = median_us(lambda: csr.request_der(key, "CS1", "mpwallbox bench"))
print("csr_us", us)
print("csr", binascii.hexlify(der).decode())
"""


def _micropython(text):
    """stdout of the unix port running `text` with lib/ on its path."""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "bench_crypto_mp.py"
        script.write_text(text)
        env = dict(os.environ, MICROPYPATH=".frozen:%s" % (ROOT / "lib"))  # asyncio is frozen
        out = subprocess.run(
            [str(MICROPYTHON), str(script)], env=env, capture_output=True, text=True, timeout=300
        )
    if out.returncode:
        raise SystemExit("bench_crypto failed:\n" + out.stdout + out.stderr)
    return out.stdout


def key_figures():
    """{"key_generation_ms", "csr_signature_ms"} -> float; SystemExit when the CSR does not
    verify."""
    from cryptography import x509

    got = dict(line.split() for line in _micropython(KEY_SCRIPT).splitlines())
    req = x509.load_der_x509_csr(bytes.fromhex(got["csr"]))
    if not req.is_signature_valid:
        raise SystemExit("bench_crypto: the CSR does not verify")
    return {
        "key_generation_ms": int(got["key_us"]) / 1000,
        "csr_signature_ms": int(got["csr_us"]) / 1000,
    }


def figures():
    """{"rsa2048_verify_ms", "ecdsa_p256_verify_ms", "sha256_mb_per_s"} -> float."""
    got = {}
    for line in _micropython("V = %r\n%s" % (vectors(), SCRIPT)).splitlines():
        name, *values = line.split()
        got[name] = [int(v) for v in values]
    us, size = got["sha256_us"]
    return {
        "rsa2048_verify_ms": got["rsa_us"][0] / 1000,
        "ecdsa_p256_verify_ms": got["ecdsa_us"][0] / 1000,
        "sha256_mb_per_s": size / (1 << 20) / (us / 1e6),
    }


def main():
    f = figures()
    print("rsa2048_verify_ms: %.2f ms" % f["rsa2048_verify_ms"], flush=True)
    print("ecdsa_p256_verify_ms: %.2f ms" % f["ecdsa_p256_verify_ms"], flush=True)
    print("sha256_mb_per_s: %.1f MB/s" % f["sha256_mb_per_s"], flush=True)
    f = key_figures()
    print("key_generation_ms: %.2f ms" % f["key_generation_ms"], flush=True)
    print("csr_signature_ms: %.2f ms" % f["csr_signature_ms"], flush=True)


if __name__ == "__main__":
    main()
