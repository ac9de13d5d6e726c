"""OCPP-J RPC layer (lib/ocppj.py) under CPython, against a scripted connection."""

import asyncio
import json
import time

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

    async def recv_bytes(self):
        text = await self.inbox.get()
        if text is None:
            raise ConnectionError("closed")
        if isinstance(text, BaseException):
            raise text
        return text.encode() if isinstance(text, str) else text

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


def test_a_result_time_without_offset_reads_as_utc_and_other_bad_times_do_not():
    async def csms(ws):
        await ws.next_sent(1)
        ws.feed(json.dumps([3, "id0", dict(BOOT_OK, currentTime="2026-11-21T10:00:00.123")]))

    result, _ = run_call(csms)
    assert result == dict(BOOT_OK, currentTime="2026-11-21T10:00:00.123Z")

    async def garbage(ws):
        await ws.next_sent(1)
        ws.feed(json.dumps([3, "id0", dict(BOOT_OK, currentTime="yesterday at noon")]))

    with pytest.raises(ocppj.CallError) as e:
        run_call(garbage)
    assert e.value.code == "PropertyConstraintViolation" and e.value.remote


def test_assume_utc_mends_the_field_at_a_schema_path():
    p = {"a": [{"t": "2026-11-21T10:00:00"}, {"t": "2026-11-21T10:00:00"}]}
    assert ocppj._assume_utc(p, "a[1].t")
    assert p == {"a": [{"t": "2026-11-21T10:00:00"}, {"t": "2026-11-21T10:00:00Z"}]}
    assert not ocppj._assume_utc(p, "a[1].t")  # has its zone now
    assert not ocppj._assume_utc(p, "a[5].t") and not ocppj._assume_utc(p, "")


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


# -- what comes in: strict JSON and UTF-8, bounded (jsonwire), answered by the error table ----

TM = '[2,"r11","TriggerMessage",{"requestedMessage":"Heartbeat",},]'


@pytest.mark.parametrize(
    "data, expect",
    [
        # MicroPython's json takes all of these; RFC 8259 and UTF-8 do not.
        (TM, (4, "r11", "FormatViolation")),
        ('[2,"m1","GetVariables",{"getVariableData":[]}]}', (4, "m1", "FormatViolation")),
        ('[2,"m1","GetVariables" {}]', (4, "m1", "FormatViolation")),
        ('[2,"m1","GetVariables",{"a":02}]', (4, "m1", "FormatViolation")),
        ('[2,"m1","GetVariables",{"a":"\\q"}]', (4, "m1", "FormatViolation")),
        ('[2,"m1","GetVariables",{"a":"x\ty"}]', (4, "m1", "FormatViolation")),
        ('[2,"m1","GetVariables",{"a":"x\ny"}]', (4, "m1", "FormatViolation")),
        ('[2,"m1","GetVariables",{}]\x00', (4, "m1", "FormatViolation")),
        ('[2,"m1","GetVariables",{"a":1.}]', (4, "m1", "FormatViolation")),
        (b'[2,"m1","GetVariables",{"a":"\xc0\xaf"}]', (4, "m1", "FormatViolation")),
        (b'[2,"m1","GetVariables",{"a":"\xed\xa0\x80"}]', (4, "m1", "FormatViolation")),
        (b'[2,"m1","GetVariables",{"a":"\xf4\x90\x80\x80"}]', (4, "m1", "FormatViolation")),
        (b'[2,"m1","GetVariables",{"a":"\x80"}]', (4, "m1", "FormatViolation")),
        ('[2,"m1","GetVariables",{"a":"\\ud800"}]', (4, "m1", "FormatViolation")),
        ('[2,"m1","GetVariables",{"a":"\\udc00\\ud800"}]', (4, "m1", "FormatViolation")),
        (
            '[2,"m1","GetVariables",{"a":' + "[" * 40 + "]" * 40 + "}]",
            (4, "m1", "FormatViolation"),
        ),
        ('[2,"m1","GetVariables",{"a":1' + "0" * 80 + "}]", (4, "m1", "FormatViolation")),
        ('[2,"m1","GetVariables",{"a":1e999}]', (4, "m1", "FormatViolation")),
        # No readable id: "-1".
        ("[2,,]", (4, "-1", "RpcFrameworkError")),
        (b'[2,"\xc0\xaf","GetVariables",{}]', (4, "-1", "RpcFrameworkError")),
        ('[2,"\\ud800","GetVariables",{}]', (4, "-1", "RpcFrameworkError")),
        ('[2 "m1","GetVariables",{}]', (4, "-1", "RpcFrameworkError")),
        ("[" * 25000 + "]" * 25000, (4, "-1", "RpcFrameworkError")),
        (b"\xef\xbb\xbf" + GOOD.encode(), (4, "-1", "RpcFrameworkError")),
        ('[9,"m1",}', (4, "-1", "RpcFrameworkError")),
        # JSON: the message type, however long, is read without converting it.
        ("[" + "7" * 60000 + ',"m1","GetVariables",{}]', (4, "m1", "MessageTypeNotSupported")),
        ("[" + "7" * 60000 + "]", (4, "-1", "MessageTypeNotSupported")),
    ],
)
def test_what_json_or_utf8_forbid_gets_the_error_table_and_the_session_lives_on(data, expect):
    sent = exchange([data, GOOD])
    assert codes(sent)[0] == expect
    assert sent[0][4] == {} and isinstance(sent[0][3], str) and len(sent[0][3]) <= 255
    assert sent[1:] == [[3, "m1", GV_RESULT]]


