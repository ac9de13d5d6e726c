# ocppj: OCPP-J RPC over a WebSocket: framing, CALLERROR codes, action router, one session.
# MIT licence. Ours because mobilityhouse/ocpp needs CPython (dataclasses, inspect, jsonschema).

import asyncio
import json
import time

from micropython import const

import jsonwire
import log
import ocpp_schema
import rfc3339
import schema

_CALL = const(2)
_CALLRESULT = const(3)
_CALLERROR = const(4)
_MAX_DESC = const(255)  # longest errorDescription

# OCPP-J error codes (OCPP 2.0.1 part 4, table 8). Public: those the blocks raise; the rest are
# private const() (no global, no heap on a board).
FORMAT_VIOLATION = "FormatViolation"
_GENERIC_ERROR = const("GenericError")
_INTERNAL_ERROR = const("InternalError")
_MESSAGE_TYPE_NOT_SUPPORTED = const("MessageTypeNotSupported")
_NOT_IMPLEMENTED = const("NotImplemented")
NOT_SUPPORTED = "NotSupported"
OCCURRENCE_CONSTRAINT_VIOLATION = "OccurrenceConstraintViolation"
_PROPERTY_CONSTRAINT_VIOLATION = const("PropertyConstraintViolation")
_PROTOCOL_ERROR = const("ProtocolError")
_RPC_FRAMEWORK_ERROR = const("RpcFrameworkError")
SECURITY_ERROR = "SecurityError"
_TYPE_CONSTRAINT_VIOLATION = const("TypeConstraintViolation")

_TAG = const("ocpp")


def _assume_utc(payload, path):
    """Give the string at `path` ("a.b[2].c", as schema.SchemaError.path) of `payload` the
    "Z" it lacks, if it is a date-time without time zone; True when it was."""
    parent, key = None, None
    node = payload
    for part in path.replace("[", ".[").split("."):
        if not part:
            continue
        parent = node
        key = int(part[1:-1]) if part[0] == "[" else part
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return False
    fixed = rfc3339.assume_utc(node)
    if parent is None or fixed is None:
        return False
    parent[key] = fixed
    return True


def answer(status, reason=None, info=None):
    """A response of `status`, with a statusInfo of `reason` (and `info`, at most the 512
    characters the schema allows) when given: the blocks' answers."""
    if reason is None:
        return {"status": status}
    si = {"reasonCode": reason}
    if info:
        si["additionalInfo"] = info[:512]
    return {"status": status, "statusInfo": si}


class CallError(Exception):
    """A CALLERROR: raised by a handler to answer with it, or by `call()` when one came back.

    `remote` is True when the CSMS sent it (or its CALLRESULT broke the schema), False when we
    raise it to answer an incoming CALL.
    """

    def __init__(self, code, description="", details=None, remote=False):
        super().__init__(code, description)
        self.code = code
        self.description = description
        self.details = details
        self.remote = remote


class NotConnected(Exception):
    """No connection to send on, or it dropped before the reply came."""


class Router:
    """Maps each implemented action to its handler.

    A handler takes the request payload and returns the response payload (or an awaitable of
    it), or raises CallError. An `after` hook runs once the response is on the wire, with
    (request, response): that is where a block starts what the response announced.
    `gate(action)` returns None to let an incoming CALL through, or an error code to refuse it
    (the boot logic refuses CALLs while the registration is Pending or Rejected).
    """

    def __init__(self, load=None):
        self.handlers = {}
        self.gate = None
        self.load = load  # load(entry): builds the block of a lazy entry (see later)
        self._later = []  # the entries of the blocks not loaded yet

    def on(self, action, handler, after=None):
        if action not in ocpp_schema.ACTIONS:
            raise ValueError(action)
        self.handlers[action] = (handler, after)

    def later(self, entry):
        """The handlers of the actions `entry[0]` come from the router's `load(entry)`,
        called on the first CALL of any of them: it imports and builds the block, which
        registers them with `on`. Until then the block's module costs no RAM (MicroPython's
        asyncio loads its parts the same way). `entry` (a tuple, in flash when constant) is
        all that is kept: one loader for every block and no closure per block (some 60 B of
        heap each), and no entry in `handlers` per action (the dict grows by steps: three
        more actions cost 64 B on an ESP32)."""
        for action in entry[0]:
            if action not in ocpp_schema.ACTIONS:
                raise ValueError(action)
        self._later.append(entry)

    def entry(self, action):
        """(handler, after) of `action`, loading its block first if need be; None when the
        action is not implemented here."""
        entry = self.handlers.get(action)
        if entry is not None:
            return entry
        for lazy in self._later:
            if action in lazy[0]:
                self.load(lazy)  # the block registers its handlers
                entry = self.handlers.get(action)
                if entry is None:
                    raise CallError(_INTERNAL_ERROR, "no handler after loading " + action)
                self._later.remove(lazy)  # loaded: its actions are in handlers now
                return entry
        return None


