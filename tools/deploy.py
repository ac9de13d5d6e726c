# deploy: put the firmware on an ESP32 board: copy it (mpremote), flash stock MicroPython
# (esptool), or freeze it into a custom image (manifest.py). MIT licence.
"""The firmware on an ESP32, three ways. `make deploy`, `make flash`, `make freeze` call this.

    python tools/deploy.py files  BOARD
    python tools/deploy.py deploy BOARD --port PORT [--config FILE] [--dry-run]
    python tools/deploy.py flash  --port PORT --firmware FILE.bin [--dry-run]
    python tools/deploy.py freeze BOARD

BOARD is a folder of boards/ with a create() (esp32_devkit, smartevse_v3); sim is not one.

flash: a stock MicroPython image for the ESP32 (ESP32_GENERIC from micropython.org, or the
custom image of `freeze`): erase the whole flash, then write the image at 0x1000. Erasing also
wipes the filesystem: /config.json and /state go with it.

deploy: `make compile` first (the Makefile does it), then one mpremote session copies what
the board needs, as .mpy, into the device's filesystem: lib/ into /lib (on sys.path there, as
lib/ is on the host), firmware/ and boards/__init__, boards/drivers, boards/esp32 and
boards/BOARD into / (nothing of boards/sim, of other boards, of tests_host or tools), plus a
small /main.py that builds the board and runs firmware.main.run(board); on a crash it makes
the board safe (contactors open, CP in F), logs the traceback to the console and /crash.txt,
waits 5 s and resets. Ctrl-C reaches the REPL with the board made safe. The files go through a
staging folder, build/deploy/BOARD, copied with `fs cp -r` so that mpremote creates the
folders. A board whose display needs a micropython-lib package (an SSD1306: `ssd1306`) then
gets it with `mip install` in the same session (mpremote fetches it from micropython-lib's
index: the host needs the internet). --config FILE also copies FILE to /config.json
(csms_url, id, wifi, ...: see boards/esp32.py). Files of earlier deploys that are no longer
part of the set stay on the device; `mpremote fs rm -r :lib` (or a `flash`) clears them.
--dry-run prints the file list and the command line and touches nothing.

freeze: writes build/freeze/BOARD/manifest.py and main.py. The manifest includes the port's
own (`include("$(PORT_DIR)/boards/manifest.py")`: asyncio and the rest of a stock image),
requires the micropython-lib packages the board's display needs (`require("ssd1306")`, from
the checkout's lib/micropython-lib), then freezes lib/ as top-level modules, the firmware
package, this board's boards/ files and main.py, at optimisation level 0 so that tracebacks
keep line numbers. A frozen main.py runs at boot in place of /main.py
(shared/runtime/pyexec.c, pyexec_file_if_exists). To build the image (ESP-IDF installed and
exported, a MicroPython checkout in $MPY_DIR):

    make freeze BOARD=esp32_devkit
    make -C $MPY_DIR/mpy-cross
    cd $MPY_DIR/ports/esp32
    make submodules BOARD=ESP32_GENERIC
    make BOARD=ESP32_GENERIC BOARD_VARIANT=OTA \\
        FROZEN_MANIFEST=<repo>/build/freeze/esp32_devkit/manifest.py
    make flash PORT=/dev/ttyUSB0 \\
        FIRMWARE=$MPY_DIR/ports/esp32/build-ESP32_GENERIC-OTA/firmware.bin   # (in this repo)

The OTA variant has two 1.5 MiB app slots: the frozen code must fit in one (check the size
the build prints). Only /config.json (and the /state the firmware writes) then live in the
filesystem: `mpremote connect PORT fs cp config.json :config.json`.
"""

import argparse
import importlib.util
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MPY = Path("build/mpy")
STAGE = Path("build/deploy")
FREEZE = Path("build/freeze")
NOT_BOARDS = ("drivers", "sim")
FLASH_ADDR = "0x1000"  # where the ESP32 (not S2/S3/C3) image starts
FLASH_BAUD = "460800"
_BUILD_OTA = "$MPY_DIR/ports/esp32/build-ESP32_GENERIC-OTA"

