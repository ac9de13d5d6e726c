# bench_logs: the log on flash and its upload (issue 12), for `make bench`. MIT licence.
"""Two figures:

- log_flash_bytes_per_charging_hour: bytes the diagnostics log writes to flash per hour of
  charging at the default level (Info) and the default sampling: the virtual wallbox (host
  target) charges 11 kW against the development CSMS; the log files' growth over a steady
  stretch of charging gives the rate per hour, to which the lines of the session's start and
  end are added (plug in, card, charging; card, unplug). What the file system adds (littlefs
  metadata and block copies) is not in it; the log writes at most once a second.
- esp32_log_upload_peak_heap_bytes: the live heap above idle while the virtual ESP32 (112 KiB)
  uploads a full diagnostics log (16 KiB and more: its files filled beforehand) by HTTP PUT
  to the CSMS's log sink, which reads it slowly (1 KB every 50 ms, a slow link): the memory
  probe's peak from the GetLog on (a collection and a reading every 20 ms,
  tools/probe/memprobe.py, reset before it) minus the idle heap before it, both with the
  probe in the heap. The diagnostics block and the HTTP client, loaded by the first GetLog
  and kept, are in it (about 2.5 KB).
"""

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.harness import FAST, CsmsThread, Sim, variables  # noqa: E402

_STEADY_S = 120  # the stretch of steady charging measured


def _log_bytes(state):
    logs = Path(state) / "logs"
    return sum(p.stat().st_size for p in logs.glob("diagnostics.*.log")) if logs.exists() else 0


def log_flash_bytes_per_charging_hour():
    csms = CsmsThread()
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        sim = Sim(tmp, csms.url, state_dir=state, config={"variables": variables(FAST)})
        try:
            csms.station(timeout=20)
            sim.wait_status(lambda s: s["registration"] == "Accepted" and s["connected"])
            time.sleep(2)
            b0 = _log_bytes(state)
            sim.cmd("plug_in", evse=1)
            sim.cmd("ev_state", evse=1, state="C")
            sim.cmd("swipe", token="BENCHCARD")
            sim.wait_status(lambda s: s["evse"][0]["contactor"], timeout=20)
            time.sleep(10)  # the start's lines are out (one flush a second)
            b1 = _log_bytes(state)
            time.sleep(_STEADY_S)
            b2 = _log_bytes(state)
            sim.cmd("swipe", token="BENCHCARD")
            sim.wait_status(lambda s: not s["evse"][0]["contactor"], timeout=20)
            sim.cmd("ev_state", evse=1, state="B")
            sim.cmd("plug_out", evse=1)
            sim.wait_status(lambda s: s["evse"][0]["tx_id"] is None, timeout=20)
            time.sleep(3)
            b3 = _log_bytes(state)
        finally:
            sim.close()
            csms.stop()
    steady = (b2 - b1) * 3600 / _STEADY_S
    return int((b1 - b0) + steady + (b3 - b2))


def _fill(state, size=16384, count=2):
    """The diagnostics log's files, full, as the firmware writes them."""
    logs = Path(state) / "logs"
    logs.mkdir(parents=True)
    stamp = "2026-12-06T10:%02d:%02d.000Z I tx: EVSE 1 filler line %06d for the upload bench"
    n = 0
    for seq in range(count):
        lines = []
        size_now = 0
        while True:
            line = stamp % (n // 60 % 60, n % 60, n) + "\n"
            if size_now + len(line) > size:
                break
            lines.append(line)
            size_now += len(line)
            n += 1
        (logs / ("diagnostics.%d.log" % seq)).write_text("".join(lines))


def esp32_log_upload_peak_heap_bytes():
    os.environ["WALLBOX_SIM_PROBE"] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        csms = CsmsThread(log_sink=Path(tmp) / "sink")
        state = Path(tmp) / "state"
        _fill(state)
        sim = Sim(
            tmp, csms.url, state_dir=state, esp32=True, config={"variables": variables(FAST)}
        )
        try:
            st = csms.station(timeout=20)
            sim.wait_status(lambda s: s["registration"] == "Accepted" and s["connected"])
            time.sleep(3)
            idle = sim.cmd("status")["heap_alloc"]
            sim.cmd("heap_reset")
            sink = csms.csms.sink
            sink.read_delay = 0.05  # a slow link: the upload lasts over a second of samples
            req = {
                "logType": "DiagnosticsLog",
                "requestId": 1,
                "log": {"remoteLocation": sink.http_url("bench.log")},
            }
            if csms.call(st, "GetLog", req)["status"] != "Accepted":
                return None
            csms.wait_frame(
                st,
                lambda f: (
                    f.kind == "call"
                    and f.action == "LogStatusNotification"
                    and f.payload["status"] not in ("Uploading",)
                ),
                timeout=60,
            )
            got = [
                f.payload["status"]
                for f in st.frames
                if f.kind == "call" and f.action == "LogStatusNotification"
            ]
            size = (Path(sink.directory) / "bench.log").stat().st_size
            if got[-1] != "Uploaded" or size < 16000:
                return None
            return sim.cmd("status")["heap_peak"] - idle
        finally:
            sim.close()
            csms.stop()


if __name__ == "__main__":
    print("log_flash_bytes_per_charging_hour: %d bytes" % log_flash_bytes_per_charging_hour())
    print("esp32_log_upload_peak_heap_bytes: %s bytes" % esp32_log_upload_peak_heap_bytes())
