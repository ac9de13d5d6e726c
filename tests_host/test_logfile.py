"""The log on flash (lib/logfile.py) and its feeds (lib/log.py, the security block): rotation,
reading back past a power loss, the time window, size(), a full flash, the level, the number
of writes."""

import asyncio
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

import log
import logfile
import logread
from clock import Clock
from firmware.blocks.security import Security
from firmware.device_model import DeviceModel
from firmware.variables import declarations
from logfile import LogFiles
from store import Store

T0 = 1_800_000_000  # 2027-01-15T08:00:00Z


def stamp(t, ms=0):
    import rfc3339

    return "%s.%03dZ" % (rfc3339.format(t)[:19], ms)


def rec(t, n, tag="t"):
    return "%s I %s: line %d" % (stamp(t), tag, n)


def files(root):
    return sorted(os.listdir(root), key=lambda n: int(n.split(".")[1]))


def test_rotation_keeps_count_files_of_at_most_size_bytes_dropping_the_oldest(tmp_path):
    root = str(tmp_path / "logs")
    lf = LogFiles(root, "diag", 300, 3)
    written = []
    for i in range(60):
        written.append(rec(T0 + i, i))
        lf.write(written[-1])
        if i % 5 == 4:
            lf.flush()
    names = files(root)
    assert len(names) == 3
    assert names[0] != "diag.0.log"  # the first ones were dropped
    seqs = [int(n.split(".")[1]) for n in names]
    assert seqs == list(range(seqs[0], seqs[0] + 3))
    for n in names:
        data = (tmp_path / "logs" / n).read_bytes()
        assert 0 < len(data) <= 300 and data.endswith(b"\n")
    got = list(lf.lines())
    assert got == written[-len(got) :]  # the newest lines, in order, none missing in between
    assert len(got) > 10
    # Another log in the same folder is left alone.
    other = LogFiles(root, "security", 300, 1)
    other.write(rec(T0, 0))
    other.flush()
    assert list(lf.lines()) == got and list(other.lines()) == [rec(T0, 0)]


def test_the_buffer_is_read_back_after_the_files_and_written_when_full(tmp_path):
    lf = LogFiles(str(tmp_path), "diag", 16384, 2)
    lf.write(rec(T0, 0))
    lf.flush()
    lf.write(rec(T0 + 1, 1))
    assert os.listdir(tmp_path) == ["diag.0.log"]
    assert (tmp_path / "diag.0.log").read_text() == rec(T0, 0) + "\n"
    assert list(lf.lines()) == [rec(T0, 0), rec(T0 + 1, 1)]
    # 1 KB in RAM at most: the line that would pass it writes the buffer first.
    for i in range(2, 40):
        lf.write(rec(T0 + i, i))
    on_flash = (tmp_path / "diag.0.log").read_text().splitlines()
    assert 10 < len(on_flash) < 40 and on_flash == [rec(T0 + i, i) for i in range(len(on_flash))]
    assert list(lf.lines()) == [rec(T0 + i, i) for i in range(40)]


def test_one_record_is_one_line(tmp_path):
    lf = LogFiles(str(tmp_path), "diag", 16384, 2)
    lf.write(rec(T0, 0) + "\nsecond\x00line")
    lf.write(rec(T0, 1) + "x" * 2000)
    lf.flush()
    got = list(lf.lines())
    assert got[0] == rec(T0, 0) + " second line"
    assert len(got[1]) == logfile._LINE and got[1].startswith(rec(T0, 1))


def test_a_line_torn_by_a_power_loss_is_never_read_back(tmp_path):
    root = tmp_path / "logs"
    lf = LogFiles(str(root), "diag", 16384, 2)
    lf.write(rec(T0, 0))
    lf.flush()
    with open(root / "diag.0.log", "ab") as f:
        f.write(rec(T0, 1).encode()[:30])  # the power went in the middle of this line
    assert list(LogFiles(str(root), "diag", 16384, 2).lines()) == [rec(T0, 0)]
    # After the reboot, appending ends the torn line first, so the next line stays whole
    # and the torn one stays unreadable.
    lf = LogFiles(str(root), "diag", 16384, 2)
    lf.write("boot 2 +5ms I main: boot 2")
    lf.flush()
    assert (root / "diag.0.log").read_bytes().count(b"\x00\n") == 1
    assert list(lf.lines()) == [rec(T0, 0), "boot 2 +5ms I main: boot 2"]


