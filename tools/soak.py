# soak: `make soak`: charging sessions on the virtual wallbox for a given time, with random
# network outages and random power losses (SIGKILL), then a check on the CSMS side that every
# transaction arrived whole, exactly once, and billed the energy the meter counted.
# MIT licence.
"""Soak test of the money path.

Each round is one session: plug in, the EV asks for energy, a card or the button starts it,
it charges for a few seconds and ends by the card, the button or the unplug. Between any two
steps the network may go away for a while (ws_disconnect / ws_connect) and the power may go
(SIGKILL of the whole process group, then a new start on the same state directory). At the
end the network comes back and the queue drains; then, on the CSMS side:

- every transaction the station showed (status tx_id) and every one the CSMS heard of has
  exactly one Started (seqNo 0) and one Ended, seqNo without gaps;
- nothing is duplicated: a message sent again after a power loss (the CSMS's answer was
  lost with the power) must be the same message, and is counted, not billed, twice;
- the energy billed (Ended's Transaction.End minus Started's Transaction.Begin, summed) is
  the energy the simulated meter counted over the whole run.

Usage: tools/soak.py [--minutes 10] [--seed N] [--esp32]   (`make soak MINUTES=10`)
(--esp32: on the virtual ESP32 at 112 KiB; tests_host/test_e2e_soak.py runs a short one on
each target.)
Exit status 0 when every check holds; the findings are printed either way.
"""

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools.harness import FAST, CsmsThread, Sim, variables  # noqa: E402

SETTINGS = dict(FAST)
SETTINGS.update(
    {
        ("SampledDataCtrlr", "TxUpdatedInterval"): "2",
        ("SampledDataCtrlr", "TxEndedInterval"): "5",
        ("AlignedDataCtrlr", "Interval"): "0",
        ("OCPPCommCtrlr", "MessageAttemptInterval:TransactionEvent"): "1",
        ("OCPPCommCtrlr", "MessageTimeout:Default"): "5",
        ("AuthCtrlr", "OfflineTxForUnknownIdEnabled"): "true",
    }
)
TOKENS = ("SOAK01", "SOAK02", "SOAK03")


