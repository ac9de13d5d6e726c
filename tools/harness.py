# harness: the development CSMS in a background event loop and the real firmware as a child
# process group, both driven synchronously; shared by the end-to-end tests and `make bench`.
# MIT licence.

import asyncio
import json
import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path

from tools.csms import Csms

ROOT = Path(__file__).resolve().parent.parent
SIM = ROOT / "tools" / "wallbox-sim"

# Short timings so that a test sees a whole reconnect or retry cycle in seconds.
FAST = {
    ("OCPPCommCtrlr", "RetryBackOffWaitMinimum"): "1",
    ("OCPPCommCtrlr", "RetryBackOffRandomRange"): "0",
    ("OCPPCommCtrlr", "RetryBackOffRepeatTimes"): "2",
}


def variables(values):
    """Config-file `variables` entries from {(component, variable[:instance]): value}."""
    out = []
    for (comp, var), value in values.items():
        name, _, inst = var.partition(":")
        v = {"name": name}
        if inst:
            v["instance"] = inst
        out.append({"component": {"name": comp}, "variable": v, "attributeValue": value})
    return out


class CsmsThread:
    """A Csms served by its own event loop in a daemon thread. Keyword arguments go to Csms:
    certfile, keyfile (and client_ca, tls_max_version, tls_ciphers) make it a wss:// server."""

    def __init__(self, **kw):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.csms = Csms(**kw)
        self.run(self.csms.start())
        self.url = self.csms.url

    def set_tls(self, certfile, keyfile, client_ca=None, tls_max_version=None, tls_ciphers=None):
        """Serve new connections with these TLS options (Csms.set_tls; same port)."""
        self.run(self.csms.set_tls(certfile, keyfile, client_ca, tls_max_version, tls_ciphers))
        self.url = self.csms.url

    def run(self, coro, timeout=30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def station(self, sid="CS1", timeout=15):
        return self.run(self.csms.wait_station(sid, timeout), timeout + 5)

    def wait_call(self, st, action, timeout=15, start=0):
        return self.run(st.wait_call(action, timeout, start), timeout + 5)

    def wait_frame(self, st, pred, timeout=15, start=0):
        return self.run(st.wait_frame(pred, timeout, start), timeout + 5)

    def call(self, st, action, payload, timeout=15):
        return self.run(st.call(action, payload, timeout), timeout + 5)

    def stop(self):
        try:
            self.run(self.csms.stop(), 10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


class Sim:
    """One virtual wallbox process group; `cmd` speaks its control channel."""

    def __init__(
        self,
        tmp,
        url,
        sid="CS1",
        config=None,
        state_dir=None,
        heap=None,
        code=None,
        evses=None,
        esp32=False,
    ):
        self.tmp = Path(tmp)
        self.state_dir = Path(state_dir or self.tmp / ("state-" + sid))
        self.log_path = self.tmp / ("sim-%s-%d.log" % (sid, time.monotonic_ns()))
        args = [str(SIM), "--csms", url, "--id", sid, "--state-dir", str(self.state_dir)]
        if config is not None:
            cfg = self.tmp / ("config-%s.json" % sid)
            cfg.write_text(json.dumps(config))
            args += ["--config", str(cfg)]
        if heap:
            args += ["--heap", heap]
        if code:
            args += ["--code", str(code)]
        if evses:
            args += ["--evses", str(evses)]
        if esp32:  # the virtual ESP32 (tools/esp32sim.py)
            args.append("--esp32")
        self.log_file = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log_file,
            start_new_session=True,
            cwd=ROOT,
        )
        self.replies = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.replies.put(line.decode())
        self.replies.put(None)

    def send_line(self, text):
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()

    def reply(self, timeout=10):
        line = self.replies.get(timeout=timeout)
        if line is None:
            raise EOFError("wallbox-sim closed stdout")
        return json.loads(line)

    def cmd(self, name, timeout=10, **kw):
        kw["cmd"] = name
        self.send_line(json.dumps(kw))
        return self.reply(timeout)

    def wait_status(self, pred, timeout=15):
        deadline = time.monotonic() + timeout
        while True:
            st = self.cmd("status")
            if pred(st):
                return st
            if time.monotonic() > deadline:
                raise AssertionError("status never matched: %r" % st)
            time.sleep(0.1)

    def kill(self):
        """Power loss: SIGKILL to the whole process group."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def log(self):
        if not self.log_file.closed:
            self.log_file.flush()
        return self.log_path.read_text()

    def close(self):
        self.kill()
        self.log_file.close()
