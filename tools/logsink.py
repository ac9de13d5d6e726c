# logsink: where the development CSMS and the tests receive the logs stations upload (GetLog).
# MIT licence.
"""A log sink: HTTP PUT and multipart/form-data POST (asyncio, no framework) and FTP
(pyftpdlib, in a thread), both saving the uploads into one folder.

    sink = LogSink(folder)           # user "wallbox", password "logs"
    await sink.start()               # on the running event loop; the FTP server in a thread
    sink.http_url("a.log")           # http://127.0.0.1:PORT/a.log (auth=True adds user:password@)
    sink.ftp_url("a.log")            # ftp://wallbox:logs@127.0.0.1:PORT/a.log
    await sink.stop()

HTTP: PUT saves the raw body, POST the part named "file" of a multipart/form-data body, under
the last segment of the URL's path (for a path ending in "/", the part's filename; else
upload-N.log), answering 201. ``require_auth = True`` answers 401 to a request without the
sink's Basic credentials; ``answer = 500`` (any status) answers that to every request, the body
read and dropped; ``read_delay = 0.02`` reads HTTP bodies 1 KB at a time with that pause after
each (a slow link, for measurements). With ``certfile`` and ``keyfile`` it serves https://
instead. FTP: the user may write into the folder, and so may anonymous (``anonymous=False``
refuses it); passive mode on 127.0.0.1. ``attempts`` records every request as an Upload
(method, path, t = time.monotonic(), status, file saved or None, size): "PUT"/"POST" with the
HTTP status, "STOR" with 226 (or None for a cut transfer), "LOGIN" with 530 for refused
credentials.
"""

import asyncio
import logging
import os
import ssl
import threading
import time
import urllib.parse
import warnings
from collections import namedtuple

__all__ = ["LogSink", "Upload", "parse_multipart"]

#: One upload attempt the sink saw (see the module docstring).
Upload = namedtuple("Upload", "method path t status file size")

