"""Connection life pieces that the end-to-end tests cannot provoke: the ping watchdog."""

import asyncio
import time

import ocppj
from firmware.connection import Connection
from firmware.device_model import DeviceModel
from firmware.variables import VARIABLES
from store import Store


class FakeSock:
    def __init__(self, answer_pings):
        self.answer_pings = answer_pings
        self.pings = 0
        self.last_pong = None
        self.aborted = False

    async def ping(self):
        self.pings += 1
        if self.answer_pings:
            self.last_pong = time.ticks_ms()

    def abort(self):
        self.aborted = True


class FakeStation:
    def __init__(self, tmp_path, ping_s):
        ping = {
            "component": {"name": "OCPPCommCtrlr"},
            "variable": {"name": "WebSocketPingInterval"},
            "attributeValue": str(ping_s),
        }
        self.tmp_path = tmp_path
        self.dm = DeviceModel(Store(str(tmp_path)), VARIABLES, (), [ping])
        self.router = ocppj.Router()
        self.session = ocppj.Session(self.router, lambda: "x", 1)
        self.board = None

    def link(self):
        store = Store(str(self.tmp_path))
        return Connection(None, self.dm, self.session, store, None, None, "PowerUp")


def run_pinger(tmp_path, answer_pings, seconds):
    async def go():
        conn = FakeStation(tmp_path, 1).link()
        sock = FakeSock(answer_pings)
        task = asyncio.create_task(conn._pinger(sock))
        await asyncio.sleep(seconds)
        done = task.done()
        task.cancel()
        return sock, done

    return asyncio.run(go())


def test_pings_every_interval_while_pongs_come(tmp_path):
    sock, done = run_pinger(tmp_path, True, 3.5)
    assert sock.pings == 3 and not sock.aborted and not done


def test_no_pong_by_the_next_ping_drops_the_link(tmp_path):
    sock, done = run_pinger(tmp_path, False, 2.5)
    assert sock.pings == 1 and sock.aborted and done


def test_interval_zero_sends_no_pings_and_a_change_takes_effect(tmp_path):
    async def go():
        station = FakeStation(tmp_path, 0)
        conn = station.link()
        sock = FakeSock(True)
        task = asyncio.create_task(conn._pinger(sock))
        await asyncio.sleep(1.2)
        before = sock.pings
        station.dm.set("OCPPCommCtrlr/WebSocketPingInterval", "1")
        await asyncio.sleep(1.3)
        task.cancel()
        return before, sock.pings

    assert asyncio.run(go()) == (0, 1)