def test_a_huge_message_type_is_answered_at_once():
    t = time.monotonic()
    sent = exchange(["[" + "7" * 60000 + ',"m1","GetVariables",{}]'])
    assert time.monotonic() - t < 0.5
    assert sent == [[4, "m1", "MessageTypeNotSupported", "type of over 9 digits", {}]]


def test_surrogate_pairs_become_their_character_and_an_id_may_hold_one():
    seen = []

    def handler(req):
        seen.append(req)
        return GV_RESULT

    item = '{"component":{"name":"\\ud83d\\ude00\\u00e9"},"variable":{"name":"B"}}'
    frame = '[2,"\\ud83d\\ude00","GetVariables",{"getVariableData":[%s]}]' % item
    sent = exchange([frame], handler=handler)
    assert seen[0]["getVariableData"][0]["component"]["name"] == "\U0001f600\u00e9"
    assert sent == [[3, "\U0001f600", GV_RESULT]]


ITEM = (
    '[2,"m1","GetVariables",{"getVariableData":[{"component":{"name":"%s"},'
    '"variable":{"name":"B"}}]}]'
)


def test_in_len_counts_the_bytes_of_the_frame():
    lens = []
    session = None

    def handler(req):
        lens.append(session.in_len)
        return GV_RESULT

    async def go():
        nonlocal session
        session, ws = make(handler=handler)
        task = asyncio.create_task(session.run(ws))
        ws.feed(ITEM % ("é" * 20))
        ws.feed(ITEM % ("\\u00e9" * 20))
        ws.hang_up()
        with pytest.raises(ConnectionError):
            await task

    asyncio.run(go())
    base = len(ITEM % "")
    assert lens == [base + 40, base + 120]


def test_a_broken_reply_to_our_call_fails_it_at_once():
    async def csms(ws):
        await ws.next_sent(1)
        ws.feed('[3,"id0",{"currentTime":"2026-11-21T10:00:00Z",}]')

    t = time.monotonic()
    with pytest.raises(ocppj.CallError) as e:
        run_call(csms)
    assert time.monotonic() - t < 0.2  # not the 0.3 s timeout
    assert (e.value.code, e.value.remote) == ("FormatViolation", True)


