"""The clock before TLS and the cipher suites, under CPython with scripted clocks and a fake
SNTP query: Clock.known and the board clock setter; timesync's order (NTP, the saved time
only forward, ws:// for security profile 1 only, else a clear error), its 15 s gap and daily
sync; the Heartbeat rule with TimeSource's order; the time saved on flash at most daily; the
suites offered and the InvalidTLSCipherSuite / InvalidTLSVersion diagnosis of a handshake the
server ended."""

import asyncio
import ssl
import sys
import time

import pytest
from test_board_station import devkit  # noqa: F401 (a fixture)
from test_connection_tls import WSS, Security, drive
from test_network import FakeStation, fast, link, settings
from tls_certs import make_pki

import rfc3339
import sntp
import ws
from clock import Clock
from firmware import connection as connection_mod
from firmware import timesync, tls_diagnosis
from firmware.network import NetworkProfiles

NOW = 1796557540  # 2026-12-06
CONN_EOF = OSError(-29312, "MBEDTLS_ERR_SSL_CONN_EOF")
NO_SUITE = "the server offers none of the OCPP 2.0.1 TLS 1.2 cipher suites"


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    """timesync's state is per boot (module globals): each test starts a boot. The firmware
    imports timesync and tls_diagnosis when it needs them: these very modules, even after a
    test made Python forget the firmware's modules (test_slots: bootsel.activate)."""
    monkeypatch.setitem(sys.modules, "firmware.timesync", timesync)
    monkeypatch.setitem(sys.modules, "firmware.tls_diagnosis", tls_diagnosis)
    timesync._last = timesync._next = None
    timesync._busy = timesync.ok = False
    timesync._addrs.clear()
    yield


class Rtc:
    """A board clock at `t` that the firmware may set (Board.set_time)."""

    def __init__(self, t):
        self.t = t
        self.sets = []

    def __call__(self):
        return self.t

    def set(self, unix_s):
        self.sets.append(unix_s)
        self.t = unix_s


def var(comp, name, value, inst=None):
    v = {"name": name, "instance": inst} if inst else {"name": name}
    return {"component": {"name": comp}, "variable": v, "attributeValue": value}


NTP = var("ClockCtrlr", "TimeSource", "NTP,Heartbeat")
URI1 = var("ClockCtrlr", "NtpServerUri", "ntp://192.0.2.1", "1")
URI2 = var("ClockCtrlr", "NtpServerUri", "192.0.2.2:1123", "2")


def station(tmp_path, t=100, sp=2, values=()):
    """A station whose board clock is at `t` (100: 1970) and settable, profile `sp` to WSS."""
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    s = settings(csms_url=WSS, security_profile=sp, csms_ca_file=str(ca))
    st = FakeStation(tmp_path, s, fast(3, "1") + list(values))
    st.rtc = Rtc(t)
    st.clock = Clock(st.rtc)
    st.security = Security()
    return st


def fake_ntp(monkeypatch, answers):
    """sntp.query answers from `answers` by host: unix seconds, or an exception to raise."""
    asked = []

    async def query(host, port=123, timeout_ms=3000, getaddrinfo=None):
        asked.append((host, port))
        a = answers[host]
        if isinstance(a, Exception):
            raise a
        return a, 12

    monkeypatch.setattr(sntp, "query", query)
    return asked


def test_the_boards_clock_follows_each_step_where_the_board_can_set_it(devkit):  # noqa: F811
    """An ESP32's TLS reads its RTC: the station sets it with each step of its clock (then
    the offset is 0); a board without set_time (the host) keeps the offset."""
    import machine

    from firmware import main

    got = []

    class RTC:
        def datetime(self, t):
            got.append(t)

    machine.RTC = RTC
    station = main.Station(devkit)
    station.clock.set(NOW)  # 2026-12-06T11:45:40Z, a Sunday (weekday 6)
    assert got == [(2026, 12, 6, 6, 11, 45, 40, 0)] and station.clock.offset == 0
    plain = Clock(lambda: 0)
    plain.set(NOW)
    assert plain.offset == NOW


def test_ntp_first_in_priority_order_then_the_tls_url(tmp_path, monkeypatch):
    st = station(tmp_path, values=(NTP, URI1, URI2))
    asked = fake_ntp(monkeypatch, {"192.0.2.1": sntp.SntpError("no answer"), "192.0.2.2": NOW})
    conn = link(st)
    url = asyncio.run(timesync.before_tls(conn, WSS, 2))
    assert url == WSS and st.clock.now() == NOW
    assert asked == [("192.0.2.1", 123), ("192.0.2.2", 1123)]
    assert timesync.ok and st.store.load("clock") == NOW  # a good sync is saved
    # RFC 4330: no server is asked again within 15 s.
    assert asyncio.run(timesync.sync(conn)) is False and len(asked) == 2
    assert not timesync.due()  # the next daily sync is a day away


