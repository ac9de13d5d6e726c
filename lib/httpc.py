# httpc: a small asyncio HTTP/1.1 client that streams a GET response body (firmware downloads)
# and uploads a body streamed in pieces with PUT or a multipart POST (log uploads).
# MIT licence. Ours because micropython-lib's uaiohttpclient has no TLS and no timeouts, and its
# aiohttp client reads whole bodies into RAM and checks what the server sends with assert.
#
#   resp = await get(url, ssl_ctx=None, timeout_ms=30000, redirects=3)
#   n = await resp.readinto(buf)     # 0 at the end of the body; raises on a short body
#   resp.close()
#   status = await upload(url, size, pieces, method="PUT", ssl_ctx=None, timeout_ms=30000,
#                         filename="log.txt", redirects=3)
#
# http:// and https:// (ssl_ctx: an ssl.SSLContext; None for https:// makes one that does not
# check the server, see _default_ctx). `user:password@` in the URL is sent as Basic auth. The
# body may come with a Content-Length, chunked, or until the server closes. Redirects (301,
# 302, 303, 307, 308; an upload only 307 and 308, which keep method and body) are followed up
# to `redirects` times. Every network wait is bounded by timeout_ms; a slow server raises
# asyncio.TimeoutError, a protocol violation or an unusable status HttpError (its .status the
# HTTP status, e.g. 401 or 403 for refused credentials), the network OSError (TLS failures
# too: ssl.SSLError is one on CPython). Name resolution (getaddrinfo, inside open_connection)
# blocks the loop on MicroPython: keep transfers off the safety path's time budget (they are
# rare).

import asyncio

from micropython import const

from url import split as url_split
from url import userinfo

_MAX_LINE = const(1024)  # longest status or header line we accept
_MAX_HEADERS = const(64)  # most header lines in one response head
_REDIRECTS = const((301, 302, 303, 307, 308))
# Body framing, Response._mode.
_LENGTH = const(0)  # Content-Length bytes; _left counts down
_CHUNKED = const(1)  # chunked; _left = bytes left in the current chunk, -1 before the first
_CLOSE = const(2)  # until the server closes the connection
_DONE = const(3)  # the whole body was read


class HttpError(Exception):
    # status: the HTTP status of a response we cannot use, else None.
    def __init__(self, msg, status=None):
        super().__init__(msg)
        self.status = status


def parse_url(url):
    # -> (tls, host, port, path); a fragment is not sent, credentials go into Authorization.
    return url_split(url, "http", "https", lenient=True)


def _default_ctx():
    # A firmware file is trusted for its signature, not for the server it came from: without
    # a context from the caller, https:// encrypts but does not authenticate the server.
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if hasattr(ctx, "check_hostname"):
        ctx.check_hostname = False  # CPython: required before CERT_NONE
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _close(w):
    s = getattr(w, "s", None)
    if s is not None:
        s.close()  # MicroPython: Stream.close() does nothing, the socket must be closed
    else:
        w.transport.abort()  # CPython


class Response:
    """A 200 response whose body is read with `readinto`. `length` is the Content-Length,
    None when the server did not announce one."""

    def __init__(self, r, w, mode, length, timeout_ms):
        self._r = r
        self._w = w
        self._mode = mode
        self._left = length if mode == _LENGTH else -1
        self.length = length
        self.status = 200
        self._tmo = timeout_ms
        self._into = hasattr(r, "readinto")  # MicroPython's StreamReader; CPython's has none

    async def _read(self, buf, n):
        # Up to n (> 0) bytes into buf; 0 at the server's end of stream.
        if self._into:
            mv = memoryview(buf)
            return await asyncio.wait_for_ms(self._r.readinto(mv[:n]), self._tmo)
        data = await asyncio.wait_for_ms(self._r.read(n), self._tmo)
        buf[: len(data)] = data
        return len(data)

    async def _line(self):
        return await _readline(self._r, self._tmo)

    async def readinto(self, buf):
        """Read the next body bytes into buf; their count, 0 at the end of the body."""
        while True:
            mode = self._mode
            if mode == _DONE:
                return 0
            if mode == _CLOSE:
                n = await self._read(buf, len(buf))
                if not n:
                    self._mode = _DONE
                return n
            if mode == _CHUNKED and self._left <= 0:
                await self._next_chunk()
                continue
            if mode == _LENGTH and self._left == 0:
                self._mode = _DONE
                return 0
            n = await self._read(buf, min(len(buf), self._left))
            if not n:
                raise HttpError("body ends %d bytes early" % self._left)
            self._left -= n
            return n

    async def _next_chunk(self):
        if self._left == 0:  # the CRLF after a chunk's data
            if await self._line():
                raise HttpError("bad chunk end")
        line = (await self._line()).split(";", 1)[0].strip()
        try:
            size = int(line, 16)
        except ValueError:
            raise HttpError("bad chunk size") from None
        if size < 0:
            raise HttpError("bad chunk size")
        if size == 0:
            while await self._line():  # trailer fields, up to the blank line
                pass
            self._mode = _DONE
        self._left = size

    def close(self):
        _close(self._w)