class Session:
    """The RPC session over whichever connection is attached now.

    At most one CALL of ours is outstanding (`call` holds a lock until the reply or the
    timeout); incoming CALLs are answered meanwhile by `run`, which owns the receive side.
    """

    # The JSON text of the last `totalCost` received (jsonwire.number_text), in a
    # TransactionEventResponse or a CostUpdated: read right after its frame is handed over, it
    # gives the amount as sent, which a float may not hold (a class attribute until the first
    # one comes: no slot in the instance, heap).
    decimal = None

    def __init__(self, router, new_id, timeout_s=30):
        self.router = router
        self.new_id = new_id  # () -> fresh message id, never reused, also across reboots
        self.timeout_s = timeout_s  # MessageTimeout, seconds
        self.ws = None
        self.last_call_ms = time.ticks_ms()  # when we last sent a CALL (heartbeat idles on it)
        self.in_len = 0  # bytes of the incoming CALL being handled (BytesPerMessage)
        self._in = None  # the received message run() hands to _on_frame()
        self._lock = asyncio.Lock()
        self._reply = asyncio.Event()
        self._wait_id = None  # id of our outstanding CALL, None when none is
        self._answer = None  # the frame that answered it, or None if the link dropped
        self._handed = asyncio.Event()  # set once call() has taken its answer

    # -- sending ----------------------------------------------------------------------------

    async def _send(self, frame, ours=False):
        ws = self.ws
        if ws is None:
            raise NotConnected()
        # Floats as the decimal text meant, and strict UTF-8 even if a string we hold is
        # not (one stored before strings were checked): jsonwire.dumps.
        data = jsonwire.dumps(frame)
        if not ours:
            await ws.send(data)
            return
        try:
            await ws.send(data)
        except MemoryError:
            raise
        except Exception as e:
            # The link closed under our CALL (the WebSocket's ConnectionClosed, a socket
            # error): for call()'s caller that is NotConnected, as when it drops while the
            # answer is awaited, and no failed attempt of the message.
            log.warn(_TAG, "sending: %r" % (e,))
            raise NotConnected()

    async def call(self, action, payload, timeout_s=None):
        """Send a CALL and return the CALLRESULT payload.

        Raises CallError (remote) for a CALLERROR or a response that breaks the schema,
        asyncio.TimeoutError after MessageTimeout, NotConnected when offline or dropped.
        """
        async with self._lock:
            uid = self.new_id()
            self._wait_id = uid
            self._answer = None
            self._reply.clear()
            try:
                await self._send([_CALL, uid, action, payload], True)
                self.last_call_ms = time.ticks_ms()
                log.info(_TAG, "-> %s %s" % (action, uid))
                timeout = self.timeout_s if timeout_s is None else timeout_s
                await asyncio.wait_for_ms(self._reply.wait(), int(timeout * 1000))
            finally:
                self._wait_id = None
                # The receive loop waits for this before it reads the next frame: our caller
                # acts on the answer (say, a BootNotification status) before the CSMS's next
                # CALL is handled, as the CSMS expects.
                self._handed.set()
            return self._result(action, self._answer)

    def _result(self, action, frame):
        if frame is None:
            raise NotConnected()
        if frame[0] == _CALLERROR:
            log.warn(_TAG, "<- CALLERROR %s %s: %s" % (action, frame[2], frame[3]))
            raise CallError(frame[2], frame[3], frame[4] if len(frame) > 4 else None, True)
        payload = frame[2]
        while True:
            try:
                schema.validate(action + "Response", payload)
                return payload
            except schema.SchemaError as e:
                # Liberal in what we accept from the CSMS: a time without its offset reads
                # as UTC (each mend fixes one field, so this ends). Requests stay strict.
                if e.code != schema.PROPERTY or not _assume_utc(payload, e.path):
                    log.warn(_TAG, "<- bad %sResponse: %s" % (action, e))
                    raise CallError(e.code, str(e), None, True)

    async def _send_error(self, uid, code, description="", details=None):
        log.warn(_TAG, "CALLERROR %s for %s: %s" % (code, uid, description))
        frame = [_CALLERROR, uid, code, description[:_MAX_DESC], details or {}]
        await self._send(frame)

    # -- receiving --------------------------------------------------------------------------

    async def run(self, ws):
        """Serve `ws` until it closes; the exception that closed it propagates.

        `ws.recv_bytes()` gives each text message as its bytes, unchecked (lib/ws.py); a
        MemoryError from it that has a `head` (ws.OutOfMemory) stands for a message that was
        dropped for want of memory, and is answered from those first bytes.
        """
        self.ws = ws
        try:
            while True:
                try:
                    data = await ws.recv_bytes()
                except MemoryError as e:
                    if getattr(e, "head", None) is None:
                        raise
                    data = e
                self._handed.clear()
                if isinstance(data, MemoryError):
                    why = "out of memory to read it (%d bytes)" % data.size
                    r = jsonwire.check_now(data.head)  # the id, if the head holds it
                    handed = await self._refuse(r, _INTERNAL_ERROR, why)
                else:
                    self._in = data  # _on_frame() takes it: no reference left here
                    data = None
                    handed = await self._on_frame()
                if handed:
                    await self._handed.wait()
        finally:
            self.ws = None
            if self._wait_id is not None:
                self._reply.set()  # wake call(): no answer will come on this connection

    async def _on_frame(self):
        # One received text message, as bytes (self._in). -> True when it was handed to
        # call(). Once parsed, the bytes are let go: a handler that takes long (a signature
        # check) should not hold a frame of some KB in the heap meanwhile.
        data, self._in = self._in, None
        if type(data) is str:
            data = data.encode()
        r = await jsonwire.check(data)  # strict JSON and UTF-8, bounded; no parsing yet
        if r.status != jsonwire.OK:
            code = _INTERNAL_ERROR if r.status == jsonwire.NOMEM else FORMAT_VIOLATION
            return await self._refuse(r, code, r.why)
        kind = r.kind
        if kind is None:
            return await self._send_error("-1", _RPC_FRAMEWORK_ERROR, "not an OCPP-J frame")
        uid = r.uid  # None when unreadable
        if kind == _CALL:
            if uid is None:
                return await self._send_error("-1", _RPC_FRAMEWORK_ERROR, "bad message id")
            n = len(data)
            data = None
            msg = await self._parse(r)
            r = None
            if msg is not None:
                self.in_len = n
                return await self._on_call(uid, msg)
        elif kind == _CALLRESULT or kind == _CALLERROR:
            if uid is None or uid != self._wait_id:
                # Never answer a reply with a CALLERROR: log it and drop it.
                log.warn(_TAG, "dropped reply %s" % (uid,))
                return
            msg = await self._parse(r)
            if msg is not None:
                return self._on_reply(uid, kind, msg)
            return True  # _parse() failed the call()
        else:
            why = "type %d" % kind if kind != jsonwire.LONG else "type of over 9 digits"
            await self._send_error(uid or "-1", _MESSAGE_TYPE_NOT_SUPPORTED, why)

    async def _parse(self, r):
        # The checked text r.text parsed, or None once out of memory was answered.
        try:
            msg = json.loads(r.text)
        except MemoryError:
            r.text = None  # a rewritten copy is garbage now: room for the answer
            await self._refuse(r, _INTERNAL_ERROR, "out of memory to parse it")
            return None
        p = msg[-1] if type(msg) is list and len(msg) > 2 else None
        if type(p) is dict and type(p.get("totalCost")) in (int, float):
            self.decimal = jsonwire.number_text(r.text, "totalCost", p["totalCost"])
        return msg

    async def _refuse(self, r, code, why):
        # Answer a frame we cannot take (r: its jsonwire.Checked): a CALL with a readable id
        # gets `code`; a reply to our outstanding CALL fails it at once; any other reply is
        # dropped; the rest, with no id to answer, gets RpcFrameworkError "-1".
        kind = r.kind
        uid = r.uid
        if uid is not None and (kind == _CALLRESULT or kind == _CALLERROR):
            if uid == self._wait_id:
                log.warn(_TAG, "<- bad reply %s: %s" % (uid, why))
                self._answer = [_CALLERROR, uid, code, why]
                self._reply.set()
                return True
            log.warn(_TAG, "dropped reply %s" % (uid,))
            return
        if uid is not None and kind == _CALL:
            return await self._send_error(uid, code, why)
        await self._send_error("-1", _RPC_FRAMEWORK_ERROR, why)

    def _on_reply(self, uid, kind, msg):
        good = len(msg) == 3 if kind == _CALLRESULT else 4 <= len(msg) <= 5
        if not good:
            # Never answer a reply with a CALLERROR: log it and drop it.
            log.warn(_TAG, "dropped reply %s" % (uid,))
            return
        if kind == _CALLERROR and (type(msg[2]) is not str or type(msg[3]) is not str):
            log.warn(_TAG, "dropped malformed CALLERROR %s" % uid)
            return
        self._answer = msg
        self._reply.set()
        return True

    async def _on_call(self, uid, msg):
        try:
            response, after, payload = await self._dispatch(msg)
        except CallError as e:
            return await self._send_error(uid, e.code, e.description, e.details)
        except Exception as e:  # a handler bug or out of memory: answer and live on
            log.exc(_TAG, "handler for %s failed" % (msg[2],), e)
            return await self._send_error(uid, _INTERNAL_ERROR, repr(e))
        try:
            await self._send([_CALLRESULT, uid, response])
        except MemoryError:  # no room to write it out: a short answer may still go
            response = None  # garbage now: room for that answer
            return await self._send_error(uid, _INTERNAL_ERROR, "out of memory for the answer")
        if after is not None:
            try:
                after(payload, response)
            except Exception as e:
                log.exc(_TAG, "after-hook for %s failed" % msg[2], e)

    async def _dispatch(self, msg):
        if len(msg) != 4 or type(msg[2]) is not str:
            raise CallError(_RPC_FRAMEWORK_ERROR, "a CALL has 4 elements and a string action")
        action, payload = msg[2], msg[3]
        log.info(_TAG, "<- %s %s" % (action, msg[1]))
        if action not in ocpp_schema.ACTIONS:
            raise CallError(_NOT_IMPLEMENTED, "unknown action " + action)
        entry = self.router.entry(action)
        if entry is None:
            raise CallError(NOT_SUPPORTED, action + " is not supported")
        if type(payload) is not dict:
            raise CallError(FORMAT_VIOLATION, "payload is not an object")
        gate = self.router.gate
        refused = gate(action) if gate else None
        if refused:
            raise CallError(refused, "not allowed now")
        try:
            schema.validate(action + "Request", payload)
        except schema.SchemaError as e:
            raise CallError(e.code, str(e))
        handler, after = entry
        response = handler(payload)
        if hasattr(response, "send"):  # a coroutine: the handler needs to await something
            response = await response
        return response, after, payload
