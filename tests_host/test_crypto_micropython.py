"""The crypto modules of lib/ on the MicroPython unix port, on signatures and certificates
made by `cryptography`: the same answers as under CPython, for good and bad input."""

import hashlib
import os
import random
import subprocess
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from test_crypto_x509 import (
    FUZZ_CA,
    FUZZ_DER,
    NOW,
    RSA_KEYS,
    build,
    ca_cert,
    pem,
    sign_data,
    v1,
)

import x509

ROOT = Path(__file__).resolve().parent.parent
MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"

SCRIPT = """
import asyncio
import io

import ecdsa
import rsa
import sha2
import steps
import x509


def check(name, cond):
    print(name, "ok" if cond else "FAILED")


def cert_error(f, *args):
    try:
        f(*args)
    except x509.CertError:
        return True
    return False


def flip(b, i):
    b = bytearray(b)
    b[i] ^= 1
    return bytes(b)


n, e, digest, sig1, sig2 = V["rsa"]
key = rsa.PublicKey(n, e)
check("rsa2048 pkcs1v15", key.verify_pkcs1v15("sha256", digest, sig1))
check("rsa2048 pkcs1v15 tampered", not key.verify_digest("sha256", digest, flip(sig1, 100)))
check("rsa2048 pss", key.verify_pss("sha256", digest, sig2))
check("rsa2048 pss salt 222", key.verify_pss("sha256", digest, sig2, 222))
check("rsa2048 pss as pkcs1v15", not key.verify_pkcs1v15("sha256", digest, sig2))
check("rsa2048 pss other digest", not key.verify_digest("sha256", flip(digest, 0), sig2))

for name, curve, x, y, hash_name, data, sig in V["ec"]:
    key = ecdsa.PublicKey(getattr(ecdsa, curve), x, y)
    d = sha2.new(hash_name, data).digest()
    name += " " + hash_name
    check(name, key.verify_digest(hash_name, d, sig))
    check(name + " tampered", not key.verify_digest(hash_name, d, flip(sig, 9)))
    check(name + " other data", not key.verify_digest(hash_name, flip(d, 3), sig))

for size, want in V["sha384"]:
    data = bytes(i * 7 & 255 for i in range(size))
    check("sha384 %d bytes" % size, sha2.new("sha384", data).digest() == want)

leaf, mid, root = x509.load_pem(V["pem"])
stranger = x509.Cert.from_der(V["stranger"])
now = V["now"]
check("fields", (leaf.serial, leaf.not_before, leaf.subject[-1]) == V["fields"])
check("issuer key bits", sha2.new("sha256", mid.public_key_bits).digest() == V["mid_key_hash"])
check("chain", x509.verify_chain([leaf, mid], [stranger, root], now) is None)
check("chain expired", cert_error(x509.verify_chain, [leaf, mid], [root], now + 400 * 86400))
check("chain stranger", cert_error(x509.verify_chain, [leaf, mid], [stranger], now))
check("chain missing link", cert_error(x509.verify_chain, [leaf], [root], now))
v1_root = x509.Cert.from_der(V["v1_root"])
v1_leaf = x509.Cert.from_der(V["v1_leaf"])
check("v1 root", v1_root.version == 1 and x509.verify_chain([v1_leaf], [v1_root], now) is None)
check("v1 no intermediate", cert_error(x509.verify_chain, [v1_leaf, v1_root], [stranger], now))
tampered = x509.Cert.from_der(flip(leaf.der, leaf.der.find(b"Signer")))  # "Rigner"
check("leaf tampered", cert_error(tampered.verify_signed_by, mid))

data = V["update"]
h = sha2.new(leaf.public_key.default_hash)
for i in range(0, len(data), 4096):
    h.update(data[i : i + 4096])
check("update signature", x509.verify_data_signature(leaf, h, V["update_sig"]))
check("update stream", x509.verify_data_signature(leaf, io.BytesIO(data), V["update_sig"]))
check("update tampered", not x509.verify_data_signature(leaf, flip(data, 5000), V["update_sig"]))


async def interleaved():
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep_ms(0)

    t = asyncio.create_task(ticker())
    await steps.run_async(x509.chain_steps([leaf, mid], [root], now))
    ok = await steps.run_async(x509.data_signature_steps(leaf, data, V["update_sig"]))
    t.cancel()
    return ok, ticks


ok, ticks = asyncio.run(interleaved())
check("verification in steps lets other tasks run", ok and ticks > 100)

ca = x509.Cert.from_der(V["fuzz_ca"])
outcomes = []
for changes in V["fuzz"]:
    der = bytearray(V["fuzz_der"])
    for at, value in changes:
        der[at % len(der)] = value
    try:
        c = x509.Cert.from_der(bytes(der))
    except x509.CertError:
        outcomes.append("E")  # refused
        continue
    outcomes.append("P" if cert_error(c.verify_signed_by, ca) else "V")  # parsed, verified
import asn1  # noqa: E402

ns = [0, 1, 255, 256, (1 << 4095) + 5, (1 << 4096) - 1, 1 << 9000]
check("bit_length", [asn1.bit_length(n) for n in ns] == [0, 1, 8, 9, 4096, 4096, 9001])
print("fuzz", "".join(outcomes))
"""


