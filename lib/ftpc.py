# ftpc: a small asyncio FTP client that stores one file (GetLog's ftp:// log uploads).
# MIT licence. Ours because MicroPython has no FTP client (CPython's ftplib blocks the loop).
#
#   await stor("ftp://user:password@host:21/dir/name.log", size, pieces, timeout_ms=30000)
#
# Passive mode, binary type: USER/PASS (anonymous without credentials in the URL), TYPE I,
# PASV, STOR of the URL's path (%-decoded, relative to the login folder), the pieces streamed
# over the data connection, then the final 226 and a best-effort QUIT. `pieces()` returns an
# iterable of bytes, bytearray, memoryview or str whose lengths add up to `size` (as for
# httpc.upload). The data connection goes to the control connection's host, never to the
# address in the 227 reply (which a server behind NAT gets wrong, and which could point us
# elsewhere). Every network wait is bounded by timeout_ms (asyncio.TimeoutError); a refusing
# server raises FtpError, its .status the reply code (530: not logged in, i.e. bad
# credentials); the network OSError. Name resolution blocks the loop on MicroPython.

import asyncio

from micropython import const

from httpc import send_pieces  # the file's pieces go out as an HTTP upload's body does
from url import split as url_split
from url import unquote, userinfo

_MAX_LINE = const(1024)  # longest reply line we accept
_MAX_LINES = const(64)  # most lines in one multi-line reply
_QUIT_MS = const(2000)  # QUIT is a courtesy: do not wait long for its answer


class FtpError(Exception):
    # status: the FTP reply code the server refused with, else None.
    def __init__(self, msg, status=None):
        super().__init__(msg)
        self.status = status


def _close(w):
    s = getattr(w, "s", None)
    if s is not None:
        s.close()  # MicroPython: Stream.close() does nothing, the socket must be closed
    else:
        w.transport.abort()  # CPython


async def _line(r, timeout_ms):
    line = await asyncio.wait_for_ms(r.readline(), timeout_ms)
    if not line or line[-1:] != b"\n":
        raise FtpError("connection closed in a reply")
    if len(line) > _MAX_LINE:
        raise FtpError("reply line too long")
    return line.rstrip(b"\r\n")


def _text(line):
    # A reply line (bytes) as printable ASCII, for error messages.
    return bytes(c if 32 <= c < 127 else 63 for c in line).decode()


async def _reply(r, timeout_ms, ok):
    # The first line of one reply; FtpError unless its code is in ok. A multi-line reply
    # ("123-..." up to the line starting "123 ") is read whole.
    line = await _line(r, timeout_ms)
    code = line[:3]
    if len(code) != 3 or code.strip(b"0123456789") or line[3:4] not in (b"", b" ", b"-"):
        raise FtpError("bad reply: " + _text(line))
    if line[3:4] == b"-":
        end = code + b" "
        for _ in range(_MAX_LINES):
            more = await _line(r, timeout_ms)
            if more[:4] == end or more == code:
                break
        else:
            raise FtpError("reply too long")
    code = int(code)
    if code not in ok:
        raise FtpError("FTP " + _text(line), code)
    return line


async def _cmd(r, w, timeout_ms, cmd, ok):
    w.write((cmd + "\r\n").encode())
    await asyncio.wait_for_ms(w.drain(), timeout_ms)
    return await _reply(r, timeout_ms, ok)


def _pasv_port(line):
    # The data port of "227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)" (parentheses optional).
    k = line.find(b"(")
    i = k + 1 if k >= 0 else 4
    n = len(line)
    nums = []
    while i < n and len(nums) < 6:
        if 48 <= line[i] <= 57:
            j = i
            while j < n and 48 <= line[j] <= 57:
                j += 1
            nums.append(int(line[i:j]))
            i = j
        else:
            i += 1
    if len(nums) < 6 or max(nums) > 255 or not (nums[4] or nums[5]):
        raise FtpError("bad PASV reply: " + _text(line))
    return nums[4] * 256 + nums[5]


def _target(url):
    # -> (host, port, user, password, path to STOR); ValueError for a URL we cannot use.
    tls, host, port, path = url_split(url, "ftp", "ftps", lenient=True, ports=(21, 990))
    if tls:
        raise ValueError("ftps:// not supported")
    path = unquote(path.split("?", 1)[0].split(";", 1)[0])[1:]
    if not path or path[-1] == "/":
        raise ValueError("no file name in url")
    for c in path:
        if c < " " or c == "\x7f":
            raise ValueError("bad path in url")  # a CR or LF would end the command
    cred = userinfo(url) or ("anonymous", "anonymous@")
    user, password = cred[0], cred[1] or ""
    for c in user + password:
        if c < " ":
            raise ValueError("bad credentials in url")
    return host, port, user, password, path


async def stor(url, size, pieces, timeout_ms=30000):
    """Store a file of `size` bytes, streamed from `pieces()`, at the ftp:// url."""
    host, port, user, password, path = _target(url)
    if size < 0:
        raise ValueError("bad size")
    tmo = timeout_ms
    w = dw = None
    try:
        r, w = await asyncio.wait_for_ms(asyncio.open_connection(host, port), tmo)
        await _reply(r, tmo, (220,))
        if (await _cmd(r, w, tmo, "USER " + user, (230, 331)))[:3] == b"331":
            await _cmd(r, w, tmo, "PASS " + password, (202, 230))
        await _cmd(r, w, tmo, "TYPE I", (200,))
        dport = _pasv_port(await _cmd(r, w, tmo, "PASV", (227,)))
        _, dw = await asyncio.wait_for_ms(asyncio.open_connection(host, dport), tmo)
        await _cmd(r, w, tmo, "STOR " + path, (125, 150))
        n = await send_pieces(dw, size, pieces, tmo)
        if n != size:
            raise FtpError("file is %s %d bytes" % ("not" if n < size else "over", size))
        # The end of the data connection is the end of the file: close it gracefully (CPython
        # flushes its buffer; MicroPython's drain has sent everything already).
        dw.close()
        await asyncio.wait_for_ms(dw.wait_closed(), tmo)
        dw = None
        await _reply(r, tmo, (226, 250))
        try:
            await _cmd(r, w, _QUIT_MS, "QUIT", (221,))
        except Exception:
            pass  # the file is stored; a server that does not say goodbye changes nothing
    finally:
        if dw is not None:
            _close(dw)
        if w is not None:
            _close(w)