def test_nul_fill_and_garbage_in_the_middle_of_the_rotation_are_skipped(tmp_path):
    root = tmp_path / "logs"
    root.mkdir()
    # A FAT-like power loss: the file grew, its data never came (zeros); then the next file.
    (root / "diag.4.log").write_bytes(
        (rec(T0, 0) + "\n").encode() + b"\x00" * 5000 + (rec(T0, 1) + "\n").encode()
    )
    (root / "diag.5.log").write_bytes(
        b"\x00" * 100
        + b"\n"
        + (rec(T0, 2) + "\n").encode()
        + b"\xff\xfe not text\n"
        + b"no stamp here\n"
        + (rec(T0, 3) + "\n").encode()[:-1]
        + b"\xc3"  # torn in a character, no newline
    )
    lf = LogFiles(str(root), "diag", 16384, 2)
    # The run of 5000 NULs is dropped up to its newline, which takes the line after it.
    assert list(lf.lines()) == [rec(T0, 0), rec(T0, 2)]
    assert lf.size() == len(rec(T0, 0)) + len(rec(T0, 2)) + 2
    lf.write(rec(T0, 4))
    lf.flush()
    assert list(lf.lines()) == [rec(T0, 0), rec(T0, 2), rec(T0, 4)]


def test_lines_reads_the_files_in_pieces(tmp_path, monkeypatch):
    lf = LogFiles(str(tmp_path), "diag", 16384, 2)
    for i in range(300):
        lf.write(rec(T0 + i, i))
    lf.flush()
    assert os.path.getsize(tmp_path / "diag.0.log") > 8000
    sizes = []
    real = open

    class Spy:
        def __init__(self, f):
            self.f = f

        def read(self, n=-1):
            sizes.append(n)
            return self.f.read(n)

        def close(self):
            self.f.close()

    monkeypatch.setattr(logread, "open", lambda p, m="r": Spy(real(p, m)), raising=False)
    assert len(list(lf.lines())) == 300
    assert sizes and max(sizes) == logread._PIECE and min(sizes) > 0


def test_the_time_window_and_lines_before_the_clock_was_set(tmp_path):
    lf = LogFiles(str(tmp_path), "diag", 16384, 2)
    lines = [
        "boot 1 +5ms I main: boot 1",  # before any UTC line: no time known
        rec(T0, 0),
        rec(T0 + 10, 1),
        "boot 2 +7ms I main: boot 2",  # written after T0 + 10
        rec(T0 + 20, 2),
        rec(T0 + 30, 3),
    ]
    for s in lines[:4]:
        lf.write(s)
    lf.flush()
    for s in lines[4:]:
        lf.write(s)  # the last two still in RAM
    assert list(lf.lines()) == lines
    assert list(lf.lines(T0, T0 + 30)) == lines[1:]
    assert list(lf.lines(T0 + 10, T0 + 20)) == lines[2:5]
    assert list(lf.lines(T0 + 11, T0 + 20)) == [lines[4]]
    assert list(lf.lines(T0 + 21)) == [lines[5]]
    assert list(lf.lines(latest=T0 + 9)) == [lines[1]]
    assert list(lf.lines(T0 + 31)) == []
    for window in ((None, None), (T0, T0 + 30), (T0 + 10, T0 + 20), (T0 + 21, None), (1, 2)):
        assert lf.size(*window) == sum(len(s.encode()) + 1 for s in lf.lines(*window))


def test_size_counts_bytes_not_characters(tmp_path):
    lf = LogFiles(str(tmp_path), "diag", 16384, 2)
    lf.write(rec(T0, 0, tag="zähler"))
    lf.flush()
    lf.write(rec(T0, 1, tag="€"))
    assert (
        lf.size() == len(rec(T0, 0, tag="zähler").encode()) + len(rec(T0, 1, tag="€").encode()) + 2
    )


