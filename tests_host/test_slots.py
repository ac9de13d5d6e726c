"""The boot selector (lib/bootsel.py), the bundle format (lib/bundle.py) and the image writer
(lib/ota_image.py) with the ESP32 board's hooks over a fake esp32.Partition."""

import asyncio
import json
import struct
import sys

import fake_esp32
import pytest

import bootsel
import bundle
import ota_image
from tools import ota


@pytest.fixture
def sel(tmp_path, monkeypatch):
    """bootsel over tmp_path with slots a and b present; its module state restored after."""
    for name in ("root", "running", "trial"):
        monkeypatch.setattr(bootsel, name, getattr(bootsel, name))
    for slot in "ab":
        d = tmp_path / "slots" / slot
        d.mkdir(parents=True)
        (d / "manifest.json").write_text('{"version": "%s", "files": []}' % slot)
    return str(tmp_path)


def doc(root):
    return bootsel.load(root)


# -- boot selection -------------------------------------------------------------------------


def test_without_a_record_the_base_code_runs(sel):
    assert bootsel.select(sel) == (None, False)


def test_the_confirmed_slot_runs(sel):
    bootsel.save(sel, {"confirmed": "b"})
    assert bootsel.select(sel) == ("b", False)


def test_a_trial_gets_max_tries_boots_counted_before_each_then_the_old_slot(sel):
    bootsel.save(sel, {"confirmed": "a", "trial": "b", "tries": 0})
    for n in range(1, bootsel.MAX_TRIES + 1):
        assert bootsel.select(sel) == ("b", True)
        assert doc(sel)["tries"] == n  # written before the start
    assert bootsel.select(sel) == ("a", False)
    assert doc(sel) == {"confirmed": "a", "failed": "b"}
    assert bootsel.select(sel) == ("a", False)


def test_a_failed_trial_without_a_confirmed_slot_returns_to_the_base_code(sel):
    bootsel.save(sel, {"trial": "a", "tries": bootsel.MAX_TRIES})
    assert bootsel.select(sel) == (None, False)


def test_a_missing_slot_is_never_run(sel, tmp_path):
    (tmp_path / "slots" / "b" / "manifest.json").unlink()
    bootsel.save(sel, {"confirmed": "a", "trial": "b", "tries": 0})
    assert bootsel.select(sel) == ("a", False)
    bootsel.save(sel, {"confirmed": "b"})
    assert bootsel.select(sel) == (None, False)


def test_an_unreadable_record_is_no_record(sel, tmp_path):
    (tmp_path / "slots" / "boot.json").write_text("{torn")
    assert bootsel.select(sel) == (None, False)


def test_confirm_keeps_the_trial_and_set_trial_starts_one(sel):
    bootsel.save(sel, {"confirmed": "a", "trial": "b", "tries": 0})
    bootsel.root = sel
    bootsel.running, bootsel.trial = bootsel.select(sel)
    assert bootsel.inactive() == "a"
    assert bootsel.confirm() is True
    assert doc(sel) == {"confirmed": "b"}
    assert bootsel.confirm() is False  # once only
    bootsel.set_trial("a")
    assert doc(sel) == {"confirmed": "b", "trial": "a", "tries": 0}
    assert not bootsel.failed("a")


def test_activate_puts_the_slot_first_and_forgets_application_modules(sel, monkeypatch):
    bootsel.save(sel, {"confirmed": "a"})
    monkeypatch.setattr(sys, "path", list(sys.path))
    fake = type(sys)("boards.fake_entry")
    monkeypatch.setitem(sys.modules, "boards.fake_entry", fake)
    assert bootsel.activate(sel) == "a"
    assert sys.path[:2] == [sel + "/slots/a/lib", sel + "/slots/a"]
    assert "boards.fake_entry" not in sys.modules
    assert "bootsel" in sys.modules


# -- bundles --------------------------------------------------------------------------------


def make_tree(tmp_path):
    tree = tmp_path / "tree"
    (tree / "firmware" / "blocks").mkdir(parents=True)
    (tree / "lib").mkdir()
    (tree / "firmware" / "main.mpy").write_bytes(b"M" * 3000)
    (tree / "firmware" / "blocks" / "x.mpy").write_bytes(b"")
    (tree / "lib" / "log.mpy").write_bytes(bytes(range(256)) * 9)
    return tree


def test_a_bundle_installs_into_its_slot(tmp_path):
    tree = make_tree(tmp_path)
    data = ota.pack(tree, "1.2.3")
    assert bundle.kind(data[:8]) == bundle.BUNDLE
    src = tmp_path / "fw.bin"
    src.write_bytes(data)
    dest = tmp_path / "slots" / "b"
    (tmp_path / "slots" / "b.new" / "junk").mkdir(parents=True)  # an interrupted install
    m = asyncio.run(bundle.install(str(src), str(dest)))
    assert m["version"] == "1.2.3"
    for p in tree.rglob("*.mpy"):
        assert (dest / p.relative_to(tree)).read_bytes() == p.read_bytes()
    assert json.loads((dest / "manifest.json").read_text()) == m
    assert not (tmp_path / "slots" / "b.new").exists()


