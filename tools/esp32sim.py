# esp32sim: the virtual ESP32: the MicroPython unix port built 32-bit with the firmware and the
# sim board frozen in, as an ESP32-WROOM runs it. MIT licence.
"""Build the virtual ESP32 program. `make esp32sim` and `tools/wallbox-sim --esp32` use this.

    python tools/esp32sim.py check           can it be built here? Else one line saying why
    python tools/esp32sim.py manifest        write build/esp32sim/manifest.py (if it changed)
    python tools/esp32sim.py build [--bare]  build build/esp32sim/micropython-esp32sim
    python tools/esp32sim.py size            text+data the frozen firmware adds to the program
    python tools/esp32sim.py boot STATE_DIR  the program to start now (the emulated OTA slots)

The MicroPython source is $MPY_SRC: a v1.28.0 checkout (with its submodules), a source
tarball, or a folder holding one (default: ../shared/micropython beside the repository). A
tarball is extracted to build/esp32sim/; mpy-cross and the port build there too, so nothing is
written outside build/. The port is the unix port's standard variant, MICROPY_FORCE_32BIT=1
(pointers of 32 bits, as on the ESP32), without btree and ffi, frozen with a manifest of our
own: asyncio and ssl (the standard variant's manifest also wants mip-cmdline), then the same
lines as `make freeze` writes for a board (tools/deploy.py freeze_lines) with the sim board's
files. --bare builds the same program without the firmware (micropython-bare), to measure
what the firmware adds.

Frozen bytecode stays in the program's read-only data, as it stays in flash on a board, so
`-X heapsize=112K` gives the firmware the GC heap of an ESP32-WROOM.

Updates on the virtual ESP32 are full images, as on a board with a frozen build: the program
itself (tools/ota.py image, built by build_variant from a patched copy of the sources). The sim
board emulates the two OTA app partitions in the state directory (boards/sim/ota.py), and
tools/wallbox-sim asks `boot` before each start which program runs: the built one (factory),
or the image the emulated otadata selects, rolled back after two unconfirmed boots.
"""

import argparse
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: tools.deploy

from tools import deploy  # noqa: E402

BUILD = ROOT / "build" / "esp32sim"
PROG = BUILD / "micropython-esp32sim"
BARE = BUILD / "micropython-bare"
RUN_DIR = BUILD / "run"  # the empty folder the program runs in (see wallbox-sim)
DEFAULT_SRC = ROOT.parent / "shared" / "micropython"
JOBS = "-j2"
PORT_OPTS = (
    "VARIANT=standard",
    "MICROPY_FORCE_32BIT=1",
    "MICROPY_PY_BTREE=0",
    "MICROPY_PY_FFI=0",
)


class Unavailable(Exception):
    """The program cannot be built here: the message says why and what to do."""


def src_setting():
    """$MPY_SRC as given (relative to the repository), or the default."""
    raw = os.environ.get("MPY_SRC") or str(DEFAULT_SRC)
    p = Path(raw).expanduser()
    return (p if p.is_absolute() else ROOT / p).resolve()


def find_source():
    """("tree", dir) for a checkout, ("tarball", file), or None when $MPY_SRC has neither."""
    p = src_setting()
    if (p / "py" / "mpconfig.h").is_file() and (p / "ports" / "unix").is_dir():
        return "tree", p
    if p.is_file() and ".tar" in p.name:
        return "tarball", p
    if p.is_dir():
        found = sorted(p.glob("micropython-*.tar*"))
        if found:
            return "tarball", found[-1]
    return None


def missing_source():
    return "MicroPython source not found (MPY_SRC=%s): a v1.28.0 checkout or tarball" % (
        src_setting()
    )


def cc32_ok():
    """True when gcc can compile and link a 32-bit program (gcc-multilib)."""
    with tempfile.TemporaryDirectory() as d:
        c = Path(d, "t.c")
        c.write_text("int main(void) { return 0; }\n")
        try:
            r = subprocess.run(
                ["gcc", "-m32", str(c), "-o", str(Path(d, "t"))], capture_output=True
            )
        except OSError:
            return False
        return r.returncode == 0


def missing_cc():
    return "no 32-bit C compiler: `make setup` as root installs gcc-multilib, or install it"


def check():
    """Raise Unavailable when the program cannot be built here."""
    if find_source() is None:
        raise Unavailable(missing_source())
    if not cc32_ok():
        raise Unavailable(missing_cc())