def test_a_full_flash_never_raises_and_counts_the_lost_lines(tmp_path, monkeypatch, capsys):
    lf = LogFiles(str(tmp_path), "diag", 16384, 2)
    lf.write(rec(T0, 0))
    lf.flush()

    def full(*a, **kw):
        raise OSError(28, "ENOSPC")

    monkeypatch.setattr(log, "stream", __import__("sys").stdout)
    monkeypatch.setattr(logfile, "open", full, raising=False)
    for i in range(1, 80):
        lf.write(rec(T0 + i, i))  # fills the buffer: flushes from write
    lf.flush()
    assert lf.lost == 79
    assert lf._buf is None  # bounded: the refused lines were dropped
    assert "logfile diag: OSError(28" in capsys.readouterr().out
    lf.clear()  # and clear too
    monkeypatch.undo()
    lf.write(rec(T0 + 99, 99))
    lf.flush()
    assert list(lf.lines()) == [rec(T0 + 99, 99)]


def test_a_write_refused_in_the_middle_leaves_the_next_flush_whole(tmp_path, monkeypatch):
    lf = LogFiles(str(tmp_path), "diag", 16384, 2)
    lf.write(rec(T0, 0))
    lf.flush()
    real = open

    class Torn:
        def __init__(self, f):
            self.f = f

        def write(self, b):
            self.f.write(b[:10])
            raise OSError(28, "ENOSPC")

        def close(self):
            self.f.close()

    monkeypatch.setattr(logfile, "open", lambda p, m="r": Torn(real(p, m)), raising=False)
    lf.write(rec(T0, 1))
    lf.flush()
    monkeypatch.undo()
    lf.write(rec(T0, 2))
    lf.flush()
    assert list(lf.lines()) == [rec(T0, 0), rec(T0, 2)]


def test_clear_removes_every_file(tmp_path):
    lf = LogFiles(str(tmp_path), "diag", 100, 3)
    for i in range(20):
        lf.write(rec(T0, i))
        lf.flush()
    lf.write(rec(T0, 99))
    lf.clear()
    assert os.listdir(tmp_path) == [] and list(lf.lines()) == [] and lf.size() == 0


# -- lib/log.py -----------------------------------------------------------------------------


def test_log_writes_from_file_level_up_with_a_utc_stamp_and_flushes_errors(tmp_path, logged):
    lf = log.file = LogFiles(str(tmp_path), "diag", 16384, 2)
    log.clock = Clock(lambda: T0)
    log.debug("x", "not kept")
    log.info("x", "kept")
    assert logged.getvalue().count("\n") == 1  # the console keeps its own level and stamp
    assert os.listdir(tmp_path) == []  # buffered
    log.file_level = 2
    log.info("x", "not kept now")
    log.warn("x", "careful")
    log.error("x", "broken")
    got = (tmp_path / "diag.0.log").read_text().splitlines()  # the error flushed at once
    assert [s[24:] for s in got] == [" I x: kept", " W x: careful", " E x: broken"]
    assert got[0][:20] == "2027-01-15T08:00:00." and got[0][23] == "Z"
    assert list(lf.lines(T0, T0)) == got


def test_log_stamps_file_records_with_the_boot_before_the_clock_is_set(tmp_path, logged):
    log.file = LogFiles(str(tmp_path), "diag", 16384, 2)
    log.boot = 7
    log.clock = Clock(lambda: 3600)  # an ESP32 without RTC, before the CSMS told the time
    log.info("main", "hello")
    (s,) = log.file.lines()
    assert s.startswith("boot 7 +") and s.endswith("ms I main: hello")


def test_log_never_raises(tmp_path, monkeypatch, logged):
    class Broken:
        def write(self, line):
            raise MemoryError

    log.file = Broken()
    log.error("x", "still fine")
    monkeypatch.setattr(log, "stream", Broken())
    log.info("x", "fine too")


def test_at_most_one_flash_write_a_second_for_a_stream_of_info_lines(tmp_path, monkeypatch):
    """The station's flush task flushes once a second: with lines coming as fast as a busy
    station logs them (8 a second), each second is one append, not one per line."""
    lf = log.file = LogFiles(str(tmp_path), "diag", 16384, 2)
    log.clock = Clock(lambda: T0)
    monkeypatch.setattr(log, "stream", open(os.devnull, "w"))
    flushes = []  # per append: the second of the task's flush, or None (forced by write)
    now = [None]
    real = open

    def counting(path, mode="r"):
        if "a" in mode:
            flushes.append(now[0])
        return real(path, mode)

    monkeypatch.setattr(logfile, "open", counting, raising=False)
    for second in range(120):
        for _ in range(8):
            log.info("evse1", "CP B -> C, offer 16 A, meter 1234567 Wh, second %d" % second)
        now[0] = second
        lf.flush()  # firmware/main.Station._flush_logs
        now[0] = None
    assert None not in flushes  # no write forced by a full buffer
    # One append a second; a flush that rotates opens the new file too (seq 0 was the first).
    assert len(set(flushes)) == 120 and len(flushes) == 120 + lf._seq
    assert lf.size() <= 2 * 16384


