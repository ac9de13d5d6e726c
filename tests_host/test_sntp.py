"""lib/sntp.py: the asyncio SNTP client against a local SNTP server (UDP on 127.0.0.1, a thread
answering as each test chooses): the time, a loop that keeps running while it waits, the
replies it must refuse or ignore, the 2036 era wrap, NtpServerUri parsing; and the same client
on the MicroPython unix port and on the virtual ESP32 (32-bit, frozen, 112 KiB heap) against the
same kind of server."""

import asyncio
import os
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

import sntp

ROOT = Path(__file__).resolve().parent.parent
MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"
NTP_UNIX = 2208988800
WRAP_2036 = 2**32 - NTP_UNIX  # unix seconds when NTP seconds wrap (2036-02-07 06:28:16 UTC)


def packet(unix, frac=0.25, li=0, vn=4, mode=4, stratum=2, ref=b"GPS\0", orig=b"\0" * 8):
    """A 48-byte reply whose transmit time is unix + frac (received 1 ms earlier)."""
    secs = (int(unix) + NTP_UNIX) % 2**32
    tf = int(frac * 2**32)
    rf = int(max(frac - 0.001, 0) * 2**32)
    head = struct.pack("!BBbb", li << 6 | vn << 3 | mode, stratum, 6, -20)
    return head + b"\0" * 8 + ref + b"\0" * 8 + orig + struct.pack("!IIII", secs, rf, secs, tf)


class Server:
    """A UDP server on 127.0.0.1 (ephemeral port) answering each request with
    answer(request) -> bytes, a list of bytes (sent in turn), or None (silence)."""

    def __init__(self, answer):
        self.answer = answer
        self.requests = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop:
            try:
                req, addr = self.sock.recvfrom(512)
            except OSError:
                continue
            self.requests.append(req)
            out = self.answer(req)
            for p in [out] if isinstance(out, bytes) else out or []:
                self.sock.sendto(p, addr)

    def close(self):
        self._stop = True
        self._t.join(2)
        self.sock.close()


@pytest.fixture
def serve():
    made = []

    def make(answer):
        made.append(Server(answer))
        return made[-1]

    yield make
    for s in made:
        s.close()


def echo(unix, **kw):
    """answer(): a reply at `unix` echoing the request's transmit timestamp."""
    return lambda req: packet(unix, orig=req[40:48], **kw)


def run(coro, limit=5):
    return asyncio.run(asyncio.wait_for(coro, limit))


def query(port, **kw):
    return run(sntp.query("127.0.0.1", port, **kw))


def refused(port, timeout_ms=1000):
    with pytest.raises(sntp.SntpError) as e:
        query(port, timeout_ms=timeout_ms)
    return e.value


T = 1_800_000_000  # 2027-01-15


@pytest.mark.parametrize("frac,expect", [(0.25, T), (0.75, T + 1)])
def test_the_servers_time_to_the_nearest_second_and_the_delay(serve, frac, expect):
    srv = serve(echo(T, frac=frac))
    t0 = time.monotonic()
    unix, delay = query(srv.port)
    assert time.monotonic() - t0 < 0.5
    assert unix == expect  # the reply's time plus half a delay of a few ms
    assert isinstance(unix, int) and isinstance(delay, int)
    assert 0 <= delay < 100


def test_the_request_is_a_version_4_client_packet_with_random_transmit_bits(serve):
    srv = serve(echo(T))
    query(srv.port)
    query(srv.port)
    a, b = srv.requests
    assert len(a) == 48 and a[0] == 0x23  # LI 0, VN 4, mode 3
    assert a[1:40] == bytes(39)  # nothing else about us
    assert a[40:48] != b[40:48] and a[40:48] != bytes(8)


def test_no_answer_times_out_without_blocking_the_loop(serve):
    srv = serve(lambda req: None)

    async def main():
        ticks = []

        async def ticker():
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0.01)

        t = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        t0 = time.monotonic()
        try:
            with pytest.raises(sntp.SntpError) as e:
                await sntp.query("127.0.0.1", srv.port, timeout_ms=400)
            return time.monotonic() - t0, ticks, str(e.value)
        finally:
            t.cancel()

    took, ticks, msg = run(main())
    assert 0.39 <= took < 5  # the time limit, not sooner (later only on a loaded machine)
    assert "no answer" in msg and "400 ms" in msg
    assert len(ticks) >= 5  # the other task ran meanwhile: the wait never blocked the loop
    assert len(srv.requests) == 1  # one request, no retransmission


