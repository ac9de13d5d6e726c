# sntp: an asyncio SNTP client (RFC 4330, the client mode of RFC 5905) to learn the time before
# a TLS connection can check certificate dates. MIT licence. Ours because micropython-lib's
# ntptime blocks the loop (a blocking socket with a timeout of seconds), and MicroPython's
# asyncio has no UDP (its streams are TCP only, no datagram endpoint), so this polls a
# non-blocking UDP socket between `await asyncio.sleep_ms()`.
#
#   host, port = ntp_host(uri)             # "ntp://h:123", "h", "h:123" -> ("h", 123)
#   unix_s, delay_ms = await query(host, port, timeout_ms=3000)
#
# query() sends one request and waits for its answer. unix_s (int) is the server's time when
# the reply arrived (its transmit time plus half the network delay), rounded to the nearest
# whole second, as lib/clock.py keeps it (an ESP32's single-precision floats cannot hold it);
# delay_ms (int) is the round trip minus the server's own processing time (measured with
# ticks_ms, so it includes up to one polling step, 10 ms, rarely 50). Anything else raises
# SntpError: no answer within timeout_ms (replies that do not echo our random transmit
# timestamp are ignored meanwhile), a refused port (where the network stack reports it), a
# kiss-o'-death (stratum 0; .kod is its code, e.g. "RATE", "DENY"), an unsynchronized server
# (leap indicator 3 or stratum 16+), a mode other than 4 (server), a transmit timestamp of 0,
# a packet shorter than 48 bytes, a socket error (no route, no socket left). One query,
# no retransmission: the caller retries, and RFC 4330 asks for at least 15 s between queries
# to a server (back off further after a RATE kiss).
#
# Name resolution: socket.getaddrinfo blocks the loop on MicroPython while DNS answers (seconds
# when the network is poor), and timeout_ms does not bound it. It is called once per query; an
# IP literal resolves without any network. Pass getaddrinfo= to resolve another way (tests, or
# a cached address); it may be a plain or an async function with socket.getaddrinfo's
# arguments and result.
#
# NTP seconds are 32 bits since 1900 and wrap on 2036-02-07; a timestamp is read as the one in
# 2020..2156, which is right for any server answering after 2020.

import asyncio
import errno
import os
import socket
import struct
import time

from micropython import const

_PORT = const(123)
_LEN = const(48)  # header without extension fields or MAC
_NTP_UNIX = const(2208988800)  # seconds from 1900-01-01 to 1970-01-01
_PIVOT = const(1577836800)  # 2020-01-01: NTP seconds below it belong to the next era
_ERA = const(0x100000000)  # seconds in one NTP era (2**32)
_FAST_MS = const(10)  # polling step for the first _FAST_FOR_MS: a LAN answers in a few ms
_SLOW_MS = const(50)  # polling step after that
_FAST_FOR_MS = const(250)
_REQUEST = const(0x23)  # LI 0, version 4, mode 3 (client)
_SERVER = const(4)  # mode of a server reply
_HOST_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._"
_V6_CHARS = "0123456789abcdefABCDEF:."


class SntpError(Exception):
    """The query failed; the message says why. kod: the kiss-o'-death code ("RATE", "DENY",
    "RSTR", ...) when the server sent one, else None."""

    def __init__(self, msg, kod=None):
        super().__init__(msg)
        self.kod = kod


def unix_from_ntp(secs):
    """Unix seconds of the 32-bit NTP seconds `secs`, read as a time in 2020..2156."""
    u = secs - _NTP_UNIX
    return u + _ERA if u < _PIVOT else u


def _ms(frac):
    # 32-bit fraction of a second -> ms, in small ints (10 bits of it are plenty)
    return ((frac >> 22) * 1000) >> 10


def ntp_host(uri):
    """(host, port) of ClockCtrlr.NtpServerUri: "ntp://host[:port][/]", "host" or "host:port";
    IPv6 as "[::1]", "[::1]:123" or a bare "::1". Raises ValueError for anything else."""
    if not isinstance(uri, str):
        raise ValueError("NTP server must be a string")
    s = uri.strip()
    if not s or len(s) > 255:
        raise ValueError("bad NTP server")
    i = s.find("://")
    if i >= 0:
        if s[:i].lower() != "ntp":
            raise ValueError("NTP server URI must start with ntp://")
        s = s[i + 3 :]
        if s[-1:] == "/":
            s = s[:-1]
    port = _PORT
    if s[:1] == "[":
        k = s.find("]")
        host, tail = s[1:k], s[k + 1 :]
        if k < 0 or not _only(host, _V6_CHARS) or ":" not in host:
            raise ValueError("bad IPv6 address in NTP server")
    elif s.count(":") > 1:  # a bare IPv6 address, no port
        host, tail = s, ""
        if not _only(host, _V6_CHARS):
            raise ValueError("bad IPv6 address in NTP server")
    else:
        k = s.find(":")
        host, tail = (s, "") if k < 0 else (s[:k], s[k:])
        if not _only(host, _HOST_CHARS) or host[0] in ".-" or ".." in host:
            raise ValueError("bad host in NTP server")
    if tail:
        digits = tail[1:]
        if tail[0] != ":" or not _only(digits, "0123456789") or len(digits) > 5:
            raise ValueError("bad port in NTP server")
        port = int(digits)
        if not 0 < port < 65536:
            raise ValueError("bad port in NTP server")
    return host, port


