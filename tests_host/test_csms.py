# test_csms: the development CSMS (tools/csms.py) against a raw websockets client as the station.
# MIT licence.
import asyncio
import base64
import json
from decimal import Decimal

import pytest
import websockets
from ocpp.exceptions import FormatViolationError, SecurityError
from ocpp.messages import CallResult, _validate_payload
from websockets.asyncio.client import connect

from tools.csms import (
    DEFAULT_HANDLERS,
    NO_REPLY,
    CallErrorReply,
    Console,
    ConsoleError,
    Csms,
)

NOW = "2025-01-02T03:04:05.000Z"
BOOT = {
    "reason": "PowerUp",
    "chargingStation": {"model": "VirtualWallbox", "vendorName": "Open"},
}


def run(coro_fn, **csms_kwargs):
    """Run coro_fn(csms, log_lines) against a started Csms; at most 5 s per test."""

    async def main():
        lines = []
        csms = Csms(log=lines.append, **csms_kwargs)
        csms.clock = lambda: NOW
        await csms.start()
        try:
            async with asyncio.timeout(5):
                return await coro_fn(csms, lines)
        finally:
            await csms.stop()

    return asyncio.run(main())


def station_url(csms, station_id="CS1"):
    return f"ws://127.0.0.1:{csms.port}/ocpp/{station_id}"


def dumps(msg):
    return json.dumps(msg, separators=(",", ":"))


async def exchange(ws, msg):
    await ws.send(dumps(msg))
    return json.loads(await ws.recv())


def test_boot_default_answer_and_frames():
    async def body(csms, lines):
        async with connect(station_url(csms), subprotocols=["ocpp2.0.1"]) as ws:
            assert ws.subprotocol == "ocpp2.0.1"
            request = dumps([2, "b1", "BootNotification", BOOT])
            await ws.send(request)
            answer = await ws.recv()
            assert answer == (
                '[3,"b1",{"currentTime":"2025-01-02T03:04:05.000Z",'
                '"status":"Accepted","interval":300}]'
            )
            station = await csms.wait_station("CS1")
            assert [(f.direction, f.raw) for f in station.frames] == [
                ("in", request),
                ("out", answer),
            ]
            assert station.frames[1].kind == "result"
            assert station.frames[1].action == "BootNotification"
            assert station.calls_from_station() == [("b1", "BootNotification", BOOT)]
            assert await exchange(ws, [2, "h1", "Heartbeat", {}]) == [
                3,
                "h1",
                {"currentTime": NOW},
            ]
        await station.wait_closed()
        text = "\n".join(lines)
        assert "CS1 -> BootNotification {" in text
        assert '"reason":"PowerUp"' in text
        assert "CS1 <- BootNotification Accepted {" in text
        assert "CS1 connected from 127.0.0.1" in text
        assert "CS1 disconnected" in text

    run(body)


def test_boot_policy_exact_json():
    async def body(csms, lines):
        seen = []

        def policy(station, payload):
            seen.append((station.id, payload))
            return {"currentTime": "2030-01-01T00:00:00Z", "interval": 10, "status": "Pending"}

        csms.boot_policy = policy
        async with connect(station_url(csms), subprotocols=["ocpp2.0.1"]) as ws:
            await ws.send(dumps([2, "b1", "BootNotification", BOOT]))
            assert await ws.recv() == (
                '[3,"b1",{"currentTime":"2030-01-01T00:00:00Z","interval":10,"status":"Pending"}]'
            )
        assert seen == [("CS1", BOOT)]

    run(body)


