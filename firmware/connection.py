# connection: the life of the CSMS link: connect with the OCPP back-off, BootNotification,
# Heartbeat, WebSocket pings; and which incoming CALLs the registration state lets through.
# MIT licence.

import asyncio
import time

from micropython import const

import log
import ocppj
import rfc3339
import ws
from firmware.network import NetworkProfiles, Rotation
from firmware.version import VERSION

ACCEPTED = "Accepted"
_PENDING = const("Pending")
REJECTED = "Rejected"

_TAG = const("link")
_COMM = const("OCPPCommCtrlr/")
_HEARTBEAT = const("OCPPCommCtrlr/HeartbeatInterval")
_PING = const("OCPPCommCtrlr/WebSocketPingInterval")
_PASSWORD = const("SecurityCtrlr/BasicAuthPassword")
_DEFAULT_BOOT_RETRY_S = const(60)  # a Pending/Rejected answer with interval 0 means this (B03)
_WAKE_POLL_MS = const(100)  # a pause looks at its wake event this often (see _pause)
# Critical security events of a failed TLS connection (A00.FR.316).
_BAD_CERT = const("InvalidCsmsCertificate")
_BAD_VERSION = const("InvalidTLSVersion")
_BAD_SUITES = const("InvalidTLSCipherSuite")
# mbedTLS's MBEDTLS_ERR_SSL_CONN_EOF: the server ended the handshake, as it does when it has no
# cipher suite (or no TLS version) in common with us.
_CONN_EOF = const(-0x7280)
_SOURCE = const("ClockCtrlr/TimeSource")
# A clock before this (2026-01-01) was never set (a board's RTC starts in 2000 or 1970): TLS
# would find every certificate not yet valid (firmware/timesync.py).
_CLOCK_SET = const(1767225600)
_SAVE_EVERY_MIN = const(1440)  # the time on flash (timesync.SAVED): once a day at most
# The TLS 1.2 suites OCPP 2.0.1 asks for (A00.FR.318, 319; ocpp201-station.md §1.2), the only
# ones offered to the CSMS, in mbedTLS's names (MicroPython) and OpenSSL's (CPython).
_SUITES = const(
    (
        "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256",
        "TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384",
        "TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256",
        "TLS-ECDHE-RSA-WITH-AES-256-GCM-SHA384",
        "TLS-RSA-WITH-AES-128-GCM-SHA256",
        "TLS-RSA-WITH-AES-256-GCM-SHA384",
    )
)
_OPENSSL_SUITES = const(
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-RSA-AES256-GCM-SHA384:AES128-GCM-SHA256:AES256-GCM-SHA384"
)
# Log-only security event: the CSMS refused our Basic auth credentials (HTTP 401).
_AUTH_REFUSED = const("FailedToAuthenticateAtCsms")

# What the CSMS may call while our registration is Pending (B02.FR.09 and the table in
# ocpp201-station.md §2.1); RequestStart/StopTransaction get through to answer Rejected.
_PENDING_ALLOWED = (
    "GetVariables",
    "SetVariables",
    "GetBaseReport",
    "GetReport",
    "TriggerMessage",
    "RequestStartTransaction",
    "RequestStopTransaction",
)


class Backoff:
    """OCPP reconnect back-off (part 4 §5.3): W + r, then doubling plus r, N times, then flat.

    `rand(r)` returns a random number of seconds in 0..r.
    """

    def __init__(self, rand):
        self.rand = rand
        self.k = 0  # attempts since the last successful connection
        self.last = 0  # the previous delay, seconds

    def reset(self):
        self.k = 0

    def next(self, wait_min, rand_range, repeat):
        self.k += 1
        if self.k == 1:
            self.last = wait_min + self.rand(rand_range)
        elif self.k <= repeat + 1:
            self.last = 2 * self.last + self.rand(rand_range)
        return self.last


def quote(s):
    """Percent-encode one URL path segment (RFC 3986 unreserved characters stay)."""
    out = []
    for b in s.encode():
        if 48 <= b <= 57 or 65 <= b <= 90 or 97 <= b <= 122 or b in b"-._~":
            out.append(chr(b))
        else:
            out.append("%%%02X" % b)
    return "".join(out)