async def _readline(r, timeout_ms):
    # One CRLF- (or LF-) terminated line without its end, as str; HttpError at EOF.
    line = await asyncio.wait_for_ms(r.readline(), timeout_ms)
    if not line or line[-1:] != b"\n":
        raise HttpError("connection closed in the response head")
    if len(line) > _MAX_LINE:
        raise HttpError("response line too long")
    return line.rstrip(b"\r\n").decode()


async def _open(tls, host, port, ssl_ctx):
    if tls:
        return await asyncio.open_connection(host, port, ssl=ssl_ctx, server_hostname=host)
    return await asyncio.open_connection(host, port)


async def _head(r, timeout_ms):
    # -> (status, {lower-case name: value}) of the response head.
    status_line = await _readline(r, timeout_ms)
    parts = status_line.split(" ", 2)
    code = parts[1] if len(parts) > 1 else ""
    if not parts[0].startswith("HTTP/1.") or len(code) != 3 or code.strip("0123456789"):
        raise HttpError("bad status line")
    headers = {}
    for _ in range(_MAX_HEADERS):
        line = await _readline(r, timeout_ms)
        if not line:
            return int(code), headers
        k = line.find(":")
        if k <= 0:
            raise HttpError("bad header line")
        name = line[:k].strip().lower()
        value = line[k + 1 :].strip()
        if name in headers and name == "content-length" and headers[name] != value:
            raise HttpError("conflicting Content-Length")
        headers[name] = value
    raise HttpError("too many header lines")


def _request(method, url, host, port, tls, path, extra):
    default = 443 if tls else 80
    hostport = host if port == default else "%s:%d" % (host, port)
    if ":" in host:
        hostport = "[%s]" % host if port == default else "[%s]:%d" % (host, port)
    cred = userinfo(url)
    if cred:
        from binascii import b2a_base64

        token = b2a_base64(("%s:%s" % (cred[0], cred[1] or "")).encode())
        extra += "Authorization: Basic %s\r\n" % token.decode().strip()
    return (
        "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: mpwallbox\r\n%sConnection: close\r\n\r\n"
        % (method, path, hostport, extra)
    ).encode()


def _framing(headers):
    # -> (mode, Content-Length or None)
    te = headers.get("transfer-encoding")
    if te is not None:
        if te.lower() != "chunked":
            raise HttpError("transfer encoding %s not supported" % te)
        return _CHUNKED, None
    cl = headers.get("content-length")
    if cl is None:
        return _CLOSE, None
    if not cl or cl.strip("0123456789"):
        raise HttpError("bad Content-Length")
    return _LENGTH, int(cl)


def _location(url, loc, tls, host, port):
    if "://" in loc:
        return loc
    if not loc.startswith("/"):
        raise HttpError("relative redirect not supported")
    scheme = "https" if tls else "http"
    if ":" in host:
        host = "[%s]" % host
    return "%s://%s:%d%s" % (scheme, host, port, loc)


async def send_pieces(w, size, pieces, timeout_ms):
    """Write the pieces of `pieces()` (bytes, bytearray, memoryview or str) to the stream `w`,
    each drained before the next is asked for (its buffer may be reused), stopping once they
    pass `size` bytes; -> the bytes they came to (the caller's error when not `size`). Also
    lib/ftpc.py's data connection."""
    copy = not hasattr(w, "s")  # CPython's transport keeps what it has not sent: not a copy
    n = 0
    it = pieces()
    try:
        for p in it:
            if isinstance(p, str):
                p = p.encode()
            elif copy:
                p = bytes(p)
            n += len(p)
            if n > size:
                break
            w.write(p)
            await asyncio.wait_for_ms(w.drain(), timeout_ms)
    finally:
        if hasattr(it, "close"):
            it.close()  # a generator's finally (an open file) runs now, not at the next gc
    return n