def test_call_round_trip_and_callerror():
    async def body(csms, lines):
        get = {
            "getVariableData": [
                {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
            ]
        }
        result = {
            "getVariableResult": [
                {
                    "attributeStatus": "Accepted",
                    "attributeValue": "300",
                    "component": {"name": "OCPPCommCtrlr"},
                    "variable": {"name": "HeartbeatInterval"},
                }
            ]
        }
        async with connect(station_url(csms), subprotocols=["ocpp2.0.1"]) as ws:
            station = await csms.wait_station("CS1")

            async def scripted_station():
                call = json.loads(await ws.recv())
                assert call[0] == 2 and call[2] == "GetVariables" and call[3] == get
                await ws.send(dumps([3, call[1], result]))
                call = json.loads(await ws.recv())
                assert call[2] == "Reset"
                await ws.send(dumps([4, call[1], "SecurityError", "not now", {"why": "test"}]))

            script = asyncio.create_task(scripted_station())
            assert await station.call("GetVariables", get) == result
            with pytest.raises(CallErrorReply) as caught:
                await station.call("Reset", {"type": "Immediate"})
            assert caught.value.code == "SecurityError"
            assert caught.value.description == "not now"
            assert caught.value.details == {"why": "test"}
            await script
            kinds = [(f.direction, f.kind, f.action) for f in station.frames]
            assert kinds == [
                ("out", "call", "GetVariables"),
                ("in", "result", "GetVariables"),
                ("out", "call", "Reset"),
                ("in", "error", "Reset"),
            ]
            assert station.frames[0].msg[3] == get
            # an invalid outgoing request is refused before it reaches the wire
            with pytest.raises(FormatViolationError):
                await station.call("Reset", {"type": "Now"})
            assert len(station.frames) == 4
            # no answer: TimeoutError, and the late answer is still recorded
            with pytest.raises(TimeoutError):
                await station.call("Reset", {"type": "OnIdle"}, timeout=0.2)
            late = json.loads(await ws.recv())
            await ws.send(dumps([3, late[1], {"status": "Accepted"}]))
            frame = await station.wait_frame(lambda f: f.direction == "in", start=5)
            assert frame.kind == "result" and frame.action == "Reset"
        text = "\n".join(lines)
        assert "CS1 <= GetVariables {" in text
        assert 'CS1 => result {"getVariableResult"' in text
        assert 'CS1 => CALLERROR SecurityError "not now" {"why":"test"}' in text

    run(body)


def test_strict_validation_handlers_and_errors():
    async def body(csms, lines):
        got = []

        def authorize(station, payload):
            got.append(payload)
            return {"idTokenInfo": {"status": "Blocked"}}

        def broken(station, payload):
            raise RuntimeError("boom")

        def refusing(station, payload):
            raise SecurityError("go away")

        csms.handlers["Authorize"] = authorize
        csms.handlers["MeterValues"] = broken
        csms.handlers["DataTransfer"] = refusing
        csms.handlers["Heartbeat"] = lambda station, payload: NO_REPLY
        del csms.handlers["NotifyEvent"]
        async with connect(station_url(csms), subprotocols=["ocpp2.0.1"]) as ws:
            bad_boot = {"chargingStation": {"model": "M", "vendorName": "V"}}
            answer = await exchange(ws, [2, "1", "BootNotification", bad_boot])
            assert answer[:3] == [4, "1", "ProtocolError"]
            assert "reason" in answer[4]["cause"]
            answer = await exchange(ws, [2, "2", "BootNotification", {**BOOT, "extra": 1}])
            assert answer[:3] == [4, "2", "FormatViolation"]
            token = {"idToken": {"idToken": "04A1B2", "type": "ISO14443"}}
            answer = await exchange(ws, [2, "3", "Authorize", token])
            assert answer == [3, "3", {"idTokenInfo": {"status": "Blocked"}}]
            assert got == [token]  # raw camelCase, as on the wire
            answer = await exchange(ws, [2, "4", "MeterValues", {"evseId": 1, "meterValue": []}])
            assert answer[:3] == [4, "4", "FormatViolation"]  # minItems 1
            meter = {
                "evseId": 1,
                "meterValue": [{"timestamp": NOW, "sampledValue": [{"value": 1.5}]}],
            }
            answer = await exchange(ws, [2, "5", "MeterValues", meter])
            assert answer[:3] == [4, "5", "InternalError"]
            answer = await exchange(ws, [2, "6", "DataTransfer", {"vendorId": "x"}])
            assert answer[:4] == [4, "6", "SecurityError", "go away"]
            answer = await exchange(ws, [2, "7", "NotifyEvent", {}])
            assert answer[:3] == [4, "7", "NotImplemented"]
            answer = await exchange(ws, [2, "8", "Frobnicate", {}])
            assert answer[:3] == [4, "8", "NotSupported"]
            await ws.send(dumps([2, "9", "Heartbeat", {}]))
            event = {
                "eventType": "Started",
                "timestamp": NOW,
                "triggerReason": "Authorized",
                "seqNo": 0,
                "transactionInfo": {"transactionId": "t1"},
                "idToken": {"idToken": "04A1B2", "type": "ISO14443"},
            }
            # Heartbeat 9 got no answer; the connection still serves the next CALL
            answer = await exchange(ws, [2, "10", "TransactionEvent", event])
            assert answer == [3, "10", {"idTokenInfo": {"status": "Accepted"}}]
        assert "CS1 <- BootNotification CALLERROR ProtocolError" in "\n".join(lines)

    run(body)


def test_send_raw_exact_text_and_malformed_frames():
    async def body(csms, lines):
        async with connect(station_url(csms), subprotocols=["ocpp2.0.1"]) as ws:
            station = await csms.wait_station("CS1")
            text = '[2,"x","Reset",{"type":'  # truncated on purpose
            await station.send_raw(text)
            assert await ws.recv() == text
            await ws.send("not json")
            frame = await station.wait_frame(lambda f: f.direction == "in")
            assert frame.raw == "not json" and frame.msg is None and frame.kind is None
            assert [f.raw for f in station.frames] == [text, "not json"]
        text = "\n".join(lines)
        assert "CS1 <= ?? [2," in text and "CS1 -> ?? not json" in text

    run(body)


def test_refuse_records_attempts():
    async def body(csms, lines):
        csms.refuse(True)
        with pytest.raises(websockets.InvalidStatus) as caught:
            async with connect(station_url(csms), subprotocols=["ocpp2.0.1"]):
                pass
        assert caught.value.response.status_code == 503
        csms.refuse(False)
        async with connect(station_url(csms), subprotocols=["ocpp2.0.1"]):
            await csms.wait_station("CS1")
        assert [(a.station_id, a.accepted) for a in csms.attempts] == [
            ("CS1", False),
            ("CS1", True),
        ]
        assert csms.attempts[0].t <= csms.attempts[1].t
        station_id, t, accepted = csms.attempts[1]
        assert accepted is True
        assert "CS1 connection refused: HTTP 503" in "\n".join(lines)

    run(body)


def test_close_station_and_wait_for_reconnect():
    async def body(csms, lines):
        async with connect(station_url(csms), subprotocols=["ocpp2.0.1"]) as ws:
            first = await csms.wait_station("CS1")
            await csms.close_station("CS1", code=4001)
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 4001
        assert not first.connected and first.close_code == 4001
        waiter = asyncio.create_task(csms.wait_station("CS1"))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        async with connect(station_url(csms), subprotocols=["ocpp2.0.1"]):
            second = await waiter
            assert second is not first and second.connected
            assert csms.stations["CS1"] is second
        await second.wait_closed()
        with pytest.raises(TimeoutError):
            await csms.wait_station("CS1", timeout=0.1)

    run(body)


def test_station_id_is_percent_decoded():
    async def body(csms, lines):
        async with connect(station_url(csms, "CS%201"), subprotocols=["ocpp2.0.1"]):
            station = await csms.wait_station("CS 1")
            assert station.path == "/ocpp/CS%201"

    run(body)


def test_basic_auth():
    def basic(user, password):
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    async def body(csms, lines):
        headers = basic("CS1", "secret-password-1")
        async with connect(
            station_url(csms), subprotocols=["ocpp2.0.1"], additional_headers=headers
        ):
            station = await csms.wait_station("CS1")
            assert station.headers["Authorization"] == headers["Authorization"]
        for headers in (None, basic("CS1", "wrong"), basic("CS2", "secret-password-1")):
            with pytest.raises(websockets.InvalidStatus) as caught:
                async with connect(
                    station_url(csms), subprotocols=["ocpp2.0.1"], additional_headers=headers
                ):
                    pass
            assert caught.value.response.status_code == 401
        assert [a.accepted for a in csms.attempts] == [True, False, False, False]

    run(body, passwords={"CS1": "secret-password-1"})


def test_no_subprotocol_is_refused():
    async def body(csms, lines):
        with pytest.raises(websockets.InvalidStatus) as caught:
            async with connect(station_url(csms)):
                pass
        assert caught.value.response.status_code == 400
        with pytest.raises(websockets.InvalidStatus):
            async with connect(station_url(csms), subprotocols=["ocpp1.6"]):
                pass
        assert "CS1" not in csms.stations
        assert [a.accepted for a in csms.attempts] == [False, False]

    run(body)


def test_default_answers_are_schema_valid():
    class FakeStation:
        csms = Csms()

    FakeStation.csms.clock = lambda: NOW
    requests = {
        "BootNotification": BOOT,
        "TransactionEvent": {"idToken": {"idToken": "A", "type": "Central"}},
    }

    async def answers():
        out = {}
        for action, handler in DEFAULT_HANDLERS.items():
            answer = handler(FakeStation(), requests.get(action, {}))
            out[action] = await answer if asyncio.iscoroutine(answer) else answer
        return out

    for action, answer in asyncio.run(answers()).items():
        _validate_payload(CallResult("1", answer, action), "2.0.1")
    assert len(DEFAULT_HANDLERS) >= 24


def test_console_parsing():
    console = Console(Csms())
    command = console.parse("get OCPPCommCtrlr HeartbeatInterval")
    assert (command.kind, command.action, command.station_id) == ("call", "GetVariables", None)
    assert command.payload == {
        "getVariableData": [
            {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
        ]
    }
    command = console.parse("@CS2 get EVSE.1 Power Actual")
    assert command.station_id == "CS2"
    assert command.payload == {
        "getVariableData": [
            {
                "component": {"name": "EVSE", "evse": {"id": 1}},
                "variable": {"name": "Power"},
                "attributeType": "Actual",
            }
        ]
    }
    assert console.parse("set OCPPCommCtrlr HeartbeatInterval 60").payload == {
        "setVariableData": [
            {
                "attributeValue": "60",
                "component": {"name": "OCPPCommCtrlr"},
                "variable": {"name": "HeartbeatInterval"},
            }
        ]
    }
    value = console.parse("set OCPPCommCtrlr NetworkConfigurationPriority  1, 0").payload
    assert value["setVariableData"][0]["attributeValue"] == "1, 0"
    assert console.parse("reset").payload == {"type": "Immediate"}
    assert console.parse("trigger StatusNotification 1.1").payload == {
        "requestedMessage": "StatusNotification",
        "evse": {"id": 1, "connectorId": 1},
    }
    first = console.parse("start 04A1B2 1")
    second = console.parse("start tok:ISO14443")
    assert first.action == "RequestStartTransaction"
    assert first.payload == {
        "idToken": {"idToken": "04A1B2", "type": "Central"},
        "remoteStartId": 1,
        "evseId": 1,
    }
    assert second.payload["remoteStartId"] == 2
    assert second.payload["idToken"]["type"] == "ISO14443"
    assert console.parse("stop t-1").payload == {"transactionId": "t-1"}
    command = console.parse('ClearCache {"customData":{"vendorId":"x"}}')
    assert (command.action, command.payload) == ("ClearCache", {"customData": {"vendorId": "x"}})
    assert console.parse("raw [2,").text == "[2,"
    for bad in ("frobnicate", "get OnlyComponent", "Reset {not json", "Reset [1]"):
        with pytest.raises(ConsoleError):
            console.parse(bad)


def test_console_getlog_names_a_file_of_the_log_sink(tmp_path):
    async def go():
        csms = Csms(log_sink=tmp_path / "logs")
        await csms.start()
        try:
            console = Console(csms)
            first = console.parse("getlog").payload
            second = console.parse("getlog security ftp 2 10").payload
            with pytest.raises(ConsoleError):
                console.parse("getlog 1 2 3")
        finally:
            await csms.stop()
        return csms, first, second

    csms, first, second = asyncio.run(go())
    assert first["logType"] == "DiagnosticsLog" and first["requestId"] == 1
    assert first["log"]["remoteLocation"].startswith("http://127.0.0.1:")
    assert first["log"]["remoteLocation"].endswith("/diagnostics-1.log")
    assert second["logType"] == "SecurityLog" and second["requestId"] == 2
    assert second["log"]["remoteLocation"].startswith("ftp://")
    assert (second["retries"], second["retryInterval"]) == (2, 10)
    with pytest.raises(ConsoleError):
        Console(Csms()).parse("getlog")  # no sink


def test_console_customer_command():
    console = Console(Csms())
    first = console.parse("customer 04A1B2")
    assert (first.action, first.payload) == (
        "CustomerInformation",
        {
            "requestId": 1,
            "report": True,
            "clear": False,
            "idToken": {"idToken": "04A1B2", "type": "ISO14443"},
        },
    )
    assert console.parse("customer tok:KeyCode clear").payload == {
        "requestId": 2,
        "report": False,
        "clear": True,
        "idToken": {"idToken": "tok", "type": "KeyCode"},
    }
    assert console.parse("customer id=C-7 report clear").payload == {
        "requestId": 3,
        "report": True,
        "clear": True,
        "customerIdentifier": "C-7",
    }
    for bad in ("customer", "customer tok wipe"):
        with pytest.raises(ConsoleError):
            console.parse(bad)


def test_console_display_message_commands():
    console = Console(Csms())
    first = console.parse("message 1 InFront Cheap  energy  till 16:00")
    assert (first.action, first.payload) == (
        "SetDisplayMessage",
        {
            "message": {
                "id": 1,
                "priority": "InFront",
                "message": {"format": "UTF8", "content": "Cheap  energy  till 16:00"},
            }
        },
    )
    assert console.parse("message 2 AlwaysFront https://example.com/pay").payload == {
        "message": {
            "id": 2,
            "priority": "AlwaysFront",
            "message": {"format": "URI", "content": "https://example.com/pay"},
        }
    }
    assert console.parse("message 3 NormalCycle http://x").payload["message"]["message"] == {
        "format": "URI",
        "content": "http://x",
    }
    get = console.parse("messages")
    assert (get.action, get.payload) == ("GetDisplayMessages", {"requestId": 1})
    assert console.parse("messages").payload == {"requestId": 2}
    clear = console.parse("clearmsg 2")
    assert (clear.action, clear.payload) == ("ClearDisplayMessage", {"id": 2})
    for bad in (
        "message",
        "message 1 InFront",
        "message x InFront hi",
        "messages 3",
        "clearmsg",
        "clearmsg x",
        "clearmsg 1 2",
    ):
        with pytest.raises(ConsoleError):
            console.parse(bad)


def test_console_reserve_and_cancel_commands(monkeypatch):
    import tools.csms as csms_mod

    class Clock(csms_mod.datetime):
        @classmethod
        def now(cls, tz=None):
            return csms_mod.datetime(2026, 12, 6, 10, 0, 30, 500000, tzinfo=tz)

    monkeypatch.setattr(csms_mod, "datetime", Clock)
    console = Console(Csms())
    first = console.parse("reserve 04A1B2")
    assert (first.action, first.payload) == (
        "ReserveNow",
        {
            "id": 1,
            "expiryDateTime": "2026-12-06T10:30:30Z",
            "idToken": {"idToken": "04A1B2", "type": "ISO14443"},
            "evseId": 1,
        },
    )
    assert console.parse("reserve R1:Central any 5 group=FLEET").payload == {
        "id": 2,
        "expiryDateTime": "2026-12-06T10:05:30Z",
        "idToken": {"idToken": "R1", "type": "Central"},
        "groupIdToken": {"idToken": "FLEET", "type": "Central"},
    }
    assert console.parse("reserve tok 2").payload["evseId"] == 2
    cancel = console.parse("cancel 2")
    assert (cancel.action, cancel.payload) == ("CancelReservation", {"reservationId": 2})
    for bad in (
        "reserve",
        "reserve t x",
        "reserve t 1 soon",
        "reserve t 1 2 3",
        "cancel",
        "cancel x",
    ):
        with pytest.raises(ConsoleError):
            console.parse(bad)


def test_console_execute_against_a_station():
    async def body(csms, lines):
        console = Console(csms, timeout=2)
        assert await console.execute("get A B") == "error: no station is connected"
        assert "get <Component>" in await console.execute("help")
        async with connect(station_url(csms), subprotocols=["ocpp2.0.1"]) as ws:
            await csms.wait_station("CS1")

            async def answer(payload):
                call = json.loads(await ws.recv())
                await ws.send(dumps([3, call[1], payload]))
                return call

            task = asyncio.create_task(answer({"status": "Accepted"}))
            assert json.loads(await console.execute("reset OnIdle")) == {"status": "Accepted"}
            assert (await task)[2:] == ["Reset", {"type": "OnIdle"}]
            task = asyncio.create_task(answer({"status": "Bogus"}))
            reply = await console.execute("@CS1 reset")
            assert reply.startswith("error: schema violation")
            await task
            assert (await console.execute("Reset {}")).startswith("error: schema violation")
            assert (await console.execute("Frobnicate {}")).startswith("error: unknown action")
            assert (await console.execute("close 1005")).startswith("error: ")
            assert await console.execute("raw hello") == "sent"
            assert await ws.recv() == "hello"
            assert "CS1: connected" in await console.execute("stations")
            assert await console.execute("quit") == "bye" and console.finished

    run(body)


def test_the_tariff_prices_each_session_from_its_energy_readings():
    from tools.csms import Tariff

    t = Tariff("0.30")

    def event(kind, wh=None, token=False):
        p = {"eventType": kind, "transactionInfo": {"transactionId": "t1"}}
        if wh is not None:
            sv = {"value": wh, "measurand": "Energy.Active.Import.Register"}
            p["meterValue"] = [{"timestamp": "2026-12-06T10:00:00Z", "sampledValue": [sv]}]
        if token:
            p["idToken"] = {"idToken": "A", "type": "ISO14443"}
        return p

    tariff = {"format": "ASCII", "content": "0.30 EUR/kWh"}
    info = t.authorize(None, {})["idTokenInfo"]
    assert info == {"status": "Accepted", "personalMessage": tariff}
    assert t.transaction_event(None, event("Started", 1000.0, True)) == {
        "idTokenInfo": {"status": "Accepted", "personalMessage": tariff},
        "totalCost": 0.0,
    }
    assert t.transaction_event(None, event("Updated")) == {}
    assert t.transaction_event(None, event("Updated", 5125.55)) == {"totalCost": 1.24}
    assert t.transaction_event(None, event("Ended")) == {"totalCost": 1.24}
    assert t.cost("t1") == Decimal("1.24")


def test_console_cost_command():
    console = Console(Csms())
    c = console.parse("cost t-1 12.345")
    assert (c.action, c.payload) == ("CostUpdated", {"totalCost": 12.345, "transactionId": "t-1"})
    for bad in ("cost", "cost t", "cost t x", "cost t nan"):
        with pytest.raises(ConsoleError):
            console.parse(bad)
