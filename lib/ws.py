# ws: asyncio WebSocket client (RFC 6455, client side) for OCPP-J.
# MIT licence. Ours because micropython-lib's aiohttp WebSocket sends no per-connection headers,
# does not check the subprotocol and checks the handshake with assert.

import asyncio
import binascii
import hashlib
import os
import struct
import time

from micropython import const

from url import split as url_split

# Opcodes (RFC 6455 5.2).
_OP_CONT = const(0)
_OP_TEXT = const(1)
_OP_BIN = const(2)
_OP_CLOSE = const(8)
_OP_PING = const(9)
_OP_PONG = const(10)
# First and second header byte bits.
_FIN = const(0x80)
_RSV = const(0x70)
_MASKED = const(0x80)
_MAX_CTRL = const(125)  # largest control frame payload
_MAX_HEAD = const(4096)  # largest HTTP response head we accept in the handshake
_HEAD_START = const(512)  # the head's buffer to begin with (it doubles up to _MAX_HEAD)
_CHUNK = const(256)  # big-int masking works on this many bytes at a time (a multiple of 4)
_LOOP_MAX = const(4096)  # frames up to this size are masked without allocating
_WHOLE = const(1024)  # payloads up to this size go out in one buffer with their header;
# larger ones in pieces of this size (a multiple of 4), never in a buffer of their own size
_SKIP = const(1024)  # discarded payload is read this many bytes at a time
_HEAD = const(64)  # bytes kept of a message there is no memory for (an OCPP-J id fits)
_CLOSE_MS = const(2000)  # how long we wait for the server's side of a close handshake
# Connection state, WebSocket._state: _OPEN -> _CLOSING (our close frame is sent or being sent,
# no more data may go out) -> _CLOSED (socket closed; _code/_reason are final).
_OPEN = const(0)
_CLOSING = const(1)
_CLOSED = const(2)

_GUID = const(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11")


class WsError(Exception):
    # Handshake failure or protocol violation by the server. status: the HTTP status when the
    # server answered the upgrade request with something other than 101, else None.
    def __init__(self, msg, status=None):
        super().__init__(msg)
        self.status = status


class CertificateError(OSError):
    # TLS: the server's certificate failed verification (not from a trusted root, expired or
    # not yet valid, not for the host name). str(): the TLS library's reasons, one line.
    pass


class TlsVersionError(OSError):
    # TLS: the server offers no TLS version we speak (only versions below 1.2: mbedTLS 3
    # has none older). Told apart on MicroPython (mbedTLS) only; on CPython such a server
    # ends in a plain OSError.
    pass


# mbedTLS's MBEDTLS_ERR_SSL_BAD_PROTOCOL_VERSION, which MicroPython raises as OSError(code, name)
# when the server's hello names a TLS version we do not speak.
_BAD_PROTOCOL_VERSION = const(-0x6E80)


class ConnectionClosed(Exception):
    # code: the close code (the server's, or the one we sent when we failed the connection);
    # 1006 when the connection ended without a close frame, 1009 when a message was over
    # max_size. reason: str. (No subclass per code: a class costs some 100 B of heap.)
    def __init__(self, code=1006, reason=""):
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self):
        return "%d %s" % (self.code, self.reason)


class OutOfMemory(MemoryError):
    # recv(), recv_bytes(): a text message within max_size for which no buffer could be had
    # (the heap is short or cut up). It was read to its end and dropped; the connection
    # stays open. head: its first bytes (up to _HEAD), for the caller to answer it; size: its
    # length in bytes. Inside, one that is not raised also stands for a frame payload that was
    # skipped for want of memory (_rx).
    def __init__(self, head, size):
        super().__init__("no memory for a message of %d bytes" % size)
        self.head = head
        self.size = size


class _Lost(Exception):
    # Internal: the socket failed (EOF, error, frame timeout) or _shut() closed it under a
    # read. Helpers raise it; only the top of a flow (recv, send, close) closes the
    # connection (helpers may run in wait_for()'s own task).
    pass


class _Fail(Exception):
    # Internal: the server broke the protocol; fail the connection with close code `code`.
    # skip: payload bytes of the offending frame still unread on the socket.
    def __init__(self, code, reason, skip=0):
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.skip = skip


