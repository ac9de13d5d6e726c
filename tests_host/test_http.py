"""lib/httpc.py: GET with Content-Length, chunked and close-delimited bodies, redirects,
errors and timeouts, over TCP and TLS, against scripted servers (CPython), and the same client
on the MicroPython unix port against the development CSMS's file server."""

import asyncio
import datetime
import ssl
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import httpc
from tools.csms import FileServer

ROOT = Path(__file__).resolve().parent.parent
MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"
BODY = bytes(i & 0xFF for i in range(10000))


async def scripted(reply, ssl_ctx=None):
    """A server answering every request with reply(request_head) (bytes, or a list of bytes
    and float pauses); (server, port, heads)."""
    heads = []

    async def handle(r, w):
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            line = await r.readline()
            if not line:
                break
            head += line
        heads.append(head.decode())
        out = reply(head.decode())
        for part in out if isinstance(out, list) else [out]:
            if isinstance(part, float):
                await asyncio.sleep(part)
            else:
                w.write(part)
                await w.drain()
        w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ssl_ctx)
    return server, server.sockets[0].getsockname()[1], heads


async def fetch(url, bufsize=777, **kw):
    resp = await httpc.get(url, **kw)
    buf = bytearray(bufsize)
    out = bytearray()
    try:
        while True:
            n = await resp.readinto(buf)
            if not n:
                return resp, bytes(out)
            out += buf[:n]
    finally:
        resp.close()


def run(reply, path="/f.bin", ssl_ctx=None, scheme="http", **kw):
    async def go():
        server, port, heads = await scripted(reply, ssl_ctx)
        try:
            resp, body = await fetch("%s://127.0.0.1:%d%s" % (scheme, port, path), **kw)
            return resp, body, heads
        finally:
            server.close()

    return asyncio.run(go())


def ok(body, extra=b""):
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n" % (len(body), extra) + body


