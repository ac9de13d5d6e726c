"""Full-image updates on the virtual ESP32: the emulated OTA partitions of the sim board
(boards/sim/ota.py), the boot decision tools/wallbox-sim asks before each start
(tools/esp32sim.py boot) and tools/ota.py image. End to end, the image updates run in
test_e2e_firmware.py on the esp32 target.
"""

import hashlib
import json
import os
import struct
import subprocess
from pathlib import Path

import pytest

import boards.sim
from boards.sim import ota as simota
from ota_image import ImageError, Writer
from tools import esp32sim, ota

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = b"\x7fELF" + bytes(range(256)) * 40 + b"end"


def image(program=PROGRAM):
    return ota.pack_image(program)


def write(part, data, piece=1000):
    w = Writer(part)
    for i in range(0, len(data), piece):
        w.write(data[i : i + piece])
    w.finish()
    return w


def otadata(root):
    return json.loads((Path(root) / "otadata.json").read_text())


# -- the partition emulation ------------------------------------------------------------------


def test_the_layouts_agree():
    # tools/ota.py writes what boards/sim/ota.py checks and tools/esp32sim.py extracts
    assert ota.IMAGE_MAGIC == simota.MAGIC and ota.IMAGE_MAGIC[0] == 0xE9
    assert ota.IMAGE_HEADER == simota.HEADER == esp32sim.HEADER
    assert esp32sim.OTADATA == simota.OTADATA + ".json"
    assert esp32sim.FACTORY == simota.FACTORY
    assert esp32sim.MAX_TRIES == simota.MAX_TRIES
    assert esp32sim.ELF == simota.ELF


def test_partitions_from_the_factory_program(tmp_path):
    run = simota.running(str(tmp_path))
    assert run.info()[4] == "factory"
    nxt = run.get_next_update()
    assert nxt.info()[4] == "ota_0" and nxt.get_next_update().info()[4] == "ota_1"
    assert nxt.get_next_update().get_next_update().info()[4] == "ota_0"
    assert nxt.ioctl(4, 0) * nxt.ioctl(5, 0) == simota.SIZE == nxt.info()[3]
    with pytest.raises(OSError):
        nxt.ioctl(7, 0)  # not an operation of the block protocol here
    with pytest.raises(ValueError):
        simota.Partition(str(tmp_path), "nvs")
    # never written: erased flash, and no file made for reading it
    buf = bytearray(16)
    nxt.readblocks(3, buf)
    assert buf == b"\xff" * 16 and not (tmp_path / "ota_0.img").exists()


def test_an_image_written_and_set_to_boot(tmp_path):
    root = str(tmp_path)
    part = simota.running(root).get_next_update()
    w = write(part, image())
    assert w.label() == "ota_0"
    assert (tmp_path / "ota_0.img").stat().st_size == simota.SIZE
    buf = bytearray(simota.BLOCK)
    data = image()
    part.readblocks(1, buf)
    assert bytes(buf) == data[4096:8192]
    part.readblocks(2, buf)
    tail = len(data) - 8192
    assert bytes(buf[:tail]) == data[8192:]
    assert buf[tail:] == b"\xff" * (4096 - tail)  # padded like erased flash
    w.set_boot()
    assert otadata(root) == {
        "len": {"ota_0": len(PROGRAM)},
        "prev": "factory",
        "boot": "ota_0",
        "trial": True,
        "tries": 0,
    }


@pytest.mark.parametrize(
    "data",
    [
        b"\xe9" + bytes(300),  # an ESP32-like first byte, nothing else
        image()[:-1],  # truncated: the digest does not match
        image()[:64] + b"\x00ELF" + image()[68:],  # not a program
        image()[:8] + struct.pack("<I", simota.SIZE) + image()[12:],  # longer than the slot
    ],
    ids=["header", "truncated", "not-elf", "too-long"],
)
def test_set_boot_refuses_an_invalid_image(tmp_path, data):
    part = simota.running(str(tmp_path)).get_next_update()
    w = write(part, data)
    with pytest.raises(OSError) as e:
        w.set_boot()
    assert e.value.args[0] == -5379  # ESP_ERR_OTA_VALIDATE_FAILED
    assert not (tmp_path / "otadata.json").exists()