# -- the security log -----------------------------------------------------------------------


class _Queue:
    def __init__(self):
        self.posted = []

    def post(self, action, payload, tx_id=None, kind=None):
        self.posted.append((action, payload))
        return True


def test_security_events_are_written_to_the_security_log_at_once(tmp_path):
    store = Store(str(tmp_path / "state"))
    hw = SimpleNamespace(phases=3, max_a=32, cable_a=None, phase_switch=None)
    dm = DeviceModel(store, declarations([hw]))
    journal = LogFiles(str(tmp_path / "state" / "logs"), "security", 8192, 2)
    conn = SimpleNamespace(on_accepted=[], ready=asyncio.Event())
    log.clock = clock = Clock(lambda: T0)
    sec = Security(dm, clock, _Queue(), conn, "PowerUp", journal)
    dm.set("SecurityCtrlr/BasicAuthPassword", "s3cret-passw0rd-1234")
    dm.set("SecurityCtrlr/OrganizationName", "ACME")
    sec.event("InvalidCsmsCertificate", "expired")
    conn.on_accepted[0]()
    data = (tmp_path / "state" / "logs" / "security.0.log").read_text()  # no flush needed
    got = [s[24:] for s in data.splitlines()]
    assert got == [
        " I security: event ReconfigurationOfSecurityParameters"
        " (SecurityCtrlr/BasicAuthPassword changed)",
        " I security: event ReconfigurationOfSecurityParameters"
        " (SecurityCtrlr/OrganizationName changed)",
        " I security: event InvalidCsmsCertificate (expired)",
        " I security: event StartupOfTheDevice",
    ]
    assert "s3cret" not in data and "ACME" not in data


# -- on MicroPython -------------------------------------------------------------------------

MP_SCRIPT = """
import os
from logfile import LogFiles
R = ROOT
def rec(i):
    return "2027-01-15T08:00:%02d.000Z I t: line %d" % (i % 60, i)
lf = LogFiles(R, "diag", 300, 3)
for i in range(60):
    lf.write(rec(i))
    if i % 5 == 4:
        lf.flush()
names = sorted(os.listdir(R))
print(len(names), max(os.stat(R + "/" + n)[6] for n in names))
got = list(lf.lines())
print(got == [rec(i) for i in range(60 - len(got), 60)], len(got) > 10)
newest = R + "/" + sorted(names, key=lambda n: int(n.split(".")[1]))[-1]
with open(newest, "ab") as f:
    f.write(b"2027-01-15T08:01:00.000Z I t: to")
print(list(LogFiles(R, "diag", 300, 3).lines()) == got)
lf = LogFiles(R, "diag", 300, 3)
lf.write("boot 2 +5ms I main: boot 2")
lf.flush()
with open(newest, "ab") as f:
    f.write(b"\\x00" * 100)
got2 = list(lf.lines())
print(got2[-1], got2[:-1] == got[-len(got2) + 1:], lf.size() == sum(len(s) + 1 for s in got2))
print(list(lf.lines(1800000050, 1800000051)))
"""


def test_rotation_and_torn_reads_on_micropython(tmp_path):
    root = Path(__file__).resolve().parent.parent
    mp = root / ".venv" / "bin" / "micropython"
    if not mp.exists():
        pytest.skip("no MicroPython unix port in .venv")
    (tmp_path / "logs").mkdir()
    script = tmp_path / "logfile_mp.py"
    script.write_text(MP_SCRIPT.replace("ROOT", repr(str(tmp_path / "logs"))))
    env = dict(os.environ, MICROPYPATH="%s:%s" % (root / "lib", root))
    out = subprocess.run(
        [str(mp), str(script)], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    n, biggest = map(int, lines[0].split())
    assert n == 3 and biggest <= 300
    assert lines[1:] == [
        "True True",
        "True",
        "boot 2 +5ms I main: boot 2 True True",
        "['2027-01-15T08:00:50.000Z I t: line 50', '2027-01-15T08:00:51.000Z I t: line 51']",
    ]