class Connection:
    """Keeps one connection to the CSMS open, and registers the station on it once per boot.

    `registration` is None until the first BootNotification answer of this boot, then the
    status the CSMS gave (Accepted, Pending or Rejected).
    """

    def __init__(
        self, board, dm, session, store, clock, spawn, boot_reason, ca_path=None, event=None
    ):
        """ca_path(): the PEM file of the CSMS roots TLS trusts (the certificates block's),
        None: the board setting csms_ca_file. event(kind, tech_info): a security event (the
        security block's), None: logged only. The station sets router.gate to `gate`."""
        self.board = board
        self.dm = dm
        self.session = session
        self.store = store
        self.clock = clock
        self.spawn = spawn
        self.boot_reason = boot_reason
        self._ca_path = ca_path
        self._event = event
        self.registration = None
        self.sock = None  # the open WebSocket, None while offline
        self.stopping = False  # set by an orderly shutdown: no reconnect after it
        self.on_accepted = []  # callbacks run once, when this boot is first Accepted
        # Callbacks run on every connection once the registration is Accepted, with how long
        # the station was offline before it (ms; None on the first connection of this boot).
        self.on_online = []
        self.ready = asyncio.Event()  # set while connected and Accepted: others may send
        self._offline_since = None  # ticks when the last connection dropped
        self._boot_reason = None  # overrides the boot reason of the next BootNotification
        # Events that cut a wait short: the heartbeat interval changed, the ping interval
        # changed, a BootNotification is wanted now (TriggerMessage while Pending).
        self._hb_wake = asyncio.Event()
        self._ping_wake = asyncio.Event()
        self._boot_wake = asyncio.Event()
        self._hb_now = False  # TriggerMessage(Heartbeat): send one at once
        # Security events of failed attempts (TLS, password) reported since the last
        # successful connection: one of each kind per burst of failed attempts (A00.FR.316).
        self._reported = []
        self._profile = None  # security profile of the open (or last) connection
        self._new_password = False  # set by SetVariables, used once its answer is out
        self._at_once = False  # the next connection attempt comes without back-off
        self.tls = False  # the open (or last) link is wss://
        self._free = asyncio.Event()  # cleared while `away`: the link stays closed
        self._free.set()
        self.dm.watch(_HEARTBEAT, lambda v: self._hb_wake.set())
        self.dm.watch(_PING, lambda v: self._ping_wake.set())
        self.dm.watch(_PASSWORD, self._password_set)

    @property
    def connected(self):
        return self.sock is not None

    def gate(self, action):
        """None to let an incoming CALL through, else the CALLERROR code refusing it."""
        if self.registration == ACCEPTED:
            return None
        if self.registration == _PENDING and action in _PENDING_ALLOWED:
            return None
        return ocppj.SECURITY_ERROR

    def trigger_boot(self):
        """TriggerMessage(BootNotification) while not Accepted: send one now, reason Triggered."""
        self._boot_reason = "Triggered"
        self._boot_wake.set()

    def trigger_heartbeat(self):
        """TriggerMessage(Heartbeat): send one now."""
        self._hb_now = True
        self._hb_wake.set()

    def _password_set(self, value):
        self._new_password = True

    def credentials_sent(self):
        """Called once a SetVariablesResponse is on the wire. When it accepted a new
        BasicAuthPassword and the connection authenticates with Basic auth (security profile
        1 or 2), the password is used at once (A01, TC_A_09): this connection is closed and a
        new one opened with it, without back-off and, as nothing rebooted, without
        BootNotification. Refused, the new password is tried on at the usual back-off."""
        if not self._new_password:
            return
        self._new_password = False
        sock = self.sock
        if sock is None or self.stopping or self._profile is None or self._profile >= 3:
            return  # offline: the next attempt uses it anyway; profile 3: no password
        log.info(_TAG, "new BasicAuthPassword: reconnecting with it")
        self._at_once = True
        self.spawn(sock.close(1000, "new credentials"))  # bounded: ws's close limit

    def drop(self):
        """The network went away: close the socket at once, without a close handshake."""
        if self.sock:
            self.sock.abort()

    async def close(self):
        """Orderly close (shutdown, reboot): WebSocket close handshake, no reconnect after."""
        self.stopping = True
        self._free.set()
        if self.sock:
            await self.sock.close()

    async def away(self):
        """Close the link and keep it closed until `back`: the board's one TLS connection is
        wanted for something else (an https:// download, boards.Board.tls_links). Returns
        once the link is closed (the WebSocket's close is bounded in time)."""
        self._free.clear()
        sock = self.sock
        if sock is not None:
            log.info(_TAG, "closing the link until the board's TLS connection is free again")
            self._at_once = True
            await sock.close(1000, "back soon")

    def back(self):
        """After `away`: the link opens again at once."""
        self._free.set()

    # -- connecting -------------------------------------------------------------------------

    def _rand(self, r):
        return r * int.from_bytes(self.board.urandom(2), "big") / 65535

    async def run(self):
        # The profiles are read here, once per boot: NetworkConfigurationPriority is
        # RebootRequired. Failed attempts move through its slots (network.Rotation); the
        # back-off between attempts runs on across slot changes and restarts on success.
        self.profiles = NetworkProfiles(self.store, self.dm, self.board.settings)
        slots = Rotation(self.profiles)
        backoff = Backoff(self._rand)
        delay = 0
        while not self.stopping:
            if not self._free.is_set():  # away: no attempt, no back-off, until back
                await self._free.wait()
                delay = 0
                continue
            if delay:
                log.info(_TAG, "reconnecting in %.1f s" % delay)
                await asyncio.sleep_ms(int(delay * 1000))
            slot = slots.next()
            try:
                sock = await self._open(slot)
            except Exception as e:  # refused, unreachable, TLS, HTTP, handshake: all the same
                log.warn(_TAG, "connect failed: %r" % e)
                if self.board.network_up():
                    slots.failed()  # our own network down is no attempt on the slot
                delay = self._next(backoff)
                continue
            if self.profiles.active not in (None, slot):
                # Another CSMS, perhaps: register again (B10.FR.10, errata 2025-04).
                self.registration = None
            self._reported = []
            slots.succeeded()
            backoff.reset()
            await self._serve(sock)
            if self._at_once:  # closed to use new credentials: no back-off
                self._at_once = False
                delay = 0
            elif not self.stopping:
                delay = self._next(backoff)

    def _next(self, backoff, floor_s=0):
        """The next delay of `backoff` with the RetryBackOff* settings, the wait minimum at
        least `floor_s`."""
        get = self.dm.get_int
        return backoff.next(
            max(get(_COMM + "RetryBackOffWaitMinimum"), floor_s),
            get(_COMM + "RetryBackOffRandomRange"),
            get(_COMM + "RetryBackOffRepeatTimes"),
        )

    async def _open(self, slot):
        """Open a WebSocket with the network connection profile of `slot` (None: none usable)."""
        if not self.board.network_up():
            raise OSError("network down")
        p = None if slot is None else self.profiles.profile(slot)
        if p is None:
            raise OSError("no usable network profile")
        identity = self.dm.get("SecurityCtrlr/Identity")
        url = p["ocppCsmsUrl"].rstrip("/") + "/" + quote(identity)
        profile = p["securityProfile"]
        password = self.dm.get("SecurityCtrlr/BasicAuthPassword")
        auth = (identity, password) if password and profile < 3 else None
        ctx = None
        self.tls = url.startswith("wss:")
        # NTP before the first attempt of a boot, and before one when the daily sync is due
        # (the minute turn of Station.run asks too: offline, there are few attempts). Here,
        # not in run: each local of run's frame is heap for as long as the station runs.
        if "NTP" in self.dm.get(_SOURCE):
            from firmware import timesync

            if timesync.due():
                await timesync.sync(self)
        if self.tls and self.clock.now() < _CLOCK_SET:
            from firmware import timesync

            url = await timesync.before_tls(self, url, profile)
            self.tls = url.startswith("wss:")
        if self.tls:
            own = self.profiles.client_certificate() if profile == 3 else None
            ctx = _tls_context(self._ca_file(), self.board.settings, profile, own)
        log.info(_TAG, "connecting to %s (slot %d, security profile %d)" % (url, slot, profile))
        self.session.timeout_s = p["messageTimeout"]  # this profile's MessageTimeout
        timeout_ms = self.session.timeout_s * 1000
        self._profile = profile
        try:
            return await ws.connect(
                url,
                basic_auth=auth,
                ssl_ctx=ctx,
                timeout_ms=timeout_ms,
                urandom=self.board.urandom,
                keep=self.board.rx_limit,
            )
        except ws.CertificateError as e:
            self._attempt_failed(_BAD_CERT, e, url)
            raise
        except ws.TlsVersionError as e:
            self._attempt_failed(_BAD_VERSION, e, url)
            raise
        except ws.WsError as e:
            if e.status == 401 and auth is not None:
                self._attempt_failed(_AUTH_REFUSED, e, url)
            raise
        except OSError as e:
            if not (self.tls and e.args and e.args[0] == _CONN_EOF):
                raise
            # The server ended the handshake: no suite, or no TLS version, in common. One
            # more handshake with the TLS library's own suites tells which (a module of its
            # own: loaded only then, heap).
            from firmware import tls_diagnosis

            why = await tls_diagnosis.diagnose(url, timeout_ms)
            if why is None:
                raise
            bad_version = isinstance(why, ws.TlsVersionError)
            self._attempt_failed(_BAD_VERSION if bad_version else _BAD_SUITES, why, url)
            raise why from None

    def tls_context(self):
        """TLS that checks a server against the CSMS roots, as the CSMS link does, without
        our client certificate: for uploads to https:// locations (GetLog). OSError when there
        is no root to check with. The same cipher suites as the CSMS link."""
        return _tls_context(self._ca_file(), self.board.settings, 2)

    def _ca_file(self):
        """The PEM file of the CSMS roots TLS trusts: the certificates block's (the factory
        root and those InstallCertificate added, so a new root counts from the next connection
        on), or without that block the board setting csms_ca_file."""
        if self._ca_path is not None:
            return self._ca_path()
        return self.board.settings.get("csms_ca_file")

    def _attempt_failed(self, kind, e, url):
        """The security event `kind` of a failed attempt (the CSMS's TLS failed our checks,
        or it refused our password), once per burst of failed attempts. The critical ones
        are queued: the CSMS gets them once a connection works."""
        if kind in self._reported:
            return
        self._reported.append(kind)
        host = ws.parse_url(url)[1:3]
        info = "%s (%s:%d)" % (e, host[0], host[1])
        if self._event is not None:
            self._event(kind, info)
        else:
            log.warn("security", "event %s (%s)" % (kind, info))

    async def _serve(self, sock):
        log.info(_TAG, "connected")
        self.sock = sock
        tasks = (asyncio.create_task(self._life()), asyncio.create_task(self._pinger(sock)))
        try:
            await self.session.run(sock)
        except Exception as e:
            log.warn(_TAG, "connection lost: %r" % e)
        finally:
            self.sock = None
            self.ready.clear()
            self._offline_since = time.ticks_ms()
            for t in tasks:
                t.cancel()
            sock.abort()

    # -- registration and heartbeat ---------------------------------------------------------

    async def _life(self):
        try:
            if self.registration != ACCEPTED:
                await self._register()
            self._online()
            await self._heartbeats()
        except ocppj.NotConnected:
            pass  # the receive side has seen the drop and ends this connection

    def boot_payload(self):
        board = self.board
        station = {
            "model": board.MODEL,
            "vendorName": board.VENDOR,
            "serialNumber": board.serial,
            "firmwareVersion": VERSION,
        }
        reason = self._boot_reason or self.boot_reason
        return {"reason": reason, "chargingStation": station}

    async def _register(self):
        # Answers we cannot use (a CALLERROR, or a response that breaks the schema) are retried
        # at the reconnect back-off, doubling from at least a second: never a tight loop.
        backoff = Backoff(self._rand)
        while True:
            payload = self.boot_payload()
            self._boot_reason = None  # a triggered reason holds for one BootNotification
            try:
                resp = await self.session.call("BootNotification", payload)
            except asyncio.TimeoutError:
                log.warn(_TAG, "BootNotification unanswered")
                continue
            except ocppj.CallError as e:
                delay = self._next(backoff, 1)
                log.warn(_TAG, "BootNotification failed (%s): again in %.1f s" % (e.code, delay))
                await self._pause(delay, None)
                continue
            self._set_clock(resp)
            self.registration = resp["status"]
            interval = resp["interval"]
            log.info(_TAG, "registration %s, interval %d s" % (self.registration, interval))
            if self.registration == ACCEPTED:
                if interval > 0:
                    self.dm.set(_HEARTBEAT, str(min(interval, 86400)))
                for fn in self.on_accepted:
                    _call(fn)
                return
            await self._pause(interval if interval > 0 else _DEFAULT_BOOT_RETRY_S, self._boot_wake)

    def _online(self):
        since = self._offline_since
        offline_ms = None if since is None else time.ticks_diff(time.ticks_ms(), since)
        self.ready.set()
        for fn in self.on_online:
            _call(fn, offline_ms)

    async def _pause(self, seconds, event):
        """Sleep `seconds`, or less if `event` (one of the wake events, or None) is set.

        The event is looked at every _WAKE_POLL_MS: a wait_for on it would hold two tasks and
        four coroutines (~400 B on an ESP32) all the time for each pause, and at idle the
        heartbeat and the ping each pause."""
        ms = int(seconds * 1000)
        if event is None:
            return await asyncio.sleep_ms(ms)
        event.clear()
        end = time.ticks_add(time.ticks_ms(), ms)
        while not event.is_set():
            left = time.ticks_diff(end, time.ticks_ms())
            if left <= 0:
                return
            await asyncio.sleep_ms(min(left, _WAKE_POLL_MS))

    def _set_clock(self, resp):
        # The CSMS's time, when Heartbeat is a time source and NTP, working, is not before it
        # (NTP in TimeSource: timesync is loaded since boot or the minute after the change).
        src = self.dm.get(_SOURCE).split(",")
        if "Heartbeat" not in src:
            return
        if "NTP" in src and src.index("NTP") < src.index("Heartbeat"):
            from firmware import timesync

            if timesync.ok:
                return
        self.clock.set(rfc3339.parse(resp["currentTime"]))
        # A good sync: the time goes to flash, for a boot without a clock
        # (timesync.before_tls), at the first sync of a boot, then at most once a day (or when
        # the clock went back before the saved time). timesync does the same after NTP.
        c = self.clock
        now = c.now()
        if c.saved == 0 or not 0 <= now // 60 - c.saved < _SAVE_EVERY_MIN:
            c.saved = now // 60  # on the clock: its dict has room (heap)
            self.store.save("clock", now)  # timesync.SAVED (not imported here: heap)

    async def _heartbeats(self):
        while True:
            interval_ms = self.dm.get_int(_HEARTBEAT) * 1000
            idle_ms = time.ticks_diff(time.ticks_ms(), self.session.last_call_ms)
            if self._hb_now:
                self._hb_now = False
                idle_ms = interval_ms
            if idle_ms < interval_ms:
                await self._pause((interval_ms - idle_ms) / 1000, self._hb_wake)
                continue
            try:
                self._set_clock(await self.session.call("Heartbeat", {}))
            except (asyncio.TimeoutError, ocppj.CallError) as e:
                log.warn(_TAG, "Heartbeat failed: %r" % e)

    async def _pinger(self, sock):
        """Ping every WebSocketPingInterval s; no pong by the next ping: the link is dead."""
        sent = None  # ticks of our last ping, None before the first
        while True:
            n = self.dm.get_int(_PING)
            if n <= 0:
                await self._pause(3600, self._ping_wake)
                continue
            await self._pause(n, self._ping_wake)
            if self.dm.get_int(_PING) != n:
                continue  # the interval changed meanwhile: start over with the new one
            if sent is not None and (
                sock.last_pong is None or time.ticks_diff(sock.last_pong, sent) < 0
            ):
                log.warn(_TAG, "no pong within %d s: reconnecting" % n)
                sock.abort()
                return
            sent = time.ticks_ms()
            await sock.ping()


