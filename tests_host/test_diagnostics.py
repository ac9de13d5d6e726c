"""firmware/blocks/diagnostics.py under CPython: GetLog's answers, and uploads by PUT, POST and
FTP to tools/logsink.py from a fake log, with the LogStatusNotifications a fake session
records: retries, PermissionDenied, the time window, a second GetLog cancelling the first."""

import asyncio
import socket
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_upload import Loop

import ocppj
import rfc3339
from firmware.blocks import diagnostics as diag
from tools.logsink import LogSink

T0 = rfc3339.parse("2026-12-06T10:00:00Z")


@pytest.fixture
def loop():
    """An event loop in a thread of its own, for the servers."""
    lp = Loop()
    yield lp
    lp.close()


@pytest.fixture
def sink(tmp_path, loop):
    s = LogSink(tmp_path / "logs")
    loop.run(s.start())
    yield s
    loop.run(s.stop())


class Log:
    """lib/logfile.LogFiles as the block uses it: (Unix time, line) pairs."""

    def __init__(self, lines):
        self.stored = lines

    def lines(self, oldest=None, latest=None):
        for t, text in self.stored:
            if (oldest is None or t >= oldest) and (latest is None or t <= latest):
                yield text

    def size(self, oldest=None, latest=None):
        return sum(len(x.encode()) + 1 for x in self.lines(oldest, latest))


class Session:
    def __init__(self):
        self.calls = []

    async def call(self, action, payload):
        self.calls.append((action, payload))
        return {}


class Conn:
    def __init__(self, ctx=None):
        self.tls = False
        self.ctx = ctx
        self.log = []

    def tls_context(self):
        return self.ctx

    async def away(self):
        self.log.append("away")

    def back(self):
        self.log.append("back")


DIAG = Log([(T0 + i, "2026-12-06T10:00:%02d.000Z I tx: line %d" % (i, i)) for i in range(40)])
SEC = Log([(T0, "2026-12-06T10:00:00.000Z I security: event StartupOfTheDevice")])


class Station:
    def __init__(self, method="PUT", ctx=None, tls_links=None):
        self.session = Session()
        self.router = ocppj.Router()
        self.connection = Conn(ctx)
        self.dm = SimpleNamespace(setting=lambda key, default: method)
        self.clock = SimpleNamespace(iso=lambda: "2026-12-06T11:22:33Z")
        self.board = SimpleNamespace(identity="CS1", tls_links=tls_links)
        self.block = diag.Diagnostics(
            self.router,
            self.session,
            self.connection,
            self.dm,
            self.clock,
            self.board,
            (DIAG, SEC),
        )

    def get_log(self, url, request_id=1, log_type="DiagnosticsLog", **kw):
        where = {"remoteLocation": url}
        for k in ("oldestTimestamp", "latestTimestamp"):
            if k in kw:
                where[k] = kw.pop(k)
        req = dict(logType=log_type, requestId=request_id, log=where, **kw)
        resp = self.block.on_get_log(req)
        self.block._after_get_log(req, resp)
        return resp

    async def done(self):
        while self.block._task is not None and not self.block._task.done():
            await asyncio.sleep(0.02)

    def statuses(self):
        return [
            (p["status"], p.get("requestId"))
            for a, p in self.session.calls
            if a == "LogStatusNotification"
        ]


def text_of(log, oldest=None, latest=None):
    return "".join(x + "\n" for x in log.lines(oldest, latest)).encode()


def upload(st, url, **kw):
    async def go():
        resp = st.get_log(url, **kw)
        await st.done()
        return resp

    return asyncio.run(go())


def test_accepted_with_a_file_name_then_uploading_and_uploaded_by_put(sink):
    st = Station()
    resp = upload(st, sink.http_url("d.log"))
    assert resp == {"status": "Accepted", "filename": "CS1-diagnostics-20261206T112233Z.log"}
    assert st.statuses() == [("Uploading", 1), ("Uploaded", 1)]
    assert (Path(sink.directory) / "d.log").read_bytes() == text_of(DIAG)
    assert [a.method for a in sink.attempts] == ["PUT"]
    assert st.block.status() == ("Idle", None)


def test_post_when_the_variable_says_so_and_the_security_log_by_its_type(sink):
    st = Station(method="POST")
    resp = upload(st, sink.http_url(""), log_type="SecurityLog", request_id=7)
    name = "CS1-security-20261206T112233Z.log"
    assert resp == {"status": "Accepted", "filename": name}
    assert st.statuses() == [("Uploading", 7), ("Uploaded", 7)]
    assert (Path(sink.directory) / name).read_bytes() == text_of(SEC)
    assert [a.method for a in sink.attempts] == ["POST"]


def test_ftp_upload_and_the_time_window(sink):
    st = Station()
    upload(
        st,
        sink.ftp_url("w.log"),
        oldestTimestamp="2026-12-06T10:00:05Z",
        latestTimestamp="2026-12-06T10:00:09Z",
    )
    assert st.statuses() == [("Uploading", 1), ("Uploaded", 1)]
    got = (Path(sink.directory) / "w.log").read_bytes()
    assert got == text_of(DIAG, T0 + 5, T0 + 9) and got.count(b"\n") == 5


