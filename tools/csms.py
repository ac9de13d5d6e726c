# csms: development CSMS for the virtual wallbox and the end-to-end tests, built on the ocpp package.  # noqa: E501
# MIT licence.
"""Development CSMS (OCPP 2.0.1 over WebSocket) for people and for the end-to-end tests.

Each connected station is a :class:`Station`, a subclass of ``ocpp.v201.ChargePoint``. The
package does the OCPP-J framing (``ocpp.messages``), the routing of CALLRESULT/CALLERROR to
the waiting caller and, always, the validation of both directions against the official
JSON schemas. What this module changes is the payload representation: handlers and callers
see the raw camelCase dicts exactly as on the wire, never the package's snake_case
conversion (which is lossy: ``snake_to_camel_case`` rewrites "soc", "csms" and "_url").

Run ``.venv/bin/python tools/csms.py --help`` for the interactive server.
"""

import argparse
import asyncio
import base64
import hmac
import inspect
import json
import logging
import os
import ssl
import sys
import threading
import time
import urllib.parse
import warnings
from collections import namedtuple
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import websockets
from ocpp.charge_point import _raise_key_error
from ocpp.exceptions import NotImplementedError as OcppNotImplementedError
from ocpp.exceptions import OCPPError
from ocpp.messages import Call, CallError, MessageType, validate_payload
from ocpp.v201 import ChargePoint
from websockets.asyncio.server import serve
from websockets.protocol import State

__all__ = [
    "NO_REPLY",
    "Attempt",
    "CertificateAuthority",
    "CallErrorReply",
    "Console",
    "FileServer",
    "ConsoleError",
    "Csms",
    "DEFAULT_HANDLERS",
    "Frame",
    "Station",
    "default_boot_policy",
    "main",
    "utc_now",
]

SUBPROTOCOL = "ocpp2.0.1"
OCPP_VERSION = "2.0.1"

LOGGER = logging.getLogger("tools.csms")
LOGGER.addHandler(logging.NullHandler())

#: A handler returning this sends no answer at all (to test the station's CALL timeout, or
#: to answer by hand with ``station.send_raw`` using ``station.current_call.unique_id``).
NO_REPLY = object()

#: One WebSocket connection attempt: station id, time.monotonic(), whether it was accepted.
Attempt = namedtuple("Attempt", "station_id t accepted")


