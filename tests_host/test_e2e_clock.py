"""End to end: the clock before TLS. The sim's board clock starts in 1970 (config "sim":
{"clock_1970": true}), as an ESP32's RTC after power-up; the station does not try wss:// with
it (TLS would find the CSMS certificate not yet valid; the host's TLS library reads the host's
clock, so this is the firmware's own rule). With NTP as a time source it asks a local SNTP
server first; without, it uses the time saved at its last good sync, and for security profile
1 only, ws://. Otherwise it logs why and retries."""

import re
import socket
import struct
import threading
import time

import pytest
from test_e2e_tls import PASSWORD, accepted, profile2, security_events, tls_csms
from tls_certs import make_pki

from tools.harness import FAST, CsmsThread, variables

pytestmark = pytest.mark.e2e

NTP_UNIX = 2208988800
MOVED = re.compile(r"^moved \+(\d+) s$")
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
UNSET = "no wss:// with the clock unset: no NTP answer, no saved time"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


class SntpServer:
    """An SNTP server on 127.0.0.1: answers each request with the host's time."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.requests = 0
        self.stopped = False
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while not self.stopped:
            try:
                req, addr = self.sock.recvfrom(512)
            except OSError:
                continue
            self.requests += 1
            t = time.time() + NTP_UNIX
            stamp = struct.pack("!II", int(t), int(t % 1 * 2**32))
            head = struct.pack("!BBbb", 0 << 6 | 4 << 3 | 4, 2, 6, -20) + bytes(8) + b"GPS\0"
            self.sock.sendto(head + stamp + req[40:48] + stamp + stamp, addr)

    def close(self):
        self.stopped = True
        time.sleep(0.1)
        self.sock.close()


def config(pki, values=()):
    cfg = profile2(pki)
    v = dict(FAST)
    v[("SecurityCtrlr", "BasicAuthPassword")] = PASSWORD
    v.update(values)
    cfg["variables"] = variables(v)
    cfg["sim"] = {"clock_1970": True}
    return cfg


def stepped(event):
    """The seconds of a SettingSystemTime event, checking its exact shape."""
    assert set(event) == {"type", "timestamp", "techInfo"}
    assert event["type"] == "SettingSystemTime" and STAMP.match(event["timestamp"])
    return int(MOVED.match(event["techInfo"]).group(1))


def test_a_1970_clock_is_set_by_ntp_before_tls(pki, sims):
    ntp = SntpServer()
    csms = tls_csms(pki)
    try:
        values = {
            ("ClockCtrlr", "TimeSource"): "NTP,Heartbeat",
            ("ClockCtrlr", "NtpServerUri:1"): "ntp://127.0.0.1:%d" % ntp.port,
        }
        sim = sims(csms.url, config=config(pki, values))
        st = accepted(csms, sim)
        assert st.tls_version == "TLSv1.2" and ntp.requests >= 1
        log = sim.log()
        assert "set by NTP from ntp://127.0.0.1:%d" % ntp.port in log
        assert "not set (" not in log  # NTP at boot, before the first attempt
        # The step from 1970 is reported, then the startup.
        events = security_events(csms, st, 2)
        assert [e["type"] for e in events] == ["SettingSystemTime", "StartupOfTheDevice"]
        assert abs(stepped(events[0]) - time.time()) < 60
        got = csms.call(
            st,
            "GetVariables",
            {
                "getVariableData": [
                    {"component": {"name": "ClockCtrlr"}, "variable": {"name": "DateTime"}},
                    {
                        "component": {"name": "ClockCtrlr"},
                        "variable": {"name": "NtpServerUri", "instance": "1"},
                    },
                ]
            },
        )
        now, uri = (r["attributeValue"] for r in got["getVariableResult"])
        assert time.strptime(now, "%Y-%m-%dT%H:%M:%SZ")[0] >= 2026
        assert uri == "ntp://127.0.0.1:%d" % ntp.port
    finally:
        ntp.close()
        csms.stop()


def test_without_ntp_the_saved_time_and_for_profile_1_ws(pki, sims, tmp_path):
    csms = tls_csms(pki)
    plain = CsmsThread()
    try:
        # No NTP, nothing saved: no TLS attempt, and the log says why at each one.
        sim = sims(csms.url, config=config(pki))
        deadline = time.monotonic() + 20
        while sim.log().count("connect failed: OSError('%s',)" % UNSET) < 2:
            assert time.monotonic() < deadline, sim.log()
            time.sleep(0.1)
        log = sim.log()
        assert "not set (1970-01-01T00:00:" in log
        assert csms.csms.tls_hellos == 0
        # The time saved at an earlier sync: forward to it, then TLS; the CSMS's time after.
        sim.kill()
        saved = int(time.time()) - 3600
        (sim.state_dir / "clock.json").write_text(str(saved))
        sim = sims(csms.url, config=config(pki), state_dir=sim.state_dir)
        st = accepted(csms, sim)
        assert "set to the time saved at the last sync" in sim.log()
        events = security_events(csms, st, 3)
        types = [e["type"] for e in events]
        assert types == ["SettingSystemTime", "SettingSystemTime", "StartupOfTheDevice"]
        assert abs(stepped(events[0]) - saved) < 60 and abs(stepped(events[1]) - 3600) < 60
        # The good sync (BootNotification's currentTime) is the new saved time.
        assert abs(int((sim.state_dir / "clock.json").read_text()) - time.time()) < 60
        # Security profile 1 with a wss:// URL, no clock: ws:// to the same host and port.
        url = plain.url.replace("ws://", "wss://")
        cfg = config(pki)
        cfg["security_profile"] = 1
        sim1 = sims(url, sid="CS2", config=cfg)
        st1 = plain.station("CS2", timeout=20)
        plain.wait_call(st1, "BootNotification", timeout=20)
        assert st1.tls_version is None
        assert "security profile 1: ws:// until the clock is set" in sim1.log()
    finally:
        csms.stop()
        plain.stop()
