# bench: `make bench`: size, memory and speed figures of the firmware, one per line.
# MIT licence.
"""Print the figures the issues ask for, each on its own line as `name: value unit`.

- mpy_total_bytes: all .mpy files built from firmware/, lib/, boards/ (`make compile`).
- min_heap_kib: the smallest `-X heapsize` at which the virtual wallbox, running the compiled
  .mpy files as a board does, boots, is accepted and answers 20 GetVariables (binary search,
  4 KiB steps). On the unix port loaded bytecode lives in the heap; frozen into a board's
  image it stays in flash, so a board needs less than this.
- getvariables_round_trips_per_s: GetVariables (one item) answered per second, measured from
  the CSMS side over 3 s.
- pilot_to_contactor_open_max_ms: the slowest pilot change -> contactor open in the sim, over a
  charging session with every event that must open it (EV C->B, unplug, RCD trip, diode fault,
  CP short), each repeated; measured by the simulated EV from its change to the relay.
- loop_stall_max_ms: the longest the asyncio loop came back late during that session (the
  supervisor's 100 ms probe).
- full_inventory_peak_heap_bytes: the peak GC heap in use, above the idle heap, while the
  virtual wallbox (compiled .mpy, unix port, 64-bit) sends a GetBaseReport(FullInventory).
  Measured inside the firmware by the reports block: `gc.collect()` then `gc.mem_alloc()` as
  the baseline when the report starts; before each NotifyReport part another `gc.collect()`
  (so parts do not pile up garbage), then `gc.mem_alloc()` sampled once the part is built and
  again once its CALLRESULT is back; the largest sample minus the baseline is logged with the
  report ("heap peak +N B") and read here from the wallbox's log. The sample after the send
  holds the live part (6-7 KB for 10 items) plus everything the send left as garbage: the
  serialised frame, the WebSocket frame and its masking, the parsed reply, and what the other
  tasks allocated meanwhile: the heap the report occupies when no collection runs during a
  part, which is far more than it needs live. Not caught: a buffer freed explicitly within
  the send as it grows (a few KB at most).
- queue_flash_bytes_per_charging_hour: journal bytes the message queue (firmware/queue.py)
  writes per hour of charging with the default sampling: MessageQueue driven under CPython
  with its real sender and compactor, a CSMS that answers every message at once, and ten
  back-to-back one-hour sessions, each a Started event, an Updated event every
  TxUpdatedInterval (60 s: 59 of them) and an Ended event, divided by ten so the compactions
  (every ~16 KB of journal) count at their average rate. Payloads are what the station sends:
  meterValue from firmware/meter_values.py with the default TxStarted/TxUpdated/TxEnded
  measurands of firmware/variables.py (TxEnded sampled every TxEndedInterval), a 36-character
  transactionId, checked against the official TransactionEventRequest schema. The count is
  `bytes_written`: every A record (posted), D record (answered) and compaction write; the
  journal's first header is left out. What the file system adds (littlefs metadata and block
  copies) is not in it.
- delivery_200_events_peak_heap_bytes: the peak GC heap above the start of the delivery while
  the virtual wallbox (compiled .mpy) sends 200 TransactionEvents that were queued while it
  was off (the journal filled beforehand with the payloads above). Measured inside the
  firmware like full_inventory_peak_heap_bytes (firmware/queue.py `heap_probe`: a collection
  before each message, samples once it is loaded and once it is answered).
- flash_bytes_per_charging_hour: everything the firmware writes per charging hour with the
  default sampling (TxUpdatedInterval 60 s, TxEndedInterval 300 s, AlignedDataCtrlr.Interval
  900 s): the real transactions block and queue under CPython on a fake clock, three one-hour
  11 kW sessions: the queue journal, the transaction document (rewritten with each event for
  its seqNo) and the TxEnded samples file (appended every TxEndedInterval).
- log_flash_bytes_per_charging_hour: tools/bench_logs.py: what the diagnostics log on flash
  writes per charging hour at the default level.
- rsa2048_verify_ms, ecdsa_p256_verify_ms, sha256_mb_per_s: tools/bench_crypto.py, on the
  MicroPython unix port (medians of 21 runs; SHA-256 over 1 MiB in 4 KiB pieces);
  key_generation_ms, csr_signature_ms: the station's own P-256 key and its CSR (A02), there.
- ota_update_peak_heap_bytes: tools/bench_ota.py: the peak GC heap above idle during a whole
  signed update of the virtual wallbox, measured inside the update block.
- esp32_frozen_bytes, esp32_idle_heap_bytes, esp32_min_heap_kib, esp32_peak_heap_bytes: the
  virtual ESP32 (tools/bench_esp32.py; the reference scenario is tools/esp32_scenario.py);
  esp32_log_upload_peak_heap_bytes: the heap a log upload needs there (tools/bench_logs.py);
  esp32_key_and_csr_heap_bytes: the heap the station's own key and CSR need there;
  esp32_monitoring_heap_bytes, esp32_50_monitors_heap_bytes: the monitoring block with one
  monitor, and 49 more (tools/bench_esp32.py).
- set_profile_to_pwm_ms, esp32_set_profile_to_pwm_ms, esp32_smart_charging_heap_bytes,
  esp32_load_management_heap_bytes: smart charging (tools/bench_smart.py).
- sim_idle_cpu_percent, sim_charging_cpu_percent, sim_rss_kib and their esp32_sim_ twins:
  what one virtual wallbox costs the machine running it (tools/bench_sim.py).
"""