def utc_now():
    """The current UTC time as the date-time string we put into currentTime."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _compact(value):
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class CallErrorReply(Exception):
    """The station answered a CSMS-initiated CALL with a CALLERROR."""

    def __init__(self, code, description="", details=None):
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
        self.details = details if details is not None else {}


@dataclass
class Frame:
    """One WebSocket message, as it was on the wire.

    ``msg`` is the parsed JSON array, or None when the text is not a JSON array. ``kind`` is
    "call", "result" or "error" for well-formed OCPP-J messages, else None. For results and
    errors ``action`` is the action of the CALL they answer (when known).
    """

    direction: str
    raw: str
    msg: list | None
    t: float
    index: int = -1
    kind: str | None = None
    unique_id: str | None = None
    action: str | None = None
    binary: bool = False

    @property
    def payload(self):
        if self.kind == "call":
            return self.msg[3]
        if self.kind == "result":
            return self.msg[2]
        return None


_KINDS = {(2, 4): "call", (3, 3): "result", (4, 5): "error"}


def _classify(msg):
    if not msg or not isinstance(msg[0], int) or isinstance(msg[0], bool):
        return None
    return _KINDS.get((msg[0], len(msg)))


class Station(ChargePoint):
    """The CSMS side of one WebSocket connection of one charging station."""

    def __init__(self, station_id, connection, csms):
        super().__init__(station_id, connection, logger=LOGGER)
        self.csms = csms
        self.frames = []
        self.connected = True
        self.opened_at = time.monotonic()
        self.closed_at = None
        self.close_code = None
        self.close_reason = None
        request = connection.request
        self.path = request.path if request is not None else None
        self.headers = request.headers.copy() if request is not None else {}
        self.remote_address = connection.remote_address
        self.subprotocol = connection.subprotocol
        # wss:// only: the TLS version ("TLSv1.2"), the cipher suite name, and the station's
        # client certificate as ssl.getpeercert() gives it (None without one); else all None.
        tls = connection.transport.get_extra_info("ssl_object")
        self.tls_version = tls.version() if tls is not None else None
        self.tls_cipher = tls.cipher()[0] if tls is not None else None
        self.peer_cert = (tls.getpeercert() or None) if tls is not None else None
        #: The station's CALL (ocpp.messages.Call) being handled right now, else None.
        self.current_call = None
        self._calls = asyncio.Queue()
        self._closed = asyncio.Event()
        self._new_frame = asyncio.Event()
        self._in_calls = {}  # unique id -> action, for station CALLs we have yet to answer
        self._out_calls = {}  # unique id -> action, for our CALLs the station has yet to answer

    def __repr__(self):
        state = "connected" if self.connected else "closed"
        return f"<Station {self.id} {state}, {len(self.frames)} frames>"

    # ---- the wire ------------------------------------------------------------------------

    def _record(self, direction, raw):
        binary = isinstance(raw, (bytes, bytearray))
        text = bytes(raw).decode("utf-8", "replace") if binary else raw
        try:
            parsed = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: a fuzzer's deep nesting
            parsed = None
        msg = parsed if isinstance(parsed, list) else None
        kind = _classify(msg)
        unique_id = action = None
        if kind is not None:
            unique_id = msg[1]
            key = unique_id if isinstance(unique_id, str) else repr(unique_id)
            mine, theirs = (
                (self._in_calls, self._out_calls)
                if direction == "in"
                else (self._out_calls, self._in_calls)
            )
            if kind == "call":
                action = msg[2]
                mine[key] = action
            else:
                action = theirs.pop(key, None)
        frame = Frame(
            direction,
            text,
            msg,
            time.monotonic(),
            len(self.frames),
            kind,
            unique_id,
            action,
            binary,
        )
        self.frames.append(frame)
        self._wake()
        self.csms._log(self.id, _describe(frame))
        return frame

    def _wake(self):
        self._new_frame.set()
        self._new_frame = asyncio.Event()

    async def _send(self, message):
        """Every frame we put on the wire passes here (package replies, calls, raw text)."""
        if self._connection.state is not State.OPEN:
            raise ConnectionError(f"station {self.id}: the connection is closed")
        self._record("out", message)
        try:
            await self._connection.send(message)
        except websockets.ConnectionClosed as exc:
            raise ConnectionError(f"station {self.id}: the connection is closed") from exc

    async def start(self):
        """Read frames until the connection closes.

        Results and errors go straight to the package's router (they only feed the response
        queue), so a slow or async handler never delays the answer to one of our CALLs; the
        station's CALLs are handled one after the other, in order, by a worker task.
        """
        worker = asyncio.create_task(self._call_worker())
        try:
            async for raw in self._connection:
                frame = self._record("in", raw)
                if frame.kind == "call":
                    self._calls.put_nowait(raw)
                else:
                    await self.route_message(raw)
        except websockets.ConnectionClosed:
            pass
        finally:
            worker.cancel()

    async def _call_worker(self):
        while True:
            raw = await self._calls.get()
            try:
                await self.route_message(raw)
            except ConnectionError:
                pass
            except Exception as exc:  # keep serving whatever happens
                LOGGER.exception("station %s: error while routing %r", self.id, raw)
                self.csms._log(self.id, f"!! error while routing a CALL: {exc!r}")

    def _connection_closed(self):
        self.connected = False
        self.closed_at = time.monotonic()
        self.close_code = self._connection.close_code
        self.close_reason = self._connection.close_reason
        self._closed.set()
        self._wake()

    # ---- CS -> CSMS: the package routes, we dispatch raw payloads ---------------------

    async def _handle_call(self, msg):
        """Replaces ChargePoint._handle_call; the package's route_message still calls it.

        Same steps as the package (look up, validate the request, run the handler, validate
        the answer, send it; an OCPPError raised here becomes a CALLERROR in route_message),
        but the handler gets ``(station, payload)`` with the raw camelCase payload and returns
        a raw camelCase dict.
        """
        handler = self.csms.handlers.get(msg.action)
        if handler is None:
            _raise_key_error(msg.action, self._ocpp_version)
        await validate_payload(msg, self._ocpp_version)
        self.current_call = msg
        try:
            answer = handler(self, msg.payload)
            if inspect.isawaitable(answer):
                answer = await answer
            if answer is not NO_REPLY and not isinstance(answer, dict):
                raise TypeError(f"handler returned {type(answer).__name__}, not a dict")
        except Exception as exc:
            LOGGER.exception("station %s: handler for %s failed", self.id, msg.action)
            self.csms._log(self.id, f"!! handler for {msg.action} raised {exc!r}")
            await self._send(msg.create_call_error(exc).to_json())
            return
        finally:
            self.current_call = None
        if answer is NO_REPLY:
            self.csms._log(self.id, f"(no answer to {msg.action} {msg.unique_id})")
            return
        result = msg.create_call_result(answer)
        try:
            await validate_payload(result, self._ocpp_version)
        except OCPPError as exc:
            cause = exc.details.get("cause", exc.description)
            self.csms._log(self.id, f"!! our answer to {msg.action} is invalid: {cause}")
            error = CallError(
                msg.unique_id,
                "InternalError",
                "CSMS produced an invalid response",
                {"cause": str(cause)},
            )
            await self._send(error.to_json())
            return
        await self._send(result.to_json())

    # ---- CSMS -> CS ----------------------------------------------------------------------

    async def call(self, action, payload, timeout=30.0, validate=True):
        """Send a CALL with a raw camelCase payload; return the CALLRESULT payload dict.

        Raises CallErrorReply for a CALLERROR, TimeoutError when no answer comes in time,
        ConnectionError when the connection is or gets closed, and the package's OCPPError
        (FormatViolationError, ProtocolError, ...) when our request or the station's result
        violates the schema. ``validate=False`` skips both checks (malformed-request tests).
        """
        if not self.connected:
            raise ConnectionError(f"station {self.id}: the connection is closed")
        request = Call(str(self._unique_id_generator()), action, payload)
        if validate:
            await validate_payload(request, self._ocpp_version)
        try:
            async with asyncio.timeout(timeout):
                async with self._call_lock:
                    await self._send(request.to_json())
                    reply = await self._reply_to(request.unique_id)
        except TimeoutError:
            raise TimeoutError(
                f"station {self.id}: no answer to {action} {request.unique_id} within {timeout}s"
            ) from None
        if reply.message_type_id == MessageType.CallError:
            raise CallErrorReply(reply.error_code, reply.error_description, reply.error_details)
        if validate:
            reply.action = action
            await validate_payload(reply, self._ocpp_version)
        return reply.payload

    async def customer_information(self, payload, timeout=30.0):
        """Send CustomerInformation; return (its answer, [the NotifyCustomerInformation
        payloads of its requestId, up to the one with tbc false]): none unless Accepted. The
        default handler answers each part with {}."""
        start = len(self.frames)
        answer = await self.call("CustomerInformation", payload, timeout)
        parts = []
        if answer.get("status") != "Accepted":
            return answer, parts
        rid = payload["requestId"]
        while not parts or parts[-1]["tbc"]:
            frame = await self.wait_frame(
                lambda f: (
                    f.direction == "in"
                    and f.kind == "call"
                    and f.action == "NotifyCustomerInformation"
                    and f.payload.get("requestId") == rid
                ),
                timeout,
                start,
            )
            start = frame.index + 1
            parts.append(frame.payload)
        return answer, parts

    async def _reply_to(self, unique_id):
        """The next CALLRESULT/CALLERROR with this id from the package's response queue."""
        while True:
            getter = asyncio.ensure_future(self._response_queue.get())
            closed = asyncio.ensure_future(self._closed.wait())
            try:
                await asyncio.wait({getter, closed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                closed.cancel()
                getter.cancel()
            if getter.done() and not getter.cancelled():
                reply = getter.result()
                if reply.unique_id == unique_id:
                    return reply
                continue  # a late answer to a call that timed out: it is in self.frames
            raise ConnectionError(f"station {self.id}: the connection closed")

    async def send_raw(self, text):
        """Put ``text`` on the wire as is (bytes go out as a binary frame)."""
        await self._send(text)

    async def send_text_bytes(self, data):
        """Put the bytes ``data`` on the wire in a text frame, UTF-8 or not (fuzzing); the
        frame is recorded with its invalid bytes shown as U+FFFD."""
        if self._connection.state is not State.OPEN:
            raise ConnectionError(f"station {self.id}: the connection is closed")
        self._record("out", bytes(data).decode("utf-8", "replace"))
        try:
            await self._connection.send(bytes(data), text=True)
        except websockets.ConnectionClosed as exc:
            raise ConnectionError(f"station {self.id}: the connection is closed") from exc

    async def close(self, code=1000, reason=""):
        """Close the WebSocket from the server side and wait for the closing handshake."""
        await self._connection.close(code, reason)

    async def wait_closed(self, timeout=10.0):
        """Wait until this connection is closed (by either side)."""
        try:
            async with asyncio.timeout(timeout):
                await self._closed.wait()
        except TimeoutError:
            raise TimeoutError(f"station {self.id}: still connected after {timeout}s") from None

    # ---- looking at the frames ------------------------------------------------------------

    async def wait_frame(self, pred, timeout=10.0, start=0):
        """The first frame with index >= start satisfying pred, waiting for new frames.

        Raises TimeoutError, or ConnectionError when the connection closes first.
        """
        i = start
        try:
            async with asyncio.timeout(timeout):
                while True:
                    while i < len(self.frames):
                        frame = self.frames[i]
                        i += 1
                        if pred(frame):
                            return frame
                    if not self.connected:
                        raise ConnectionError(
                            f"station {self.id}: closed without a matching frame "
                            f"(searched from {start} to {i})"
                        )
                    await self._new_frame.wait()
        except TimeoutError:
            raise TimeoutError(
                f"station {self.id}: no matching frame within {timeout}s "
                f"(searched from {start} to {i})"
            ) from None

    async def wait_call(self, action, timeout=10.0, start=0):
        """The first CALL ``action`` from the station with index >= start."""
        return await self.wait_frame(
            lambda f: f.direction == "in" and f.kind == "call" and f.action == action,
            timeout,
            start,
        )

    def calls_from_station(self, action=None):
        """[(unique_id, action, payload)] of the station's CALLs, oldest first."""
        return [
            (f.unique_id, f.action, f.payload)
            for f in self.frames
            if f.direction == "in" and f.kind == "call" and action in (None, f.action)
        ]


def _describe(frame):
    """The readable log text for one frame (without time and station id)."""
    arrow = "->" if frame.direction == "in" else "<="
    suffix = " (binary frame)" if frame.binary else ""
    msg = frame.msg
    if frame.kind is None:
        return f"{arrow} ?? {frame.raw}{suffix}"
    if frame.kind == "call":
        return f"{arrow} {frame.action} {_compact(msg[3])}{suffix}"
    if frame.direction == "out":  # our answer to a station CALL
        head = f"<- {frame.action or '?'}"
        if frame.kind == "result":
            status = msg[2].get("status") if isinstance(msg[2], dict) else None
            status = f" {status}" if isinstance(status, str) else ""
            return f"{head}{status} {_compact(msg[2])}{suffix}"
    else:  # the station's answer to one of our CALLs
        head = "=>"
        if frame.kind == "result":
            return f"{head} result {_compact(msg[2])}{suffix}"
    details = f" {_compact(msg[4])}" if msg[4] else ""
    return f"{head} CALLERROR {msg[2]} {_compact(msg[3])}{details}{suffix}"


# ---- default answers to CS -> CSMS calls ---------------------------------------------------


def default_boot_policy(station, payload):
    """Accept every station, heartbeat every 300 s (currentTime is filled in afterwards)."""
    return {"status": "Accepted", "interval": 300}


async def _boot_notification(station, payload):
    answer = station.csms.boot_policy(station, payload)
    if inspect.isawaitable(answer):
        answer = await answer
    if "currentTime" not in answer:
        answer = {"currentTime": station.csms.clock(), **answer}
    return answer


def _heartbeat(station, payload):
    return {"currentTime": station.csms.clock()}


def _transaction_event(station, payload):
    if "idToken" in payload:
        return {"idTokenInfo": {"status": "Accepted"}}
    return {}


class Tariff:
    """Prices every session at a price per kWh (the ``--tariff`` option), as a CSMS with
    billing does: the tariff as the driver's personalMessage in Authorize and TransactionEvent
    answers, and ``totalCost`` (the energy since the session's first reading times the price,
    rounded to cents) in the answer to each TransactionEvent that carries a meter reading, the
    final one in the answer to Ended. ``cost(transactionId)`` is the last amount computed."""

    def __init__(self, per_kwh, currency="EUR"):
        self.per_kwh = Decimal(str(per_kwh))
        self.currency = currency
        self.first = {}  # transactionId -> the first energy register reading (Wh)
        self.costs = {}  # transactionId -> the last totalCost (a Decimal)

    def message(self):
        return {"format": "ASCII", "content": f"{self.per_kwh:.2f} {self.currency}/kWh"}

    def authorize(self, station, payload):
        return {"idTokenInfo": {"status": "Accepted", "personalMessage": self.message()}}

    def transaction_event(self, station, payload):
        answer = _transaction_event(station, payload)
        if "idTokenInfo" in answer:
            answer["idTokenInfo"]["personalMessage"] = self.message()
        tx = payload["transactionInfo"]["transactionId"]
        wh = _energy_wh(payload)
        if wh is not None:
            first = self.first.setdefault(tx, wh)
            cost = ((wh - first) / 1000 * self.per_kwh).quantize(Decimal("0.01"))
            self.costs[tx] = cost
            answer["totalCost"] = float(cost)
        elif payload["eventType"] == "Ended" and tx in self.costs:
            answer["totalCost"] = float(self.costs[tx])
        return answer

    def cost(self, tx):
        return self.costs.get(tx)


def _energy_wh(payload):
    """The last energy register reading (Wh, a Decimal) in a TransactionEvent, or None."""
    wh = None
    for mv in payload.get("meterValue", ()):
        for sv in mv["sampledValue"]:
            if sv.get("measurand", "Energy.Active.Import.Register") == (
                "Energy.Active.Import.Register"
            ):
                unit = sv.get("unitOfMeasure", {}).get("unit", "Wh")
                wh = Decimal(str(sv["value"])) * (1000 if unit == "kWh" else 1)
    return wh


def _constant(answer):
    def handler(station, payload):
        return json.loads(json.dumps(answer))  # a fresh copy each time

    return handler


class CertificateAuthority:
    """The CSMS's CA for the stations' own certificates (OCPP A02/A03): ``Csms.ca``.

    SignCertificate with a CSR that verifies is answered Accepted, then CertificateSigned
    carries the chain (the new certificate, then the CA's): subject = the CSR's, valid ``days``
    from a day ago, a TLS client certificate (clientAuth). ``certfile``/``keyfile``: the CA
    (PEM), e.g. the root the stations trust for the CSMS, so the chain leads to it.

    ``mode`` (test knobs, changeable at any time): "sign"; "wrong_chain" (signed by a CA of
    its own that no station trusts); "silent" (Accepted, then no CertificateSigned: the
    station's retries); "reject" (SignCertificate Rejected). ``issued`` lists what was sent.
    """

    def __init__(self, certfile, keyfile, days=365, mode="sign"):
        from cryptography import x509 as cx
        from cryptography.hazmat.primitives import serialization

        with open(certfile, "rb") as f:
            self.cert = cx.load_pem_x509_certificate(f.read())
        with open(keyfile, "rb") as f:
            self.key = serialization.load_pem_private_key(f.read(), None)
        self.days = days
        self.mode = mode
        self.issued = []  # cryptography Certificates, in order
        self._stranger = None  # (certificate, key) of "wrong_chain"

    def _other(self):
        from cryptography import x509 as cx
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        if self._stranger is None:
            key = ec.generate_private_key(ec.SECP256R1())
            name = cx.Name([cx.NameAttribute(cx.NameOID.COMMON_NAME, "Untrusted CA")])
            now = datetime.now(timezone.utc)
            cert = (
                cx.CertificateBuilder()
                .subject_name(name)
                .issuer_name(name)
                .public_key(key.public_key())
                .serial_number(cx.random_serial_number())
                .not_valid_before(now - timedelta(days=1))
                .not_valid_after(now + timedelta(days=365))
                .add_extension(cx.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256())
            )
            self._stranger = cert, key
        return self._stranger

    def sign(self, csr_pem):
        """The PEM chain for the CSR ``csr_pem``; ValueError when its signature is bad."""
        from cryptography import x509 as cx
        from cryptography.hazmat.primitives import hashes, serialization

        csr = cx.load_pem_x509_csr(csr_pem.encode())
        if not csr.is_signature_valid:
            raise ValueError("CSR signature does not verify")
        ca, key = (self.cert, self.key) if self.mode != "wrong_chain" else self._other()
        now = datetime.now(timezone.utc)
        usage = dict.fromkeys(
            (
                "content_commitment",
                "key_encipherment",
                "data_encipherment",
                "key_agreement",
                "key_cert_sign",
                "crl_sign",
                "encipher_only",
                "decipher_only",
            ),
            False,
        )
        cert = (
            cx.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(ca.subject)
            .public_key(csr.public_key())
            .serial_number(cx.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=self.days))
            .add_extension(cx.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(cx.KeyUsage(digital_signature=True, **usage), critical=True)
            .add_extension(cx.ExtendedKeyUsage([cx.ExtendedKeyUsageOID.CLIENT_AUTH]), False)
            .sign(key, hashes.SHA256())
        )
        self.issued.append(cert)
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (cert, ca)).decode()


async def _sign_certificate(station, payload):
    """SignCertificate: Accepted without a CA (Csms.ca None); with one, see
    CertificateAuthority: the CertificateSigned follows once our answer is on the wire."""
    ca = station.csms.ca
    if ca is None or ca.mode == "silent":
        return {"status": "Accepted"}
    if ca.mode == "reject":
        return {"status": "Rejected"}
    try:
        chain = ca.sign(payload["csr"])
    except ValueError as e:
        station.csms._log(station.id, f"!! CSR refused: {e}")
        return {"status": "Rejected"}
    uid = station.current_call.unique_id

    async def send():
        try:
            await station.wait_frame(lambda f: f.direction == "out" and f.unique_id == uid)
            req = {"certificateChain": chain, "certificateType": "ChargingStationCertificate"}
            await station.call("CertificateSigned", req)
        except Exception as e:  # the station went away, or did not answer
            station.csms._log(station.id, f"!! CertificateSigned: {e!r}")

    task = asyncio.ensure_future(send())
    station.csms._tasks.add(task)
    task.add_done_callback(station.csms._tasks.discard)
    return {"status": "Accepted"}


#: The default answer for every CS -> CSMS action; Csms.handlers starts as a copy.
DEFAULT_HANDLERS = {
    "BootNotification": _boot_notification,
    "Heartbeat": _heartbeat,
    "StatusNotification": _constant({}),
    "NotifyReport": _constant({}),
    "NotifyEvent": _constant({}),
    "SecurityEventNotification": _constant({}),
    "Authorize": _constant({"idTokenInfo": {"status": "Accepted"}}),
    "TransactionEvent": _transaction_event,
    "MeterValues": _constant({}),
    "FirmwareStatusNotification": _constant({}),
    "PublishFirmwareStatusNotification": _constant({}),
    "LogStatusNotification": _constant({}),
    "NotifyCustomerInformation": _constant({}),
    "DataTransfer": _constant({"status": "UnknownVendorId"}),
    "SignCertificate": _sign_certificate,
    "NotifyChargingLimit": _constant({}),
    "ClearedChargingLimit": _constant({}),
    "ReportChargingProfiles": _constant({}),
    "ReservationStatusUpdate": _constant({}),
    "NotifyEVChargingNeeds": _constant({"status": "Accepted"}),
    "NotifyEVChargingSchedule": _constant({"status": "Accepted"}),
    "NotifyDisplayMessages": _constant({}),
    "NotifyMonitoringReport": _constant({}),
    "Get15118EVCertificate": _constant({"status": "Failed", "exiResponse": ""}),
    "GetCertificateStatus": _constant({"status": "Failed"}),
}


# ---- files over HTTP (firmware downloads) ---------------------------------------------------


class FileServer:
    """Serves the files of one folder with HTTP/1.1 GET on 127.0.0.1 (asyncio, no framework).

    For tests: ``truncate[name] = n`` announces the full Content-Length but sends only n body
    bytes, then closes; ``pace[name] = s`` spreads the next download of name over s seconds
    (once); ``chunked = True`` sends bodies with chunked transfer encoding; ``requests`` lists
    the paths asked for.
    """

    def __init__(self, directory, host="127.0.0.1", port=0, log=None):
        self.directory = os.path.realpath(directory)
        self.host = host
        self.port = port
        self.log = log
        self.truncate = {}
        self.pace = {}
        self.chunked = False
        self.requests = []
        self._server = None

    def url(self, name):
        return f"http://{self.host}:{self.port}/{urllib.parse.quote(name)}"

    async def start(self):
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self):
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader, writer):
        try:
            line = await asyncio.wait_for(reader.readline(), 10)
            while (await asyncio.wait_for(reader.readline(), 10)) not in (b"\r\n", b"\n", b""):
                pass
            parts = line.decode("latin-1").split()
            path = urllib.parse.unquote(parts[1]) if len(parts) >= 2 else "/"
            self.requests.append(path)
            name = path.lstrip("/")
            file = os.path.realpath(os.path.join(self.directory, name))
            ok = parts[:1] == ["GET"] and file.startswith(self.directory + os.sep)
            if not ok or not os.path.isfile(file):
                body = b"not found\n"
                head = f"HTTP/1.1 404 Not Found\r\nContent-Length: {len(body)}\r\n"
                writer.write(head.encode() + b"Connection: close\r\n\r\n" + body)
                self._note(f"GET {path} -> 404")
                return
            with open(file, "rb") as f:
                data = f.read()
            cut = self.truncate.get(name)
            if self.chunked:
                head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
            else:
                head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(data)}\r\n"
            writer.write(head.encode() + b"Connection: close\r\n\r\n")
            body = data if cut is None else data[:cut]
            pace = self.pace.pop(name, 0)
            step = 4096
            for i in range(0, len(body), step):
                piece = body[i : i + step]
                if self.chunked:
                    piece = b"%x\r\n" % len(piece) + piece + b"\r\n"
                writer.write(piece)
                await writer.drain()
                if pace:
                    await asyncio.sleep(pace * step / len(body))
            if self.chunked and cut is None:
                writer.write(b"0\r\n\r\n")
            await writer.drain()
            note = "" if cut is None else f" (cut after {cut} bytes)"
            self._note(f"GET {path} -> 200, {len(data)} bytes{note}")
        except (OSError, asyncio.TimeoutError, IndexError):
            pass
        finally:
            writer.close()

    def _note(self, text):
        if self.log is not None:
            self.log(text)