def test_without_ntp_the_saved_time_forward_only_then_ws_for_profile_1_only(tmp_path, monkeypatch):
    st = station(tmp_path, t=5000)
    conn = link(st)
    with pytest.raises(OSError) as e:
        asyncio.run(timesync.before_tls(conn, WSS, 2))
    assert str(e.value) == "no wss:// with the clock unset: no NTP answer, no saved time"
    st.store.save("clock", 4000)  # behind the clock: never backwards
    with pytest.raises(OSError):
        asyncio.run(timesync.before_tls(conn, WSS, 3))
    assert st.clock.now() == 5000
    assert asyncio.run(timesync.before_tls(conn, WSS, 1)) == "ws://127.0.0.1:8443/ocpp"
    st.store.save("clock", NOW - 3600)
    assert asyncio.run(timesync.before_tls(conn, WSS, 2)) == WSS
    assert st.clock.now() == NOW - 3600


def test_ntp_failing_falls_back_to_the_saved_time(tmp_path, monkeypatch):
    st = station(tmp_path, values=(NTP, URI1))
    asked = fake_ntp(monkeypatch, {"192.0.2.1": sntp.SntpError("no answer")})
    st.store.save("clock", NOW)
    conn = link(st)
    assert asyncio.run(timesync.before_tls(conn, WSS, 2)) == WSS
    assert asked == [("192.0.2.1", 123)] and st.clock.now() == NOW and not timesync.ok
    assert timesync._next is not None  # the next try in an hour, not at once


@pytest.mark.parametrize("sp", [1, 2])
def test_a_connection_attempt_with_the_clock_unset(tmp_path, monkeypatch, sp):
    """Profile 2: no TLS attempt at all; profile 1: ws:// to the same host and port."""
    st = station(tmp_path, sp=sp)
    conn = link(st)
    conn.profiles = NetworkProfiles(st.store, st.dm, st.board.settings)
    calls = []

    async def connect(url, basic_auth=None, ssl_ctx=None, **kw):
        calls.append((url, ssl_ctx))
        return "sock"

    monkeypatch.setattr(connection_mod.ws, "connect", connect)
    if sp == 2:
        with pytest.raises(OSError, match="clock unset"):
            asyncio.run(conn._open(1))
        assert calls == []
    else:
        assert asyncio.run(conn._open(1)) == "sock"
        assert calls == [("ws://127.0.0.1:8443/ocpp/CS%201", None)] and not conn.tls


def test_ntp_before_the_first_attempt_of_a_boot_and_when_due(tmp_path, monkeypatch):
    st = station(tmp_path, values=(NTP, URI1))
    asked = fake_ntp(monkeypatch, {"192.0.2.1": NOW})
    conn, sleeps, contexts = drive(monkeypatch, st, [OSError("refused"), None])
    # Once: the clock is set, so no attempt asks again before the daily sync is due.
    assert asked == [("192.0.2.1", 123)] and len(contexts) == 3 and timesync.ok
    assert st.clock.now() == NOW


def test_the_daily_sync_from_the_minute_turn(devkit, monkeypatch):  # noqa: F811
    """Station.run's minute turn asks for the daily sync when due (a day after a good sync,
    an hour after a failed one), never when NTP is no source."""
    from firmware import main

    monkeypatch.setattr(main, "_TURN_MS", 2)  # a minute of turns in about 1 s
    station = main.Station(devkit)
    station.dm.set("ClockCtrlr/TimeSource", "NTP,Heartbeat")
    calls = []

    async def sync(conn):
        calls.append(conn)
        return False

    monkeypatch.setattr(timesync, "sync", sync)
    minutes = []
    monkeypatch.setattr(station.authorization, "flush", lambda: minutes.append(1))
    seen = []

    async def go():
        task = asyncio.create_task(station.run())
        for n in (1, 2, 3):
            for _ in range(3000):
                if len(minutes) >= n:
                    break
                await asyncio.sleep(0.01)
            seen.append(list(calls))
            del calls[:]
            if n == 1:  # a sync a while ago: the next not due yet
                timesync._next = time.ticks_add(time.ticks_ms(), 3600000)
            elif n == 2:  # due, but NTP no longer a source
                timesync._next = None
                station.dm.set("ClockCtrlr/TimeSource", "Heartbeat")
        station._stopped.set()
        await task

    asyncio.run(go())
    conn = station.connection
    assert seen == [[conn], [], []]  # the first minute (due: none yet), then none


