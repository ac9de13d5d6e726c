# bench_smart: smart charging's figures for `make bench` (issue 13). MIT licence.
"""- set_profile_to_pwm_ms (host) and esp32_set_profile_to_pwm_ms (virtual ESP32): the time from
  sending a SetChargingProfile that lowers the limit of a charging EVSE to the pilot showing
  the new duty cycle in the sim's `status` (polled without pause), the median of five falls
  (32 -> 20 -> 16 -> 13 -> 10 -> 8 A: falls apply at once, rises wait the 5 s rise rule).
- esp32_smart_charging_heap_bytes: the heap the smart-charging block adds on the virtual ESP32
  at 112 KiB: idle and accepted before, then with a TxDefaultProfile set and a
  GetCompositeSchedule answered (the sim's own `heap` command, after a collection).
- esp32_load_management_heap_bytes: what local load management adds on top (Mode Capacity,
  the mains meter read every second).
"""

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools.harness import FAST, CsmsThread, Sim, variables  # noqa: E402

_LIMITS = (20, 16, 13, 10, 8)


def _profile(pid, amps):
    return {
        "id": pid,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": [
            {
                "id": 1,
                "startSchedule": "2020-01-01T00:00:00Z",
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": amps}],
            }
        ],
    }


def _evse(sim, pred, timeout=20):
    return sim.wait_status(lambda s: pred(s["evse"][0]), timeout)["evse"][0]


def _started(tmp, csms, esp32):
    sim = Sim(tmp, csms.url, esp32=esp32, config={"variables": variables(FAST)})
    st = csms.station(timeout=30)
    sim.wait_status(lambda s: s["registration"] == "Accepted" and s["connected"], timeout=30)
    return sim, st


def set_profile_to_pwm_ms(esp32=False):
    csms = CsmsThread()
    with tempfile.TemporaryDirectory() as tmp:
        sim, st = _started(tmp, csms, esp32)
        try:
            sim.cmd("plug_in", evse=1, cable_a=32)
            _evse(sim, lambda e: e["cp"] == "B")
            sim.cmd("button", evse=1)
            sim.cmd("ev_state", evse=1, state="C")
            _evse(sim, lambda e: e["contactor"] and e["offered_a"] == 32.0)
            took = []
            for amps in _LIMITS:
                duty = round(amps / 0.6, 1)
                t0 = time.monotonic()
                r = csms.call(
                    st, "SetChargingProfile", {"evseId": 1, "chargingProfile": _profile(1, amps)}
                )
                if r["status"] != "Accepted":
                    raise SystemExit("SetChargingProfile: %r" % r)
                while sim.cmd("status")["evse"][0]["pwm_duty"] != duty:
                    if time.monotonic() - t0 > 10:
                        raise SystemExit("the pilot never showed %.1f %%" % duty)
                took.append((time.monotonic() - t0) * 1000)
            return sorted(took)[len(took) // 2]
        finally:
            sim.close()
            csms.stop()


def esp32_heap_bytes():
    """(smart charging's heap, load management's heap) on the virtual ESP32, bytes."""
    csms = CsmsThread()
    with tempfile.TemporaryDirectory() as tmp:
        sim, st = _started(tmp, csms, True)
        try:
            time.sleep(3)
            idle = sim.cmd("heap")["alloc"]
            r = csms.call(
                st, "SetChargingProfile", {"evseId": 0, "chargingProfile": _profile(1, 16)}
            )
            assert r["status"] == "Accepted", r
            r = csms.call(st, "GetCompositeSchedule", {"evseId": 1, "duration": 3600})
            assert r["status"] == "Accepted", r
            time.sleep(3)
            smart = sim.cmd("heap")["alloc"]
            data = {
                "component": {"name": "LoadManagement"},
                "variable": {"name": "Mode"},
                "attributeValue": "Capacity",
            }
            r = csms.call(st, "SetVariables", {"setVariableData": [data]})
            assert r["setVariableResult"][0]["attributeStatus"] == "Accepted", r
            _evse(sim, lambda e: e["limit_a"] is not None)
            time.sleep(3)
            load = sim.cmd("heap")["alloc"]
            return smart - idle, load - smart
        finally:
            sim.close()
            csms.stop()


def main():
    from tools import esp32sim

    print("set_profile_to_pwm_ms: %.0f ms" % set_profile_to_pwm_ms(), flush=True)
    try:
        esp32sim.check()
    except esp32sim.Unavailable:
        return  # bench_esp32 has said why
    print("esp32_set_profile_to_pwm_ms: %.0f ms" % set_profile_to_pwm_ms(True), flush=True)
    smart, load = esp32_heap_bytes()
    print("esp32_smart_charging_heap_bytes: %d bytes" % smart, flush=True)
    print("esp32_load_management_heap_bytes: %d bytes" % load, flush=True)


if __name__ == "__main__":
    main()