_REASONS = {
    200: "OK",
    201: "Created",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Content Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
_MAX_BODY = 16 * 1024 * 1024
_TIMEOUT = 10.0


def parse_multipart(content_type, body, field="file"):
    """(filename, data) of the part named ``field`` of a multipart/form-data body, exactly the
    bytes between the part's head and its closing delimiter; ValueError when it is not there."""
    ctype, _, params = content_type.partition(";")
    if ctype.strip().lower() != "multipart/form-data":
        raise ValueError("not multipart/form-data")
    boundary = None
    for p in params.split(";"):
        k, _, v = p.strip().partition("=")
        if k.lower() == "boundary":
            boundary = v.strip('"')
    if not boundary:
        raise ValueError("no boundary")
    delim = b"--" + boundary.encode("latin-1")
    if not body.startswith(delim + b"\r\n"):
        raise ValueError("body does not start with the boundary")
    end = body.find(b"\r\n" + delim + b"--")
    if end < 0:
        raise ValueError("no closing boundary")
    for part in body[len(delim) + 2 : end].split(b"\r\n" + delim + b"\r\n"):
        head, sep, data = part.partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("part without a head")
        disposition = {}
        for line in head.decode("latin-1").split("\r\n"):
            k, _, v = line.partition(":")
            if k.strip().lower() == "content-disposition":
                for item in v.split(";")[1:]:
                    pk, _, pv = item.strip().partition("=")
                    disposition[pk.lower()] = pv.strip('"')
        if disposition.get("name") == field:
            return disposition.get("filename"), data
    raise ValueError(f"no part named {field!r}")


class LogSink:
    def __init__(
        self,
        directory,
        host="127.0.0.1",
        log=None,
        *,
        user="wallbox",
        password="logs",
        anonymous=True,
        certfile=None,
        keyfile=None,
        ftp=True,
    ):
        self.directory = os.path.realpath(directory)
        os.makedirs(self.directory, exist_ok=True)
        self.host = host
        self.log = log
        self.user = user
        self.password = password
        self.anonymous = anonymous
        self.require_auth = False
        self.answer = None
        self.read_delay = 0  # seconds to pause after each 1 KB of an HTTP body (a slow link)
        self.attempts = []
        self.http_port = None
        self.ftp_port = None
        self._tls = None
        if certfile is not None:
            self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._tls.load_cert_chain(str(certfile), str(keyfile))
        self._ftp_wanted = ftp
        self._http = None
        self._ftp = None
        self._ftp_thread = None
        self._ftp_stop = threading.Event()
        self._count = 0

    # ---- URLs

    def http_url(self, name, auth=False):
        scheme = "https" if self._tls else "http"
        cred = self._cred() if auth else ""
        return f"{scheme}://{cred}{self.host}:{self.http_port}/{urllib.parse.quote(name)}"

    def ftp_url(self, name, auth=True):
        cred = self._cred() if auth else ""
        return f"ftp://{cred}{self.host}:{self.ftp_port}/{urllib.parse.quote(name)}"

    def _cred(self):
        q = urllib.parse.quote
        return f"{q(self.user, safe='')}:{q(self.password, safe='')}@"

    # ---- start and stop

    async def start(self):
        self._http = await asyncio.start_server(self._serve, self.host, 0, ssl=self._tls)
        self.http_port = self._http.sockets[0].getsockname()[1]
        if self._ftp_wanted:
            self._start_ftp()
        where = self.http_url("")
        if self._ftp is not None:
            where += " and " + self.ftp_url("", auth=False)
        self._note(f"saving uploads into {self.directory} from {where}")

    async def stop(self):
        if self._http is not None:
            self._http.close()
            await self._http.wait_closed()
            self._http = None
        if self._ftp_thread is not None:
            self._ftp_stop.set()
            await asyncio.get_running_loop().run_in_executor(None, self._ftp_thread.join, 5)
            self._ftp_thread = None
            self._ftp = None

    async def __aenter__(self):
        await self.start()
        return self

    async def __aexit__(self, *exc_info):
        await self.stop()

    def _note(self, text):
        if self.log is not None:
            self.log(text)

    def _record(self, method, path, status, file=None, size=0):
        self.attempts.append(Upload(method, path, time.monotonic(), status, file, size))

    # ---- HTTP

    async def _serve(self, reader, writer):
        method, path, status, file, size = "?", "?", 400, None, 0
        try:
            line = await asyncio.wait_for(reader.readline(), _TIMEOUT)
            headers = {}
            for _ in range(100):
                h = await asyncio.wait_for(reader.readline(), _TIMEOUT)
                if h in (b"\r\n", b"\n", b""):
                    break
                k, _, v = h.decode("latin-1").partition(":")
                headers[k.strip().lower()] = v.strip()
            parts = line.decode("latin-1").split()
            if len(parts) == 3:
                method = parts[0]
                path = urllib.parse.unquote(urllib.parse.urlsplit(parts[1]).path)
                status, file, size = await self._handle(method, path, headers, reader)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as e:
            self._note(f"{method} {path}: {e}")
        self._record(method, path, status, file, size)
        where = f", saved {file} ({size} bytes)" if file else ""
        self._note(f"{method} {path} -> {status}{where}")
        head = f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\nContent-Length: 0\r\n"
        if status == 401:
            head += 'WWW-Authenticate: Basic realm="logs"\r\n'
        try:
            writer.write(head.encode() + b"Connection: close\r\n\r\n")
            await asyncio.wait_for(writer.drain(), _TIMEOUT)
            writer.close()
            await asyncio.wait_for(writer.wait_closed(), _TIMEOUT)
        except (OSError, asyncio.TimeoutError):
            pass

    async def _handle(self, method, path, headers, reader):
        # -> (status, file saved or None, body size)
        cl = headers.get("content-length", "")
        if not cl.isdigit():
            return 411, None, 0
        size = int(cl)
        if size > _MAX_BODY:
            return 413, None, size
        if self.read_delay:  # a slow link: the body in pieces, a pause after each
            body = b""
            while len(body) < size:
                body += await asyncio.wait_for(
                    reader.readexactly(min(1024, size - len(body))), _TIMEOUT
                )
                await asyncio.sleep(self.read_delay)
        else:
            body = await asyncio.wait_for(reader.readexactly(size), _TIMEOUT)
        if self.answer is not None:
            return self.answer, None, size
        if method not in ("PUT", "POST"):
            return 405, None, size
        if self.require_auth and not self._authorized(headers.get("authorization", "")):
            return 401, None, size
        name = path.rsplit("/", 1)[-1]
        if method == "POST":
            try:
                filename, body = parse_multipart(headers.get("content-type", ""), body)
            except ValueError as e:
                self._note(f"POST {path}: {e}")
                return 400, None, size
            name = name or os.path.basename((filename or "").replace("\\", "/"))
        return 201, self._save(name, body), len(body)

    def _authorized(self, value):
        import base64
        import hmac

        want = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        return hmac.compare_digest(value.encode(), f"Basic {want}".encode())

    def _save(self, name, data):
        if name in ("", ".", ".."):
            self._count += 1
            name = f"upload-{self._count}.log"
        file = os.path.join(self.directory, name)
        tmp = file + ".part"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, file)
        return file

    # ---- FTP (pyftpdlib runs its own loop: a thread)

    def _start_ftp(self):
        with warnings.catch_warnings():  # pyftpdlib 2.2 imports asyncore and asynchat
            warnings.simplefilter("ignore", DeprecationWarning)
            from pyftpdlib.authorizers import DummyAuthorizer
            from pyftpdlib.handlers import FTPHandler
            from pyftpdlib.servers import FTPServer

        # pyftpdlib logs to stderr unless its logger has a handler: it speaks through ours
        logging.getLogger("pyftpdlib").addHandler(logging.NullHandler())
        sink = self
        auth = DummyAuthorizer()
        auth.add_user(self.user, self.password, self.directory, perm="elradfmwMT")
        if self.anonymous:
            with warnings.catch_warnings():  # write access for anonymous: the point of a sink
                warnings.simplefilter("ignore", RuntimeWarning)
                auth.add_anonymous(self.directory, perm="elrw")

        class Handler(FTPHandler):
            authorizer = auth
            auth_failed_timeout = 0.1  # pyftpdlib's 3 s would slow the tests down
            banner = "mpwallbox log sink"

            def on_file_received(self, file):
                sink._record("STOR", self._rel(file), 226, file, os.path.getsize(file))
                sink._note(f"FTP {self.username}: saved {file} ({os.path.getsize(file)} bytes)")

            def on_incomplete_file_received(self, file):
                sink._record("STOR", self._rel(file), None, None, os.path.getsize(file))
                sink._note(f"FTP {self.username}: {file} cut short")

            def on_login_failed(self, username, password):
                sink._record("LOGIN", username, 530)
                sink._note(f"FTP login refused for {username!r}")

            def _rel(self, file):
                return "/" + os.path.relpath(file, sink.directory)

        self._ftp = FTPServer((self.host, 0), Handler)
        self.ftp_port = self._ftp.address[1]
        self._ftp_stop.clear()
        self._ftp_thread = threading.Thread(target=self._run_ftp, name="logsink-ftp", daemon=True)
        self._ftp_thread.start()

    def _run_ftp(self):
        server = self._ftp
        try:
            while not self._ftp_stop.is_set():
                server.ioloop.loop(timeout=0.05, blocking=False)
        finally:
            server.close_all()