def manifest_text(bare=False):
    found = find_source()
    lines = [
        "# manifest: the virtual ESP32: the wallbox firmware with the sim board, frozen into the",
        "# 32-bit MicroPython unix port. Written by tools/esp32sim.py.",
        # another source changes the manifest, so make rebuilds the program
        "# MicroPython source: %s" % (found[1] if found else None),
        "",
        'include("$(MPY_DIR)/extmod/asyncio")',
        'require("ssl")',
        "",
    ]
    if not bare:
        lines += deploy.freeze_lines(deploy.board_files("sim"))
    return "\n".join(lines)


def write_if_changed(path, text):
    """Write `text` to `path` unless it holds it already (its time then stays, so make does not
    rebuild what depends on it). True when written."""
    try:
        if path.read_text() == text:
            return False
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return True


def _run(argv):
    """Run a build step; its output goes to stderr (stdout carries only our figures)."""
    print("esp32sim: " + " ".join(str(a) for a in argv), file=sys.stderr, flush=True)
    subprocess.run([str(a) for a in argv], check=True, stdout=sys.stderr)


def source_tree():
    """(tree, tag): the MicroPython tree to build from, a tarball extracted under build/ once;
    the tag names the source (what it was built from)."""
    found = find_source()
    if found is None:
        raise Unavailable(missing_source())
    kind, path = found
    if kind == "tree":
        return path, str(path)
    with tarfile.open(path) as tf:
        top = tf.next().name.split("/")[0]
    tree = BUILD / top
    stamp = BUILD / (top + ".extracted")
    mark = "%s %d %d\n" % (path, path.stat().st_size, int(path.stat().st_mtime))
    if tree.is_dir() and stamp.exists() and stamp.read_text() == mark:
        return tree, mark
    shutil.rmtree(tree, ignore_errors=True)
    BUILD.mkdir(parents=True, exist_ok=True)
    _run(["tar", "-xf", path, "-C", BUILD])
    stamp.write_text(mark)
    return tree, mark


def _same_source(build_dir, tag):
    """Empty `build_dir` when it was built from another source: its objects and dependency
    files would not tell make (an extracted tarball keeps the old file times)."""
    mark = build_dir / "source.txt"
    try:
        if mark.read_text() == tag:
            return
    except OSError:
        pass
    shutil.rmtree(build_dir, ignore_errors=True)
    build_dir.mkdir(parents=True)
    mark.write_text(tag)


def build(bare=False):
    """Build the program (or the bare one); incremental: make only redoes what changed."""
    name = "bare" if bare else "esp32sim"
    man = BUILD / ("manifest-bare.py" if bare else "manifest.py")
    return _build(name, man, manifest_text(bare), BARE if bare else PROG)