def test_a_reply_not_echoing_our_transmit_timestamp_is_ignored(serve):
    stale = packet(T - 1000, orig=b"\x01" * 8)
    srv = serve(lambda req: [stale, packet(T, orig=req[40:48])])
    assert query(srv.port)[0] == T
    srv2 = serve(lambda req: packet(T, orig=bytes(8)))
    t0 = time.monotonic()
    e = refused(srv2.port, timeout_ms=300)
    assert 0.29 <= time.monotonic() - t0 < 0.6
    assert "1 replies not to our request ignored" in str(e)


def test_kiss_o_death_reports_its_code_at_once(serve):
    srv = serve(echo(T, stratum=0, ref=b"RATE"))
    t0 = time.monotonic()
    e = refused(srv.port)
    assert time.monotonic() - t0 < 0.5
    assert e.kod == "RATE" and "kiss-o'-death RATE" in str(e)


@pytest.mark.parametrize(
    "kw,words",
    [
        ({"li": 3}, "not synchronized (LI 3"),
        ({"stratum": 16}, "not synchronized (LI 0, stratum 16"),
        ({"mode": 3}, "not a server reply (mode 3)"),
        ({"mode": 5}, "not a server reply (mode 5)"),
    ],
)
def test_unusable_replies_are_refused(serve, kw, words):
    srv = serve(echo(T, **kw))
    e = refused(srv.port)
    assert words in str(e) and e.kod is None


def test_a_transmit_timestamp_of_zero_is_refused(serve):
    srv = serve(lambda req: packet(T, orig=req[40:48])[:40] + bytes(8))
    assert "transmit timestamp 0" in str(refused(srv.port))


def test_a_short_packet_is_refused(serve):
    srv = serve(lambda req: packet(T, orig=req[40:48])[:47])
    assert "short reply (47 bytes)" in str(refused(srv.port))


def test_a_longer_packet_with_extension_or_mac_is_fine(serve):
    srv = serve(lambda req: packet(T, orig=req[40:48]) + bytes(20))
    assert query(srv.port)[0] == T


def test_a_closed_port_is_refused_at_once():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    t0 = time.monotonic()
    e = refused(port)
    assert time.monotonic() - t0 < 0.5 and "refused" in str(e)


def test_a_socket_error_is_an_sntp_error():
    def broadcast(host, port, *args):  # Linux refuses it without SO_BROADCAST: EACCES
        return socket.getaddrinfo("255.255.255.255", port, *args)

    with pytest.raises(sntp.SntpError, match="ntp.example:123: .*13"):
        run(sntp.query("ntp.example", getaddrinfo=broadcast))


@pytest.mark.parametrize("unix", [WRAP_2036 - 1, WRAP_2036, WRAP_2036 + 86400 * 365 * 10])
def test_times_after_the_2036_wrap(serve, unix):
    srv = serve(echo(unix))
    assert query(srv.port)[0] == unix


def test_unix_from_ntp_reads_2020_to_2156():
    pivot = 1577836800  # 2020-01-01
    assert sntp.unix_from_ntp(pivot + NTP_UNIX) == pivot
    assert sntp.unix_from_ntp(pivot + NTP_UNIX - 1) == pivot - 1 + 2**32  # 2156
    assert sntp.unix_from_ntp(2**32 - 1) == WRAP_2036 - 1
    assert sntp.unix_from_ntp(0) == WRAP_2036
    assert sntp.unix_from_ntp(T + NTP_UNIX) == T


def test_an_injected_resolver_is_called_once(serve):
    srv = serve(echo(T))
    calls = []

    def fake(host, port, *args):
        calls.append((host, port))
        return socket.getaddrinfo("127.0.0.1", port, *args)

    async def fake_async(host, port, *args):
        return fake(host, port, *args)

    assert run(sntp.query("ntp.example", srv.port, getaddrinfo=fake))[0] == T
    assert run(sntp.query("ntp.example", srv.port, getaddrinfo=fake_async))[0] == T
    assert calls == [("ntp.example", srv.port)] * 2


@pytest.mark.parametrize("result", [OSError(-202, "EAI"), []])
def test_a_name_that_does_not_resolve_is_refused(result):
    def fake(*args):
        if isinstance(result, Exception):
            raise result
        return result

    with pytest.raises(sntp.SntpError, match="cannot resolve ntp.example"):
        run(sntp.query("ntp.example", getaddrinfo=fake))