def _is_int(x):
    # bool is an int on CPython but not on MicroPython: refuse it on both.
    return isinstance(x, int) and not isinstance(x, bool)


def _check_text(s, what):
    # Printable ASCII only: whatever goes into the request line or a header cannot inject one.
    if not isinstance(s, str) or not s:
        raise ValueError(what)
    for c in s:
        if c <= " " or c > "~":
            raise ValueError(what)


def _valid_code(code):
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def parse_url(url):
    # -> (tls, host, port, path); credentials belong in basic_auth, fragments nowhere.
    return url_split(url, "ws", "wss")


def _b64(data):
    return binascii.b2a_base64(data, newline=False).decode()


def _basic(auth):
    # (user, password) -> the credentials of an "Authorization: Basic" header.
    user, password = auth
    user = user.encode() if isinstance(user, str) else bytes(user)
    password = password.encode() if isinstance(password, str) else bytes(password)
    if b":" in user:
        raise ValueError("':' in basic auth user")
    return _b64(user + b":" + password)


def _request(tls, host, port, path, key, subprotocol, auth):
    h = "[" + host + "]" if ":" in host else host
    if port != (443 if tls else 80):
        h = "%s:%d" % (h, port)
    lines = [
        "GET " + path + " HTTP/1.1",
        "Host: " + h,
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: " + key,
        "Sec-WebSocket-Version: 13",
    ]
    if subprotocol is not None:
        lines.append("Sec-WebSocket-Protocol: " + subprotocol)
    if auth is not None:
        lines.append("Authorization: Basic " + auth)
    lines.append("\r\n")  # the join turns this into the blank line ending the head
    return "\r\n".join(lines).encode()


async def _read_head(r):
    # The HTTP response head up to its blank line, byte by byte so that nothing after it (a
    # first frame) is consumed, into one buffer of bounded size. The buffer starts small and
    # doubles: a usual head is a few hundred bytes, and on a board's fragmented heap a 4 KB
    # block may not be there when a reconnect needs it.
    buf = bytearray(_HEAD_START)
    n = 0
    while True:
        if n == len(buf):
            if n >= _MAX_HEAD:
                raise WsError("handshake response head too large")
            buf.extend(bytes(n))  # twice the size; rare
        b = await r.read(1)
        if not b:
            raise WsError("connection closed during handshake")
        c = buf[n] = b[0]
        n += 1
        if c == 10 and n >= 4 and buf[n - 2] == 13 and buf[n - 3] == 10 and buf[n - 4] == 13:
            break
    try:
        return str(buf[: n - 4], "utf-8")
    except UnicodeError:
        raise WsError("handshake response is not UTF-8") from None


# The response headers we look at; each may appear at most once.
_WANTED = (
    "upgrade",
    "connection",
    "sec-websocket-accept",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
)


def _parse_head(text):
    # -> (status, {lower-case name: value}) for the _WANTED headers.
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    code = parts[1] if len(parts) > 1 else ""
    if not parts[0].startswith("HTTP/") or len(code) != 3 or code.strip("0123456789"):
        raise WsError("bad HTTP status line")
    hdrs = {}
    for line in lines[1:]:
        k = line.find(":")
        if k <= 0:
            raise WsError("bad HTTP header line")
        name = line[:k].strip().lower()
        if name in _WANTED:
            if name in hdrs:
                raise WsError("duplicate header " + name)
            hdrs[name] = line[k + 1 :].strip()
    return int(code), hdrs


def _check_head(text, accept, subprotocol):
    status, hdrs = _parse_head(text)
    if status != 101:
        raise WsError("HTTP status %d" % status, status)
    if hdrs.get("upgrade", "").lower() != "websocket":
        raise WsError("no Upgrade: websocket")
    tokens = [t.strip().lower() for t in hdrs.get("connection", "").split(",")]
    if "upgrade" not in tokens:
        raise WsError("no Connection: Upgrade")
    if hdrs.get("sec-websocket-accept") != accept:
        raise WsError("bad Sec-WebSocket-Accept")
    if "sec-websocket-extensions" in hdrs:
        raise WsError("server chose an extension we did not offer")
    if hdrs.get("sec-websocket-protocol") != subprotocol:
        raise WsError("server did not select subprotocol %s" % subprotocol)