def _bundle(manifest, body=b""):
    raw = json.dumps(manifest).encode()
    return bundle.MAGIC + struct.pack(">I", len(raw)) + raw + body


@pytest.mark.parametrize(
    "data, why",
    [
        (b"MPWBNDL2" + b"\0" * 8, "not a bundle"),
        (_bundle({"version": "1", "files": [["../evil.mpy", 1]]}, b"x"), "bad path"),
        (_bundle({"version": "1", "files": [["/abs.mpy", 1]]}, b"x"), "bad path"),
        (_bundle({"version": "1", "files": [["a.mpy", 5]]}, b"abc"), "truncated"),
        (_bundle({"version": "1", "files": [["a.mpy", 1]]}, b"ab"), "after the last"),
        (_bundle({"files": []}), "bad manifest"),
        (_bundle({"version": "1", "files": [["a.mpy", -1]]}), "bad file size"),
    ],
)
def test_a_bad_bundle_leaves_the_slot_as_it_was(tmp_path, data, why):
    src = tmp_path / "fw.bin"
    src.write_bytes(data)
    dest = tmp_path / "slot"
    dest.mkdir()
    (dest / "old.mpy").write_bytes(b"old")
    with pytest.raises(bundle.BundleError, match=why):
        asyncio.run(bundle.install(str(src), str(dest)))
    assert (dest / "old.mpy").read_bytes() == b"old"


def test_kinds():
    assert bundle.kind(b"\xe9\x05\x02\x20") == bundle.IMAGE
    assert bundle.kind(b"PK\x03\x04") is None
    assert bundle.kind(b"") is None


def test_built_bundles_carry_the_version_and_not_the_boot_selector(tmp_path):
    data = ota.build_bundle(tmp_path / "b.bin", "7.7.7")
    n = struct.unpack(">I", data[8:12])[0]
    m = json.loads(data[12 : 12 + n])
    paths = [p for p, _ in m["files"]]
    assert m["version"] == "7.7.7"
    assert "firmware/version.mpy" in paths and "boards/sim/run.mpy" in paths
    assert "lib/bootsel.mpy" not in paths
    assert all(p.endswith(".mpy") for p in paths)


# -- full images into an OTA partition --------------------------------------------------------


def image(n):
    return bytes([0xE9]) + bytes((i * 7) & 0xFF for i in range(n - 1))


@pytest.mark.parametrize("n, pieces", [(4096 * 3, 1000), (10000, 4096), (5, 1), (4097, 333)])
def test_an_image_is_written_block_by_block_and_padded(monkeypatch, n, pieces):
    flash = fake_esp32.install(monkeypatch=monkeypatch)
    import esp32

    part = esp32.Partition(esp32.Partition.RUNNING).get_next_update()
    w = ota_image.Writer(part)
    data = image(n)
    for i in range(0, n, pieces):
        w.write(data[i : i + pieces])
    assert w.finish() == n
    blocks = -(-n // 4096)
    assert flash.erases == list(range(blocks))  # each block erased once, before its pieces
    assert flash.writes == [i * 512 // 4096 for i in range(-(-n // 512))]  # 512 B at a time
    written = flash.data["ota_1"][: blocks * 4096]
    assert written == data + b"\xff" * (blocks * 4096 - n)
    assert w.label() == "ota_1"
    w.set_boot()
    assert flash.boot == "ota_1"


def test_an_image_too_large_or_not_an_image(monkeypatch):
    flash = fake_esp32.install(fake_esp32.Flash(blocks=2), monkeypatch)
    import esp32

    part = esp32.Partition(esp32.Partition.RUNNING).get_next_update()
    w = ota_image.Writer(part)
    with pytest.raises(ota_image.ImageError):
        w.write(b"\xe9" * (3 * 4096))
    w = ota_image.Writer(part)
    w.write(b"\x00" * 10)
    w.finish()
    with pytest.raises(OSError):
        w.set_boot()  # ESP-IDF refuses what is not an image
    assert flash.boot == "ota_0"
    with pytest.raises(ota_image.ImageError):
        ota_image.Writer(part).finish()


def test_board_hooks_confirm_or_roll_back(monkeypatch):
    import fake_machine

    for name in ("machine", "esp32", "boards.esp32"):
        monkeypatch.setitem(sys.modules, name, None)  # put back (or removed) afterwards
        del sys.modules[name]
    fake_machine.install()
    flash = fake_esp32.install(monkeypatch=monkeypatch)
    from boards import esp32 as board_mod

    board = board_mod.Board.__new__(board_mod.Board)  # the hooks need no hardware
    part = board.app_partition()
    assert part.label == "ota_1" and board.running_app() == "ota_0"
    w = ota_image.Writer(part)
    w.write(image(9000))
    w.finish()
    w.set_boot()
    flash.reset()
    assert board.running_app() == "ota_1" and flash.pending
    flash.reset()  # not confirmed: back to the old image
    assert board.running_app() == "ota_0"
    w = ota_image.Writer(board.app_partition())
    w.write(image(9000))
    w.finish()
    w.set_boot()
    flash.reset()
    board.confirm_app()  # Accepted
    flash.reset()
    assert board.running_app() == "ota_1"
    flash.rollback = False
    board.confirm_app()  # OSError(-261) swallowed