def chunked(body, sizes=(1, 100, 4000)):
    out, i, k = [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"], 0, 0
    while i < len(body):
        n = sizes[k % len(sizes)]
        piece = body[i : i + n]
        out.append(b"%x;ext=1\r\n" % len(piece) + piece + b"\r\n")
        i += n
        k += 1
    out.append(b"0\r\nX-Trailer: yes\r\n\r\n")
    return b"".join(out)


def test_content_length_body_and_the_request_sent():
    resp, body, heads = run(lambda h: ok(BODY), path="/dir/f.bin?x=1")
    assert body == BODY and resp.length == len(BODY) and resp.status == 200
    lines = heads[0].split("\r\n")
    assert lines[0] == "GET /dir/f.bin?x=1 HTTP/1.1"
    assert lines[1].startswith("Host: 127.0.0.1:")
    assert "Connection: close" in lines and "Accept-Encoding: identity" in lines


def test_chunked_body_with_extensions_and_trailers():
    resp, body, _ = run(lambda h: chunked(BODY))
    assert body == BODY and resp.length is None


def test_body_until_the_server_closes():
    _, body, _ = run(lambda h: [b"HTTP/1.0 200 OK\r\n\r\n", BODY[:5000], 0.05, BODY[5000:]])
    assert body == BODY


def test_empty_body():
    _, body, _ = run(lambda h: ok(b""))
    assert body == b""


def test_redirects_are_followed():
    def reply(head):
        if head.startswith("GET /old"):
            return b"HTTP/1.1 302 Found\r\nLocation: /new\r\nContent-Length: 0\r\n\r\n"
        return ok(BODY)

    _, body, heads = run(reply, path="/old")
    assert body == BODY and [h.split()[1] for h in heads] == ["/old", "/new"]


def test_too_many_redirects():
    loop = b"HTTP/1.1 301 Moved\r\nLocation: /again\r\nContent-Length: 0\r\n\r\n"
    with pytest.raises(httpc.HttpError, match="redirects"):
        run(lambda h: loop, redirects=2)


@pytest.mark.parametrize(
    "reply, match",
    [
        (b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", "404"),
        (b"SMTP ready\r\n\r\n", "status line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", "early"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "not supported"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", "early"),
        (b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", "header line"),
        (b"HTTP/1.1 200 OK\r\nContent-Le", "head"),
    ],
)
def test_what_the_server_gets_wrong_is_an_http_error(reply, match):
    with pytest.raises(httpc.HttpError, match=match) as e:
        run(lambda h: reply)
    if match == "404":
        assert e.value.status == 404


def test_a_stalled_server_times_out():
    stall = [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 2.0, b"defghij"]
    with pytest.raises(asyncio.TimeoutError):
        run(lambda h: stall, timeout_ms=300)


def test_a_refused_connection_is_an_os_error():
    async def go():
        return await httpc.get("http://127.0.0.1:9/x", timeout_ms=2000)

    with pytest.raises(OSError):
        asyncio.run(go())


@pytest.mark.parametrize(
    "url",
    ["ftp://h/x", "http://", "http://h:x/", "http://h:/", "h/x"],
)
def test_bad_urls(url):
    with pytest.raises(ValueError):
        httpc.parse_url(url)


def test_parse_url():
    assert httpc.parse_url("https://h.example/a?b") == (True, "h.example", 443, "/a?b")
    assert httpc.parse_url("http://[::1]:8080") == (False, "::1", 8080, "/")
    assert httpc.parse_url("HTTP://u:p@h/x#frag") == (False, "h", 80, "/x")


def _server_tls(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "k.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    return ctx


def test_https_without_a_context_encrypts_without_checking_the_server(tmp_path):
    resp, body, _ = run(lambda h: chunked(BODY), ssl_ctx=_server_tls(tmp_path), scheme="https")
    assert body == BODY


def test_https_refuses_an_unknown_server_with_the_callers_context(tmp_path):
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    server_ctx = _server_tls(tmp_path)

    async def go():
        server, port, _ = await scripted(lambda h: ok(BODY), server_ctx)
        try:
            await httpc.get("https://127.0.0.1:%d/" % port, ssl_ctx=client)
        finally:
            server.close()

    with pytest.raises(ssl.SSLError):
        asyncio.run(go())


MP_CLIENT = """
import asyncio, hashlib, sys
sys.path.insert(0, "lib")
import httpc

async def main(url):
    resp = await httpc.get(url, timeout_ms=5000)
    h = hashlib.sha256()
    buf = bytearray(512)
    n_total = 0
    while True:
        n = await resp.readinto(buf)
        if not n:
            break
        h.update(memoryview(buf)[:n])
        n_total += n
    resp.close()
    print(n_total, "".join("%02x" % b for b in h.digest()))

asyncio.run(main(sys.argv[1]))
"""


@pytest.mark.parametrize("chunk", [False, True])
def test_on_micropython(tmp_path, chunk):
    import hashlib
    import threading

    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "f.bin").write_bytes(BODY * 5)
    script = tmp_path / "client.py"
    script.write_text(MP_CLIENT)
    loop = asyncio.new_event_loop()
    files = FileServer(tmp_path / "www")
    files.chunked = chunk
    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    asyncio.run_coroutine_threadsafe(files.start(), loop).result(5)
    try:
        out = subprocess.run(
            [str(MICROPYTHON), str(script), files.url("f.bin")],
            capture_output=True,
            cwd=ROOT,
            timeout=30,
            env={"MICROPYPATH": ".frozen:" + str(ROOT / "lib")},
        )
    finally:
        asyncio.run_coroutine_threadsafe(files.stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        t.join(5)
    assert out.returncode == 0, out.stderr.decode()
    n, digest = out.stdout.decode().split()
    assert int(n) == len(BODY) * 5
    assert digest == hashlib.sha256(BODY * 5).hexdigest()


def test_on_micropython_over_tls(tmp_path):
    """https:// on the unix port: MicroPython's ssl through asyncio, chunked body."""
    import hashlib
    import threading

    script = tmp_path / "client.py"
    script.write_text(MP_CLIENT)
    loop = asyncio.new_event_loop()
    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    ctx = _server_tls(tmp_path)
    server, port, _ = asyncio.run_coroutine_threadsafe(
        scripted(lambda h: chunked(BODY * 3), ctx), loop
    ).result(5)
    try:
        out = subprocess.run(
            [str(MICROPYTHON), str(script), "https://127.0.0.1:%d/f.bin" % port],
            capture_output=True,
            cwd=ROOT,
            timeout=30,
            env={"MICROPYPATH": ".frozen:" + str(ROOT / "lib")},
        )
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        t.join(5)
    assert out.returncode == 0, out.stderr.decode()
    n, digest = out.stdout.decode().split()
    assert int(n) == len(BODY) * 3
    assert digest == hashlib.sha256(BODY * 3).hexdigest()


@pytest.mark.parametrize("url", ["http://h/x\r\nEvil: 1", "http://h/a b", "https://h/ü"])
def test_urls_that_could_inject_into_the_request_are_refused(url):
    with pytest.raises(ValueError):
        httpc.parse_url(url)