def _close_stream(w, hard):
    s = getattr(w, "s", None)
    if s is not None:
        # MicroPython: Stream.close() does nothing (wait_closed() closes); close the socket.
        s.close()
    elif hard:
        w.transport.abort()  # CPython: drop the connection now, unsent data included
    else:
        w.close()  # CPython: close after the buffered data is sent


async def _handshake(held, tls, host, port, ssl_ctx, req, accept, subprotocol):
    if tls:
        r, w = await asyncio.open_connection(host, port, ssl=ssl_ctx, server_hostname=host)
    else:
        r, w = await asyncio.open_connection(host, port)
    held.append(w)  # for connect() to close on failure
    # MicroPython's open_connection does not report a failed TCP connect: this write does.
    w.write(req)
    await w.drain()
    _check_head(await _read_head(r), accept, subprotocol)
    return r, w


async def connect(
    url,
    *,
    subprotocol="ocpp2.0.1",
    basic_auth=None,
    ssl_ctx=None,
    max_size=65536,
    timeout_ms=30000,
    urandom=os.urandom,
    frame_timeout_ms=10000,
    keep=None,
):
    # -> an open WebSocket. Raises ValueError (arguments), OSError (network, TLS; of it
    # CertificateError and TlsVersionError) or WsError (HTTP/handshake, including running
    # out of timeout_ms). keep: the largest text message we try to buffer (a board's heap
    # can never hold much more); a larger one, up to max_size, is read past and dropped as
    # if there were no memory for it (OutOfMemory), whatever the heap's state. None: max_size.
    tls, host, port, path = parse_url(url)
    if tls and ssl_ctx is None:
        raise ValueError("wss:// needs ssl_ctx")
    if not tls and ssl_ctx is not None:
        raise ValueError("ssl_ctx given for a ws:// url")
    for v in (max_size, timeout_ms, frame_timeout_ms, keep or max_size):
        if not _is_int(v) or v <= 0:
            raise ValueError("sizes and timeouts must be positive ints")
    if subprotocol is not None:
        _check_text(subprotocol, "bad subprotocol")
    auth = None if basic_auth is None else _basic(basic_auth)
    key = _b64(urandom(16))
    accept = _b64(hashlib.sha1(key.encode() + _GUID).digest())
    req = _request(tls, host, port, path, key, subprotocol, auth)
    held = []
    try:
        r, w = await asyncio.wait_for_ms(
            _handshake(held, tls, host, port, ssl_ctx, req, accept, subprotocol), timeout_ms
        )
    except asyncio.TimeoutError:
        if held:
            _close_stream(held[0], True)
        raise WsError("handshake timed out") from None
    except BaseException as e:
        if held:
            _close_stream(held[0], True)
        if tls and isinstance(e, (ValueError, OSError)):
            raise _tls_error(e) from None
        raise
    return WebSocket(r, w, subprotocol, max_size, frame_timeout_ms, urandom, keep)


def _tls_error(e):
    # -> what to raise for exception e out of a TLS connection attempt. ValueError: the
    # server's certificate failed verification. MicroPython raises that with mbedTLS's
    # reasons, one per line (arguments were checked before, so here it can only come from
    # TLS); CPython's SSLCertVerificationError is a ValueError too, its reason in
    # verify_message. Other errors stay as they are but for mbedTLS's "bad protocol
    # version".
    if isinstance(e, ValueError):
        why = getattr(e, "verify_message", None) or str(e)
        return CertificateError("; ".join([x.strip() for x in why.split("\n") if x.strip()]))
    if e.args and e.args[0] == _BAD_PROTOCOL_VERSION:
        return TlsVersionError("the server offers no TLS version >= 1.2")
    return e