# ---- the server -------------------------------------------------------------------------


def _tls_options(certfile, keyfile, client_ca, max_version, ciphers=None):
    if certfile is None:
        if keyfile is not None or client_ca is not None or max_version is not None or ciphers:
            raise ValueError("TLS options without certfile")
        return None
    if keyfile is None:
        raise ValueError("certfile without keyfile")
    return {
        "certfile": str(certfile),
        "keyfile": str(keyfile),
        "client_ca": None if client_ca is None else str(client_ca),
        "max_version": max_version,
        "ciphers": ciphers,
    }


def _describe_tls(tls):
    if not tls:
        return "off (ws://)"
    text = f"certificate {tls['certfile']}"
    if tls["client_ca"]:
        text += f", client certificates from {tls['client_ca']} required"
    if tls["max_version"] is not None:
        text += f", at most {tls['max_version'].name}"
    if tls["ciphers"]:
        text += f", TLS 1.2 cipher suites {tls['ciphers']} only"
    return text


def _station_id_from_path(path):
    segment = urllib.parse.urlsplit(path).path.rstrip("/").rsplit("/", 1)[-1]
    return urllib.parse.unquote(segment) or None


class Csms:
    """The WebSocket server; one Station per connection.

    ``log`` is a callable taking one readable line, or None. ``passwords`` maps station id to
    its HTTP Basic password (security profile 1); None accepts every station.
    ``ping_interval`` is the server's WebSocket ping period, off by default so that only the
    station's keep-alive is on the wire.

    TLS (security profiles 2 and 3): with ``certfile`` and ``keyfile`` (PEM) the server speaks
    ``wss://``; with ``client_ca`` too (a PEM file of roots) it requires a client certificate
    issued by one of them (profile 3). ``tls_max_version`` (an ``ssl.TLSVersion``) caps the
    versions it offers, down to TLS 1.0 for tests of stations that must refuse them.
    ``tls_ciphers`` (OpenSSL names, e.g. ``"ECDHE-ECDSA-AES128-SHA"``) restricts the suites it
    accepts, and the versions to at most TLS 1.2 (whose suites these names are).
    ``set_tls`` changes all of it while running. ``tls_hellos`` counts the TLS handshakes
    begun, failed ones included.

    ``tariff`` (a price per kWh, EUR) prices every session: see :class:`Tariff`.

    ``log_sink`` (a folder) starts a :class:`tools.logsink.LogSink` there, ``sink``: HTTP PUT
    and POST and FTP uploads of station logs (GetLog), saved into that folder.
    """

    def __init__(
        self,
        host="127.0.0.1",
        port=0,
        log=None,
        passwords=None,
        *,
        ping_interval=None,
        serve=None,
        certfile=None,
        keyfile=None,
        client_ca=None,
        tls_max_version=None,
        tls_ciphers=None,
        log_sink=None,
        tariff=None,
    ):
        self.host = host
        self.port = port
        self.tls = _tls_options(certfile, keyfile, client_ca, tls_max_version, tls_ciphers)
        self.tls_hellos = 0
        self.log = log
        self.passwords = dict(passwords) if passwords is not None else None
        self.ping_interval = ping_interval
        self.stations = {}
        self.attempts = []
        self.boot_policy = default_boot_policy
        self.handlers = dict(DEFAULT_HANDLERS)
        #: the Tariff pricing sessions (``tariff``: a price per kWh), or None
        self.tariff = None
        if tariff is not None:
            self.tariff = Tariff(tariff)
            self.handlers["Authorize"] = self.tariff.authorize
            self.handlers["TransactionEvent"] = self.tariff.transaction_event
        #: callable() -> the date-time string used for currentTime (replace it in tests)
        self.clock = utc_now
        #: the CertificateAuthority signing the stations' CSRs (SignCertificate), or None
        self.ca = None
        self._tasks = set()
        self._refusing = False
        self._server = None
        self._changed = asyncio.Event()
        #: the FileServer of the folder ``serve`` (firmware downloads), None without one
        self.files = None
        self._serve_dir = serve
        #: the LogSink (tools/logsink.py) saving uploads into the folder ``log_sink``, or None
        self.sink = None
        self._sink_dir = log_sink

    async def __aenter__(self):
        await self.start()
        return self

    async def __aexit__(self, *exc_info):
        await self.stop()

    @property
    def url(self):
        """The base URL; a station connects to url + "/" + its id."""
        scheme = "wss" if self.tls else "ws"
        return f"{scheme}://{self.host}:{self.port}/ocpp"

    def _log(self, station_id, text):
        if self.log is None:
            return
        stamp = datetime.now().strftime("%H:%M:%S.%f")[:-3]
        try:
            self.log(f"{stamp} {station_id} {text}")
        except Exception:  # a broken log must not break the server
            LOGGER.exception("log callable failed")

    def _notify(self):
        self._changed.set()
        self._changed = asyncio.Event()

    async def start(self):
        self._server = await serve(
            self._serve_connection,
            self.host,
            self.port,
            subprotocols=[SUBPROTOCOL],
            process_request=self._process_request,
            process_response=self._process_response,
            compression=None,
            ping_interval=self.ping_interval,
            logger=LOGGER,
            ssl=self._ssl_context(),
        )
        self.port = self._server.sockets[0].getsockname()[1]
        if self._serve_dir is not None and self.files is None:
            self.files = FileServer(self._serve_dir, self.host, log=lambda t: self._log("http", t))
            await self.files.start()
            self._log("*", f"serving {self._serve_dir} on http://{self.host}:{self.files.port}/")
        if self._sink_dir is not None and self.sink is None:
            try:
                from tools.logsink import LogSink
            except ImportError:  # run as tools/csms.py: tools/ itself is on sys.path
                from logsink import LogSink

            self.sink = LogSink(self._sink_dir, self.host, log=lambda t: self._log("logs", t))
            await self.sink.start()

    def update_request(self, name, request_id, retries=None, retry_interval=None, **firmware):
        """An UpdateFirmware payload for the served file ``name``, signed by name.sig with the
        certificate name.pem beside it; ``firmware`` adds or overrides fields of "firmware"
        (retrieveDateTime defaults to a minute ago, "now" to a station whose clock, set in whole
        seconds, may lag ours by one; a None value leaves the field out)."""
        if self.files is None:
            raise ConsoleError("no folder served (start the CSMS with --serve DIR)")
        base = os.path.join(self.files.directory, name)
        now = datetime.fromisoformat(self.clock().replace("Z", "+00:00"))
        past = (now - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        fw = {"location": self.files.url(name), "retrieveDateTime": past}
        for field, suffix in (("signature", ".sig"), ("signingCertificate", ".pem")):
            if os.path.exists(base + suffix):
                with open(base + suffix) as f:
                    fw[field] = f.read().strip() + ("\n" if suffix == ".pem" else "")
        fw.update(firmware)
        fw = {k: v for k, v in fw.items() if v is not None}
        payload = {"requestId": request_id, "firmware": fw}
        if retries is not None:
            payload["retries"] = retries
        if retry_interval is not None:
            payload["retryInterval"] = retry_interval
        return payload

    async def send_update(self, station, name, request_id=1, timeout=30.0, **kw):
        """Send UpdateFirmware for the served file ``name`` (see update_request); the answer."""
        payload = self.update_request(name, request_id, **kw)
        return await station.call("UpdateFirmware", payload, timeout=timeout)

    async def stop(self):
        if self.files is not None:
            await self.files.stop()
            self.files = None
        if self.sink is not None:
            await self.sink.stop()
            self.sink = None
        if self._server is None:
            return
        self._server.close()
        await self._server.wait_closed()
        self._server = None

    def _ssl_context(self):
        if not self.tls:
            return None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.tls["certfile"], self.tls["keyfile"])
        if self.tls["client_ca"]:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(self.tls["client_ca"])
        top = self.tls["max_version"]
        if top is not None:
            with warnings.catch_warnings():  # TLS 1.0 and 1.1 are deprecated: that is the point
                warnings.simplefilter("ignore", DeprecationWarning)
                ctx.minimum_version = min(top, ssl.TLSVersion.TLSv1_2)
                ctx.maximum_version = top
            if top < ssl.TLSVersion.TLSv1_2:
                ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL 3 allows TLS < 1.2 only so
        if self.tls["ciphers"]:
            if top is None or top > ssl.TLSVersion.TLSv1_2:
                ctx.maximum_version = ssl.TLSVersion.TLSv1_2  # set_ciphers leaves 1.3's suites
            ctx.set_ciphers(self.tls["ciphers"])

        def hello(ssl_object, server_name, context):
            self.tls_hellos += 1

        ctx.sni_callback = hello  # called for every ClientHello, with SNI or without
        return ctx

    async def set_tls(
        self, certfile, keyfile, client_ca=None, tls_max_version=None, tls_ciphers=None
    ):
        """Serve with these TLS options from now on (None for certfile: plain ws://). A running
        server is restarted on the same port: open connections are closed."""
        self.tls = _tls_options(certfile, keyfile, client_ca, tls_max_version, tls_ciphers)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            await self.start()
        self._log("*", "TLS: " + _describe_tls(self.tls))

    def refuse(self, flag):
        """While True, new WebSocket connections are refused with HTTP 503."""
        self._refusing = bool(flag)
        self._log("*", "refusing new connections" if flag else "accepting new connections")

    def close_station(self, station_id, code=1000, reason=""):
        """Close the station's current connection from the server side; returns the task."""
        return asyncio.ensure_future(self.stations[station_id].close(code, reason))

    async def wait_station(self, station_id, timeout=10.0):
        """The open connection of station_id, waiting up to timeout for one to open."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    station = self.stations.get(station_id)
                    if station is not None and station.connected:
                        return station
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(f"station {station_id} did not connect within {timeout}s") from None

    # ---- handshake ------------------------------------------------------------------------

    def _process_request(self, connection, request):
        connection.csms_attempt = (time.monotonic(), None)
        station_id = _station_id_from_path(request.path)
        connection.csms_station_id = station_id
        if station_id is None:
            return self._reject(connection, 404, "no station identity in the URL path")
        if self._refusing:
            return self._reject(connection, 503, "refusing connections (test switch)")
        if self.passwords is not None:
            problem = self._check_auth(station_id, request.headers.get("Authorization"))
            if problem:
                response = self._reject(connection, 401, problem)
                response.headers["WWW-Authenticate"] = 'Basic realm="csms", charset="UTF-8"'
                return response
        return None

    def _reject(self, connection, status, why):
        connection.csms_attempt = (connection.csms_attempt[0], why)
        return connection.respond(status, why + "\n")

    def _check_auth(self, station_id, header):
        if header is None:
            return "missing Authorization header"
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            return "Authorization is not Basic"
        try:
            credentials = base64.b64decode(token.strip(), validate=True)
        except ValueError:
            return "malformed Basic credentials"
        password = self.passwords.get(station_id)
        if password is None:
            return "unknown station"
        expected = f"{station_id}:{password}".encode()
        if not hmac.compare_digest(credentials, expected):
            return "wrong user name or password"
        return None

    def _process_response(self, connection, request, response):
        t, why = getattr(connection, "csms_attempt", (time.monotonic(), None))
        station_id = getattr(connection, "csms_station_id", None)
        accepted = response.status_code == 101
        self.attempts.append(Attempt(station_id, t, accepted))
        if not accepted:
            why = why or response.body.decode("utf-8", "replace").strip()
            self._log(station_id, f"connection refused: HTTP {response.status_code} {why}")
        return None

    async def _serve_connection(self, connection):
        station_id = connection.csms_station_id
        station = Station(station_id, connection, self)
        previous = self.stations.get(station_id)
        self.stations[station_id] = station
        host, port = (connection.remote_address or ("?", 0))[:2]
        note = ""
        if previous is not None and previous.connected:
            note = " (another connection of this id is still open)"
        tls = f", {station.tls_version}" if station.tls_version else ""
        self._log(
            station_id, f"connected from {host}:{port} ({connection.subprotocol}{tls}){note}"
        )
        self._notify()
        try:
            await station.start()
        finally:
            station._connection_closed()
            reason = f" {station.close_reason!r}" if station.close_reason else ""
            self._log(station_id, f"disconnected: code {station.close_code}{reason}")
            self._notify()


# ---- console ----------------------------------------------------------------------------

HELP = """\
commands (prefix any station command with @ID when several stations are connected):
  help                                   this text
  stations                               connected and past stations
  <Action> [json]                        any CSMS-initiated call, e.g.
      GetVariables {"getVariableData":[{"component":{"name":"OCPPCommCtrlr"},
                    "variable":{"name":"HeartbeatInterval"}}]}
  get <Component>[.<evse>[.<connector>]] <Variable>[.<instance>] [<attributeType>]
  set <Component>[.<evse>[.<connector>]] <Variable>[.<instance>] <value>
  reset [Immediate|OnIdle] [evseId]      Reset (default Immediate)
  trigger <MessageName> [evse[.connector]]
                                         TriggerMessage
  start <idToken>[:<type>] [evseId]      RequestStartTransaction (type Central by default)
  stop <transactionId>                   RequestStopTransaction
  update <file> [retries [retryInterval]]
                                         UpdateFirmware for a file of the --serve folder,
                                         with <file>.sig (base64) and <file>.pem beside it
  getlog [diagnostics|security] [http|ftp] [retries [retryInterval]]
                                         GetLog to the --log-sink folder (HTTP PUT or FTP)
  customer <idToken>[:<type>]|id=<customerIdentifier> [report] [clear]
                                         CustomerInformation (report by default); the
                                         NotifyCustomerInformation parts show as they come
  reserve <idToken>[:<type>] [evseId|any] [minutes] [group=<idToken>]
                                         ReserveNow (type ISO14443, EVSE 1 and 30 minutes
                                         by default; any: no evseId); ids count from 1
  cancel <reservationId>                 CancelReservation
  cost <transactionId> <amount>          CostUpdated (the running cost of a session)
  message <id> AlwaysFront|InFront|NormalCycle <text...>
                                         SetDisplayMessage (format UTF8; URI for a text
                                         starting with http:// or https://)
  messages                               GetDisplayMessages (all); the
                                         NotifyDisplayMessages parts show as they come
  clearmsg <id>                          ClearDisplayMessage
  raw <text>                             put text on the wire as is
  close [code]                           close the WebSocket from the server side
  refuse on|off                          refuse new connections with HTTP 503
  quit                                   stop the CSMS (also end of input)"""


class ConsoleError(Exception):
    """A console line that cannot be executed; the message is meant for the person."""


@dataclass
class Command:
    """A parsed console line. kind: help, stations, call, raw, close, refuse, quit, empty."""

    kind: str
    station_id: str | None = None
    action: str | None = None
    payload: dict | None = None
    text: str | None = None


def _component(spec):
    name, *numbers = spec.split(".")
    component = {"name": name}
    if numbers:
        if len(numbers) > 2 or not all(n.isdigit() for n in numbers):
            raise ConsoleError(f"bad component {spec!r}: use Name[.evseId[.connectorId]]")
        evse = {"id": int(numbers[0])}
        if len(numbers) == 2:
            evse["connectorId"] = int(numbers[1])
        component["evse"] = evse
    return component


def _variable(spec):
    name, _, instance = spec.partition(".")
    return {"name": name, "instance": instance} if instance else {"name": name}


def _evse(spec):
    numbers = spec.split(".")
    if len(numbers) > 2 or not all(n.isdigit() for n in numbers):
        raise ConsoleError(f"bad EVSE {spec!r}: use evseId[.connectorId]")
    evse = {"id": int(numbers[0])}
    if len(numbers) == 2:
        evse["connectorId"] = int(numbers[1])
    return evse


class Console:
    """Executes one command line typed by a person against a Csms.

    ``await console.execute(line)`` returns the answer text (never raises for a bad line);
    ``console.parse(line)`` only builds the Command. After quit, ``finished`` is True.
    """

    def __init__(self, csms, timeout=30.0):
        self.csms = csms
        self.timeout = timeout
        self.finished = False
        self.remote_start_id = 0
        self.update_id = 0
        self.log_id = 0
        self.customer_id = 0
        self.reservation_id = 0
        self.messages_id = 0

    def parse(self, line):
        line = line.strip()
        station_id = None
        if line.startswith("@"):
            target, _, line = line.partition(" ")
            station_id = target[1:] or None
            line = line.strip()
        if not line or line.startswith("#"):
            return Command("empty", station_id)
        word, _, rest = line.partition(" ")
        rest = rest.strip()
        if word in ("help", "?"):
            return Command("help")
        if word == "stations":
            return Command("stations")
        if word in ("quit", "exit"):
            return Command("quit")
        if word == "raw":
            if not rest:
                raise ConsoleError("usage: raw <text>")
            return Command("raw", station_id, text=rest)
        if word == "refuse":
            if rest not in ("on", "off"):
                raise ConsoleError("usage: refuse on|off")
            return Command("refuse", text=rest)
        if word == "close":
            if rest and not rest.isdigit():
                raise ConsoleError("usage: close [code]")
            return Command("close", station_id, text=rest or "1000")
        if word[:1].isupper():
            try:
                payload = json.loads(rest) if rest else {}
            except ValueError as exc:
                raise ConsoleError(f"payload is not JSON: {exc}") from None
            if not isinstance(payload, dict):
                raise ConsoleError("payload must be a JSON object")
            return Command("call", station_id, word, payload)
        shortcut = getattr(self, f"_shortcut_{word}", None)
        if shortcut is None:
            raise ConsoleError(f"unknown command {word!r}; type help")
        action, payload = shortcut(rest.split(), rest)
        return Command("call", station_id, action, payload)

    def _shortcut_get(self, args, rest):
        if len(args) not in (2, 3):
            raise ConsoleError("usage: get <Component>[.<evse>] <Variable> [<attributeType>]")
        data = {"component": _component(args[0]), "variable": _variable(args[1])}
        if len(args) == 3:
            data["attributeType"] = args[2]
        return "GetVariables", {"getVariableData": [data]}

    def _shortcut_set(self, args, rest):
        if len(args) < 3:
            raise ConsoleError("usage: set <Component>[.<evse>] <Variable> <value>")
        value = rest.split(None, 2)[2]  # as typed, spaces included
        data = {
            "attributeValue": value,
            "component": _component(args[0]),
            "variable": _variable(args[1]),
        }
        return "SetVariables", {"setVariableData": [data]}

    def _shortcut_reset(self, args, rest):
        if len(args) > 2 or (len(args) == 2 and not args[1].isdigit()):
            raise ConsoleError("usage: reset [Immediate|OnIdle] [evseId]")
        payload = {"type": args[0] if args else "Immediate"}
        if len(args) == 2:
            payload["evseId"] = int(args[1])
        return "Reset", payload

    def _shortcut_trigger(self, args, rest):
        if len(args) not in (1, 2):
            raise ConsoleError("usage: trigger <MessageName> [evseId[.connectorId]]")
        payload = {"requestedMessage": args[0]}
        if len(args) == 2:
            payload["evse"] = _evse(args[1])
        return "TriggerMessage", payload

    def _shortcut_start(self, args, rest):
        if len(args) not in (1, 2) or (len(args) == 2 and not args[1].isdigit()):
            raise ConsoleError("usage: start <idToken>[:<type>] [evseId]")
        token, _, token_type = args[0].partition(":")
        self.remote_start_id += 1
        payload = {
            "idToken": {"idToken": token, "type": token_type or "Central"},
            "remoteStartId": self.remote_start_id,
        }
        if len(args) == 2:
            payload["evseId"] = int(args[1])
        return "RequestStartTransaction", payload

    def _shortcut_stop(self, args, rest):
        if len(args) != 1:
            raise ConsoleError("usage: stop <transactionId>")
        return "RequestStopTransaction", {"transactionId": args[0]}

    def _shortcut_update(self, args, rest):
        if not 1 <= len(args) <= 3 or not all(a.isdigit() for a in args[1:]):
            raise ConsoleError("usage: update <file> [retries [retryInterval]]")
        self.update_id += 1
        nums = [int(a) for a in args[1:]] + [None, None]
        payload = self.csms.update_request(args[0], self.update_id, nums[0], nums[1])
        return "UpdateFirmware", payload

    def _shortcut_getlog(self, args, rest):
        usage = "usage: getlog [diagnostics|security] [http|ftp] [retries [retryInterval]]"
        kind, how, nums = "diagnostics", "http", []
        for a in args:
            if a in ("diagnostics", "security") and not nums:
                kind = a
            elif a in ("http", "ftp") and not nums:
                how = a
            elif a.isdigit() and len(nums) < 2:
                nums.append(int(a))
            else:
                raise ConsoleError(usage)
        sink = self.csms.sink
        if sink is None:
            raise ConsoleError("no log sink: start the CSMS with --log-sink DIR")
        self.log_id += 1
        name = "%s-%d.log" % (kind, self.log_id)
        url = sink.ftp_url(name) if how == "ftp" else sink.http_url(name)
        payload = {
            "logType": "SecurityLog" if kind == "security" else "DiagnosticsLog",
            "requestId": self.log_id,
            "log": {"remoteLocation": url},
        }
        for key, n in zip(("retries", "retryInterval"), nums, strict=False):
            payload[key] = n
        return "GetLog", payload

    def _shortcut_customer(self, args, rest):
        flags = args[1:]
        if not args or any(f not in ("report", "clear") for f in flags):
            raise ConsoleError(
                "usage: customer <idToken>[:<type>]|id=<customerIdentifier> [report] [clear]"
            )
        self.customer_id += 1
        payload = {
            "requestId": self.customer_id,
            "report": "report" in flags or not flags,
            "clear": "clear" in flags,
        }
        if args[0].startswith("id="):
            payload["customerIdentifier"] = args[0][3:]
        else:
            token, _, token_type = args[0].partition(":")
            payload["idToken"] = {"idToken": token, "type": token_type or "ISO14443"}
        return "CustomerInformation", payload

    def _shortcut_reserve(self, args, rest):
        usage = "usage: reserve <idToken>[:<type>] [evseId|any] [minutes] [group=<idToken>]"
        group = [a[6:] for a in args if a.startswith("group=")]
        args = [a for a in args if not a.startswith("group=")]
        if not 1 <= len(args) <= 3 or len(group) > 1 or not all(group):
            raise ConsoleError(usage)
        where = args[1] if len(args) > 1 else "1"
        minutes = args[2] if len(args) > 2 else "30"
        if not (where.isdigit() or where == "any") or not minutes.isdigit():
            raise ConsoleError(usage)
        token, _, token_type = args[0].partition(":")
        self.reservation_id += 1
        expiry = datetime.now(timezone.utc) + timedelta(minutes=int(minutes))
        payload = {
            "id": self.reservation_id,
            "expiryDateTime": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "idToken": {"idToken": token, "type": token_type or "ISO14443"},
        }
        if where != "any":
            payload["evseId"] = int(where)
        if group:
            payload["groupIdToken"] = {"idToken": group[0], "type": "Central"}
        return "ReserveNow", payload

    def _shortcut_cost(self, args, rest):
        try:
            amount = Decimal(args[1]) if len(args) == 2 else None
        except ArithmeticError:
            amount = None
        if amount is None or not amount.is_finite():
            raise ConsoleError("usage: cost <transactionId> <amount>")
        return "CostUpdated", {"totalCost": float(amount), "transactionId": args[0]}

    def _shortcut_cancel(self, args, rest):
        if len(args) != 1 or not args[0].lstrip("-").isdigit():
            raise ConsoleError("usage: cancel <reservationId>")
        return "CancelReservation", {"reservationId": int(args[0])}

    def _shortcut_message(self, args, rest):
        if len(args) < 3 or not args[0].lstrip("-").isdigit():
            raise ConsoleError("usage: message <id> AlwaysFront|InFront|NormalCycle <text...>")
        text = rest.split(None, 2)[2]  # as typed, spaces included
        uri = text.startswith(("http://", "https://"))
        payload = {
            "message": {
                "id": int(args[0]),
                "priority": args[1],
                "message": {"format": "URI" if uri else "UTF8", "content": text},
            }
        }
        return "SetDisplayMessage", payload

    def _shortcut_messages(self, args, rest):
        if args:
            raise ConsoleError("usage: messages")
        self.messages_id += 1
        return "GetDisplayMessages", {"requestId": self.messages_id}

    def _shortcut_clearmsg(self, args, rest):
        if len(args) != 1 or not args[0].lstrip("-").isdigit():
            raise ConsoleError("usage: clearmsg <id>")
        return "ClearDisplayMessage", {"id": int(args[0])}

    def _station(self, station_id):
        if station_id is not None:
            station = self.csms.stations.get(station_id)
            if station is None or not station.connected:
                raise ConsoleError(f"station {station_id} is not connected")
            return station
        connected = [s for s in self.csms.stations.values() if s.connected]
        if not connected:
            raise ConsoleError("no station is connected")
        if len(connected) > 1:
            names = " ".join("@" + s.id for s in connected)
            raise ConsoleError(f"several stations are connected, prefix one of: {names}")
        return connected[0]

    def _stations_text(self):
        if not self.csms.stations:
            lines = ["no station has connected yet"]
        else:
            lines = []
            now = time.monotonic()
            for station in self.csms.stations.values():
                if station.connected:
                    host, port = (station.remote_address or ("?", 0))[:2]
                    state = f"connected for {now - station.opened_at:.0f} s from {host}:{port}"
                else:
                    state = (
                        f"disconnected {now - station.closed_at:.0f} s ago "
                        f"(code {station.close_code})"
                    )
                lines.append(f"{station.id}: {state}, {len(station.frames)} frames")
        if self.csms._refusing:
            lines.append("(refusing new connections)")
        return "\n".join(lines)

    async def execute(self, line):
        try:
            return await self._execute(self.parse(line))
        except ConsoleError as exc:
            return f"error: {exc}"
        except CallErrorReply as exc:
            details = f" {_compact(exc.details)}" if exc.details else ""
            return f"CALLERROR {exc.code} {json.dumps(exc.description)}{details}"
        except OcppNotImplementedError as exc:
            return f"error: unknown action ({exc.details.get('cause', exc.description)})"
        except OCPPError as exc:
            cause = exc.details.get("cause", exc.description)
            return f"error: schema violation, {type(exc).__name__}: {cause}"
        except (TimeoutError, ConnectionError) as exc:
            return f"error: {exc}"
        except Exception as exc:  # the console must survive whatever a person types
            LOGGER.exception("console command %r failed", line)
            return f"error: {exc!r}"

    async def _execute(self, command):
        if command.kind == "empty":
            return ""
        if command.kind == "help":
            return HELP
        if command.kind == "stations":
            return self._stations_text()
        if command.kind == "quit":
            self.finished = True
            return "bye"
        if command.kind == "refuse":
            self.csms.refuse(command.text == "on")
            return f"refusing new connections: {command.text}"
        station = self._station(command.station_id)
        if command.kind == "raw":
            await station.send_raw(command.text)
            return "sent"
        if command.kind == "close":
            await station.close(int(command.text))
            return f"closed {station.id}"
        result = await station.call(command.action, command.payload, timeout=self.timeout)
        return _compact(result)


# ---- command line -----------------------------------------------------------------------


def _stdin_lines(loop, queue):
    """Read stdin in a daemon thread (never blocks the exit) and feed the lines to queue."""

    def reader():
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line)
        loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=reader, name="csms-stdin", daemon=True).start()


def _password(text):
    station_id, sep, password = text.partition("=")
    if not sep or not station_id:
        raise argparse.ArgumentTypeError("use ID=PASSWORD")
    return station_id, password


async def _run(args):
    def out(line):
        print(line, flush=True)

    passwords = dict(args.password) if args.password else None
    csms = Csms(
        args.host,
        args.port,
        log=out,
        passwords=passwords,
        serve=args.serve,
        log_sink=args.log_sink,
        tariff=args.tariff,
        certfile=args.cert,
        keyfile=args.key,
        client_ca=args.client_ca,
        tls_ciphers=args.tls_ciphers,
    )
    if args.ca_cert:
        csms.ca = CertificateAuthority(args.ca_cert, args.ca_key)
    await csms.start()
    auth = f", Basic auth for {', '.join(passwords)}" if passwords else ""
    out(f"CSMS listening on {csms.url}/<stationId> (subprotocol {SUBPROTOCOL}{auth})")
    out("type help for the commands")
    console = Console(csms)
    lines = asyncio.Queue()
    _stdin_lines(asyncio.get_running_loop(), lines)
    try:
        while not console.finished:
            line = await lines.get()
            if line is None:
                break
            answer = await console.execute(line)
            if answer:
                out(answer)
    finally:
        await csms.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(description="Development OCPP 2.0.1 CSMS.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument(
        "--password",
        action="append",
        type=_password,
        metavar="ID=PW",
        help="require HTTP Basic auth; repeat for each station",
    )
    parser.add_argument(
        "--serve", metavar="DIR", help="serve DIR over HTTP (firmware files for `update`)"
    )
    parser.add_argument(
        "--log-sink",
        metavar="DIR",
        help="save the logs stations upload (HTTP PUT/POST, FTP) into DIR",
    )
    parser.add_argument(
        "--tariff",
        type=Decimal,
        metavar="EUR_PER_KWH",
        help="price every session: the tariff to the driver, totalCost in the answers",
    )
    parser.add_argument(
        "--cert", metavar="PEM", help="serve wss:// with this server certificate (needs --key)"
    )
    parser.add_argument("--key", metavar="PEM", help="the server certificate's private key")
    parser.add_argument(
        "--client-ca",
        metavar="PEM",
        help="require client certificates issued by these roots (security profile 3)",
    )
    parser.add_argument(
        "--ca-cert",
        metavar="PEM",
        help="sign the stations' certificate requests (SignCertificate) with this CA",
    )
    parser.add_argument("--ca-key", metavar="PEM", help="the signing CA's private key")
    parser.add_argument(
        "--tls-ciphers",
        metavar="NAMES",
        help="accept only these TLS 1.2 cipher suites (OpenSSL names, ':' between them)",
    )
    args = parser.parse_args(argv)
    if (args.cert is None) != (args.key is None) or (
        (args.client_ca or args.tls_ciphers) and not args.cert
    ):
        parser.error("--cert and --key go together; --client-ca and --tls-ciphers need them")
    if (args.ca_cert is None) != (args.ca_key is None):
        parser.error("--ca-cert and --ca-key go together")
    try:
        asyncio.run(_run(args))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
