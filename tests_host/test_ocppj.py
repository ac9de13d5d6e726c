"""OCPP-J RPC layer (lib/ocppj.py) under CPython, against a scripted connection."""

import asyncio
import json

import pytest

import ocppj


class FakeWs:
    """A connection whose peer is the test: `feed` what the CSMS sends, read `sent`."""

    def __init__(self):
        self.inbox = asyncio.Queue()
        self.sent = []
        self.sent_event = asyncio.Event()

    def feed(self, text):
        self.inbox.put_nowait(text)

    def hang_up(self):
        self.inbox.put_nowait(None)

    async def recv(self):
        text = await self.inbox.get()
        if text is None:
            raise ConnectionError("closed")
        return text

    async def send(self, text):
        self.sent.append(text)
        self.sent_event.set()

    async def next_sent(self, n):
        while len(self.sent) < n:
            self.sent_event.clear()
            await asyncio.wait_for(self.sent_event.wait(), 2)
        return json.loads(self.sent[n - 1])


GV = {"getVariableData": [{"component": {"name": "A"}, "variable": {"name": "B"}}]}
GV_RESULT = {
    "getVariableResult": [
        {"attributeStatus": "Accepted", "component": {"name": "A"}, "variable": {"name": "B"}}
    ]
}


def make(handler=None, after=None, gate=None):
    router = ocppj.Router()
    router.on("GetVariables", handler or (lambda req: GV_RESULT), after)
    router.gate = gate
    ids = iter("id%d" % i for i in range(1000))
    return ocppj.Session(router, lambda: next(ids), timeout_s=0.3), FakeWs()


def exchange(frames, **kw):
    """Feed `frames` to a session; return every frame it sent, parsed."""

    async def go():
        session, ws = make(**kw)
        task = asyncio.create_task(session.run(ws))
        for f in frames:
            ws.feed(f)
        ws.hang_up()
        with pytest.raises(ConnectionError):
            await task
        return [json.loads(s) for s in ws.sent]

    return asyncio.run(go())


def codes(sent):
    return [(f[0], f[1], f[2]) for f in sent]


GOOD = json.dumps([2, "m1", "GetVariables", GV])


@pytest.mark.parametrize(
    "text, expect",
    [
        ("not json", (4, "-1", "RpcFrameworkError")),
        ('"a string"', (4, "-1", "RpcFrameworkError")),
        ("[]", (4, "-1", "RpcFrameworkError")),
        ('["2", "m1", "GetVariables", {}]', (4, "-1", "RpcFrameworkError")),
        ('[2, 17, "GetVariables", {}]', (4, "-1", "RpcFrameworkError")),
        ('[2, "' + "x" * 37 + '", "GetVariables", {}]', (4, "-1", "RpcFrameworkError")),
        ('[5, "m1", "GetVariables", {}]', (4, "m1", "MessageTypeNotSupported")),
        ("[7, 99]", (4, "-1", "MessageTypeNotSupported")),
        ('[2, "m1", "GetVariables"]', (4, "m1", "RpcFrameworkError")),
        ('[2, "m1", 12, {}]', (4, "m1", "RpcFrameworkError")),
        ('[2, "m1", "FlyToTheMoon", {}]', (4, "m1", "NotImplemented")),
        ('[2, "m1", "CancelReservation", {"reservationId": 1}]', (4, "m1", "NotSupported")),
        ('[2, "m1", "GetVariables", []]', (4, "m1", "FormatViolation")),
        (
            '[2, "m1", "GetVariables", {"x": 1, "getVariableData": []}]',
            (4, "m1", "FormatViolation"),
        ),
        ('[2, "m1", "GetVariables", {}]', (4, "m1", "OccurrenceConstraintViolation")),
        (
            '[2, "m1", "GetVariables", {"getVariableData": 5}]',
            (4, "m1", "TypeConstraintViolation"),
        ),
        (
            '[2, "m1", "GetVariables", {"getVariableData": [{"component": {"name": "A"}, '
            '"variable": {"name": "B"}, "attributeType": "Bogus"}]}]',
            (4, "m1", "PropertyConstraintViolation"),
        ),
    ],
)
def test_defective_frames_get_the_right_callerror_and_the_session_lives_on(text, expect):
    sent = exchange([text, GOOD])
    assert codes(sent)[0] == expect
    assert sent[0][4] == {} and isinstance(sent[0][3], str) and len(sent[0][3]) <= 255
    assert sent[1] == [3, "m1", GV_RESULT]
    assert len(sent) == 2


def test_replies_that_match_no_call_are_dropped_never_answered():
    frames = ['[3, "nobody", {}]', '[4, "nobody", "GenericError", "", {}]', "[3]", GOOD]
    assert exchange(frames) == [[3, "m1", GV_RESULT]]


def test_handler_crash_is_internal_error_and_session_lives_on():
    def boom(req):
        raise KeyError("bug")

    sent = exchange([GOOD, GOOD], handler=boom)
    assert codes(sent) == [(4, "m1", "InternalError")] * 2


def test_handler_call_error_is_sent_as_is():
    def refuse(req):
        raise ocppj.CallError(ocppj.OCCURRENCE_CONSTRAINT_VIOLATION, "ItemsPerMessage")

    sent = exchange([GOOD], handler=refuse)
    assert sent == [[4, "m1", "OccurrenceConstraintViolation", "ItemsPerMessage", {}]]


def test_gate_refuses_with_its_code():
    sent = exchange([GOOD], gate=lambda action: ocppj.SECURITY_ERROR)
    assert codes(sent) == [(4, "m1", "SecurityError")]


def test_after_hook_runs_once_the_response_is_sent():
    seen = []

    def after(req, resp):
        seen.append((req, resp))

    exchange([GOOD], after=after)
    assert seen == [(GV, GV_RESULT)]