def test_a_broken_reply_to_no_call_of_ours_is_dropped_never_answered():
    frames = ['[3,"nobody",{,}]', b'[4,"nobody","\xc0\xaf"]', '[3,"nobody","\\ud800"]', GOOD]
    assert exchange(frames) == [[3, "m1", GV_RESULT]]


class NoRoom(MemoryError):
    """What ws.recv_bytes() raises for a message it had no memory for (ws.OutOfMemory)."""

    def __init__(self, head, size):
        super().__init__()
        self.head = head
        self.size = size


def test_a_message_without_room_is_answered_from_its_head():
    head = b'[2,"m1","GetVariables",{"getVariableData":[{"component":{"name":"A'
    frames = [NoRoom(head[:64], 70000), NoRoom(b'[2,{"x":"', 70000), GOOD]
    sent = exchange(frames)
    assert codes(sent) == [
        (4, "m1", "InternalError"),
        (4, "-1", "RpcFrameworkError"),
        (3, "m1", GV_RESULT),
    ]
    assert sent[0][3] == "out of memory to read it (70000 bytes)"


def test_a_reply_without_room_fails_our_call():
    async def csms(ws):
        await ws.next_sent(1)
        ws.feed(NoRoom(b'[3,"id0",{"currentTime":"', 70000))

    with pytest.raises(ocppj.CallError) as e:
        run_call(csms)
    assert (e.value.code, e.value.remote) == ("InternalError", True)


def test_a_bare_memory_error_from_the_connection_ends_the_session():
    async def go():
        session, ws = make()
        task = asyncio.create_task(session.run(ws))
        ws.feed(MemoryError())
        with pytest.raises(MemoryError):
            await task

    asyncio.run(go())


def test_out_of_memory_while_parsing_is_internal_error(monkeypatch):
    class Json:
        @staticmethod
        def loads(text):
            raise MemoryError

    monkeypatch.setattr(ocppj, "json", Json)
    sent = exchange([GOOD])
    assert sent == [[4, "m1", "InternalError", "out of memory to parse it", {}]]


def test_no_room_to_send_the_answer_sends_internal_error_instead():
    async def go():
        session, ws = make(handler=lambda req: {"big": "x" * 5000})
        send = ws.send

        async def tight(data):
            if len(data) > 1000:
                raise MemoryError
            await send(data)

        ws.send = tight
        task = asyncio.create_task(session.run(ws))
        ws.feed(GOOD)
        ws.hang_up()
        with pytest.raises(ConnectionError):
            await task
        return [json.loads(s) for s in ws.sent]

    want = [[4, "m1", "InternalError", "out of memory for the answer", {}]]
    assert asyncio.run(go()) == want


# -- what goes out: floats as meant, UTF-8 always -----------------------------------------------


def test_floats_go_out_as_the_decimal_meant_and_the_payload_is_left_as_it_was():
    values = [round(76.15, 2), round(795.81, 2), 0.1 + 0.2, 1693300.0, -0.0]
    result = {"v": list(values), "n": {"x": [1.5, 2]}}

    def handler(req):
        return result

    async def go():
        session, ws = make(handler=handler)
        task = asyncio.create_task(session.run(ws))
        ws.feed(GOOD)
        await ws.next_sent(1)
        ws.hang_up()
        with pytest.raises(ConnectionError):
            await task
        return ws.sent[0]

    raw = asyncio.run(go())
    assert raw == (
        b'[3,"m1",{"v":[76.15,795.81,0.30000000000000004,1693300.0,-0.0],"n":{"x":[1.5,2]}}]'
    )
    assert result == {"v": values, "n": {"x": [1.5, 2]}}
    assert all(type(v) is float for v in result["v"])


# -- blocks loaded on their first CALL (Router.later) ----------------------------------------


