# timesync: the clock from NTP (ClockCtrlr.NtpServerUri:1, then :2) and from the time saved on
# flash at the last good sync, for a wss:// connection: TLS checks the CSMS certificate's dates,
# which a clock that was never set (an ESP32's RTC after power-up) fails. MIT licence.
#
# Loaded on first use, by firmware/connection.py: NTP in ClockCtrlr.TimeSource (a sync at boot,
# then daily) or a wss:// attempt with the clock unset. A station that needs neither never
# imports it, nor lib/sntp.
#
# Name resolution blocks the loop on MicroPython (see lib/sntp.py): each NTP host is resolved
# once a boot, again only after a failed query; an IP literal needs no DNS at all.

import time

from micropython import const

import log

_TAG = const("clock")
SAVED = const("clock")  # store document: unix seconds at the last good sync
_URI = const("ClockCtrlr/NtpServerUri:")
_TIMEOUT_MS = const(3000)  # one query
_GAP_MS = const(15000)  # RFC 4330: no query sooner than this after the last one
_DAY_MS = const(86400000)  # the daily sync
_RETRY_MS = const(3600000)  # after a failed daily sync
_SAVE_EVERY_MIN = const(1440)  # the time on flash: once a day at most

ok = False  # the last sync worked: a Heartbeat after NTP in TimeSource is no source then
_last = None  # ticks of the last query, None before the first
_next = None  # ticks when the next daily sync is due, None: now
_busy = False
_addrs = {}  # (host, port) -> getaddrinfo's answer


def due():
    """The daily sync is due (and none is running)."""
    return not _busy and (_next is None or time.ticks_diff(time.ticks_ms(), _next) >= 0)


async def sync(conn):
    """Ask the NTP servers in priority order until one answers; True when one set the clock.
    `conn` is the station's Connection (its dm, clock, store). No query within _GAP_MS of the
    last one: False at once."""
    global ok, _last, _next, _busy
    if _busy or (_last is not None and time.ticks_diff(time.ticks_ms(), _last) < _GAP_MS):
        return False
    _busy = True
    try:
        import sntp

        asked = False
        for n in "12":
            uri = conn.dm.get(_URI + n)
            if not uri:
                continue
            asked = True
            _last = time.ticks_ms()
            try:
                host, port = sntp.ntp_host(uri)
                unix_s, delay = await sntp.query(host, port, _TIMEOUT_MS, _resolve)
            except (ValueError, sntp.SntpError) as e:
                log.warn(_TAG, "NTP server %s: %s" % (uri, e))
                _addrs.clear()  # resolved again next time: the name may have moved
                continue
            conn.clock.set(unix_s)
            log.info(_TAG, "set by NTP from %s: %s (delay %d ms)" % (uri, conn.clock.iso(), delay))
            ok = True
            c = conn.clock  # as Connection._set_clock
            if c.saved == 0 or not 0 <= unix_s // 60 - c.saved < _SAVE_EVERY_MIN:
                c.saved = unix_s // 60
                conn.store.save(SAVED, unix_s)
            _next = time.ticks_add(time.ticks_ms(), _DAY_MS)
            return True
        if not asked:
            log.warn(_TAG, "NTP is a time source but no ClockCtrlr.NtpServerUri is set")
        ok = False  # the Heartbeat's time counts again (Connection._set_clock)
        _next = time.ticks_add(time.ticks_ms(), _RETRY_MS)
        return False
    finally:
        _busy = False


def _resolve(host, port, family, kind):
    key = (host, port)
    ai = _addrs.get(key)
    if ai is None:
        import socket

        ai = _addrs[key] = socket.getaddrinfo(host, port, family, kind)
    return ai


async def before_tls(conn, url, profile):
    """The clock is unset and `url` is wss://: TLS would refuse the CSMS certificate as not yet
    valid. Tries, in this order: NTP (when a time source), the time saved at the last good sync
    (only forward), and for security profile 1 the same URL as ws:// (profile 1 has no server
    authentication to lose). Returns the URL to connect to; OSError saying why when there is
    none (the connection retries at its back-off, NTP again with it)."""
    clock = conn.clock
    log.warn(_TAG, "not set (%s): TLS would find the CSMS certificate not yet valid" % clock.iso())
    if "NTP" in conn.dm.get("ClockCtrlr/TimeSource") and await sync(conn):
        return url
    saved = conn.store.load(SAVED)
    if type(saved) is int and saved > clock.now():  # never backwards
        clock.set(saved)
        log.info(_TAG, "set to the time saved at the last sync: %s" % clock.iso())
        return url
    if profile == 1:
        log.warn(_TAG, "security profile 1: ws:// until the clock is set")
        return "ws" + url[3:]
    raise OSError("no wss:// with the clock unset: no NTP answer, no saved time")
