"""The virtual ESP32 (tools/esp32sim.py, `make esp32sim`, `tools/wallbox-sim --esp32`): the
MicroPython unix port built 32-bit with the firmware and the sim board frozen in. Its manifest,
the program (32-bit, only frozen code imported), how wallbox-sim starts it (heap, folder, path)
and a boot against the development CSMS with `"target": "esp32"` in status.

The tests that need the program skip, saying why, when it cannot be built here (no MicroPython
source in $MPY_SRC, no 32-bit C compiler); otherwise it is built once per session.
"""

import os
import subprocess
import time
from pathlib import Path

import pytest

from tools import deploy, esp32sim, ota
from tools.harness import FAST, SIM, variables

ROOT = Path(__file__).resolve().parent.parent
BOOT = {
    "reason": "PowerUp",
    "chargingStation": {
        "model": "VirtualWallbox",
        "vendorName": "mpwallbox",
        "serialNumber": "CS1",
        "firmwareVersion": ota.current_version(),
    },
}
HB_VAR = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}


def run_program(prog, code, cwd):
    out = subprocess.run(
        [str(prog), "-c", code],
        cwd=cwd,
        env=dict(os.environ, MICROPYPATH=".frozen"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


class Recorder:
    """The functions a manifest calls, recording what it includes, requires and freezes."""

    def __init__(self):
        self.files, self.includes, self.requires = [], [], []

    def names(self):
        return {
            "include": self.includes.append,
            "require": self.requires.append,
            "module": self.module,
            "package": self.package,
        }

    def module(self, path, base_path=".", opt=None):
        assert opt == 0
        self.files.append(Path(base_path, path).as_posix())

    def package(self, path, files=None, base_path=".", opt=None):
        assert files and opt == 0
        self.files += [Path(base_path, path, f).as_posix() for f in files]


def test_manifest_freezes_the_sim_board_with_asyncio_and_ssl():
    rec = Recorder()
    exec(compile(esp32sim.manifest_text(), "manifest.py", "exec"), rec.names())
    assert rec.includes == ["$(MPY_DIR)/extmod/asyncio"] and rec.requires == ["ssl"]
    files = deploy.board_files("sim")
    assert sorted(rec.files) == sorted((ROOT / f).as_posix() for f in files)
    assert "boards/sim/run.py" in files and "boards/sim/control.py" in files
    assert "lib/bootsel.py" in files and "firmware/main.py" in files
    assert "boards/esp32.py" not in files  # the sim brings its own clock and network
    assert not [f for f in files if f.startswith(("boards/esp32_devkit", "boards/smartevse"))]
    bare = Recorder()
    exec(compile(esp32sim.manifest_text(bare=True), "manifest.py", "exec"), bare.names())
    assert bare.files == [] and bare.requires == ["ssl"]


def test_board_files_are_what_deploy_and_freeze_use():
    for board in deploy.boards():
        assert deploy.board_files(board) == deploy.sources(board)


def test_missing_source_is_reported_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("MPY_SRC", str(tmp_path / "nowhere"))
    assert esp32sim.find_source() is None
    with pytest.raises(esp32sim.Unavailable) as e:
        esp32sim.check()
    assert "MicroPython source not found" in str(e.value) and "\n" not in str(e.value)


def test_wallbox_sim_refuses_code_with_esp32():
    out = subprocess.run(
        [str(SIM), "--esp32", "--code", "build", "--csms", "ws://127.0.0.1:1/ocpp", "--id", "X"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2 and out.stdout == ""
    assert "--code and --esp32 exclude each other" in out.stderr


def test_program_is_32_bit(program):
    assert run_program(program, "import sys; print(sys.maxsize)", esp32sim.RUN_DIR) == [
        str(2**31 - 1)
    ]
    head = program.read_bytes()[:5]
    assert head == b"\x7fELF\x01"  # ELFCLASS32


def test_firmware_is_frozen_in(program):
    """With only .frozen on the path (not even the current folder, here the repository, which
    holds the sources) the whole firmware and the sim board import."""
    # not boards.sim.run: importing it starts the firmware
    code = (
        "import sys; sys.path[:] = ['.frozen']; "
        "import firmware.main, boards.sim, boards.sim.control, bootsel, asyncio, ssl; "
        "print(len(sys.path), firmware.main.__file__)"
    )
    assert run_program(program, code, ROOT) == ["1", "firmware/main.py"]
    assert list(esp32sim.RUN_DIR.iterdir()) == []  # where wallbox-sim runs it: no sources


def _child(sim, prog, timeout=10):
    """The pid of the program wallbox-sim started (in the sim's process group)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in Path("/proc").iterdir():
            if not p.name.isdigit():
                continue
            try:
                if os.getpgid(int(p.name)) == sim.proc.pid and os.readlink(p / "exe") == str(prog):
                    return p
            except OSError:
                continue
        time.sleep(0.1)
    raise AssertionError("no %s in the process group of wallbox-sim" % prog)


@pytest.mark.e2e
@pytest.mark.targets("esp32")
@pytest.mark.skipif(not Path("/proc/self/exe").exists(), reason="needs Linux /proc")
def test_wallbox_sim_runs_it_with_the_board_heap_from_an_empty_folder(program, csms, sims):
    sim = sims(csms.url, config={"variables": variables(FAST)})
    p = _child(sim, program)
    argv = (p / "cmdline").read_bytes().split(b"\0")[:-1]
    assert argv[1:5] == [b"-X", b"heapsize=112K", b"-m", b"boards.sim.run"]
    assert os.readlink(p / "cwd") == str(esp32sim.RUN_DIR)
    env = dict(e.split(b"=", 1) for e in (p / "environ").read_bytes().split(b"\0") if b"=" in e)
    assert env[b"MICROPYPATH"] == b".frozen"


@pytest.mark.e2e
@pytest.mark.targets("esp32")
def test_boots_against_the_csms_says_esp32_and_reboots_in_place(program, csms, sims):
    sim = sims(csms.url, config={"variables": variables(FAST)})
    st = csms.station(timeout=20)
    boot = csms.wait_call(st, "BootNotification", timeout=20)
    assert boot.msg[3] == BOOT
    status = sim.wait_status(lambda s: s["registration"] == "Accepted" and s["connected"])
    assert status["target"] == "esp32"
    got = csms.call(st, "GetVariables", {"getVariableData": [HB_VAR]})
    assert got == {
        "getVariableResult": [dict(HB_VAR, attributeStatus="Accepted", attributeValue="300")]
    }
    # a reboot starts the same program again in place (wallbox-sim's loop, exit status 3)
    assert csms.call(st, "Reset", {"type": "Immediate"}) == {"status": "Accepted"}
    csms.run(st.wait_closed(10), 15)
    st2 = csms.station(timeout=20)
    boot2 = csms.wait_call(st2, "BootNotification", timeout=20)
    assert boot2.msg[3] == dict(BOOT, reason="RemoteReset")
    status = sim.wait_status(lambda s: s["registration"] == "Accepted" and s["connected"])
    assert status["boot_count"] == 2 and status["target"] == "esp32"
    assert sim.cmd("quit") == {"ok": True}
    assert sim.proc.wait(10) == 0