import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools import (  # noqa: E402
    bench_crypto,
    bench_esp32,
    bench_logs,
    bench_ota,
    bench_sim,
    bench_smart,
)
from tools.harness import CsmsThread, Sim  # noqa: E402

GV = {
    "getVariableData": [
        {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
    ]
}


def mpy_total_bytes():
    files = list((ROOT / "build" / "mpy").rglob("*.mpy"))
    if not files:
        raise SystemExit("no .mpy files: run `make compile` first")
    return sum(f.stat().st_size for f in files)


def boots_with(csms, heap_kib, sid):
    """True when a wallbox with this heap is accepted and answers 20 GetVariables."""
    with tempfile.TemporaryDirectory() as tmp:
        sim = Sim(tmp, csms.url, sid=sid, heap="%dK" % heap_kib, code=ROOT / "build" / "mpy")
        try:
            st = csms.station(sid, timeout=8)
            csms.wait_call(st, "BootNotification", timeout=8)
            sim.wait_status(lambda s: s["registration"] == "Accepted", timeout=8)
            for _ in range(20):
                got = csms.call(st, "GetVariables", GV, timeout=5)
                if got["getVariableResult"][0]["attributeStatus"] != "Accepted":
                    return False
            return sim.proc.poll() is None and "MemoryError" not in sim.log()
        except Exception:
            return False
        finally:
            sim.close()


def min_heap_kib(csms, lo=8, hi=512):
    if not boots_with(csms, hi, "H%d" % hi):
        raise SystemExit("the wallbox does not even run with %d KiB" % hi)
    while hi - lo > 4:
        mid = (lo + hi) // 2 // 4 * 4
        if boots_with(csms, mid, "H%d" % mid):
            hi = mid
        else:
            lo = mid
    return hi


def round_trips_per_s(csms, seconds=3.0):
    with tempfile.TemporaryDirectory() as tmp:
        sim = Sim(tmp, csms.url, sid="RT")
        try:
            st = csms.station("RT")
            sim.wait_status(lambda s: s["registration"] == "Accepted")

            async def loop():
                n = 0
                t0 = time.monotonic()
                while time.monotonic() - t0 < seconds:
                    await st.call("GetVariables", GV)
                    n += 1
                return n / (time.monotonic() - t0)

            return csms.run(loop(), seconds + 30)
        finally:
            sim.close()


def full_inventory_peak_heap(csms):
    """Bytes of heap above idle while the sim sends its FullInventory report (see above)."""
    with tempfile.TemporaryDirectory() as tmp:
        sim = Sim(tmp, csms.url, sid="FI", code=ROOT / "build" / "mpy")
        try:
            st = csms.station("FI")
            sim.wait_status(lambda s: s["registration"] == "Accepted")
            start = len(st.frames)
            req = {"requestId": 4242, "reportBase": "FullInventory"}
            if csms.call(st, "GetBaseReport", req)["status"] != "Accepted":
                raise SystemExit("FullInventory not accepted")
            csms.wait_frame(
                st,
                lambda f: f.kind == "call" and f.action == "NotifyReport" and not f.payload["tbc"],
                timeout=30,
                start=start,
            )
            pattern = re.compile(r"report 4242 sent in \d+ parts, heap peak \+(\d+) B")
            deadline = time.monotonic() + 10
            while True:
                m = pattern.search(sim.log())
                if m:
                    return int(m.group(1))
                if time.monotonic() > deadline:
                    raise SystemExit("no heap figure in the wallbox's log")
                time.sleep(0.1)
        finally:
            sim.close()


OPENERS = (
    [("ev_state", {"state": "B"})],
    [("plug_out", {})],
    [("raise_error", {"error": "rcd_trip"})],
    [("raise_error", {"error": "diode_fault"})],
    [("raise_error", {"error": "cp_short"})],
)


def charging_session(csms, rounds=3):
    """(max ms pilot change -> contactor open, max loop stall ms) over a scripted session."""
    with tempfile.TemporaryDirectory() as tmp:
        sim = Sim(tmp, csms.url, sid="EV")
        try:
            sim.wait_status(lambda s: s["registration"] == "Accepted")
            for _ in range(rounds):
                for steps in OPENERS:
                    start_charging(sim)
                    for name, args in steps:
                        sim.cmd(name, evse=1, **args)
                    evse_where(sim, lambda e: not e["contactor"])
                    reset(sim)
            st = sim.cmd("status")
            return st["evse"][0]["max_open_ms"], st["max_stall_ms"]
        finally:
            sim.close()


def evse_where(sim, pred):
    return sim.wait_status(lambda s: pred(s["evse"][0]))["evse"][0]


def start_charging(sim):
    sim.cmd("plug_in", evse=1, cable_a=32)
    evse_where(sim, lambda e: e["cp"] == "B")
    sim.cmd("button", evse=1)
    sim.cmd("ev_state", evse=1, state="C")
    evse_where(sim, lambda e: e["contactor"])
    time.sleep(0.5)


def reset(sim):
    for code in ("rcd_trip", "diode_fault", "cp_short"):
        sim.cmd("clear_error", evse=1, error=code)
    sim.cmd("ev_state", evse=1, state="B")
    sim.cmd("plug_out", evse=1)
    evse_where(sim, lambda e: e["cp"] == "A" and not e["faults"])


def _session_events(h):
    """The TransactionEvents of one-hour session number `h` with the default sampling, as the
    station sends them: meterValue from firmware/meter_values.py with the default measurands
    of firmware/variables.py, a 36-character transactionId, each checked against the official
    TransactionEventRequest schema."""
    sys.path.insert(0, str(ROOT / "tests_host"))
    import types

    import jsonschema

    import mpcompat

    mpcompat.install()
    import rfc3339
    from firmware.meter_values import sampled
    from firmware.variables import VARIABLES

    defaults = {d[0]: d[2] for d in VARIABLES}
    sd = "SampledDataCtrlr/"
    started_m, updated_m = (
        defaults[sd + "TxStartedMeasurands"],
        defaults[sd + "TxUpdatedMeasurands"],
    )
    ended_m, ended_s = defaults[sd + "TxEndedMeasurands"], int(defaults[sd + "TxEndedInterval"])
    every_s = int(defaults[sd + "TxUpdatedInterval"])
    schema_path = "ocpp/v201/schemas/TransactionEventRequest.json"
    site = Path(jsonschema.__file__).parent.parent
    check = jsonschema.Draft6Validator(json.loads((site / schema_path).read_text())).validate
    reading = types.SimpleNamespace(current_a=(16.0, 15.9, 16.1), voltage_v=(230.0,) * 3)
    evse = types.SimpleNamespace(reading=reading, offered_a=16.0)
    t_start = 1717243200  # 2024-06-01T12:00:00Z

    def meter(t, measurands, context):
        reading.energy_wh = round(1234567.8 + (t - t_start) * 11000 / 3600, 1)
        reading.power_w = 11020.5
        return {"timestamp": rfc3339.format(t), "sampledValue": sampled(evse, measurands, context)}

    t0 = t_start + h * 3600
    tx = "%08x-%04x-4%03x-8%03x-%012x" % (h, h, h, h, h)
    info = {"transactionId": tx, "chargingState": "Charging"}
    out = [
        {
            "eventType": "Started",
            "timestamp": rfc3339.format(t0),
            "triggerReason": "ChargingStateChanged",
            "seqNo": 0,
            "transactionInfo": info,
            "evse": {"id": 1, "connectorId": 1},
            "idToken": {"idToken": "04A2B3C4D5E680", "type": "ISO14443"},
            "meterValue": [meter(t0, started_m, "Transaction.Begin")],
        }
    ]
    n = 3600 // every_s
    for k in range(1, n):
        t = t0 + k * every_s
        out.append(
            {
                "eventType": "Updated",
                "timestamp": rfc3339.format(t),
                "triggerReason": "MeterValuePeriodic",
                "seqNo": k,
                "transactionInfo": {"transactionId": tx},
                "meterValue": [meter(t, updated_m, "Sample.Periodic")],
            }
        )
    t_end = t0 + 3600
    ends = [meter(t, ended_m, "Sample.Periodic") for t in range(t0, t_end, ended_s)]
    ends.append(meter(t_end, ended_m, "Transaction.End"))
    out.append(
        {
            "eventType": "Ended",
            "timestamp": rfc3339.format(t_end),
            "triggerReason": "EVCommunicationLost",
            "seqNo": n,
            "transactionInfo": {
                "transactionId": tx,
                "chargingState": "Idle",
                "stoppedReason": "EVDisconnected",
            },
            "meterValue": ends,
        }
    )
    for p in out:
        check(p)
    return out


def queue_flash_bytes_per_charging_hour(hours=10):
    """Journal bytes per charging hour (see the module docstring for the method)."""
    import asyncio

    import log
    from firmware.queue import MessageQueue

    class Csms:
        async def call(self, action, payload):
            return {}

    class Link:
        def __init__(self):
            self.ready = asyncio.Event()
            self.ready.set()

    async def drive(path):
        q = MessageQueue(path, Csms(), Link(), None)
        sender = asyncio.create_task(q.run())
        first = q.bytes_written  # the new journal's header
        for h in range(hours):
            for payload in _session_events(h):
                q.post("TransactionEvent", payload, payload["transactionInfo"]["transactionId"])
                while q.pending():
                    await asyncio.sleep(0)
        for _ in range(1000):  # let a compaction under way finish
            await asyncio.sleep(0)
        sender.cancel()
        q.close()
        return (q.bytes_written - first) / hours

    with mock.patch.object(log, "level", 2), tempfile.TemporaryDirectory() as tmp:
        return asyncio.run(drive(tmp + "/queue.jnl"))


def flash_bytes_per_charging_hour(hours=3):
    """Bytes the firmware writes to flash per charging hour with the default sampling: the
    real transactions block (firmware/blocks/transactions.py, firmware/bay.py) and message
    queue under CPython, on a fake clock, a fake EVSE charging 11 kW for an hour per session,
    and a CSMS that answers at once. Counted: the queue journal (bytes_written), the
    transaction document rewritten with each event, and the TxEnded samples file."""
    sys.path.insert(0, str(ROOT / "tests_host"))
    import asyncio
    import types

    import mpcompat

    mpcompat.install()
    import log
    import ocppj
    import store
    from clock import Clock
    from firmware import bay as baymod
    from firmware.blocks import transactions as txmod
    from firmware.device_model import DeviceModel
    from firmware.queue import MessageQueue
    from firmware.variables import declarations
    from meter import Reading
    from store import Store

    written = [0]

    class Ticks:  # the module's `time`, on a clock the bench moves
        ms = 0

        @staticmethod
        def ticks_ms():
            return Ticks.ms

        @staticmethod
        def ticks_diff(a, b):
            return a - b

        @staticmethod
        def ticks_add(a, b):
            return a + b

    class CountingStore(Store):
        def save(self, name, doc):
            written[0] += len(json.dumps(doc))
            super().save(name, doc)

    def counted(fn):
        def wrapper(path, entries):  # store.append_line (one doc) or write_lines (a list)
            many = entries if isinstance(entries, list) else [entries]
            written[0] += sum(len(json.dumps(e, separators=(",", ":"))) + 1 for e in many)
            return fn(path, entries)

        return wrapper

    unix0 = 1717243200

    class Csms:
        async def call(self, action, payload):
            return {}

    async def drive(tmp):
        store = CountingStore(tmp)
        hw = types.SimpleNamespace(phases=3, max_a=32, cable_a=None, phase_switch=None)
        dm = DeviceModel(store, declarations([hw]))
        link = types.SimpleNamespace(ready=asyncio.Event(), registration="Accepted")
        link.ready.set()
        q = MessageQueue(tmp + "/queue.jnl", Csms(), link, dm, ticks=Ticks.ticks_ms)
        evse = types.SimpleNamespace(
            id=1,
            plugged=False,
            energy_flowing=False,
            ev_requesting=False,
            offered_a=0,
            faults=set(),
            available=True,
            permitted=False,
            limited=False,  # no smart-charging limit below 6 A
            reading=None,
            reading_ms=None,
            cp="A",
            on_change=[],
        )
        evse.permit = lambda on: setattr(evse, "permitted", on)
        evse.touch = lambda: None
        auth = types.SimpleNamespace(remember=lambda t, i: None)
        txs = txmod.Transactions(
            ocppj.Router(),
            Csms(),
            link,
            q,
            dm,
            store,
            Clock(lambda: unix0 + Ticks.ms // 1000),
            [evse],
            auth,
            lambda c: c.close(),
            os.urandom,
            "PowerUp",
        )
        bay = txs.bays[0]
        sender = asyncio.create_task(q.run())
        first = q.bytes_written
        energy = 1234567.8

        def changed(**kw):
            for k, v in kw.items():
                setattr(evse, k, v)
            for fn in evse.on_change:
                fn(evse)

        async def second():
            nonlocal energy
            Ticks.ms += 1000
            if evse.energy_flowing:
                energy += 11000 / 3600
            evse.reading = Reading(round(energy, 1), 11000.0, (16.0,) * 3, (230.0,) * 3)
            evse.reading_ms = Ticks.ms
            txs._tick()
            while q.pending():
                await asyncio.sleep(0)

        for _ in range(hours):
            changed(plugged=True, cp="B")
            await second()
            bay.authorize(
                {"idToken": "04A2B3C4D5E680", "type": "ISO14443"}, {"status": "Accepted"}
            )
            changed(cp="C", ev_requesting=True, offered_a=16, energy_flowing=True)
            for _ in range(3600):
                await second()
            changed(cp="B", ev_requesting=False, energy_flowing=False)
            changed(plugged=False, cp="A", offered_a=0)
            for _ in range(3):
                await second()
            assert bay.tx is None
        for _ in range(1000):  # let a compaction under way finish
            await asyncio.sleep(0)
        sender.cancel()
        q.close()
        return (q.bytes_written - first + written[0]) / hours

    # the patches last only as long as the figure: the unit tests share these modules
    with (
        mock.patch.object(txmod, "time", Ticks),
        mock.patch.object(baymod, "time", Ticks),
        mock.patch.object(store, "append_line", counted(store.append_line)),
        mock.patch.object(store, "write_lines", counted(store.write_lines)),
        mock.patch.object(log, "level", 2),
        tempfile.TemporaryDirectory() as tmp,
    ):
        return asyncio.run(drive(tmp))


def delivery_peak_heap(csms, n=200):
    """Peak GC heap above the start of the delivery while the virtual wallbox (compiled .mpy,
    unix port, 64-bit) sends `n` TransactionEvents queued while it was off: the journal is
    filled under CPython by the real MessageQueue with the payloads of one-hour sessions, then
    the wallbox starts on it. Measured inside the firmware (firmware/queue.py, `heap_probe`),
    the way full_inventory_peak_heap_bytes is, and read from its log."""
    sys.path.insert(0, str(ROOT / "tests_host"))
    import asyncio

    import mpcompat

    mpcompat.install()
    import log
    from firmware.queue import MessageQueue

    class Offline:
        ready = asyncio.Event()

    # the journal's own messages are not figures
    with mock.patch.object(log, "level", 2), tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        state.mkdir()
        q = MessageQueue(str(state / "queue.jnl"), None, Offline(), None)
        events = [p for h in range(4) for p in _session_events(h)][:n]
        for p in events:
            q.post("TransactionEvent", p, p["transactionInfo"]["transactionId"])
        q.close()
        os.environ["WALLBOX_SIM_HEAP_PROBE"] = "1"
        try:
            sim = Sim(tmp, csms.url, sid="DQ", state_dir=state, code=ROOT / "build" / "mpy")
        finally:
            del os.environ["WALLBOX_SIM_HEAP_PROBE"]
        try:
            pattern = re.compile(r"delivered (\d+) messages, heap peak \+(\d+) B")
            deadline = time.monotonic() + 120
            while True:
                m = pattern.search(sim.log())
                if m:
                    if int(m.group(1)) < n:
                        raise SystemExit("delivered %s of %d" % (m.group(1), n))
                    return int(m.group(2))
                if time.monotonic() > deadline:
                    raise SystemExit("no delivery heap figure in the wallbox's log")
                time.sleep(0.2)
        finally:
            sim.close()


def main():
    print("mpy_total_bytes: %d bytes" % mpy_total_bytes(), flush=True)
    csms = CsmsThread()
    try:
        print("min_heap_kib: %d KiB" % min_heap_kib(csms), flush=True)
        print("getvariables_round_trips_per_s: %.0f /s" % round_trips_per_s(csms), flush=True)
        open_ms, stall_ms = charging_session(csms)
        print("pilot_to_contactor_open_max_ms: %d ms" % open_ms, flush=True)
        print("loop_stall_max_ms: %d ms" % stall_ms, flush=True)
        peak = full_inventory_peak_heap(csms)
        print("full_inventory_peak_heap_bytes: %d bytes" % peak, flush=True)
        peak = delivery_peak_heap(csms)
        print("delivery_200_events_peak_heap_bytes: %d bytes" % peak, flush=True)
    finally:
        csms.stop()
    flash = queue_flash_bytes_per_charging_hour()
    print("queue_flash_bytes_per_charging_hour: %d bytes" % flash, flush=True)
    flash = flash_bytes_per_charging_hour()
    print("flash_bytes_per_charging_hour: %d bytes" % flash, flush=True)
    flash = bench_logs.log_flash_bytes_per_charging_hour()
    print("log_flash_bytes_per_charging_hour: %d bytes" % flash, flush=True)
    bench_crypto.main()  # rsa2048_verify_ms, ..., key_generation_ms, csr_signature_ms
    print("ota_update_peak_heap_bytes: %d bytes" % bench_ota.figure(), flush=True)
    bench_esp32.main()  # esp32_frozen_bytes, esp32_idle_heap_bytes, esp32_min_heap_kib, ...
    bench_smart.main()  # set_profile_to_pwm_ms, esp32_smart_charging_heap_bytes, ...
    bench_sim.main()  # sim_idle_cpu_percent, sim_charging_cpu_percent, sim_rss_kib, ...


if __name__ == "__main__":
    main()
