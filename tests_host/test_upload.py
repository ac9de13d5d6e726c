"""Log uploads: lib/httpc.py's upload (PUT, multipart POST, Basic auth, errors, timeouts, TLS)
and lib/ftpc.py's stor (passive STOR, credentials, strict replies) against tools/logsink.py and
scripted servers, under CPython and on the MicroPython unix port (tests_host/mp_upload.py)."""

import asyncio
import base64
import email.parser
import email.policy
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from tls_certs import make_pki

import ftpc
import httpc
from tools.logsink import LogSink, parse_multipart

ROOT = Path(__file__).resolve().parent.parent
MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"
BODY = bytes((i * 7 + (i >> 8)) & 0xFF for i in range(20000))
MP_BODY = bytes(i & 0xFF for i in range(32768))  # what mp_upload.py sends


def pieces_of(body, step=1000):
    """A pieces() callable yielding body from one reused buffer, as memoryview slices."""
    calls = []

    def pieces():
        calls.append(1)
        buf = bytearray(step)
        mv = memoryview(buf)
        for i in range(0, len(body), step):
            part = body[i : i + step]
            buf[: len(part)] = part
            yield mv[: len(part)]

    pieces.calls = calls
    return pieces


class Loop:
    """An event loop in a thread (the servers live there; the client runs in the test)."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.servers = []

    def serve(self, handle):
        """A server on 127.0.0.1 running handle; its port."""
        server = self.run(asyncio.start_server(handle, "127.0.0.1", 0))
        self.servers.append(server)
        return server.sockets[0].getsockname()[1]

    def run(self, coro, timeout=10):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self):
        for server in self.servers:
            self.loop.call_soon_threadsafe(server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def loop():
    lp = Loop()
    yield lp
    lp.close()


@pytest.fixture
def sink(tmp_path, loop):
    s = LogSink(tmp_path / "logs")
    loop.run(s.start())
    yield s
    loop.run(s.stop())


def run(coro):
    return asyncio.run(coro)


# ---- HTTP against the sink ----------------------------------------------------------------


def test_put_saves_the_exact_bytes(sink):
    status = run(httpc.upload(sink.http_url("a.log"), len(BODY), pieces_of(BODY)))
    assert status == 201
    assert (Path(sink.directory) / "a.log").read_bytes() == BODY
    (a,) = sink.attempts
    assert (a.method, a.path, a.status, a.size) == ("PUT", "/a.log", 201, len(BODY))


def test_pieces_may_be_bytes_str_and_memoryview(sink):
    def pieces():
        yield b"one "
        yield "two "
        yield memoryview(b"xthreex")[1:6]
        yield bytearray(b" four")

    run(httpc.upload(sink.http_url("mixed.log"), 18, pieces))
    assert (Path(sink.directory) / "mixed.log").read_bytes() == b"one two three four"


def test_post_saves_the_file_part(sink):
    status = run(
        httpc.upload(sink.http_url("b.log"), len(BODY), pieces_of(BODY), "POST", filename="x.log")
    )
    assert status == 201
    assert (Path(sink.directory) / "b.log").read_bytes() == BODY
    assert sink.attempts[0].method == "POST"


def test_post_to_a_folder_url_saves_under_the_filename(sink):
    run(httpc.upload(sink.http_url(""), 5, lambda: [b"hello"], "POST", filename="CS1-1.log"))
    assert (Path(sink.directory) / "CS1-1.log").read_bytes() == b"hello"


def test_basic_auth_from_the_url(sink):
    sink.require_auth = True
    run(httpc.upload(sink.http_url("ok.log", auth=True), 2, lambda: [b"ok"]))
    with pytest.raises(httpc.HttpError) as e:
        run(httpc.upload(sink.http_url("no.log"), 2, lambda: [b"no"]))
    assert e.value.status == 401
    bad = sink.http_url("bad.log", auth=True).replace(":logs@", ":wrong@")
    with pytest.raises(httpc.HttpError) as e:
        run(httpc.upload(bad, 2, lambda: [b"no"]))
    assert e.value.status == 401
    assert [a.status for a in sink.attempts] == [201, 401, 401]
    assert sorted(p.name for p in Path(sink.directory).iterdir()) == ["ok.log"]


@pytest.mark.parametrize("status", [500, 403, 401, 404])
def test_a_refusing_server_is_an_http_error_with_its_status(sink, status):
    sink.answer = status
    with pytest.raises(httpc.HttpError) as e:
        run(httpc.upload(sink.http_url("a.log"), len(BODY), pieces_of(BODY), "POST"))
    assert e.value.status == status
    ((method, st, size),) = [(a.method, a.status, a.size) for a in sink.attempts]
    assert (method, st) == ("POST", status) and len(BODY) < size < len(BODY) + 300


def test_a_refused_connection_is_an_os_error_at_once():
    t = time.monotonic()
    with pytest.raises(OSError):
        run(httpc.upload("http://127.0.0.1:9/a.log", 2, lambda: [b"ab"], timeout_ms=2000))
    assert time.monotonic() - t < 1


def test_a_server_that_never_answers_times_out(loop):
    async def silent(r, w):
        await r.read()  # reads everything, answers nothing

    port = loop.serve(silent)
    t = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):
        run(httpc.upload("http://127.0.0.1:%d/a" % port, 2, lambda: [b"ab"], timeout_ms=300))
    assert time.monotonic() - t < 1.5


# ---- HTTP against a scripted server: the exact request ------------------------------------


def capture(loop, answers):
    """A server reading one request per connection (head, then Content-Length bytes), then
    answering the next of `answers` and checking nothing more comes; (port, requests()) where
    requests() waits for the connections to end and gives each request as (head lines, body,
    bytes after the body)."""
    done = []
    answers = list(answers)

    async def handle(r, w):
        head = []
        while True:
            line = (await r.readline()).decode("latin-1")
            if line in ("\r\n", ""):
                break
            head.append(line.rstrip("\r\n"))
        n = [int(h.split(":")[1]) for h in head if h.lower().startswith("content-length:")]
        body = await r.readexactly(n[0]) if n else b""
        w.write(answers.pop(0))
        await w.drain()
        extra = await asyncio.wait_for(r.read(), 5)  # the client closes after the answer
        done.append((head, body, extra))
        w.close()

    def requests(count=1):
        _wait(lambda: len(done) >= count)
        return done

    return loop.serve(handle), requests


CREATED = b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"


def test_the_put_request(loop):
    port, requests = capture(loop, [CREATED])
    url = "http://127.0.0.1:%d/dir/a.log?X-Sig=ab%%2F" % port
    assert run(httpc.upload(url, len(BODY), pieces_of(BODY, 333))) == 201
    ((head, body, extra),) = requests()
    assert head[0] == "PUT /dir/a.log?X-Sig=ab%2F HTTP/1.1"
    assert "Host: 127.0.0.1:%d" % port in head
    assert "Content-Length: %d" % len(BODY) in head
    # no Content-Type: a presigned URL may have been signed without one
    assert not [h for h in head if h.lower().startswith(("content-type", "authorization"))]
    assert body == BODY and extra == b""


def test_the_post_request_is_standard_multipart(loop):
    text = "".join("line %d: héllo\r\n" % i for i in range(500)).encode()
    port, requests = capture(loop, [b"HTTP/1.0 200 OK\r\n\r\n"])
    url = "http://127.0.0.1:%d/upload" % port
    assert (
        run(httpc.upload(url, len(text), pieces_of(text, 700), "POST", filename="CS1.log")) == 200
    )
    ((head, body, extra),) = requests()
    assert head[0] == "POST /upload HTTP/1.1" and extra == b""
    (ctype,) = [h.split(":", 1)[1].strip() for h in head if h.startswith("Content-Type:")]
    (length,) = [int(h.split(":")[1]) for h in head if h.startswith("Content-Length:")]
    assert length == len(body)  # Content-Length counted up front, exactly
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body
    )
    assert msg.get_content_type() == "multipart/form-data" and msg.defects == []
    (part,) = msg.iter_parts()
    assert part.get_param("name", header="content-disposition") == "file"
    assert part.get_filename() == "CS1.log"
    assert part.get_payload(decode=True) == text
    assert parse_multipart(ctype, body) == ("CS1.log", text)


def test_two_posts_use_different_boundaries(loop):
    port, requests = capture(loop, [CREATED, CREATED])
    for _ in range(2):
        run(httpc.upload("http://127.0.0.1:%d/" % port, 1, lambda: [b"x"], "POST"))
    b1, b2 = (r[1].split(b"\r\n", 1)[0] for r in requests(2))
    assert b1 != b2 and len(b1) >= 2 + 10 + 24


def test_basic_auth_header_is_percent_decoded(loop):
    port, requests = capture(loop, [CREATED])
    run(httpc.upload("http://us%%40er:p%%3Aw@127.0.0.1:%d/a" % port, 1, lambda: [b"x"]))
    token = base64.b64encode(b"us@er:p:w").decode()
    assert "Authorization: Basic " + token in requests()[0][0]


def test_a_307_redirect_sends_the_body_again(loop):
    port, requests = capture(
        loop,
        [
            b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /b.log\r\nContent-Length: 0\r\n\r\n",
            CREATED,
        ],
    )
    pieces = pieces_of(BODY)
    assert run(httpc.upload("http://127.0.0.1:%d/a.log" % port, len(BODY), pieces)) == 201
    assert [r[0][0] for r in requests(2)] == ["PUT /a.log HTTP/1.1", "PUT /b.log HTTP/1.1"]
    assert [r[1] == BODY for r in requests(2)] == [True, True] and len(pieces.calls) == 2


def test_a_302_is_not_followed_by_an_upload(loop):
    port, _ = capture(loop, [b"HTTP/1.1 302 Found\r\nLocation: /b\r\nContent-Length: 0\r\n\r\n"])
    with pytest.raises(httpc.HttpError) as e:
        run(httpc.upload("http://127.0.0.1:%d/a" % port, 1, lambda: [b"x"]))
    assert e.value.status == 302


def test_an_interim_100_continue_is_skipped(loop):
    port, _ = capture(loop, [b"HTTP/1.1 100 Continue\r\n\r\n" + CREATED])
    assert run(httpc.upload("http://127.0.0.1:%d/a" % port, 1, lambda: [b"x"])) == 201


@pytest.mark.parametrize("pieces, match", [([b"abc"], "not 4"), ([b"abc", b"de"], "over 4")])
def test_pieces_must_add_up_to_size(loop, pieces, match):
    port, _ = capture(loop, [CREATED])
    with pytest.raises(httpc.HttpError, match=match):
        run(httpc.upload("http://127.0.0.1:%d/a" % port, 4, lambda: pieces, timeout_ms=500))


def test_the_pieces_generator_is_closed_on_an_error():
    closed = []

    def pieces():
        try:
            yield b"x"
        finally:
            closed.append(1)

    with pytest.raises(OSError):
        run(httpc.upload("http://127.0.0.1:9/a", 1, pieces, timeout_ms=500))
    # never started: nothing to close; once started, closed at once:
    port_loop = Loop()
    try:
        port, _ = capture(port_loop, [b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n"])
        with pytest.raises(httpc.HttpError):
            run(httpc.upload("http://127.0.0.1:%d/a" % port, 2, pieces, timeout_ms=500))
        assert closed == [1]
    finally:
        port_loop.close()


@pytest.mark.parametrize(
    "kw", [{"method": "GET"}, {"method": "POST", "filename": 'a"b'}, {"filename": "x\r\n"}]
)
def test_bad_arguments(kw):
    if kw.get("filename") == "x\r\n":
        kw["method"] = "POST"
    with pytest.raises(ValueError):
        run(httpc.upload("http://127.0.0.1:9/a", 1, lambda: [b"x"], **kw))


def test_a_get_sends_the_urls_credentials_too(loop):
    port, requests = capture(loop, [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"])

    async def go():
        resp = await httpc.get("http://fw:secret@127.0.0.1:%d/f.bin" % port)
        resp.close()

    run(go())
    token = base64.b64encode(b"fw:secret").decode()
    assert "Authorization: Basic " + token in requests()[0][0]


@pytest.mark.parametrize(
    "url, cred",
    [
        ("http://h/a", None),
        ("http://h/a@b?c@d#e@f", None),
        ("http://u@h/a", ("u", None)),
        ("http://u:@h", ("u", "")),
        ("ftp://a%40b:c%3Ad%C3%A9@h:21/x", ("a@b", "c:d\u00e9")),
        ("http://a@b:c@h/", ("a@b", "c")),
    ],
)
def test_userinfo(url, cred):
    import url as urlmod

    assert urlmod.userinfo(url) == cred


@pytest.mark.parametrize("text", ["%", "%4", "%zz", "a%+1"])
def test_bad_percent_escapes(text):
    import url as urlmod

    with pytest.raises(ValueError):
        urlmod.unquote(text)


# ---- HTTPS --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = make_pki(tmp_path_factory.mktemp("pki"))
    cert = x509.load_pem_x509_certificate(Path(p.ca).read_bytes())
    (p.dir / "ca.der").write_bytes(cert.public_bytes(serialization.Encoding.DER))
    return p


@pytest.fixture
def tls_sink(tmp_path, loop, pki):
    s = LogSink(tmp_path / "logs", certfile=pki.server, keyfile=pki.server_key, ftp=False)
    loop.run(s.start())
    yield s
    loop.run(s.stop())


def test_https_put_checked_against_the_ca(tls_sink, pki):
    ctx = ssl.create_default_context(cafile=pki.ca)
    url = tls_sink.http_url("t.log")
    assert url.startswith("https://")
    assert run(httpc.upload(url, len(BODY), pieces_of(BODY), ssl_ctx=ctx)) == 201
    assert (Path(tls_sink.directory) / "t.log").read_bytes() == BODY


def test_https_refuses_a_server_the_ca_did_not_sign(tls_sink, pki):
    ctx = ssl.create_default_context(cafile=pki.other_ca)
    with pytest.raises(ssl.SSLError):
        run(httpc.upload(tls_sink.http_url("t.log"), 1, lambda: [b"x"], ssl_ctx=ctx))
    assert not (Path(tls_sink.directory) / "t.log").exists()


# ---- FTP against the sink (pyftpdlib) -----------------------------------------------------


def test_ftp_stores_the_exact_bytes(sink):
    run(ftpc.stor(sink.ftp_url("f.log"), len(BODY), pieces_of(BODY)))
    assert (Path(sink.directory) / "f.log").read_bytes() == BODY
    _wait(lambda: sink.attempts)
    (a,) = sink.attempts
    assert (a.method, a.path, a.status, a.size) == ("STOR", "/f.log", 226, len(BODY))


def test_ftp_anonymous_without_credentials(sink):
    run(ftpc.stor(sink.ftp_url("anon.log", auth=False), 3, lambda: ["abc"]))
    assert (Path(sink.directory) / "anon.log").read_bytes() == b"abc"


def test_ftp_into_a_subfolder_and_a_missing_one(sink):
    (Path(sink.directory) / "sub").mkdir()
    run(ftpc.stor(sink.ftp_url("sub/s.log"), 2, lambda: [b"ok"]))
    assert (Path(sink.directory) / "sub" / "s.log").read_bytes() == b"ok"
    with pytest.raises(ftpc.FtpError) as e:
        run(ftpc.stor(sink.ftp_url("nowhere/s.log"), 2, lambda: [b"no"]))
    assert e.value.status == 550


def test_ftp_bad_password_is_530(sink):
    url = sink.ftp_url("x.log").replace(":logs@", ":wrong@")
    with pytest.raises(ftpc.FtpError) as e:
        run(ftpc.stor(url, 2, lambda: [b"no"]))
    assert e.value.status == 530
    assert not (Path(sink.directory) / "x.log").exists()
    _wait(lambda: sink.attempts)
    assert [(a.method, a.path, a.status) for a in sink.attempts] == [("LOGIN", "wallbox", 530)]


def test_ftp_anonymous_refused_is_530(tmp_path, loop):
    s = LogSink(tmp_path / "logs", anonymous=False)
    loop.run(s.start())
    try:
        with pytest.raises(ftpc.FtpError) as e:
            run(ftpc.stor(s.ftp_url("x.log", auth=False), 1, lambda: [b"x"]))
        assert e.value.status == 530
    finally:
        loop.run(s.stop())


def test_ftp_refused_connection_is_an_os_error():
    with pytest.raises(OSError):
        run(ftpc.stor("ftp://127.0.0.1:9/x.log", 1, lambda: [b"x"], timeout_ms=1000))


def _wait(cond, timeout=2.0):
    end = time.monotonic() + timeout
    while not cond() and time.monotonic() < end:
        time.sleep(0.01)


# ---- FTP against a scripted server: strict replies ----------------------------------------


def ftp_script(loop, replies, data_sink):
    """A control server: sends replies[0], then one reply per command received (a callable
    gets the data port); records the commands; its data server collects into data_sink."""
    commands = []

    async def data(r, w):
        data_sink.append(await r.read())
        w.close()

    dport = loop.serve(data)

    async def control(r, w):
        todo = list(replies)
        w.write(todo.pop(0))
        while todo:
            line = await r.readline()
            if not line:
                break
            commands.append(line.decode().rstrip("\r\n"))
            reply = todo.pop(0)
            if callable(reply):
                reply = reply(dport)
            w.write(reply)
            if commands[-1].startswith("STOR"):
                await w.drain()
                while not data_sink:
                    await asyncio.sleep(0.01)
                w.write(todo.pop(0))
        await w.drain()
        await r.read()  # the client closes first
        w.close()

    return loop.serve(control), commands


def test_ftp_multiline_replies_and_a_227_elsewhere(loop):
    got = []
    replies = [
        b"220-Welcome\r\n220-to the\r\n 220 not the end\r\n220 sink\r\n",
        b"331-Password\r\n331 please\r\n",
        b"230 in\r\n",
        b"200 binary\r\n",
        # the address in 227 is not where we go: the control connection's host is
        lambda p: b"227 Entering Passive Mode 10,9,9,9,%d,%d\r\n" % (p >> 8, p & 0xFF),
        b"150 go\r\n",
        b"226-Done\r\n226 bye\r\n",
        b"221 bye\r\n",
    ]
    port, commands = ftp_script(loop, replies, got)
    run(ftpc.stor("ftp://u%%20x:p@127.0.0.1:%d/dir/a%%20b.log" % port, 3, lambda: [b"abc"]))
    assert commands == ["USER u x", "PASS p", "TYPE I", "PASV", "STOR dir/a b.log", "QUIT"]
    assert got == [b"abc"]


@pytest.mark.parametrize(
    "reply, status",
    [(b"530 Not logged in\r\n", 530), (b"421 Too many users\r\n", 421), (b"hello\r\n", None)],
)
def test_ftp_a_refused_user(loop, reply, status):
    port, _ = ftp_script(loop, [b"220 hi\r\n", reply], [])
    with pytest.raises(ftpc.FtpError) as e:
        run(ftpc.stor("ftp://127.0.0.1:%d/a" % port, 1, lambda: [b"x"], timeout_ms=1000))
    assert e.value.status == status


def test_ftp_a_silent_server_times_out(loop):
    port, _ = ftp_script(loop, [b"220-hi\r\n"], [])  # the multi-line reply never ends
    t = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):
        run(ftpc.stor("ftp://127.0.0.1:%d/a" % port, 1, lambda: [b"x"], timeout_ms=300))
    assert time.monotonic() - t < 1.5


@pytest.mark.parametrize(
    "line, port",
    [
        (b"227 Entering Passive Mode (127,0,0,1,4,1).", 1025),
        (b"227 =127,0,0,1,0,21", 21),
        (b"227 Entering Passive Mode (127,0,0,1,255,255)", 65535),
    ],
)
def test_pasv_port(line, port):
    assert ftpc._pasv_port(line) == port


@pytest.mark.parametrize(
    "line",
    [b"227 Entering Passive Mode (127,0,0,1,4)", b"227 (1,2,3,4,256,1)", b"227 (1,2,3,4,0,0)"],
)
def test_bad_pasv_replies(line):
    with pytest.raises(ftpc.FtpError):
        ftpc._pasv_port(line)


@pytest.mark.parametrize(
    "url",
    ["ftp://h/", "ftp://h", "ftps://h/a", "http://h/a", "ftp://h/a%0D%0ADELE%20x", "ftp://h/%zz"],
)
def test_ftp_bad_urls(url):
    with pytest.raises(ValueError):
        run(ftpc.stor(url, 1, lambda: [b"x"]))


def test_ftp_url_parts():
    assert ftpc._target("ftp://h/a.log") == ("h", 21, "anonymous", "anonymous@", "a.log")
    assert ftpc._target("FTP://u@h:2121/d/a.log;type=i") == ("h", 2121, "u", "", "d/a.log")


# ---- on MicroPython -----------------------------------------------------------------------


def mp(*args):
    out = subprocess.run(
        [str(MICROPYTHON), str(Path(__file__).with_name("mp_upload.py")), str(ROOT / "lib")]
        + [str(a) for a in args],
        capture_output=True,
        cwd=ROOT,
        timeout=60,
        env={"MICROPYPATH": ".frozen:" + str(ROOT / "lib")},
    )
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout.decode().split("\n")


@pytest.mark.parametrize("kind", ["PUT", "POST", "FTP"])
def test_on_micropython(sink, kind):
    url = sink.ftp_url("mp.log") if kind == "FTP" else sink.http_url("mp.log")
    status = {"FTP": "226"}.get(kind, "201")
    assert mp(kind, url, len(MP_BODY))[0].split()[:2] == ["ok", status]
    assert (Path(sink.directory) / "mp.log").read_bytes() == MP_BODY


def test_on_micropython_errors(sink):
    sink.require_auth = True
    assert mp("PUT", sink.http_url("a"), 10)[0].split()[:3] == ["error", "HttpError", "401"]
    assert mp("POST", sink.http_url("a", auth=True), 10)[0].split()[:2] == ["ok", "201"]
    sink.answer = 500
    assert mp("PUT", sink.http_url("a", auth=True), 10)[0].split()[:3] == [
        "error",
        "HttpError",
        "500",
    ]
    bad = sink.ftp_url("a").replace(":logs@", ":x@")
    assert mp("FTP", bad, 10)[0].split()[:3] == ["error", "FtpError", "530"]
    for kind, url in (("PUT", "http://127.0.0.1:9/a"), ("FTP", "ftp://127.0.0.1:9/a")):
        word, cls, _, ms = mp(kind, url, 10)[0].split()
        assert (word, cls) == ("error", "OSError") and int(ms) < 1000


def test_on_micropython_over_tls(tls_sink, pki):
    out = mp("PUT", tls_sink.http_url("tls.log"), len(MP_BODY), pki.dir / "ca.der")
    assert out[0].split()[:2] == ["ok", "201"]
    assert (Path(tls_sink.directory) / "tls.log").read_bytes() == MP_BODY


@pytest.mark.parametrize("kind", ["PUT", "POST", "FTP"])
def test_heap_of_a_32k_upload_on_micropython(sink, kind):
    """The live heap an upload of 32 KiB needs (64-bit unix port), printed with -s."""
    url = sink.ftp_url("h.log") if kind == "FTP" else sink.http_url("h.log")
    out = mp("HEAP-" + kind, url, len(MP_BODY))
    assert out[0].split()[0] == "ok"
    live, allocated = (int(x) for x in out[1].split()[1:])
    print(
        "%s 32 KiB: live heap peak %d B, allocated between collections %d B"
        % (kind, live, allocated)
    )
    assert live < 12 * 1024  # the body (32 KiB) is never whole in RAM
    assert (Path(sink.directory) / "h.log").read_bytes() == MP_BODY


# ---- the development CSMS -----------------------------------------------------------------


def test_the_csms_runs_a_log_sink(tmp_path):
    from tools.csms import Csms

    lines = []

    async def go():
        async with Csms(log=lines.append, log_sink=tmp_path / "logs") as csms:
            await httpc.upload(csms.sink.http_url("put.log"), 3, lambda: [b"put"])
            await ftpc.stor(csms.sink.ftp_url("ftp.log"), 3, lambda: [b"ftp"])
            return csms

    csms = run(go())
    assert csms.sink is None  # stopped with the CSMS
    assert (tmp_path / "logs" / "put.log").read_bytes() == b"put"
    assert (tmp_path / "logs" / "ftp.log").read_bytes() == b"ftp"
    saved = [t for t in lines if " logs " in t and "saved" in t]
    assert len(saved) == 2 and str(tmp_path / "logs" / "put.log") in saved[0]


@pytest.mark.parametrize("kind", ["PUT", "POST", "FTP"])
def test_heap_of_a_32k_upload_on_the_virtual_esp32(program, sink, tmp_path, kind):
    """The same on the virtual ESP32 (32-bit, frozen httpc and ftpc, 112 KiB heap)."""
    url = sink.ftp_url("e.log") if kind == "FTP" else sink.http_url("e.log")
    (tmp_path / "run").mkdir()
    script = Path(__file__).with_name("mp_upload.py")
    out = subprocess.run(
        [str(program), "-X", "heapsize=112K", str(script), "/nonexistent", "HEAP-" + kind]
        + [url, str(len(MP_BODY))],
        capture_output=True,
        cwd=tmp_path / "run",  # nothing to import here: the frozen modules are used
        timeout=60,
        env={"MICROPYPATH": ".frozen"},
    )
    assert out.returncode == 0, out.stderr.decode()
    lines = out.stdout.decode().split("\n")
    assert lines[0].split()[0] == "ok", lines
    live, allocated = (int(x) for x in lines[1].split()[1:])
    print("%s 32 KiB on the virtual ESP32: live heap peak %d B" % (kind, live))
    assert live < 6 * 1024
    assert (Path(sink.directory) / "e.log").read_bytes() == MP_BODY


def test_a_negative_size_is_refused_before_anything_is_sent():
    with pytest.raises(ValueError):
        run(httpc.upload("http://127.0.0.1:9/a", -1, lambda: []))
    with pytest.raises(ValueError):
        run(ftpc.stor("ftp://127.0.0.1:9/a", -1, lambda: []))


def test_a_slow_sink_still_saves_the_whole_body(sink):
    sink.read_delay = 0.01  # 1 KB, then a pause
    body = bytes(range(256)) * 12
    run(httpc.upload(sink.http_url("slow.log"), len(body), lambda: [body]))
    assert (Path(sink.directory) / "slow.log").read_bytes() == body