def outcome(der, ca):
    try:
        c = x509.Cert.from_der(der)
    except x509.CertError:
        return "E"
    try:
        c.verify_signed_by(ca)
        return "V"
    except x509.CertError:
        return "P"


def vectors():
    v = {"now": NOW}
    key = RSA_KEYS[0]
    msg = b"mpwallbox firmware 1.0"
    nums = key.public_key().public_numbers()
    v["rsa"] = (
        nums.n,
        nums.e,
        hashlib.sha256(msg).digest(),
        sign_data(key, msg),
        sign_data(key, msg, "pss"),
    )
    v["ec"] = []
    for name, curve, pcurve in (
        ("P-256", "P256", ec.SECP256R1()),
        ("P-384", "P384", ec.SECP384R1()),
    ):
        for hash_name in ("sha256", "sha384"):
            k = ec.generate_private_key(pcurve)
            pn = k.public_key().public_numbers()
            sig = sign_data(k, msg, hash_name=hash_name)
            v["ec"].append((name, curve, pn.x, pn.y, hash_name, msg, sig))
    v["sha384"] = [
        (n, hashlib.sha384(bytes(i * 7 & 255 for i in range(n))).digest())
        for n in (0, 111, 112, 1000)
    ]

    # Root (P-384, ecdsa-with-SHA384: pure SHA-384 on MicroPython) -> Mid (RSA, signs with
    # PSS) -> Signer (P-256).
    root_key = ec.generate_private_key(ec.SECP384R1())
    mid_key = RSA_KEYS[1]
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    root_der, _ = ca_cert("Root", root_key, hash_name="sha384", not_after=NOW + 3650 * 86400)
    mid_der, mid = ca_cert("Mid", mid_key, "Root", root_key, hash_name="sha384")
    leaf_der, leaf = build(
        "Signer",
        leaf_key,
        "Mid",
        mid_key,
        serial=2**100 + 1,
        pss_salt=32,
        usage=("digital_signature",),
    )
    stranger_der, _ = ca_cert("Root", ec.generate_private_key(ec.SECP384R1()))
    v["pem"] = (b"bundle\n" + pem(leaf_der) + pem(mid_der) + pem(root_der)).decode()
    v["stranger"] = stranger_der
    v["fields"] = (leaf.serial, leaf.not_before, ("CN", "Signer"))
    v["mid_key_hash"] = hashlib.sha256(mid.public_key_bits).digest()
    v1_key = ec.generate_private_key(ec.SECP256R1())
    v["v1_root"], _ = v1("Root", v1_key)  # a version 1 root, named as the stranger
    v["v1_leaf"], _ = build("Signer", leaf_key, "Root", v1_key)
    v["update"] = os.urandom(10000)
    v["update_sig"] = sign_data(leaf_key, v["update"])

    rng = random.Random(6)
    v["fuzz"] = [
        [(rng.randrange(len(FUZZ_DER)), rng.randrange(256)) for _ in range(rng.randint(1, 3))]
        for _ in range(150)
    ]
    v["fuzz_der"] = FUZZ_DER
    v["fuzz_ca"] = FUZZ_CA.der
    return v


def test_crypto_on_micropython(tmp_path):
    v = vectors()
    script = tmp_path / "mp_crypto.py"
    script.write_text("V = %r\n%s" % (v, SCRIPT))
    env = dict(os.environ, MICROPYPATH=".frozen:%s" % (ROOT / "lib"))  # asyncio is frozen
    out = subprocess.run(
        [str(MICROPYTHON), str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    fuzz = lines.pop()
    assert lines and all(line.endswith(" ok") for line in lines), out.stdout
    assert len(lines) == 6 + 3 * 4 + 4 + 7 + 2 + 3 + 1 + 1

    want = []
    for changes in v["fuzz"]:
        der = bytearray(FUZZ_DER)
        for at, value in changes:
            der[at % len(der)] = value
        want.append(outcome(bytes(der), FUZZ_CA))
    assert fuzz == "fuzz " + "".join(want)  # the same verdicts as under CPython
    assert set(want) >= {"E", "P"}