async def _exchange(url, ssl_ctx, timeout_ms, redirects, method, extra, body=None):
    # Send the request (body: None or (pre, size, pieces, post)) following redirects;
    # -> (status, headers, r, w) of the final response, its body unread, the connection open.
    codes = _REDIRECTS if body is None else _REDIRECTS[3:]
    for _ in range(redirects + 1):
        tls, host, port, path = parse_url(url)
        ctx = (ssl_ctx or _default_ctx()) if tls else None
        w = None
        try:
            r, w = await asyncio.wait_for_ms(_open(tls, host, port, ctx), timeout_ms)
            # MicroPython's open_connection does not report a failed TCP connect: this does.
            head = _request(method, url, host, port, tls, path, extra)
            w.write(head if body is None else head + body[0])
            await asyncio.wait_for_ms(w.drain(), timeout_ms)
            lost = None
            if body is not None:
                try:
                    n = await send_pieces(w, body[1], body[2], timeout_ms)
                    if n != body[1]:
                        what = "not" if n < body[1] else "over"
                        raise HttpError("body is %s %d bytes" % (what, body[1]))
                    w.write(body[3])
                    await asyncio.wait_for_ms(w.drain(), timeout_ms)
                except OSError as e:
                    # The server may have answered and closed already, once the whole body was
                    # in (with TLS its close_notify can fail the last drain): its answer counts.
                    lost = e
            try:
                status, headers = await _head(r, timeout_ms)
            except (HttpError, OSError):
                if lost is None:
                    raise
                raise lost from None
            if status == 100:  # an interim 100 Continue we did not ask for: the answer follows
                status, headers = await _head(r, timeout_ms)
            if status in codes and "location" in headers:
                url = _location(url, headers["location"], tls, host, port)
                _close(w)
                continue
            return status, headers, r, w
        except BaseException:
            if w is not None:
                _close(w)
            raise
    raise HttpError("too many redirects")


async def get(url, ssl_ctx=None, timeout_ms=30000, redirects=3):
    """GET url; the Response of the 200 answer, its body still to be read."""
    ident = "Accept-Encoding: identity\r\n"
    status, headers, r, w = await _exchange(url, ssl_ctx, timeout_ms, redirects, "GET", ident)
    try:
        if status != 200:
            raise HttpError("HTTP status %d" % status, status)
        mode, length = _framing(headers)
    except BaseException:
        _close(w)
        raise
    return Response(r, w, mode, length, timeout_ms)


async def upload(
    url,
    size,
    pieces,
    method="PUT",
    ssl_ctx=None,
    timeout_ms=30000,
    filename="log.txt",
    redirects=3,
):
    """Upload a body of `size` bytes; the HTTP status of the 2xx answer, HttpError otherwise.
    `pieces()` returns an iterable (e.g. a generator) of the body's pieces (bytes, bytearray,
    memoryview or str), each sent as it comes, so the body is never whole in RAM; a piece's
    buffer may be reused once the next is asked for. It is called again on a redirect.
    PUT sends the raw body (what presigned object-store URLs take); POST a multipart/form-data
    body with one part, field "file", named `filename`."""
    if size < 0:
        raise ValueError("bad size")
    if method == "PUT":
        pre = post = b""
        extra = ""
    elif method == "POST":
        for c in filename:
            if c < " " or c > "~" or c in '"\\':
                raise ValueError("bad filename")
        from binascii import hexlify
        from os import urandom

        # random, so that no log line can end the part early
        b = "mpwallbox-" + hexlify(urandom(12)).decode()
        pre = (
            '--%s\r\nContent-Disposition: form-data; name="file"; filename="%s"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n" % (b, filename)
        ).encode()
        post = ("\r\n--%s--\r\n" % b).encode()
        extra = "Content-Type: multipart/form-data; boundary=%s\r\n" % b
    else:
        raise ValueError("method must be PUT or POST")
    extra += "Content-Length: %d\r\n" % (len(pre) + size + len(post))
    body = (pre, size, pieces, post)
    status, _, _, w = await _exchange(url, ssl_ctx, timeout_ms, redirects, method, extra, body)
    _close(w)
    if status // 100 != 2:
        raise HttpError("HTTP status %d" % status, status)
    return status