def _mask_into(out, off, data, mask, big=False):
    # out[off:off+len(data)] = data XOR the repeated 4-byte mask. Frames up to _LOOP_MAX bytes,
    # nearly all that a station sends, go through a byte loop that allocates nothing (5x slower
    # than big ints: ~0.3 ms per 4 KB on the unix port). Larger ones (big: a piece of one) use
    # one big-int XOR per _CHUNK bytes, fast but leaving a few times their size in garbage.
    n = len(data)
    if n <= _LOOP_MAX and not big:
        m0 = mask[0]  # one by one: a 4-tuple assignment would allocate on MicroPython
        m1 = mask[1]
        m2 = mask[2]
        m3 = mask[3]
        end = n - 3
        i = 0
        while i < end:
            out[off + i] = data[i] ^ m0
            out[off + i + 1] = data[i + 1] ^ m1
            out[off + i + 2] = data[i + 2] ^ m2
            out[off + i + 3] = data[i + 3] ^ m3
            i += 4
        while i < n:
            out[off + i] = data[i] ^ mask[i & 3]
            i += 1
        return
    rep = mask * (_CHUNK // 4)
    km = int.from_bytes(rep, "big")
    mv = memoryview(data)
    i = 0
    while i + _CHUNK <= n:
        x = int.from_bytes(mv[i : i + _CHUNK], "big") ^ km
        out[off + i : off + i + _CHUNK] = x.to_bytes(_CHUNK, "big")
        i += _CHUNK
    r = n - i
    if r:
        x = int.from_bytes(mv[i:], "big") ^ int.from_bytes(rep[:r], "big")
        out[off + i : off + n] = x.to_bytes(r, "big")


def _parse_close(data):
    # Close frame payload -> (code, reason); 1005 stands for "no code given".
    if not data:
        return 1005, ""
    if len(data) < 2:
        raise _Fail(1002, "close frame of 1 byte")
    code = (data[0] << 8) | data[1]
    if not _valid_code(code):
        raise _Fail(1002, "bad close code %d" % code)
    try:
        return code, str(data[2:], "utf-8")
    except UnicodeError:
        raise _Fail(1007, "close reason is not UTF-8") from None


def _current_task():
    try:
        return asyncio.current_task()
    except RuntimeError:  # no running loop
        return None


class WebSocket:
    # Made by connect(). One task at a time may be in recv(); any number may send.
    def __init__(
        self, reader, writer, subprotocol, max_size, frame_timeout_ms, urandom, keep=None
    ):
        self._r = reader
        self._w = writer
        self.subprotocol = subprotocol
        self.last_pong = None  # ticks_ms() when the last pong arrived; None before the first
        self._max = max_size
        self._keep = keep or max_size  # larger messages are dropped unread (OutOfMemory)
        self._ftmo = frame_timeout_ms
        self._rand = urandom
        self._state = _OPEN
        self._code = 1006  # close code to report; final once _state is _CLOSED
        self._reason = ""
        self._msg = None  # bytearray of a fragmented text message being reassembled, or None
        self._drop = None  # [head, size] of a fragmented message with no room, being skipped
        self._mid = False  # True while a frame is half read: the stream is out of step
        self._lock = asyncio.Lock()  # held from write() to the end of drain(): one frame at once
        self._done = asyncio.Event()  # set when _state becomes _CLOSED
        self._rtask = None  # task that owns the receive side: in recv(), or close() reading
        self._rio = None  # task parked on a socket read right now (_read), for _shut() to wake
        self._wtask = None  # task in write()/drain(), for _shut() to wake
        self._killed = []  # tasks _shut() cancelled; their CancelledError becomes _Lost
        # MicroPython's stream has readinto(): payloads go straight into one buffer, where its
        # readexactly() would grow a bytes object chunk by chunk. CPython's has no readinto().
        self._into = hasattr(reader, "readinto")

    @property
    def closed(self):
        # True from the moment a close handshake starts: nothing can be sent any more.
        return self._state != _OPEN

    # ---- receiving

    async def recv(self):
        # -> the next text message, a str. Raises ConnectionClosed when the connection ends
        # (code 1009: a message over max_size), OutOfMemory (see there), and UnicodeError for
        # a message that is not UTF-8, the connection staying open: RFC 6455 would fail it
        # with 1007, but OCPP-J answers such a message with a CALLERROR, so its layer (ocppj)
        # gets the bytes from recv_bytes() and checks them itself, strictly, which str() does
        # not on MicroPython.
        data = await self.recv_bytes()
        try:
            return str(data, "utf-8")
        except UnicodeError:
            raise UnicodeError("text message is not UTF-8") from None

    async def recv_bytes(self):
        # -> the payload of the next text message as it came, unchecked: a bytearray (bytes
        # on CPython). Raises as recv() does, but for UnicodeError.
        if self._state != _OPEN:
            raise ConnectionClosed(self._code, self._reason)
        if self._rtask is not None:
            raise RuntimeError("another task is in recv()")
        self._rtask = _current_task()
        try:
            return await self._recv()
        except _Lost as e:
            self._shut(1006, e.args[0], True)
            raise ConnectionClosed(self._code, self._reason) from None
        except asyncio.CancelledError:  # our caller's: _shut()'s cancels end in _Lost
            if self._mid or (self._wtask is not None and getattr(self._w, "out_buf", None)):
                # Cancelled inside a frame: the stream is out of step. Or a send() is parked on
                # the socket on MicroPython, whose asyncio, cancelling our wait on the socket,
                # unregisters the socket for that send() as well: it would never wake.
                self._shut(1006, "recv() cancelled", True)
            raise
        finally:
            self._rtask = None

    async def _recv(self):
        try:
            while True:
                op, fin, data = await self._frame()
                if op >= _OP_CLOSE:
                    await self._control(op, data)
                elif self._state == _OPEN:  # data arriving while we close is dropped
                    text = self._data(op, fin, data)
                    if text is not None:
                        return text
        except _Fail as e:
            await self._fail(e)

    async def _frame(self):
        # -> (opcode, fin, payload); payload is None for data frames dropped while closing.
        # The start of a frame may take forever (liveness is the caller's business, by pings);
        # once its first byte is in, the rest must follow within frame_timeout_ms.
        try:
            b = await self._read(self._r.read, 2)
            if not b:
                raise EOFError
            self._mid = True
            f = await asyncio.wait_for_ms(self._rest(b), self._ftmo)
            self._mid = False
            return f
        except asyncio.TimeoutError:  # before OSError: CPython's TimeoutError is an OSError
            raise _Lost("frame timeout") from None
        except (EOFError, OSError):
            raise _Lost("connection lost") from None

    async def _read(self, fn, arg):
        # -> await fn(arg), a read on the stream, with this task as the one that _shut() wakes
        # if it closes the connection meanwhile; its cancel comes out of here as _Lost.
        # _shut() cancels only a task parked right here, never one that is waiting in
        # wait_for() (as recv() is while its helper task reads the rest of a frame): see
        # _shut().
        if self._state == _CLOSED:  # a closed socket might never poll ready
            raise _Lost("connection closed")
        self._rio = _current_task()
        try:
            return await fn(arg)
        except asyncio.CancelledError:
            if self._took_cancel():
                raise _Lost("connection closed") from None
            raise
        finally:
            self._rio = None

    async def _rest(self, b):
        r = self._r.readexactly
        if len(b) < 2:
            b += await self._read(r, 1)
        b0 = b[0]
        b1 = b[1]
        op = b0 & 0x0F
        fin = b0 & _FIN
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", await self._read(r, 2))[0]
        elif n == 127:
            n = struct.unpack(">Q", await self._read(r, 8))[0]
        if b1 & _MASKED:
            await self._read(r, 4)  # read the key to stay in step; we refuse the frame anyway
            raise _Fail(1002, "masked frame from server", n)
        if b0 & _RSV:
            raise _Fail(1002, "RSV bits set", n)
        if op >= _OP_CLOSE:
            if op > _OP_PONG:
                raise _Fail(1002, "unknown opcode %d" % op, n)
            if n > _MAX_CTRL or not fin:
                raise _Fail(1002, "control frame too long or fragmented", n)
        elif op > _OP_BIN:
            raise _Fail(1002, "unknown opcode %d" % op, n)
        elif self._state != _OPEN:
            await self._skip(n)
            return op, fin, None
        elif n + (self._so_far() if op == _OP_CONT else 0) > self._max:
            raise _Fail(1009, "message too big", n)
        if n and op < _OP_CLOSE:
            return op, fin, await self._rx(n, (self._so_far() if op == _OP_CONT else 0) + n)
        return op, fin, (await self._rx(n, 0) if n else b"")

    def _so_far(self):
        # Bytes of the fragmented message received so far.
        if self._drop is not None:
            return self._drop[1]
        return len(self._msg) if self._msg is not None else 0

    async def _rx(self, n, total):
        # Exactly n bytes, or an OutOfMemory (not raised) when there is no memory for them, or
        # when `total`, the size of the data message so far with them, passes _keep.
        buf = None
        if total <= self._keep:
            if not self._into:
                return await self._read(self._r.readexactly, n)
            try:
                buf = bytearray(n)
            except MemoryError:
                pass
        if buf is None:
            k = n if n < _HEAD else _HEAD
            head = await self._read(self._r.readexactly, k)
            await self._skip(n - k)
            return OutOfMemory(head, n)
        mv = memoryview(buf)
        got = 0
        while got < n:
            k = await self._read(self._r.readinto, mv[got:])
            if k is None:  # TLS: no whole record yet
                continue
            if not k:
                raise EOFError
            got += k
        return buf

    async def _skip(self, n):
        while n:
            b = await self._read(self._r.read, n if n < _SKIP else _SKIP)
            if not b:
                raise EOFError
            n -= len(b)

    def _data(self, op, fin, data):
        # -> the payload once a message is complete, else None (a fragment was taken in).
        # Raises OutOfMemory at the end of a message some part of which had no room.
        inside = self._msg is not None or self._drop is not None
        if op == _OP_CONT:
            if not inside:
                raise _Fail(1002, "continuation frame without a message")
        else:
            if inside:
                raise _Fail(1002, "new message inside a fragmented one")
            if op == _OP_BIN:
                raise _Fail(1003, "binary messages not accepted")
        if isinstance(data, OutOfMemory):
            part, size = data.head, data.size
        else:
            part, size = data, len(data)
            if self._drop is None:
                if op != _OP_CONT:
                    if fin:
                        return data
                    # MicroPython's _rx() made data: no copy needed.
                    self._msg = bytearray(data) if type(data) is bytes else data
                    part = None
                else:
                    try:
                        self._msg.extend(data)
                        part = None
                    except MemoryError:
                        pass
        if part is not None:  # no room for this part: from here on the message is skipped
            msg = self._msg
            if msg is not None:  # the parts before it: the head of the message
                self._msg = None
                self._no_room(msg, len(msg))
            self._no_room(part, size)
        if not fin:
            return None
        msg, drop = self._msg, self._drop
        self._msg = self._drop = None
        if drop is not None:
            raise OutOfMemory(bytes(drop[0]), drop[1])
        return msg

    def _no_room(self, part, size):
        # Part of the message (size bytes, of which `part` came) had no room: skip the rest.
        drop = self._drop
        if drop is None:
            self._drop = [bytes(part[:_HEAD]), size]
            return
        if len(drop[0]) < _HEAD:
            drop[0] += bytes(part[: _HEAD - len(drop[0])])
        drop[1] += size

    async def _control(self, op, data):
        if op == _OP_PING:
            if self._state == _OPEN:
                await self._send_frame(_OP_PONG, data)
        elif op == _OP_PONG:
            self.last_pong = time.ticks_ms()
        else:
            code, reason = _parse_close(data)
            if self._state == _OPEN:
                self._state = _CLOSING
                await self._send_close(data[:2])  # echo the server's code
            self._shut(code, reason, False)
            raise ConnectionClosed(code, reason)

    async def _fail(self, e):
        # Fail the connection (RFC 6455 7.1.7): send our close, give the server a bounded time
        # to answer it, drop the socket, raise.
        sent = True
        if self._state == _OPEN:
            self._state = _CLOSING
            self._code, self._reason = e.code, e.reason
            sent = await self._send_close(struct.pack(">H", e.code))
        if sent and self._state == _CLOSING:
            try:
                await asyncio.wait_for_ms(self._await_close(e.skip), _CLOSE_MS)
            except (asyncio.TimeoutError, _Lost, _Fail, EOFError, OSError):
                pass  # we are dropping the connection anyway
        self._shut(e.code, e.reason, False)
        self._code, self._reason = e.code, e.reason
        raise ConnectionClosed(e.code, e.reason)

    async def _await_close(self, skip):
        # While closing: drop the unread rest of a frame and everything up to the server's
        # close frame. Returns its payload.
        if skip:
            await self._skip(skip)
        while True:
            op, _, data = await self._frame()
            if op == _OP_CLOSE:
                return data

    # ---- sending

    def _build(self, op, data):
        # -> (buffer, mask): the frame with a fresh mask, whole if its payload is at most
        # _WHOLE bytes, else its header alone (_send_frame() sends the payload in pieces).
        n = len(data)
        h = 6 if n < 126 else (8 if n < 65536 else 14)  # header bytes, mask key included
        f = bytearray(h + n if n <= _WHOLE else h)
        f[0] = _FIN | op
        if n < 126:
            f[1] = _MASKED | n
        elif n < 65536:
            f[1] = _MASKED | 126
            struct.pack_into(">H", f, 2, n)
        else:
            f[1] = _MASKED | 127
            struct.pack_into(">Q", f, 2, n)
        mask = self._rand(4)
        f[h - 4 : h] = mask
        if n <= _WHOLE:
            _mask_into(f, h, data, mask)
        return f, mask

    async def _send_frame(self, op, data):
        # Frames go out one at a time, under the lock (MicroPython's drain() is not safe to
        # run from two tasks at once): a small one as one write() and its drain(), a larger
        # one as its header, then pieces of _WHOLE bytes masked into a buffer of their own,
        # each written and drained, so that sending n bytes never needs n more bytes in one
        # block of the heap. A MemoryError from _build() leaves the connection as it was:
        # nothing went out.
        frame, mask = self._build(op, data)
        n = len(data)
        async with self._lock:
            if not (self._state == _OPEN or (op == _OP_CLOSE and self._state == _CLOSING)):
                raise ConnectionClosed(self._code, self._reason)
            self._wtask = _current_task()
            midway = False  # part of the frame is out, the rest not yet written
            try:
                self._w.write(frame)
                midway = n > _WHOLE
                await self._w.drain()
                if midway:
                    mv = memoryview(data)
                    big = n > _LOOP_MAX
                    i = 0
                    while i < n:
                        k = n - i if n - i < _WHOLE else _WHOLE
                        piece = bytearray(k)
                        _mask_into(piece, 0, mv[i : i + k], mask, big)
                        self._w.write(piece)
                        piece = None
                        await self._w.drain()
                        i += k
                    midway = False
            except asyncio.CancelledError:
                if self._took_cancel():
                    raise ConnectionClosed(self._code, self._reason) from None
                if midway or getattr(self._w, "out_buf", None):
                    # Part of the frame is on the wire; or, MicroPython, the next drain()
                    # would start again from the beginning of out_buf, part of which may be
                    # on the wire already.
                    self._shut(1006, "send() cancelled inside a frame", True)
                raise
            except OSError:
                raise _Lost("connection lost") from None
            except MemoryError:
                # A piece had no room, or MicroPython's write() sent part of the frame before
                # it found no room to buffer the rest: the stream is out of step.
                self._shut(1006, "out of memory while sending", True)
                raise ConnectionClosed(self._code, self._reason) from None
            finally:
                self._wtask = None

    async def _send_close(self, payload):
        # Best effort and bounded: a stuck socket must not hold a close up. -> False when the
        # socket turned out to be dead.
        try:
            await asyncio.wait_for_ms(self._send_frame(_OP_CLOSE, payload), _CLOSE_MS)
        except (asyncio.TimeoutError, ConnectionClosed):
            pass
        except _Lost:
            return False
        return True

    async def _send_data(self, op, data):
        try:
            await self._send_frame(op, data)
        except _Lost as e:
            self._shut(1006, e.args[0], True)
            raise ConnectionClosed(self._code, self._reason) from None

    async def send(self, text):
        # A text message: a str, or its UTF-8 bytes (bytes, bytearray, memoryview) when the
        # caller has them (ocppj does, checked: nothing here checks that bytes are UTF-8).
        if isinstance(text, str):
            text = text.encode()
        elif not isinstance(text, (bytes, bytearray, memoryview)):
            raise TypeError("send() takes a str or bytes")
        if self._state != _OPEN:
            raise ConnectionClosed(self._code, self._reason)
        await self._send_data(_OP_TEXT, text)

    async def ping(self, payload=b""):
        if isinstance(payload, str):
            payload = payload.encode()
        if len(payload) > _MAX_CTRL:
            raise ValueError("ping payload over 125 bytes")
        await self._send_data(_OP_PING, payload)

    # ---- closing

    async def close(self, code=1000, reason=""):
        # Close handshake: our close frame, the server's (at most _CLOSE_MS), socket closed.
        # Idempotent; however it ends (even cancelled), the socket is closed afterwards.
        if self._state == _OPEN:
            payload = struct.pack(">H", code) if _is_int(code) and _valid_code(code) else None
            rb = reason.encode() if isinstance(reason, str) else None
            if payload is None or rb is None or len(rb) > _MAX_CTRL - 2:
                raise ValueError("bad close code or reason")
            self._state = _CLOSING
            self._code, self._reason = code, reason
            try:
                if await self._send_close(payload + rb):
                    await self._await_server_close()
            finally:
                self._shut(1006, "no close frame from the server", False)
        elif self._state == _CLOSING:  # a close is under way elsewhere: wait for its end
            try:
                await asyncio.wait_for_ms(self._done.wait(), _CLOSE_MS)
            except asyncio.TimeoutError:
                self._shut(1006, "no close frame from the server", False)

    async def _await_server_close(self):
        if self._rtask is not None:  # a recv() is reading: it will see the server's close frame
            try:
                await asyncio.wait_for_ms(self._done.wait(), _CLOSE_MS)
            except asyncio.TimeoutError:
                pass
        else:
            await self._read_close()

    async def _read_close(self):
        self._rtask = _current_task()
        try:
            await asyncio.wait_for_ms(self._await_close(0), _CLOSE_MS)
            self._shut(self._code, self._reason, False)
        except (asyncio.TimeoutError, _Lost, _Fail, EOFError, OSError):
            pass  # close() drops the socket anyway
        finally:
            self._rtask = None

    def abort(self):
        # Drop the connection now, no close handshake; a task blocked in recv() or send() gets
        # ConnectionClosed(1006).
        self._shut(1006, "aborted", True)

    def _shut(self, code, reason, hard):
        # Enter _CLOSED (once): record why, wake the tasks blocked on the socket, close it.
        # Waking is by cancelling them: closing a socket does not reliably wake a task that
        # MicroPython's poller has parked on it (on lwIP ports the closed socket polls as
        # POLLNVAL, which asyncio ignores). The cancel goes only to a task parked on the
        # socket itself, in _read() or in _send_frame()'s drain(), where it turns into _Lost or
        # ConnectionClosed; never to a task waiting in wait_for(). MicroPython's wait_for(),
        # cancelled, cancels its helper task, and that helper, once it ends, cancels its
        # waiter again if the waiter is then parked anywhere: a waiter that took our cancel as
        # ConnectionClosed and went on (to its back-off sleep, say) would get a
        # CancelledError there, out of the blue.
        if self._state == _CLOSED:
            return
        self._state = _CLOSED
        self._code, self._reason = code, reason
        self._msg = self._drop = None
        cur = _current_task()
        for t in (self._rio, self._wtask):
            if t is not None and t is not cur and t.cancel():
                self._killed.append(t)
        _close_stream(self._w, hard)
        self._done.set()

    def _took_cancel(self):
        # True if the current task's CancelledError came from _shut() (and so is ours to eat).
        t = _current_task()
        if t is None or t not in self._killed:
            return False
        self._killed.remove(t)
        uncancel = getattr(t, "uncancel", None)  # CPython: undo our cancel() in its count
        if uncancel is not None:
            uncancel()
        return True