def test_async_handler_is_awaited():
    async def slow(req):
        await asyncio.sleep(0.01)
        return GV_RESULT

    assert exchange([GOOD], handler=slow) == [[3, "m1", GV_RESULT]]


BOOT = {
    "reason": "PowerUp",
    "chargingStation": {"model": "M", "vendorName": "V"},
}
BOOT_OK = {"currentTime": "2026-11-21T10:00:00Z", "interval": 60, "status": "Accepted"}


def run_call(script):
    """Run session.call(BootNotification) while `script(ws)` plays the CSMS."""

    async def go():
        session, ws = make()
        task = asyncio.create_task(session.run(ws))
        await asyncio.sleep(0)  # run() attaches the connection
        peer = asyncio.create_task(script(ws))
        try:
            return await session.call("BootNotification", BOOT), ws
        finally:
            await peer
            ws.hang_up()
            with pytest.raises(ConnectionError):
                await task

    return asyncio.run(go())


def test_call_returns_the_result_payload():
    async def csms(ws):
        req = await ws.next_sent(1)
        assert req == [2, "id0", "BootNotification", BOOT]
        ws.feed(json.dumps([3, "id0", BOOT_OK]))

    result, _ = run_call(csms)
    assert result == BOOT_OK


def test_call_error_reply_raises_remote_call_error():
    async def csms(ws):
        await ws.next_sent(1)
        ws.feed(json.dumps([4, "id0", "GenericError", "no", {"x": 1}]))

    with pytest.raises(ocppj.CallError) as e:
        run_call(csms)
    assert (e.value.code, e.value.description, e.value.details, e.value.remote) == (
        "GenericError",
        "no",
        {"x": 1},
        True,
    )


def test_result_breaking_the_schema_raises_without_answering():
    async def csms(ws):
        await ws.next_sent(1)
        ws.feed(json.dumps([3, "id0", {"status": "Accepted"}]))

    with pytest.raises(ocppj.CallError) as e:
        run_call(csms)
    assert e.value.code == "OccurrenceConstraintViolation" and e.value.remote


def test_unanswered_call_times_out_and_a_late_reply_is_dropped():
    async def go():
        session, ws = make()
        task = asyncio.create_task(session.run(ws))
        await asyncio.sleep(0)
        with pytest.raises(asyncio.TimeoutError):
            await session.call("BootNotification", BOOT)
        ws.feed(json.dumps([3, "id0", BOOT_OK]))  # too late
        ws.feed(GOOD)
        await ws.next_sent(2)
        ws.hang_up()
        with pytest.raises(ConnectionError):
            await task
        return [json.loads(s) for s in ws.sent]

    sent = asyncio.run(go())
    assert sent == [[2, "id0", "BootNotification", BOOT], [3, "m1", GV_RESULT]]


def test_incoming_call_answered_while_our_call_waits_and_one_call_at_a_time():
    async def go():
        session, ws = make()
        task = asyncio.create_task(session.run(ws))
        await asyncio.sleep(0)
        first = asyncio.create_task(session.call("BootNotification", BOOT))
        second = asyncio.create_task(session.call("Heartbeat", {}))
        await ws.next_sent(1)
        ws.feed(GOOD)  # the CSMS calls us while our BootNotification waits
        await ws.next_sent(2)
        await asyncio.sleep(0.05)
        assert len(ws.sent) == 2  # Heartbeat waits for the BootNotification reply
        ws.feed(json.dumps([3, "id0", BOOT_OK]))
        assert await first == BOOT_OK
        await ws.next_sent(3)
        ws.feed(json.dumps([3, "id1", {"currentTime": "2026-11-21T10:00:00Z"}]))
        await second
        ws.hang_up()
        with pytest.raises(ConnectionError):
            await task
        return [json.loads(s) for s in ws.sent]

    sent = asyncio.run(go())
    assert sent == [
        [2, "id0", "BootNotification", BOOT],
        [3, "m1", GV_RESULT],
        [2, "id1", "Heartbeat", {}],
    ]


def test_drop_while_waiting_raises_not_connected():
    async def go():
        session, ws = make()
        task = asyncio.create_task(session.run(ws))
        await asyncio.sleep(0)
        call = asyncio.create_task(session.call("BootNotification", BOOT))
        await ws.next_sent(1)
        ws.hang_up()
        with pytest.raises(ConnectionError):
            await task
        with pytest.raises(ocppj.NotConnected):
            await call
        with pytest.raises(ocppj.NotConnected):
            await session.call("Heartbeat", {})

    asyncio.run(go())


def test_router_refuses_names_that_are_not_ocpp_actions():
    with pytest.raises(ValueError):
        ocppj.Router().on("Nonsense", lambda req: {})


def test_caller_acts_on_its_answer_before_the_next_incoming_call_is_handled():
    state = {"registered": False, "seen_by_handler": None}

    def handler(req):
        state["seen_by_handler"] = state["registered"]
        return GV_RESULT

    async def go():
        session, ws = make(handler=handler)
        task = asyncio.create_task(session.run(ws))
        await asyncio.sleep(0)

        async def register():
            await session.call("BootNotification", BOOT)
            state["registered"] = True  # what connection.py does with the status

        reg = asyncio.create_task(register())
        await ws.next_sent(1)
        ws.feed(json.dumps([3, "id0", BOOT_OK]))
        ws.feed(GOOD)  # the CSMS's next CALL, right behind the answer
        await ws.next_sent(2)
        await reg
        ws.hang_up()
        with pytest.raises(ConnectionError):
            await task

    asyncio.run(go())
    assert state["seen_by_handler"] is True