def test_a_digest_mismatch_is_refused(tmp_path):
    data = bytearray(image())
    data[200] ^= 1
    part = simota.running(str(tmp_path)).get_next_update()
    with pytest.raises(OSError):
        write(part, bytes(data)).set_boot()


def test_the_running_partition_and_factory_are_not_written(tmp_path):
    root = str(tmp_path)
    simota.save(root, {"running": "ota_0", "boot": "ota_0"})
    with pytest.raises(OSError):
        simota.Partition(root, "ota_0").writeblocks(0, bytearray(4096))
    with pytest.raises(OSError):
        simota.Partition(root, "factory").writeblocks(0, bytearray(4096))
    with pytest.raises(OSError):
        simota.Partition(root, "ota_1").writeblocks(0, bytearray(100))  # not a whole block
    # the image goes to the other one
    assert simota.running(root).get_next_update().info()[4] == "ota_1"


def test_an_image_larger_than_the_partition(tmp_path):
    part = simota.running(str(tmp_path)).get_next_update()
    w = Writer(part)
    with pytest.raises(ImageError):
        w.write(bytes(simota.SIZE + simota.BLOCK))


def test_mark_valid_confirms_only_the_trial_running(tmp_path):
    root = str(tmp_path)
    doc = {"boot": "ota_0", "running": "factory", "trial": True, "tries": 0, "prev": "factory"}
    simota.save(root, doc)
    simota.mark_app_valid_cancel_rollback(root)  # set to boot, not booted yet: stays on trial
    assert otadata(root) == doc
    simota.save(root, dict(doc, running="ota_0", tries=1))
    simota.Partition(root, "ota_0").mark_app_valid_cancel_rollback()
    assert otadata(root) == dict(doc, running="ota_0", trial=False, tries=0)


# -- the sim board's hooks ----------------------------------------------------------------------


def board(tmp_path):
    return boards.sim.Board(["--state-dir", str(tmp_path), "--id", "T1"])


def test_the_host_target_takes_no_image(tmp_path, monkeypatch):
    monkeypatch.setattr(boards.sim, "ESP32", False)
    b = board(tmp_path)
    assert b.app_partition() is None and b.running_app() is None
    b.confirm_app()
    assert not (tmp_path / "otadata.json").exists()


def test_the_esp32_target_offers_the_partitions(tmp_path, monkeypatch):
    monkeypatch.setattr(boards.sim, "ESP32", True)
    b = board(tmp_path)
    assert b.running_app() == "factory"
    write(b.app_partition(), image()).set_boot()
    assert b.running_app() == "factory"
    assert esp32sim.boot(tmp_path) == tmp_path / "ota_0.run"
    assert b.running_app() == "ota_0"
    assert b.app_partition().info()[4] == "ota_1"
    b.confirm_app()
    assert otadata(tmp_path)["trial"] is False