def test_a_lazy_block_is_built_on_the_first_call_of_one_of_its_actions():
    loads = []

    async def go():
        session, ws = make()

        def load(entry):
            loads.append(1)
            session.router.on("DataTransfer", lambda req: {"status": "UnknownVendorId"})
            session.router.on("ClearCache", lambda req: {"status": "Accepted"})

        session.router.load = load
        session.router.later((("DataTransfer", "ClearCache"),))
        task = asyncio.create_task(session.run(ws))
        ws.feed('[2,"a","ClearCache",{}]')
        ws.feed('[2,"b","DataTransfer",{"vendorId":"x"}]')
        ws.feed('[2,"c","ClearCache",{}]')
        ws.hang_up()
        with pytest.raises(ConnectionError):
            await task
        return [json.loads(s) for s in ws.sent]

    assert asyncio.run(go()) == [
        [3, "a", {"status": "Accepted"}],
        [3, "b", {"status": "UnknownVendorId"}],
        [3, "c", {"status": "Accepted"}],
    ]
    assert loads == [1]  # once, for both actions


def test_a_lazy_block_loader_gets_its_argument():
    got = []

    def load(entry):
        got.append(entry)
        router.on("ClearCache", lambda req: {"status": "Accepted"})

    router = ocppj.Router(load)
    router.later((("ClearCache",), "block"))
    assert router.handlers == {}  # no entry per action until loaded (heap)
    handler, after = router.entry("ClearCache")
    assert got == [(("ClearCache",), "block")] and handler({}) == {"status": "Accepted"}
    router.entry("ClearCache")
    assert len(got) == 1  # loaded once


def test_a_loader_that_registers_nothing_is_an_internal_error_and_bad_actions_are_refused():
    router = ocppj.Router(lambda entry: None)
    router.later((("ClearCache",),))
    with pytest.raises(ocppj.CallError) as e:
        router.entry("ClearCache")
    assert e.value.code == "InternalError"
    with pytest.raises(ocppj.CallError):  # tried again next time
        router.entry("ClearCache")
    assert router.entry("GetVariables") is None
    with pytest.raises(ValueError):
        router.later((("NoSuchAction",),))


def test_a_total_cost_keeps_its_json_text_for_the_display():
    async def go():
        session, ws = make()
        session.router.on("CostUpdated", lambda req: {})
        task = asyncio.create_task(session.run(ws))
        await asyncio.sleep(0)
        assert session.decimal is None  # the class default: no slot until one comes
        ws.feed('[2, "c1", "CostUpdated", {"totalCost": 12345.675, "transactionId": "t"}]')
        assert await ws.next_sent(1) == [3, "c1", {}]
        assert session.decimal == "12345.675"
        ws.hang_up()
        with pytest.raises(ConnectionError):
            await task

    asyncio.run(go())


def test_number_text_finds_the_literal_of_the_value_read():
    from jsonwire import number_text

    text = (
        b'{"customData": {"vendorId": "v", "totalCost": 1}, "m": "\\"totalCost\\": 7",'
        b' "totalCost" : 1.2e1}'
    )
    assert number_text(text, "totalCost", 12.0) == "1.2e1"
    assert number_text(text, "totalCost", 1) == "1"
    assert number_text(text, "totalCost", 7) is None  # inside a string
    assert number_text(bytearray(b'{"x": 3}'), "totalCost", 3) is None
    assert number_text('{"totalCost":-0.5}', "totalCost", -0.5) == "-0.5"


def test_a_link_closing_under_our_call_is_not_connected():
    import ws as wsmod

    async def go():
        session, ws = make()
        task = asyncio.create_task(session.run(ws))
        await asyncio.sleep(0)

        async def closed(text):
            raise wsmod.ConnectionClosed(1006, "aborted")

        ws.send = closed
        with pytest.raises(ocppj.NotConnected):
            await session.call("BootNotification", BOOT)
        ws.hang_up()
        with pytest.raises(ConnectionError):
            await task

    asyncio.run(go())