def test_a_failing_server_gets_one_plus_retries_tries_retry_interval_apart(sink):
    sink.answer = 500
    st = Station()
    upload(st, sink.http_url("f.log"), retries=2, retryInterval=1)
    assert st.statuses() == [("Uploading", 1)] * 3 + [("UploadFailure", 1)]
    times = [a.t for a in sink.attempts]
    assert len(times) == 3
    assert all(b - a >= 0.9 for a, b in zip(times, times[1:], strict=False))


def test_an_unreachable_location_fails_after_its_tries():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    st = Station()
    upload(st, "http://127.0.0.1:%d/x.log" % port, retries=1, retryInterval=0)
    assert st.statuses() == [("Uploading", 1), ("Uploading", 1), ("UploadFailure", 1)]


@pytest.mark.parametrize("scheme", ["http", "ftp"])
def test_refused_credentials_end_at_once_with_permission_denied(sink, scheme):
    if scheme == "http":
        sink.require_auth = True
        url = sink.http_url("p.log")
    else:
        url = sink.ftp_url("p.log").replace(":logs@", ":wrong@")
    st = Station()
    upload(st, url, retries=3, retryInterval=0)
    assert st.statuses() == [("Uploading", 1), ("PermissionDenied", 1)]


@pytest.mark.parametrize(
    "url", ["sftp://h/x.log", "file:///x.log", "http:/h/x.log", "http://host", "x"]
)
def test_other_locations_are_rejected(url):
    st = Station()
    resp = st.get_log(url)
    assert resp["status"] == "Rejected"
    assert resp["statusInfo"]["reasonCode"] == "InvalidURL"
    assert st.block._task is None


def test_a_bad_timestamp_is_rejected():
    st = Station()
    resp = st.get_log("http://h/x.log", oldestTimestamp="yesterday")
    assert resp["status"] == "Rejected" and resp["statusInfo"]["reasonCode"] == "InvalidValue"


def test_a_second_get_log_cancels_the_first(sink, loop):
    # A server that takes the connection and never answers holds the first upload.
    async def hold(reader, writer):
        await asyncio.sleep(30)

    async def serve():
        server = await asyncio.start_server(hold, "127.0.0.1", 0)
        return server, server.sockets[0].getsockname()[1]

    server, port = loop.run(serve())
    st = Station()

    async def go():
        first = st.get_log("http://127.0.0.1:%d/slow.log" % port, request_id=1)
        await asyncio.sleep(0.3)
        assert st.block.status() == ("Uploading", 1)
        second = st.get_log(sink.http_url("s.log"), request_id=2)
        await st.done()
        return first, second

    try:
        first, second = asyncio.run(go())
    finally:
        loop.loop.call_soon_threadsafe(server.close)
    assert first["status"] == "Accepted" and second["status"] == "AcceptedCanceled"
    assert st.statuses() == [
        ("Uploading", 1),
        ("AcceptedCanceled", 1),
        ("Uploading", 2),
        ("Uploaded", 2),
    ]
    assert (Path(sink.directory) / "s.log").read_bytes() == text_of(DIAG)


def test_https_checks_the_server_and_a_one_link_board_steps_away_from_wss(tmp_path):
    import ssl

    import tls_certs

    pki = tls_certs.make_pki(tmp_path / "pki")
    ctx = ssl.create_default_context(cafile=pki.ca)
    st = Station(ctx=ctx, tls_links=1)
    st.connection.tls = True

    async def go():
        s = LogSink(tmp_path / "logs", certfile=pki.server, keyfile=pki.server_key, ftp=False)
        await s.start()
        try:
            st.get_log(s.http_url("t.log"))
            await st.done()
        finally:
            await s.stop()
        return s

    s = asyncio.run(go())
    assert st.statuses() == [("Uploading", 1), ("Uploaded", 1)]
    assert (Path(s.directory) / "t.log").read_bytes() == text_of(DIAG)
    assert st.connection.log == ["away", "back"]


def test_pieces_are_exactly_the_announced_size():
    log = Log([(T0, "x" * 700), (T0, "y" * 10)])
    size = log.size()
    assert b"".join(bytes(p) for p in diag._pieces(log, None, None, size)) == text_of(log)
    # grown meanwhile: cut; shrunk (rotation): padded with newlines
    assert b"".join(bytes(p) for p in diag._pieces(log, None, None, 100)) == b"x" * 100
    got = b"".join(bytes(p) for p in diag._pieces(log, None, None, size + 600))
    assert got == text_of(log) + b"\n" * 600


def test_status_is_idle_without_an_upload():
    assert Station().block.status() == ("Idle", None)


def test_the_request_time_is_in_the_file_name():
    t = time.gmtime(rfc3339.parse("2026-12-06T11:22:33Z"))
    assert diag._stamp(SimpleNamespace(iso=lambda: "2026-12-06T11:22:33Z")) == (
        "%04d%02d%02dT%02d%02d%02dZ" % t[:6]
    )