MAIN_PY = """\
# main: start the wallbox firmware on the {board} board. Written by tools/deploy.py.
# MIT licence.

import sys
import time

import machine
import micropython

micropython.alloc_emergency_exception_buf(100)
board = None
try:
    import bootsel

    bootsel.activate("")  # an installed application slot (/slots/a or b) runs, if any
    from boards.{board} import create

    board = create()
    from firmware import main

    main.run(board)
except KeyboardInterrupt:  # Ctrl-C: to the REPL, with the contactors open
    if board is not None:
        board.safe()
    raise
except Exception as e:
    if board is not None:
        board.safe()
    sys.print_exception(e)
    try:
        with open("/crash.txt", "w") as f:
            sys.print_exception(e, f)
    except OSError:
        pass
    time.sleep(5)  # time to read the console, or to break a crash loop with Ctrl-C
machine.reset()
"""


# micropython-lib packages a display kind of the board data needs on the device
# (boards/esp32.py build_display): frozen by `freeze`, mip-installed by `deploy`.
DISPLAY_PACKAGES = {"ssd1306": "ssd1306"}


def boards():
    """The ESP32 boards: folders of boards/ with an __init__.py, except drivers and sim."""
    return sorted(
        p.parent.name
        for p in (ROOT / "boards").glob("*/__init__.py")
        if p.parent.name not in NOT_BOARDS
    )


def _py(folder, recursive=True):
    base = ROOT / folder
    found = base.rglob("*.py") if recursive else base.glob("*.py")
    return [p.relative_to(ROOT).as_posix() for p in found if "__pycache__" not in p.parts]


def sources(board):
    """The source files a board runs, repo-relative, sorted."""
    if board not in boards():
        raise SystemExit("unknown board %r (boards: %s)" % (board, ", ".join(boards())))
    return board_files(board)


def board_files(board):
    """The source files `board` runs, sim included (the virtual ESP32 freezes it), sorted."""
    files = _py("lib") + _py("firmware") + ["boards/__init__.py"]
    if board != "sim":
        files.append("boards/esp32.py")  # the sim has its own host clock and network
    files += _py("boards/drivers", recursive=False) + _py("boards/" + board)
    return sorted(files)


def board_data(board):
    """The BOARD dict of boards/BOARD (a data module: it imports no hardware module)."""
    path = ROOT / "boards" / board / "__init__.py"
    spec = importlib.util.spec_from_file_location("_board_data_" + board, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.BOARD


def packages(board):
    """The micropython-lib packages `board` needs beside its sources (its display's driver)."""
    display = board_data(board).get("display")
    kind = display and display.get("kind")
    return [DISPLAY_PACKAGES[kind]] if kind in DISPLAY_PACKAGES else []


def deploy_files(board):
    """(compiled file under build/mpy, path on the device) for every source of the board."""
    out = []
    for src in sources(board):
        mpy = src[:-3] + ".mpy"
        remote = "/" + mpy  # lib/x.mpy -> /lib/x.mpy, firmware/... -> /firmware/...
        out.append(((MPY / mpy).as_posix(), remote))
    return out


def main_py(board):
    return MAIN_PY.format(board=board)


def deploy_commands(board, port, config=None):
    stage = (STAGE / board).as_posix()
    argv = [sys.executable, "-m", "mpremote", "connect", port, "fs", "cp", "-r"]
    argv += [stage + "/lib", stage + "/firmware", stage + "/boards", stage + "/main.py", ":"]
    pkgs = packages(board)
    if pkgs:
        argv += ["+", "mip", "install", "--target", "/lib"] + pkgs
    if config:
        argv += ["+", "fs", "cp", str(config), ":config.json"]
    argv += ["+", "reset"]
    return [argv]


def flash_commands(port, firmware):
    esptool = [sys.executable, "-m", "esptool", "--chip", "esp32", "--port", port]
    return [
        esptool + ["erase-flash"],
        esptool + ["--baud", FLASH_BAUD, "write-flash", "-z", FLASH_ADDR, str(firmware)],
    ]


def freeze_lines(src):
    """Manifest lines freezing the sources `src` (repo-relative): lib/ as top-level modules, the
    firmware and boards packages, at opt 0 so that tracebacks keep line numbers. Shared by
    `freeze` and the virtual ESP32 (tools/esp32sim.py)."""
    lib = [s[len("lib/") :] for s in src if s.startswith("lib/")]
    fw = [s[len("firmware/") :] for s in src if s.startswith("firmware/")]
    bd = [s[len("boards/") :] for s in src if s.startswith("boards/")]
    lines = [
        "ROOT = %r" % ROOT.as_posix(),
        "",
        "# lib/: top-level modules on the device, as on the host (lib/ is on sys.path there)",
    ]
    lines += ['module("%s", base_path=ROOT + "/lib", opt=0)' % f for f in lib]
    lines += ["", "package(", '    "firmware",', "    files=("]
    lines += ['        "%s",' % f for f in fw]
    lines += ["    ),", "    base_path=ROOT,", "    opt=0,", ")", ""]
    lines += ["package(", '    "boards",', "    files=("]
    lines += ['        "%s",' % f for f in bd]
    lines += ["    ),", "    base_path=ROOT,", "    opt=0,", ")", ""]
    return lines


def manifest(board):
    """The text of build/freeze/BOARD/manifest.py."""
    freeze_dir = (ROOT / FREEZE / board).as_posix()
    lines = [
        "# manifest: the wallbox firmware for the %s board, frozen into a MicroPython image."
        % board,
        "# Written by tools/deploy.py freeze; how to build with it: tools/deploy.py's docstring.",
        "",
        'include("$(PORT_DIR)/boards/manifest.py")',
        "",
    ]
    pkgs = packages(board)
    if pkgs:  # micropython-lib's, from the checkout: not copied into this repository
        lines += ['require("%s")' % p for p in pkgs] + [""]
    lines += freeze_lines(sources(board))
    lines += ["# runs at boot in place of /main.py"]
    lines += ['module("main.py", base_path=%r, opt=0)' % freeze_dir, ""]
    return "\n".join(lines)


def _show(argv):
    return shlex.join(argv)


def _run(cmds, dry_run):
    for argv in cmds:
        print(_show(argv))
        if not dry_run:
            subprocess.run(argv, cwd=ROOT, check=True)


def cmd_deploy(args):
    files = deploy_files(args.board)
    for local, remote in files:
        print("%s -> :%s" % (local, remote))
    print("(generated) main.py -> :/main.py")
    if args.config:
        print("%s -> :/config.json" % args.config)
    cmds = deploy_commands(args.board, args.port, args.config)
    if not args.dry_run:
        missing = [local for local, _ in files if not (ROOT / local).exists()]
        if missing:
            raise SystemExit("not compiled: %s ... (run make compile)" % missing[0])
        stage = ROOT / STAGE / args.board
        shutil.rmtree(stage, ignore_errors=True)
        for local, remote in files:
            dest = stage / remote.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / local, dest)
        (stage / "main.py").write_text(main_py(args.board))
    _run(cmds, args.dry_run)