def _only(s, chars):
    if not s:
        return False
    for c in s:
        if c not in chars:
            return False
    return True


async def _resolve(host, port, getaddrinfo):
    try:
        r = (getaddrinfo or socket.getaddrinfo)(host, port, 0, socket.SOCK_DGRAM)
        if hasattr(r, "send"):  # an async resolver (MicroPython coroutines are generators)
            r = await r
    except OSError as e:
        raise SntpError("cannot resolve %s: %s" % (host, e))
    for ai in r:
        if ai[1] == socket.SOCK_DGRAM:
            return ai
    if r:
        return r[0]
    raise SntpError("cannot resolve %s" % host)


async def query(host, port=_PORT, timeout_ms=3000, getaddrinfo=None):
    """Ask host:port for the time: (unix_s, delay_ms), or SntpError (see the module header).
    Every wait is bounded by timeout_ms except the name resolution (blocking DNS)."""
    ai = await _resolve(host, port, getaddrinfo)
    where = "%s:%d" % (host, port)
    # Nothing of ours in the request but random transmit bits, which the reply must echo as
    # its originate timestamp (RFC 5905 data minimization; there is no clock to leak anyway).
    nonce = os.urandom(8)
    req = bytearray(_LEN)
    req[0] = _REQUEST
    req[40:48] = nonce
    s = None
    try:
        try:
            s = socket.socket(ai[0], socket.SOCK_DGRAM)
            s.setblocking(False)
            # connected: the stack drops datagrams from other addresses, and a closed port
            # comes back as ECONNREFUSED (on Linux; lwIP stays silent) instead of a timeout
            s.connect(ai[-1])
            t1 = time.ticks_ms()
            s.send(req)
        except OSError as e:  # no socket left, no route, ...
            raise SntpError("%s: %s" % (where, e))
        ignored = 0
        while True:
            pkt = _recv(s, where)
            if pkt is not None:
                if len(pkt) < _LEN:
                    raise SntpError("%s: short reply (%d bytes)" % (where, len(pkt)))
                if pkt[24:32] == nonce:
                    return _answer(pkt, time.ticks_diff(time.ticks_ms(), t1), where)
                ignored += 1  # not an answer to this request (stale, or spoofed): wait on
            waited = time.ticks_diff(time.ticks_ms(), t1)
            if waited >= timeout_ms:
                break
            if pkt is not None:
                step = 0  # another datagram may be queued: look again after yielding
            else:
                step = min(_FAST_MS if waited < _FAST_FOR_MS else _SLOW_MS, timeout_ms - waited)
            await asyncio.sleep_ms(step)
    finally:
        if s is not None:
            s.close()
    msg = "no answer from %s within %d ms" % (where, timeout_ms)
    if ignored:
        msg += " (%d replies not to our request ignored)" % ignored
    raise SntpError(msg)


def _recv(s, where):
    # the next datagram, or None while there is none
    try:
        return s.recv(_LEN)
    except OSError as e:
        if e.errno == errno.EAGAIN:
            return None
        if e.errno == errno.ECONNREFUSED:
            raise SntpError("%s refused (no NTP server on that port)" % where)
        raise SntpError("%s: %s" % (where, e))


def _answer(pkt, rtt_ms, where):
    # (unix_s, delay_ms) of a reply that echoes our request, or SntpError
    li, mode, stratum = pkt[0] >> 6, pkt[0] & 7, pkt[1]
    if mode != _SERVER:
        raise SntpError("%s: not a server reply (mode %d)" % (where, mode))
    if stratum == 0:
        code = "".join(chr(b) if 32 < b < 127 else "?" for b in pkt[12:16])
        raise SntpError("%s: kiss-o'-death %s" % (where, code), code)
    if li == 3 or stratum > 15:
        raise SntpError("%s: server not synchronized (LI %d, stratum %d)" % (where, li, stratum))
    rs, rf, ts, tf = struct.unpack("!IIII", pkt[32:48])
    if ts == 0 and tf == 0:
        raise SntpError("%s: transmit timestamp 0" % where)
    # time the server held the request; 0 if it gave no receive time or an absurd one
    held = ((ts - rs) & 0xFFFFFFFF) * 1000 + _ms(tf) - _ms(rf) if rs or rf else 0
    delay = rtt_ms - held if 0 <= held <= rtt_ms else rtt_ms
    # the server's transmit time plus the way back (half the delay), to the nearest second
    ms = _ms(tf) + delay // 2 + 500
    return unix_from_ntp(ts) + ms // 1000, delay