@pytest.mark.parametrize(
    "source, ntp_ok, set_by_heartbeat",
    [
        ("Heartbeat", False, True),
        ("NTP,Heartbeat", False, True),  # NTP first but not working: the CSMS's time
        ("NTP,Heartbeat", True, False),
        ("Heartbeat,NTP", True, True),
        ("NTP", False, False),
    ],
)
def test_the_heartbeat_rule_follows_time_source_order(tmp_path, source, ntp_ok, set_by_heartbeat):
    st = station(tmp_path, t=NOW)
    st.dm.set("ClockCtrlr/TimeSource", source)
    conn = link(st)
    timesync.ok = ntp_ok
    conn._set_clock({"currentTime": "2026-12-06T12:00:00Z"})
    assert (st.clock.now() == 1796558400) is set_by_heartbeat


def test_the_time_goes_to_flash_at_the_first_sync_then_daily(tmp_path):
    st = station(tmp_path, t=NOW)
    conn = link(st)
    saves = []
    real = st.store.save
    st.store.save = lambda name, doc: (saves.append((name, doc)), real(name, doc))

    def heartbeat(t):
        conn._set_clock({"currentTime": rfc3339.format(t)})

    heartbeat(NOW)
    heartbeat(NOW + 3600)  # an hour later: not written again
    heartbeat(NOW + 90000)
    heartbeat(NOW + 82800)  # the CSMS moved the clock back before the saved time: written
    assert saves == [("clock", NOW), ("clock", NOW + 90000), ("clock", NOW + 82800)]


def test_only_ocpps_suites_are_offered(tmp_path, monkeypatch):
    pki = make_pki(tmp_path / "pki")
    ctx = connection_mod._tls_context(pki.ca, {}, 2)
    tls12 = [c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert sorted(tls12) == sorted(
        [
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            "ECDHE-ECDSA-AES256-GCM-SHA384",
            "ECDHE-RSA-AES128-GCM-SHA256",
            "ECDHE-RSA-AES256-GCM-SHA384",
            "AES128-GCM-SHA256",
            "AES256-GCM-SHA384",
        ]
    )

    class MbedContext:  # MicroPython's tls.SSLContext, in a build with two of the six
        have = ["TLS-RSA-WITH-AES-128-GCM-SHA256", "TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384"]
        chosen = None

        def get_ciphers(self):
            return self.have + ["TLS-RSA-WITH-AES-128-CBC-SHA"]

        def set_ciphers(self, names):
            if any(n not in self.have for n in names):
                raise OSError(-28800, "MBEDTLS_ERR_SSL_BAD_CONFIG")
            self.chosen = names

    class MpContext:  # micropython-lib's ssl.SSLContext
        verify_mode = None

        def __init__(self, protocol):
            self._context = MbedContext()

        def load_verify_locations(self, cadata):
            pass

    monkeypatch.setattr(ssl, "SSLContext", MpContext)
    monkeypatch.setattr(sys.implementation, "name", "micropython")
    try:
        ctx = connection_mod._tls_context(pki.ca, {}, 2)
    finally:
        monkeypatch.undo()
    assert ctx._context.chosen == (
        "TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384",
        "TLS-RSA-WITH-AES-128-GCM-SHA256",
    )


def test_a_handshake_the_server_ended_is_diagnosed_once_per_burst(tmp_path, monkeypatch):
    st = station(tmp_path, t=NOW)
    diagnoses = [
        OSError(NO_SUITE),
        OSError(NO_SUITE),
        None,
        ws.TlsVersionError("the server offers no TLS version >= 1.2"),
    ]
    asked = []

    async def diagnose(url, timeout_ms):
        asked.append(url)
        return diagnoses.pop(0)

    monkeypatch.setattr(tls_diagnosis, "diagnose", diagnose)
    drive(monkeypatch, st, [CONN_EOF, CONN_EOF, CONN_EOF, CONN_EOF, OSError(32, "EPIPE")])
    assert len(asked) == 4  # every CONN_EOF, no other failure
    assert st.security.events == [
        ("InvalidTLSCipherSuite", NO_SUITE + " (127.0.0.1:8443)"),
        ("InvalidTLSVersion", "the server offers no TLS version >= 1.2 (127.0.0.1:8443)"),
    ]


def test_the_esp32_board_sets_its_rtc_where_mbedtls_reads_the_time(monkeypatch):
    """boards/esp32.set_time: the RTC as machine.RTC().datetime wants it (weekday 0 Monday)."""
    import fake_machine

    got = []

    class RTC:
        def datetime(self, t):
            got.append(t)

    for n in ("machine", "esp32", "boards.esp32"):
        monkeypatch.delitem(sys.modules, n, raising=False)
    fake_machine.install().RTC = RTC
    import boards.esp32 as esp32

    esp32.set_time(NOW)  # 2026-12-06T11:45:40Z, a Sunday
    assert got == [(2026, 12, 6, 6, 11, 45, 40, 0)]
    assert esp32.Board.set_time is esp32.set_time
