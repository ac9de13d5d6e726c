# bench_esp32: the virtual ESP32's figures for `make bench` (issue 11). MIT licence.
"""The esp32_* figures, on the virtual ESP32 (tools/esp32sim.py, 32-bit, frozen):

- esp32_frozen_bytes: the flash the frozen firmware adds: text + data of the program minus
  the same build without the firmware (x86 code of the C parts is the same in both; the
  difference is the frozen bytecode, strings and constant tables).
- esp32_idle_heap_bytes: heap in use (after a collection) once booted, accepted and idle for
  3 s, at 112 KiB (goal: at most 48 KiB = 49152 bytes). Read with the sim's own `heap`
  command, without the probe, whose module and sampler task would add some 1.2 KB.
- esp32_min_heap_kib: the smallest --heap (4 KiB steps) at which the reference scenario
  (tools/esp32_scenario.py) passes (goal: at most 80 KiB).
- esp32_peak_heap_bytes: the highest live heap over the reference scenario at 112 KiB, from a
  sampler that collects and reads every 20 ms (tools/probe/memprobe.py).
- esp32_monitoring_heap_bytes, esp32_50_monitors_heap_bytes: the heap the monitoring block
  takes once loaded with one monitor, and what 49 more custom monitors add (50 in all), idle
  (the sim's `heap` command, as the idle figure).
- esp32_key_and_csr_heap_bytes: the heap the station's own key pair and CSR need (A02) at
  112 KiB: the peak (that sampler) from idle and accepted until the SignCertificate a
  TriggerMessage SignChargingStationCertificate asks for is on the wire, minus idle: the
  block's loading, the key generation and the CSR's signature.
"""

import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools import bench_logs, esp32_scenario, esp32sim  # noqa: E402
from tools.harness import FAST, CsmsThread, Sim, variables  # noqa: E402


def frozen_bytes():
    return esp32sim.text_data(esp32sim.build()) - esp32sim.text_data(esp32sim.build(bare=True))


@contextlib.contextmanager
def _idle_station(heap):
    """(csms, its station, sim): a virtual ESP32 booted, accepted and idle for 3 s."""
    csms = CsmsThread()
    with tempfile.TemporaryDirectory() as tmp:
        sim = Sim(tmp, csms.url, heap=heap, esp32=True, config={"variables": variables(FAST)})
        try:
            st = csms.station(timeout=20)
            sim.wait_status(lambda s: s["registration"] == "Accepted" and s["connected"])
            time.sleep(3)
            yield csms, st, sim
        finally:
            sim.close()
            csms.stop()


def idle_heap_bytes(heap="112K"):
    with _idle_station(heap) as (_, _, sim):
        return sim.cmd("heap")["alloc"]


# 50 monitors, no two alike (variable, type, severity): Delta and UpperThreshold monitors on
# five numbers, with values none of them reaches (nothing fires while measured).
_MONITORED = (
    {"component": {"name": "EVSE", "evse": {"id": 1}}, "variable": {"name": "Power"}},
    {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}},
    {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "OfflineThreshold"}},
    {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "WebSocketPingInterval"}},
    {"component": {"name": "SampledDataCtrlr"}, "variable": {"name": "TxUpdatedInterval"}},
)


def _monitors():
    out = []
    for cv in _MONITORED:
        for sev in range(10):
            kind = "Delta" if sev % 2 else "UpperThreshold"
            m = {"type": kind, "severity": sev, "value": 20000 if kind == "Delta" else 3600}
            m.update(cv)
            out.append(m)
    return out


def monitors_heap_bytes(heap="112K"):
    """(the monitoring block with one monitor, 49 more) over the idle heap, bytes."""
    with _idle_station(heap) as (csms, st, sim):
        idle = sim.cmd("heap")["alloc"]
        items = _monitors()
        for i in (0, 1, 21, 41):  # as ItemsPerMessage (20) allows
            data = items[i : 1 if i == 0 else i + 20]
            r = csms.call(st, "SetVariableMonitoring", {"setMonitoringData": data})
            assert all(x["status"] == "Accepted" for x in r["setMonitoringResult"]), r
            if i == 0:
                time.sleep(3)
                one = sim.cmd("heap")["alloc"]
        time.sleep(3)
        return one - idle, sim.cmd("heap")["alloc"] - one


def key_and_csr_heap_bytes(heap="112K"):
    os.environ["WALLBOX_SIM_PROBE"] = "1"
    with _idle_station(heap) as (csms, st, sim):
        idle = sim.cmd("status")["heap_alloc"]
        sim.cmd("heap_reset")
        req = {"requestedMessage": "SignChargingStationCertificate"}
        if csms.call(st, "TriggerMessage", req)["status"] != "Accepted":
            return None
        csms.wait_call(st, "SignCertificate", timeout=30)
        return sim.cmd("status")["heap_peak"] - idle


def _quiet(_msg):
    pass


def min_heap_kib(lo=48, hi=112):
    """Binary search in 4 KiB steps; None when the scenario fails even at `hi`."""
    if not esp32_scenario.run("%dK" % hi, _quiet)[0]:
        return None
    while hi - lo > 4:
        mid = (lo + hi) // 2 // 4 * 4
        if esp32_scenario.run("%dK" % mid, _quiet)[0]:
            hi = mid
        else:
            lo = mid
    return hi


def peak_heap_bytes(heap="112K"):
    ok, status, _ = esp32_scenario.run(heap, _quiet)
    return status["heap_peak"] if ok and status else None


def main():
    try:
        esp32sim.check()
    except esp32sim.Unavailable as e:
        print("esp32_*: unavailable: %s" % e, flush=True)
        return
    print("esp32_frozen_bytes: %d bytes" % frozen_bytes(), flush=True)
    os.environ.pop("WALLBOX_SIM_PROBE", None)  # the firmware alone: no probe in its heap
    print("esp32_idle_heap_bytes: %d bytes" % idle_heap_bytes(), flush=True)
    os.environ["WALLBOX_SIM_PROBE"] = "1"  # the peak needs the sampler
    kib = min_heap_kib()
    print("esp32_min_heap_kib: %s" % ("%d KiB" % kib if kib else "over 112 KiB"), flush=True)
    peak = peak_heap_bytes()
    print("esp32_peak_heap_bytes: %s" % ("%d bytes" % peak if peak else "failed"), flush=True)
    block, monitors = monitors_heap_bytes()
    print("esp32_monitoring_heap_bytes: %d bytes" % block, flush=True)
    print("esp32_50_monitors_heap_bytes: %d bytes" % monitors, flush=True)
    peak = bench_logs.esp32_log_upload_peak_heap_bytes()
    print(
        "esp32_log_upload_peak_heap_bytes: %s" % ("%d bytes" % peak if peak else "failed"),
        flush=True,
    )
    peak = key_and_csr_heap_bytes()
    print(
        "esp32_key_and_csr_heap_bytes: %s" % ("%d bytes" % peak if peak else "failed"), flush=True
    )
    if esp32_scenario.MISSING:
        print("esp32_scenario_missing: %s" % ", ".join(esp32_scenario.MISSING), flush=True)


if __name__ == "__main__":
    main()