def _call(fn, *args):
    """Run a callback; its failure is logged, never the connection's."""
    try:
        fn(*args)
    except Exception as e:
        log.exc(_TAG, "callback failed", e)


def _tls_context(ca_file, settings, profile, client=None):
    """TLS for security profiles 2 and 3: the CSMS's certificate must lead to a root in
    `ca_file` and name the host (both checked by the TLS library in the handshake, the host
    name against the SAN's dNSName and iPAddress, else the CN); profile 3 adds our client
    certificate (the leaf alone: no intermediates are sent): `client` (certificate file, key
    file; network.NetworkProfiles.client_certificate) when given, else the board settings.
    Only OCPP's cipher suites.

    Files are PEM (or a single DER certificate or key). They reach the TLS library as DER,
    which every MicroPython build reads: the unix port's mbedTLS has no PEM parser."""
    import ssl
    import sys

    if not ca_file:
        raise OSError("wss:// without a CSMS root certificate")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_REQUIRED  # micropython-lib's SSLContext starts at CERT_NONE
    # Only _SUITES. MicroPython's SSLContext holds mbedTLS's as _context, whose set_ciphers
    # refuses a name the build lacks: then the build's own of them.
    if sys.implementation.name != "micropython":
        ctx.set_ciphers(_OPENSSL_SUITES)
    else:
        c = ctx._context
        try:
            c.set_ciphers(_SUITES)
        except OSError:
            have = c.get_ciphers()
            c.set_ciphers(tuple([n for n in _SUITES if n in have]))
    for der in _ders(ca_file):
        ctx.load_verify_locations(cadata=der)  # each call adds one root
    if profile == 3:
        cert, key = client or (settings.get("client_cert_file"), settings.get("client_key_file"))
        if not (cert and key):
            raise OSError("security profile 3 without client_cert_file and client_key_file")
        ctx.load_cert_chain(_ders(cert)[0], _ders(key)[-1])  # the key: the last block
    return ctx


def _ders(path):
    """The DER contents of every PEM block in the file `path` (any label), in order; the
    file itself when it is not PEM. OSError when it cannot be read or holds nothing."""
    import pem  # only for TLS: a ws:// station never needs it

    with open(path, "rb") as f:
        data = f.read()
    if not data:
        raise OSError("%s is empty" % path)
    try:
        ders = pem.decode(data)
    except ValueError as e:
        raise OSError("%s: %s" % (path, e))
    return ders or [data]