def test_the_emulation_runs_on_micropython(tmp_path):
    script = tmp_path / "t.py"
    script.write_text(
        "import sys\n"
        "from boards.sim import ota\n"
        "from ota_image import Writer\n"
        "data = open(sys.argv[1], 'rb').read()\n"
        "w = Writer(ota.running(sys.argv[2]).get_next_update())\n"
        "for i in range(0, len(data), 1000):\n"
        "    w.write(data[i:i + 1000])\n"
        "w.finish()\n"
        "w.set_boot()\n"
        "print(ota.load(sys.argv[2])['boot'])\n"
    )
    (tmp_path / "img").write_bytes(image())
    (tmp_path / "state").mkdir()
    out = subprocess.run(
        [str(ROOT / ".venv/bin/micropython"), str(script), str(tmp_path / "img")]
        + [str(tmp_path / "state")],
        env=dict(os.environ, MICROPYPATH=".frozen:%s/lib:%s" % (ROOT, ROOT)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (out.returncode, out.stdout, out.stderr) == (0, "ota_0\n", "")
    assert otadata(tmp_path / "state")["len"] == {"ota_0": len(PROGRAM)}


# -- the boot decision ----------------------------------------------------------------------------


def installed(tmp_path, program=PROGRAM):
    """A state dir with an image set to boot from the running program."""
    part = simota.running(str(tmp_path)).get_next_update()
    write(part, image(program)).set_boot()
    return part.info()[4]


def test_boot_without_otadata_runs_the_factory_program(tmp_path):
    assert esp32sim.boot(tmp_path) == esp32sim.PROG
    assert list(tmp_path.iterdir()) == []


def test_boot_runs_a_new_image_twice_then_rolls_back(tmp_path, capsys):
    assert installed(tmp_path) == "ota_0"
    for tries in (1, 2):
        run = esp32sim.boot(tmp_path)
        assert run == tmp_path / "ota_0.run"
        assert run.read_bytes() == PROGRAM and os.access(run, os.X_OK)
        doc = otadata(tmp_path)
        assert (doc["running"], doc["trial"], doc["tries"]) == ("ota_0", True, tries)
    # two boots without mark_app_valid_cancel_rollback: the factory program again
    assert esp32sim.boot(tmp_path) == esp32sim.PROG
    doc = otadata(tmp_path)
    assert (doc["boot"], doc["running"], doc["trial"], doc["failed"]) == (
        "factory",
        "factory",
        False,
        "ota_0",
    )
    assert "ota_0 not confirmed after 2 boots: rolling back" in capsys.readouterr().err
    assert esp32sim.boot(tmp_path) == esp32sim.PROG


def test_boot_keeps_a_confirmed_image(tmp_path):
    installed(tmp_path)
    esp32sim.boot(tmp_path)
    simota.mark_app_valid_cancel_rollback(str(tmp_path))
    for _ in range(3):
        assert esp32sim.boot(tmp_path) == tmp_path / "ota_0.run"
    assert otadata(tmp_path)["tries"] == 0


def test_rollback_returns_to_the_previous_image(tmp_path):
    installed(tmp_path)
    esp32sim.boot(tmp_path)
    simota.mark_app_valid_cancel_rollback(str(tmp_path))
    other = PROGRAM + b"v2"
    assert installed(tmp_path, other) == "ota_1"
    assert otadata(tmp_path)["prev"] == "ota_0"
    assert esp32sim.boot(tmp_path).read_bytes() == other
    assert esp32sim.boot(tmp_path).read_bytes() == other
    assert esp32sim.boot(tmp_path) == tmp_path / "ota_0.run"
    assert (tmp_path / "ota_0.run").read_bytes() == PROGRAM
    assert otadata(tmp_path)["failed"] == "ota_1"


def test_boot_of_a_damaged_partition_falls_back_to_factory(tmp_path, capsys):
    installed(tmp_path)
    with open(tmp_path / "ota_0.img", "r+b") as f:
        f.seek(simota.HEADER)
        f.write(b"XXXX")
    assert esp32sim.boot(tmp_path) == esp32sim.PROG
    assert otadata(tmp_path)["failed"] == "ota_0"
    assert "ota_0 holds no valid program" in capsys.readouterr().err


def test_boot_command_prints_the_program(tmp_path):
    installed(tmp_path)
    out = subprocess.run(
        [str(ROOT / ".venv/bin/python"), str(ROOT / "tools/esp32sim.py"), "boot", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (out.returncode, out.stdout) == (0, "%s\n" % (tmp_path / "ota_0.run"))


def test_pack_image():
    data = ota.pack_image(PROGRAM)
    assert data[:8] == b"\xe9MPWBSIM" and len(data) == 64 + len(PROGRAM)
    assert struct.unpack("<I", data[8:12])[0] == len(PROGRAM)
    assert data[12:44] == hashlib.sha256(PROGRAM).digest() and data[64:] == PROGRAM


# -- end to end on the virtual ESP32 --------------------------------------------------------------


def test_the_extended_block_protocol_erases_then_writes_pieces(tmp_path):
    nxt = simota.running(str(tmp_path)).get_next_update()
    nxt.writeblocks(2, b"\x00" * simota.BLOCK)  # a whole block, the simple protocol
    assert nxt.ioctl(6, 2) == 0  # erase it again
    nxt.writeblocks(2, b"\x12" * 512, 512)  # a piece within it
    buf = bytearray(1024)
    nxt.readblocks(2, buf)
    assert buf == b"\xff" * 512 + b"\x12" * 512
    for bad in ((2, b"x" * 16, 4090), (2, b"x" * 16, -1), (simota.SIZE // simota.BLOCK, b"x", 0)):
        with pytest.raises(OSError):
            nxt.writeblocks(*bad)
    with pytest.raises(OSError):
        simota.running(str(tmp_path)).ioctl(6, 0)  # the factory program is never written