def _build(name, man, text, out):
    """Build the port into build/esp32sim/port-NAME from manifest `text` (written to `man`);
    the program copied to `out`."""
    if not cc32_ok():
        raise Unavailable(missing_cc())
    BUILD.mkdir(parents=True, exist_ok=True)
    with open(BUILD / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time (parallel test sessions)
        tree, tag = source_tree()
        mpy_cross = BUILD / "mpy-cross" / "mpy-cross"
        _same_source(mpy_cross.parent, tag)
        _run(["make", "-s", "-C", tree / "mpy-cross", JOBS, "BUILD=%s" % mpy_cross.parent])
        write_if_changed(man, text)
        port = BUILD / ("port-" + name)
        _same_source(port, tag)
        _run(
            ["make", "-C", tree / "ports" / "unix", JOBS, *PORT_OPTS]
            + ["MICROPY_MPYCROSS=%s" % mpy_cross, "MICROPY_MPYCROSS_DEPENDENCY=%s" % mpy_cross]
            + ["FROZEN_MANIFEST=%s" % man, "BUILD=%s" % port, "PROG=micropython"]
        )
        tmp = out.with_name(out.name + ".tmp")
        shutil.copy(port / "micropython", tmp)  # dated now: make sees it is new
        os.replace(tmp, out)  # a running copy keeps its file; the next start takes the new one
        RUN_DIR.mkdir(exist_ok=True)
    return out


def build_variant(out, overrides):
    """Build the program from a copy of the sources, `overrides` mapping a repo path to its
    replacement text (tools/ota.py image: version.py), into file `out`. The copy and the port
    build live in build/esp32sim/variant-src and port-variant, so the normal build stays as
    it is; one variant build at a time (the lock), each recompiling the frozen code."""
    BUILD.mkdir(parents=True, exist_ok=True)
    with open(BUILD / ".variant.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        src = BUILD / "variant-src"
        shutil.rmtree(src, ignore_errors=True)
        files = deploy.board_files("sim")
        for rel in files:
            dest = src / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if rel in overrides:
                dest.write_text(overrides[rel])
            else:
                shutil.copy(ROOT / rel, dest)  # dated now: the frozen code is compiled again
        lines = manifest_text().splitlines()
        i = lines.index("ROOT = %r" % ROOT.as_posix())
        lines[i] = "ROOT = %r" % src.as_posix()
        text = "\n".join(lines)
        return _build("variant", BUILD / "manifest-variant.py", text, Path(out))


# ---- the emulated OTA partitions: which program starts (tools/wallbox-sim) -------------------
# boards/sim/ota.py writes them from the firmware; these names and the header layout are its.

OTADATA = "otadata.json"
FACTORY = "factory"
MAX_TRIES = 2
HEADER = 64
ELF = b"\x7fELF"


def _save_otadata(state, doc):
    path = Path(state) / OTADATA
    tmp = path.with_name(OTADATA + ".tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)


def boot(state):
    """Before each start of the virtual ESP32: the program to run for state directory `state`,
    the otadata updated (atomically) as an ESP32 bootloader with rollback does it: the factory
    program without otadata; an image just set to boot runs on trial, MAX_TRIES starts (a crash
    or a power loss counts) to confirm itself, then the previous program runs again. An image
    run is copied out of its partition file into STATE/ota_N.run."""
    state = Path(state)
    try:
        doc = json.loads((state / OTADATA).read_text())
    except (OSError, ValueError):
        doc = None
    if not isinstance(doc, dict):
        return PROG
    label = doc.get("boot") or FACTORY
    if label != FACTORY and doc.get("trial"):
        if doc.get("tries", 0) >= MAX_TRIES:
            print(
                "esp32sim: %s not confirmed after %d boots: rolling back" % (label, MAX_TRIES),
                file=sys.stderr,
            )
            doc["failed"] = label
            label = doc.get("prev") or FACTORY
            doc.update(boot=label, trial=False, tries=0)
        else:
            doc["tries"] = doc.get("tries", 0) + 1  # counted before the start: a crash counts
    if label != FACTORY and not _extract(state, doc, label):
        print("esp32sim: %s holds no valid program: factory program" % label, file=sys.stderr)
        doc["failed"] = label
        label = FACTORY
        doc.update(boot=label, trial=False, tries=0)
    doc["running"] = label
    _save_otadata(state, doc)
    return PROG if label == FACTORY else state / (label + ".run")


def _extract(state, doc, label):
    """Copy the program of partition `label` into STATE/LABEL.run (an executable); False when
    the partition holds no valid program."""
    n = (doc.get("len") or {}).get(label)
    try:
        with open(state / (label + ".img"), "rb") as f:
            f.seek(HEADER)
            data = f.read(n or 0)
    except OSError:
        return False
    if not n or len(data) != n or data[:4] != ELF:
        return False
    out = state / (label + ".run")
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o755)
    os.replace(tmp, out)
    return True


def text_data(prog):
    """text + data of a program, as `size` counts them."""
    out = subprocess.run(["size", str(prog)], capture_output=True, text=True, check=True)
    text, data = out.stdout.splitlines()[1].split()[:2]
    return int(text) + int(data)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="tools/esp32sim.py", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("check", help="say whether the program can be built here")
    sub.add_parser("manifest", help="write build/esp32sim/manifest.py if it changed")
    p = sub.add_parser("build", help="build the program")
    p.add_argument("--bare", action="store_true", help="without the firmware")
    sub.add_parser("size", help="text+data the frozen firmware adds (builds both programs)")
    p = sub.add_parser("boot", help="the program to start for a state directory (wallbox-sim)")
    p.add_argument("state_dir")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "check":
            check()
            print("esp32sim: can build from %s" % find_source()[1])
        elif args.cmd == "manifest":
            write_if_changed(BUILD / "manifest.py", manifest_text())
        elif args.cmd == "boot":
            print(boot(args.state_dir))
        elif args.cmd == "build":
            print("esp32sim: built %s" % build(args.bare).relative_to(ROOT))
        else:
            full, bare = text_data(build()), text_data(build(bare=True))
            print("esp32sim_text_data_bytes: %d" % full)
            print("esp32sim_bare_text_data_bytes: %d" % bare)
            print("esp32sim_firmware_bytes: %d" % (full - bare))
    except Unavailable as e:
        print("esp32sim: %s" % e, file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as e:
        print("esp32sim: failed: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