@pytest.mark.parametrize(
    "uri,expect",
    [
        ("pool.ntp.org", ("pool.ntp.org", 123)),
        ("pool.ntp.org:1123", ("pool.ntp.org", 1123)),
        ("ntp://pool.ntp.org", ("pool.ntp.org", 123)),
        ("NTP://time_1.example:124/", ("time_1.example", 124)),
        (" 192.168.1.10 ", ("192.168.1.10", 123)),
        ("ntp://192.168.1.10:10123", ("192.168.1.10", 10123)),
        ("[2001:db8::1]", ("2001:db8::1", 123)),
        ("ntp://[::1]:5123", ("::1", 5123)),
        ("fe80::1", ("fe80::1", 123)),
    ],
)
def test_ntp_host_accepts_what_ntpserveruri_may_hold(uri, expect):
    assert sntp.ntp_host(uri) == expect


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "   ",
        None,
        123,
        "ntp://",
        "http://pool.ntp.org",
        "udp://pool.ntp.org",
        "pool.ntp.org:",
        "pool.ntp.org:0",
        "pool.ntp.org:65536",
        "pool.ntp.org:12a",
        "pool.ntp.org:-1",
        "ntp://pool.ntp.org/path",
        "ntp://user@pool.ntp.org",
        "pool ntp.org",
        "pool.ntp.org?x",
        ".pool.ntp.org",
        "pool..ntp.org",
        "[::1",
        "[::1]x",
        "[host]",
        "fe80::zz",
        "h\u00e9.example",
        "a" * 256,
    ],
)
def test_ntp_host_refuses_anything_else(uri):
    with pytest.raises(ValueError):
        sntp.ntp_host(uri)


MP_SCRIPT = """
import sys, time, asyncio, sntp

good, silent, kod, stale, wrap = [int(p) for p in sys.argv[1:]]

def show(name, r):
    print(name, r)

async def ticker(ticks):
    while True:
        ticks.append(time.ticks_ms())
        await asyncio.sleep_ms(10)

async def expect_error(name, port, timeout_ms=1000):
    t0 = time.ticks_ms()
    try:
        r = await sntp.query("127.0.0.1", port, timeout_ms=timeout_ms)
        print(name, "NO ERROR", r)
    except sntp.SntpError as e:
        print(name, time.ticks_diff(time.ticks_ms(), t0), e.kod, e)

async def main():
    unix, delay = await sntp.query("127.0.0.1", good)
    print("good", unix, 0 <= delay < 100)
    ticks = []
    t = asyncio.create_task(ticker(ticks))
    await asyncio.sleep_ms(0)
    await expect_error("silent", silent, 300)
    t.cancel()
    print("ticks", len(ticks))
    await expect_error("kod", kod)
    await expect_error("stale", stale, 200)
    print("wrap", (await sntp.query("127.0.0.1", wrap))[0])
    print("host", sntp.ntp_host("ntp://[::1]:5123"), sntp.ntp_host("pool.ntp.org"))

asyncio.run(main())
"""


def run_on(prog, path, serve, tmp_path):
    """Run MP_SCRIPT with `prog` against five local servers; check what it printed."""
    script = tmp_path / "sntp_mp.py"
    script.write_text(MP_SCRIPT)
    servers = [
        serve(echo(T)),
        serve(lambda req: None),
        serve(echo(T, stratum=0, ref=b"DENY")),
        serve(lambda req: packet(T, orig=os.urandom(8))),
        serve(echo(WRAP_2036 + 100)),
    ]
    out = subprocess.run(
        [str(prog), "-X", "heapsize=112K", str(script)] + [str(s.port) for s in servers],
        capture_output=True,
        cwd=ROOT,
        timeout=10,
        env={"MICROPYPATH": path},
    )
    assert out.returncode == 0, out.stdout.decode() + out.stderr.decode()
    lines = dict(line.split(" ", 1) for line in out.stdout.decode().splitlines())
    assert lines["good"] == "%d True" % T
    ms, kod, msg = lines["silent"].split(" ", 2)
    assert 300 <= int(ms) < 450 and kod == "None" and "no answer" in msg
    assert int(lines["ticks"]) >= 20
    ms, kod, msg = lines["kod"].split(" ", 2)
    assert int(ms) < 300 and kod == "DENY" and "kiss-o'-death DENY" in msg
    ms, kod, msg = lines["stale"].split(" ", 2)
    assert 200 <= int(ms) < 350 and "1 replies not to our request ignored" in msg
    assert lines["wrap"] == str(WRAP_2036 + 100)
    assert lines["host"] == "('::1', 5123) ('pool.ntp.org', 123)"


def test_on_micropython(serve, tmp_path):
    """The unix port, lib/sntp.py from source: the real socket, errno and asyncio.sleep_ms."""
    run_on(MICROPYTHON, ".frozen:" + str(ROOT / "lib"), serve, tmp_path)


def test_on_the_virtual_esp32(program, serve, tmp_path):
    """The 32-bit port with sntp frozen in and a 112 KiB heap: NTP seconds are big ints there."""
    run_on(program, ".frozen", serve, tmp_path)