class Run:
    def __init__(self, seed, workdir, esp32=False):
        self.esp32 = esp32
        self.rng = random.Random(seed)
        self.workdir = Path(workdir)
        self.state = self.workdir / "state"
        self.csms = CsmsThread()
        self.received = []  # every TransactionEvent payload, as the CSMS got it
        self.csms.csms.handlers["TransactionEvent"] = self._tx_event
        self.config = {"variables": variables(SETTINGS)}
        self.sim = None
        self.seen_tx = set()  # transaction ids the station showed in its status
        self.kills = 0
        self.outages = 0
        self.sessions = 0
        self.online = True

    def _tx_event(self, station, payload):
        self.received.append(json.loads(json.dumps(payload)))
        if "idToken" in payload:
            return {"idTokenInfo": {"status": "Accepted"}}
        return {}

    # -- the station --------------------------------------------------------------------------

    def start(self):
        self.sim = Sim(
            self.workdir, self.csms.url, config=self.config, state_dir=self.state, esp32=self.esp32
        )
        self.status(timeout=20)
        if not self.online:
            self.cmd("ws_disconnect")  # a new process starts with the network up

    def cmd(self, name, **kw):
        r = self.sim.cmd(name, timeout=20, **kw)
        if not r.get("ok"):
            raise RuntimeError("%s: %r" % (name, r))
        return r

    def status(self, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            try:
                s = self.sim.cmd("status", timeout=5)
                for e in s["evse"]:
                    if e["tx_id"]:
                        self.seen_tx.add(e["tx_id"])
                return s
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def evse(self):
        return self.status()["evse"][0]

    def wait(self, pred, timeout=15):
        deadline = time.monotonic() + timeout
        while not pred(self.evse()):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    # -- trouble ------------------------------------------------------------------------------

    def maybe_trouble(self):
        r = self.rng.random()
        if r < 0.12:
            self.kill()
        elif r < 0.30:
            self.outage()

    def kill(self):
        self.kills += 1
        self.sim.kill()
        self.sim.close()
        time.sleep(self.rng.uniform(0.0, 1.0))
        self.start()

    def outage(self):
        if self.online:
            self.outages += 1
            self.online = False
            self.cmd("ws_disconnect")
        else:
            self.online = True
            self.cmd("ws_connect")

    # -- a session ----------------------------------------------------------------------------

    def session(self):
        self.sessions += 1
        rng = self.rng
        token = rng.choice(TOKENS)
        by_button = rng.random() < 0.3
        self.cmd("plug_in", evse=1)
        self.wait(lambda e: e["cp"] in "BC")
        self.maybe_trouble()
        self.cmd("ev_state", evse=1, state="C")
        if by_button:
            self.cmd("button", evse=1)
        else:
            self.cmd("swipe", token=token)
        self.wait(lambda e: e["contactor"], timeout=10)
        self.status()
        end = time.monotonic() + rng.uniform(2, 8)
        while time.monotonic() < end:
            time.sleep(0.5)
            self.status()
            if rng.random() < 0.05:
                self.maybe_trouble()
        self.maybe_trouble()
        how = rng.random()
        if how < 0.4 and self.evse()["tx_id"]:
            if by_button:
                self.cmd("button", evse=1)
            else:
                self.cmd("swipe", token=token)
            self.wait(lambda e: e["tx_id"] is None, timeout=15)
        self.cmd("ev_state", evse=1, state="B")
        self.wait(lambda e: not e["contactor"])
        self.maybe_trouble()
        self.cmd("plug_out", evse=1)
        self.wait(lambda e: e["tx_id"] is None, timeout=15)

    def drain(self, timeout=120):
        """Network back; wait until every transaction seen has its Ended at the CSMS and no
        event has come for a while."""
        if not self.online:
            self.online = True
            self.cmd("ws_connect")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            n = len(self.received)
            time.sleep(3.0)
            ended = {
                p["transactionInfo"]["transactionId"]
                for p in self.received
                if p["eventType"] == "Ended"
            }
            if len(self.received) == n and self.seen_tx <= ended:
                return True
        return False

    def close(self):
        if self.sim is not None:
            self.sim.close()
        self.csms.stop()


def check(received, seen_tx, meter_wh):
    """Findings (empty: all good) and counts, from the CSMS's view of the run."""
    problems = []
    by_tx = {}
    resent = 0
    for p in received:
        tx = p["transactionInfo"]["transactionId"]
        seqs = by_tx.setdefault(tx, {})
        old = seqs.get(p["seqNo"])
        if old is None:
            seqs[p["seqNo"]] = p
        elif old == p:
            resent += 1
        else:
            problems.append("%s seqNo %d: two different events" % (tx, p["seqNo"]))
    for tx in sorted(seen_tx - set(by_tx)):
        problems.append("%s: the station showed it, the CSMS never heard of it" % tx)
    billed = 0.0
    for tx, seqs in by_tx.items():
        nums = sorted(seqs)
        if nums != list(range(len(nums))):
            problems.append("%s: seqNo %s has gaps" % (tx, nums))
            continue
        kinds = [seqs[k]["eventType"] for k in nums]
        if kinds[0] != "Started" or kinds.count("Started") != 1:
            problems.append("%s: Started %r" % (tx, kinds))
        if kinds[-1] != "Ended" or kinds.count("Ended") != 1:
            problems.append("%s: not ended exactly once: %r" % (tx, kinds))
            continue
        begin = _register(seqs[0], "Transaction.Begin")
        end = _register(seqs[nums[-1]], "Transaction.End")
        if begin is None or end is None:
            problems.append("%s: no begin or end register" % tx)
            continue
        billed += end - begin
    # Status rounds the register to 0.1 Wh; meter values carry 0.01 Wh.
    tolerance = 0.15 + 0.01 * len(by_tx)
    if abs(billed - meter_wh) > tolerance:
        problems.append("billed %.2f Wh, the meter counted %.2f Wh" % (billed, meter_wh))
    return problems, {"transactions": len(by_tx), "resent": resent, "billed_wh": billed}


def _register(p, context):
    for mv in p.get("meterValue", ()):
        for sv in mv["sampledValue"]:
            if (
                sv.get("context") == context
                and sv.get("measurand", "Energy.Active.Import.Register")
                == "Energy.Active.Import.Register"
            ):
                return sv["value"]
    return None


def soak(minutes, seed, esp32=False, say=print):
    """Sessions for `minutes`, then the checks: (problems, counts, run, the station's log)."""
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        run = Run(seed, tmp, esp32)
        try:
            run.start()
            first = run.status(timeout=30)["evse"][0]["energy_wh"]
            stop = time.monotonic() + minutes * 60
            while time.monotonic() < stop:
                run.session()
            drained = run.drain()
            last = run.status()["evse"][0]["energy_wh"]
            problems, counts = check(run.received, run.seen_tx, last - first)
            if not drained:
                problems.append("the queue did not drain within 2 minutes")
        finally:
            log = run.sim.log() if run.sim else ""
            run.close()
    say(
        "soak: %d sessions, %d transactions, %d outages, %d power losses, %d messages resent"
        % (run.sessions, counts["transactions"], run.outages, run.kills, counts["resent"])
    )
    say("soak: billed %.2f Wh, meter %.2f Wh" % (counts["billed_wh"], last - first))
    return problems, counts, run, log


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--esp32", action="store_true", help="on the virtual ESP32 at 112 KiB")
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    where = " on the virtual ESP32" if args.esp32 else ""
    print("soak: %.1f min%s, seed %d" % (args.minutes, where, seed), flush=True)
    problems, _, _, log = soak(args.minutes, seed, args.esp32)
    for p in problems:
        print("soak: FAIL " + p)
    if problems:
        Path("soak-last.log").write_text(log)
        print("soak: the station's last log is in soak-last.log")
        return 1
    print("soak: all good")
    return 0


if __name__ == "__main__":
    sys.exit(main())
