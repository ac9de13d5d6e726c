# diagnostics: OCPP block N, log upload (N01): GetLog of the diagnostics or the security log
# to an http://, https:// or ftp:// location, with LogStatusNotification. Loaded on the first
# GetLog. MIT licence.
"""Log upload.

GetLog is answered Accepted with the name the file gets (`<station>-<diagnostics|security>-
<UTC>.log`) and the upload starts once the answer is out: per try a LogStatusNotification
Uploading, then the upload, streamed from flash in pieces of the selected lines (the time
window of oldestTimestamp and latestTimestamp). A failed try is followed by `retries` more,
`retryInterval` seconds apart (1 + retries tries); then UploadFailure. A refusal of the
credentials (HTTP 401 or 403, FTP 530) ends it at once with PermissionDenied: trying again
would not help. Uploaded when the server took the file.

http:// and https:// upload with an HTTP PUT of the file (what presigned object-store URLs
expect) or, when DiagnosticsCtrlr.LogUploadMethod says POST, a multipart/form-data POST;
ftp:// with STOR in passive mode. https:// checks the server against the CSMS roots, as the
CSMS connection does; a board that holds one TLS connection closes a wss:// CSMS link for the
upload (see the firmware update block). Other schemes are Rejected.

A GetLog while an upload runs cancels it: AcceptedCanceled for the new one, a
LogStatusNotification AcceptedCanceled with the old requestId, then the new upload. Nothing is
kept on flash: an upload does not survive a reboot and leaves nothing behind.
"""

import asyncio

from micropython import const

import log
import ocppj
import rfc3339

_TAG = const("diag")
_METHOD = const("DiagnosticsCtrlr/LogUploadMethod")
_RETRIES = const(2)  # when GetLog leaves them to the station
_RETRY_S = const(30)
_TIMEOUT_MS = const(30000)  # per network wait of an upload
_PIECE = const(512)  # lines go out gathered in pieces of up to this many bytes
_SCHEMES = const(("http://", "https://", "ftp://"))
_KINDS = const((("DiagnosticsLog", "diagnostics"), ("SecurityLog", "security")))

_UPLOADING = const("Uploading")
_UPLOADED = const("Uploaded")
_FAILURE = const("UploadFailure")
_DENIED = const("PermissionDenied")
_CANCELED = const("AcceptedCanceled")


class _Denied(Exception):
    """The server refused the credentials."""


