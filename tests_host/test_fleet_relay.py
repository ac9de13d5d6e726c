"""The fleet's WebSocket relay (tools/fleet.py Relay) between a client standing in for a station
and the development CSMS: frames forwarded unchanged both ways and booked, the identity, the
subprotocol and the Authorization header passed on, a refusal passed back, closes and drops
passed on, wss:// upstream with a CA file."""

import asyncio
import base64
import json

import pytest
import websockets
from tls_certs import make_pki
from websockets.asyncio.client import connect

from tools.csms import Csms
from tools.fleet import Book, Relay


def basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


async def relayed(csms, ca_file=None):
    book = Book(heartbeat_s=10, updated_s=10)
    relay = Relay(csms.url, book, ca_file)
    await relay.start()
    return relay, book


async def until(pred, timeout=5):
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.01)


def test_frames_go_through_unchanged_and_are_booked():
    async def main():
        async with Csms(passwords={"ST 1": "secret"}) as csms:
            relay, book = await relayed(csms)
            try:
                url = relay.url + "/ST%201"
                auth = {"Authorization": basic("ST 1", "secret")}
                async with connect(url, subprotocols=["ocpp2.0.1"], additional_headers=auth) as ws:
                    assert ws.subprotocol == "ocpp2.0.1"
                    boot = {
                        "reason": "PowerUp",
                        "chargingStation": {"model": "M", "vendorName": "V"},
                    }
                    # spacing as a station might send it: forwarded as is
                    text = '[2, "b1", "BootNotification", %s]' % json.dumps(boot)
                    await ws.send(text)
                    answer = json.loads(await ws.recv())
                    assert answer[:2] == [3, "b1"] and answer[2]["status"] == "Accepted"
                    station = await csms.wait_station("ST 1")
                    assert station.frames[0].raw == text
                    assert station.subprotocol == "ocpp2.0.1"
                    assert station.headers["Authorization"] == auth["Authorization"]
                    await ws.send('[2, "h1", "Heartbeat", {}]')
                    await ws.recv()
                    # the CSMS's CALL reaches the station; the station's CALLERROR the CSMS
                    call = asyncio.ensure_future(station.call("GetVariables", {"x": 1}, 5, False))
                    got = json.loads(await ws.recv())
                    assert got[0] == 2 and got[2] == "GetVariables" and got[3] == {"x": 1}
                    await ws.send(json.dumps([4, got[1], "NotImplemented", "", {}]))
                    with pytest.raises(Exception, match="NotImplemented"):
                        await call
                assert book.stations["ST 1"].accepted
                assert len(book.answers) == 2 and all(0 <= a < 1 for a in book.answers)
                assert (book.errors_csms, book.errors_station) == (0, 1)
                assert book.frames == 6
                await until(lambda: not station.connected)
                assert station.close_code == 1000  # the station's close, passed on
            finally:
                await relay.stop()

    asyncio.run(main())


def test_a_refusal_of_the_csms_is_passed_back():
    async def main():
        async with Csms(passwords={"ST1": "secret"}) as csms:
            relay, book = await relayed(csms)
            try:
                auth = {"Authorization": basic("ST1", "wrong")}
                with pytest.raises(websockets.InvalidStatus) as e:
                    await connect(
                        relay.url + "/ST1", subprotocols=["ocpp2.0.1"], additional_headers=auth
                    )
                assert e.value.response.status_code == 401
                assert relay.refused == {"HTTP 401": 1}
                assert "ST1" not in book.stations
            finally:
                await relay.stop()

    asyncio.run(main())


def test_a_drop_is_passed_on_as_a_drop_and_the_csms_closing_reaches_the_station():
    async def main():
        async with Csms() as csms:
            relay, book = await relayed(csms)
            try:
                ws = await connect(relay.url + "/ST1", subprotocols=["ocpp2.0.1"])
                station = await csms.wait_station("ST1")
                ws.transport.abort()  # the network goes away: no close frame
                await until(lambda: not station.connected)
                assert station.close_code == 1006
                assert not book.stations["ST1"].connected
                ws = await connect(relay.url + "/ST1", subprotocols=["ocpp2.0.1"])
                await until(lambda: csms.stations["ST1"] is not station)
                await csms.stations["ST1"].close(4000, "go away")
                with pytest.raises(websockets.ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 5)
                assert (ws.close_code, ws.close_reason) == (4000, "go away")
                assert book.stations["ST1"].connections == 2
            finally:
                await relay.stop()

    asyncio.run(main())


def test_wss_upstream_with_a_ca_file(tmp_path):
    pki = make_pki(tmp_path)

    async def main():
        async with Csms(certfile=pki.server, keyfile=pki.server_key) as csms:
            assert csms.url.startswith("wss://")
            relay, book = await relayed(csms, ca_file=str(pki.ca))
            try:
                async with connect(relay.url + "/ST1", subprotocols=["ocpp2.0.1"]) as ws:
                    await ws.send('[2, "h1", "Heartbeat", {}]')
                    assert json.loads(await ws.recv())[:2] == [3, "h1"]
                station = csms.stations["ST1"]
                assert station.tls_version is not None
            finally:
                await relay.stop()

    asyncio.run(main())


def test_a_station_gone_during_the_handshake_leaves_no_connection_to_the_csms(monkeypatch):
    from tools import fleet

    async def slow_connect(*args, **kw):
        up = await connect(*args, **kw)
        await asyncio.sleep(0.3)  # the station gives up meanwhile
        return up

    monkeypatch.setattr(fleet, "connect", slow_connect)

    async def main():
        async with Csms() as csms:
            relay, book = await relayed(csms)
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
                writer.write(
                    b"GET /fleet/ST1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ocpp2.0.1\r\n\r\n"
                )
                await writer.drain()
                station = await csms.wait_station("ST1")  # the relay's connection to the CSMS
                writer.transport.abort()
                await station.wait_closed(5)
                await until(lambda: not relay._ups)
                assert "ST1" not in book.stations  # never served
            finally:
                await relay.stop()

    asyncio.run(main())