def cmd_flash(args):
    _run(flash_commands(args.port, args.firmware), args.dry_run)


def cmd_freeze(args):
    out = ROOT / FREEZE / args.board
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.py").write_text(manifest(args.board))
    (out / "main.py").write_text(main_py(args.board))
    path = (out / "manifest.py").as_posix()
    print("wrote %s (%d modules) and main.py" % (path, len(sources(args.board)) + 1))
    print("build an image with it (ESP-IDF exported, MicroPython checkout in $MPY_DIR):")
    print("  make -C $MPY_DIR/mpy-cross")
    print("  make -C $MPY_DIR/ports/esp32 submodules BOARD=ESP32_GENERIC")
    print(
        "  make -C $MPY_DIR/ports/esp32 BOARD=ESP32_GENERIC BOARD_VARIANT=OTA"
        " FROZEN_MANIFEST=%s" % path
    )
    print("then: make flash PORT=... FIRMWARE=%s/firmware.bin" % _BUILD_OTA)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="tools/deploy.py", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("files", help="the files a board runs")
    p.add_argument("board")
    p = sub.add_parser("deploy", help="copy the firmware to a board (mpremote)")
    p.add_argument("board")
    p.add_argument("--port", required=True)
    p.add_argument("--config", help="a config.json to copy to /config.json")
    p.add_argument("--dry-run", action="store_true")
    p = sub.add_parser("flash", help="erase and write a MicroPython image (esptool)")
    p.add_argument("--port", required=True)
    p.add_argument("--firmware", required=True)
    p.add_argument("--dry-run", action="store_true")
    p = sub.add_parser("freeze", help="write a manifest.py for a custom image")
    p.add_argument("board")
    args = ap.parse_args(argv)
    if args.cmd == "files":
        print("\n".join(sources(args.board)))
    elif args.cmd == "deploy":
        cmd_deploy(args)
    elif args.cmd == "flash":
        cmd_flash(args)
    else:
        cmd_freeze(args)


if __name__ == "__main__":
    main()