class Diagnostics:
    def __init__(self, router, session, connection, dm, clock, board, logs):
        """logs: (the diagnostics log, the security log), lib/logfile.LogFiles; board: the
        station's identity (file names) and how many TLS links it holds."""
        self.session = session
        self.connection = connection
        self.dm = dm
        self.clock = clock
        self.board = board
        self.logs = logs
        self._task = None
        self._id = None  # requestId of the upload under way
        self._next = None  # (request, file name) accepted, started by the after-hook
        router.on("GetLog", self.on_get_log, self._after_get_log)

    def status(self):
        """(status, requestId) for TriggerMessage LogStatusNotification: Uploading with its
        requestId while an upload runs, else Idle."""
        if self._task is not None and not self._task.done():
            return _UPLOADING, self._id
        return "Idle", None

    # -- GetLog ---------------------------------------------------------------------------------

    def on_get_log(self, req):
        where = req["log"]
        url = where["remoteLocation"]
        if not url.startswith(_SCHEMES) or "/" not in url[url.index("//") + 2 :]:
            why = "no http://, https:// or ftp:// file URL"
            return ocppj.answer("Rejected", "InvalidURL", why)
        try:
            for k in ("oldestTimestamp", "latestTimestamp"):
                if k in where:
                    rfc3339.parse(where[k])
        except ValueError as e:
            return ocppj.answer("Rejected", "InvalidValue", str(e))
        name = "%s-%s-%s.log" % (self.board.identity, _kind(req["logType"]), _stamp(self.clock))
        self._next = (req, name)
        if self.status()[0] == _UPLOADING:
            return {"status": _CANCELED, "filename": name}
        return {"status": "Accepted", "filename": name}

    def _after_get_log(self, req, resp):
        nxt, self._next = self._next, None
        if nxt is None or resp["status"] not in ("Accepted", _CANCELED):
            return
        old = self._task
        self._task = asyncio.create_task(self._run(old, self._id, nxt[0], nxt[1]))
        self._id = req["requestId"]

    # -- the upload ----------------------------------------------------------------------------

    async def _run(self, old, old_id, req, name):
        if old is not None and not old.done():
            old.cancel()
            log.info(_TAG, "upload %d cancelled by request %d" % (old_id, req["requestId"]))
            await self._notify(_CANCELED, old_id)
        rid = req["requestId"]
        where = req["log"]
        logfile = self.logs[0] if req["logType"] == "DiagnosticsLog" else self.logs[1]
        oldest = _time(where.get("oldestTimestamp"))
        latest = _time(where.get("latestTimestamp"))
        tries = 1 + req.get("retries", _RETRIES)
        interval = req.get("retryInterval", _RETRY_S)
        url = where["remoteLocation"]
        status = _FAILURE
        for n in range(1, tries + 1):
            await self._notify(_UPLOADING, rid)
            try:
                size = logfile.size(oldest, latest)
                log.info(_TAG, "upload %d try %d: %d bytes to %s" % (rid, n, size, _host(url)))
                await self._upload(url, name, size, logfile, oldest, latest)
                status = _UPLOADED
                break
            except _Denied as e:
                log.warn(_TAG, "upload %d refused: %s" % (rid, e))
                status = _DENIED
                break
            except Exception as e:  # network, TLS, HTTP status, timeout
                log.warn(_TAG, "upload %d try %d failed: %r" % (rid, n, e))
            if n < tries:
                await asyncio.sleep_ms(interval * 1000)
        log.info(_TAG, "upload %d: %s" % (rid, status))
        await self._notify(status, rid)

    async def _upload(self, url, name, size, logfile, oldest, latest):
        def pieces():
            return _pieces(logfile, oldest, latest, size)

        if url.startswith("ftp://"):
            import ftpc

            try:
                await ftpc.stor(url, size, pieces, _TIMEOUT_MS)
            except ftpc.FtpError as e:
                if e.status == 530:  # not logged in
                    raise _Denied("FTP 530") from None
                raise
            return
        import httpc

        conn = self.connection
        ctx = None
        alone = False
        if url.startswith("https:"):
            ctx = conn.tls_context()  # the CSMS roots, as for the CSMS link
            alone = self.board.tls_links == 1 and conn.tls
        method = "POST" if self.dm.setting(_METHOD, "PUT") == "POST" else "PUT"
        try:
            if alone:
                await conn.away()
            await httpc.upload(url, size, pieces, method, ctx, _TIMEOUT_MS, name)
        except httpc.HttpError as e:
            if e.status in (401, 403):
                raise _Denied("HTTP %d" % e.status) from None
            raise
        finally:
            if alone:
                conn.back()

    async def _notify(self, status, rid):
        payload = {"status": status}
        if rid is not None:
            payload["requestId"] = rid
        try:
            await self.session.call("LogStatusNotification", payload)
        except (asyncio.TimeoutError, ocppj.CallError, ocppj.NotConnected) as e:
            log.warn(_TAG, "LogStatusNotification %s: %r" % (status, e))


def _pieces(logfile, oldest, latest, size):
    """The selected lines, "\\n" after each, gathered in one reused buffer of _PIECE bytes:
    exactly `size` bytes (the length announced before), cut when the log grew meanwhile,
    padded with newlines when rotation took lines away."""
    buf = bytearray(_PIECE)
    mv = memoryview(buf)
    n = 0
    left = size
    for line in logfile.lines(oldest, latest):
        data = line.encode() + b"\n"
        if len(data) > left:
            data = data[:left]
        left -= len(data)
        i = 0
        while i < len(data):
            k = min(_PIECE - n, len(data) - i)
            buf[n : n + k] = data[i : i + k]
            n += k
            i += k
            if n == _PIECE:
                yield mv
                n = 0
        if not left:
            break
    while left:
        k = min(_PIECE - n, left)
        buf[n : n + k] = b"\n" * k
        n += k
        left -= k
        if n == _PIECE:
            yield mv
            n = 0
    if n:
        yield mv[:n]


def _kind(log_type):
    for t, name in _KINDS:
        if t == log_type:
            return name
    return "log"


def _stamp(clock):
    """The UTC time for a file name: 20261206T101500Z."""
    return clock.iso()[:19].replace("-", "").replace(":", "") + "Z"


def _time(text):
    return rfc3339.parse(text) if text else None


def _host(url):
    """The URL without its user:password, for the log."""
    rest = url[url.index("//") + 2 :]
    return url[: url.index("//") + 2] + rest[rest.find("@") + 1 :]
