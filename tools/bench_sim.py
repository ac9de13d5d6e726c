# bench_sim: what one virtual wallbox costs its host machine (make bench; issue 18).
# MIT licence.
"""CPU and memory of one virtual wallbox, against the development CSMS, on each target.

- sim_idle_cpu_percent: the MicroPython process's CPU time (user + system, /proc) over
  IDLE_S seconds as a share of one core: booted, Accepted, nothing plugged in, default
  settings (the heartbeat and the link's pings included).
- sim_charging_cpu_percent: the same over CHARGING_S seconds of an 11 kW three-phase session
  with the default sampling (a TransactionEvent every 60 s).
- sim_rss_kib: the process's resident memory (VmRSS) at the end of that session. On the host
  target the pinned `micropython` command is MicroPython built as a CPython extension
  module, in one process (no wrapper process in front): its RSS includes the CPython
  interpreter around it.
- esp32_sim_*: the same for the virtual ESP32 (`--esp32`, a plain 32-bit MicroPython
  program with the firmware frozen in and a 112 KiB heap).

The two targets are measured at the same time (each its own station): on a machine that
is otherwise idle they do not share a core's worth of work.
"""

import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools import esp32sim  # noqa: E402
from tools.harness import CsmsThread, Sim  # noqa: E402

IDLE_S = 30
CHARGING_S = 60
_HZ = 100  # /proc's clock ticks per second (SC_CLK_TCK, 100 on Linux)


def mp_pid(sim, timeout=10):
    """The MicroPython process under the sim's tools/wallbox-sim shell."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        kids = Path("/proc/%d/task/%d/children" % (sim.proc.pid, sim.proc.pid))
        for pid in kids.read_text().split():
            comm = Path("/proc/%s/comm" % pid).read_text().strip()
            if comm.startswith("micropython"):
                return int(pid)
        time.sleep(0.1)
    raise RuntimeError("no MicroPython process under %d" % sim.proc.pid)


def cpu_ticks(pid):
    fields = Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)


def rss_kib(pid):
    for line in Path("/proc/%d/status" % pid).read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_percent(pid, seconds):
    a, t = cpu_ticks(pid), time.monotonic()
    time.sleep(seconds)
    b, t = cpu_ticks(pid), time.monotonic() - t
    return (b - a) / _HZ / t * 100


def station_figures(csms, tmp, esp32):
    """(idle %, charging %, RSS KiB) of one station."""
    sim = Sim(tmp, csms.url, sid="BENCH-ESP32" if esp32 else "BENCH", esp32=esp32)
    try:
        sim.wait_status(lambda s: s["registration"] == "Accepted", timeout=60)
        pid = mp_pid(sim)
        time.sleep(3)  # the boot's own messages answered
        idle = cpu_percent(pid, IDLE_S)
        sim.cmd("plug_in", evse=1, cable_a=32)
        sim.wait_status(lambda s: s["evse"][0]["cp"] == "B")
        sim.cmd("button", evse=1)
        sim.cmd("ev_state", evse=1, state="C")
        sim.wait_status(lambda s: s["evse"][0]["contactor"])
        time.sleep(2)
        charging = cpu_percent(pid, CHARGING_S)
        st = sim.cmd("status")["evse"][0]
        if not st["contactor"] or st["power_w"] < 10000:
            raise RuntimeError("the session did not charge at 11 kW throughout: %r" % st)
        return idle, charging, rss_kib(pid)
    finally:
        sim.close()


def main():
    import tempfile

    os.environ.pop("WALLBOX_SIM_PROBE", None)  # the firmware alone (bench_esp32 sets it)
    targets = [("sim", False)]
    try:
        esp32sim.check()
        targets.append(("esp32_sim", True))
    except esp32sim.Unavailable as e:
        print("esp32_sim_*: unavailable: %s" % e, flush=True)
    results = {}
    csms = CsmsThread()
    try:
        with tempfile.TemporaryDirectory() as tmp:

            def one(name, esp32):
                try:
                    results[name] = station_figures(csms, tmp, esp32)
                except Exception as e:  # printed below, the other target goes on
                    results[name] = e

            threads = [threading.Thread(target=one, args=t) for t in targets]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    finally:
        csms.stop()
    for name, _ in targets:
        r = results[name]
        if isinstance(r, Exception):
            print("%s_figures: failed: %r" % (name, r), flush=True)
            continue
        print("%s_idle_cpu_percent: %.2f %%" % (name, r[0]), flush=True)
        print("%s_charging_cpu_percent: %.2f %%" % (name, r[1]), flush=True)
        print("%s_rss_kib: %d KiB" % (name, r[2]), flush=True)


if __name__ == "__main__":
    main()
