# Stress test run by test_ws_abort.py on the MicroPython unix port:
#   micropython mp_ws_abort.py LIB PORT [ROUNDS [SEED]]
# Ends WebSocket connections (abort(), close(), a protocol violation of the server) while
# reads, writes and wait_for()s are in flight, at many timings, and checks that every task
# hears of it as ConnectionClosed and nothing else: in particular that no CancelledError
# reaches a task that nobody cancelled, later, in whatever it awaits next (the way a
# connection loop sleeping before it reconnects would die). A local server on PORT plays the
# CSMS: it sends frames whole and in pieces, pings, stops reading, breaks the protocol.
# It runs three fixed cases first, each aborted after 60 ms: recv() waiting in wait_for()
# inside a frame, a failed connection waiting for the server's close frame, close() doing the
# same; each prints "<case> ok" (or FAILED). Then ROUNDS random ones. Prints one
# "stray ...", "hung ..." or "... failed" line per problem, then how often an abort caught the
# connection inside a frame, in a drain() and closing ("covered ..."), then
# "rounds N problems M".

import sys

sys.path.insert(0, sys.argv[1])

import asyncio  # noqa: E402
import binascii  # noqa: E402
import hashlib  # noqa: E402
import struct  # noqa: E402

import ws  # noqa: E402

PORT = int(sys.argv[2])
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 400
SEED = int(sys.argv[4]) if len(sys.argv) > 4 else 1
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SCENARIOS = ("frames", "stuck", "fail", "close", "server_close")
FIXED = ("midframe", "fail", "close")

problems = []
covered = {"mid": 0, "drain": 0, "closing": 0}
plan = {"scenario": "frames"}  # what the server does with the next connection


class Rng:
    # Seeded: a run can be repeated with the same choices (the timings still vary).
    def __init__(self, seed):
        self.x = seed & 0x7FFFFFFF or 1

    def below(self, n):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.x >> 8) % n


rng = Rng(SEED)


def problem(text):
    problems.append(text)
    print(text)


# ---- the server


def frame(op, payload, fin=True, rsv=0):
    n = len(payload)
    b0 = (0x80 if fin else 0) | rsv | op
    if n < 126:
        return bytes([b0, n]) + payload
    return bytes([b0, 126]) + struct.pack(">H", n) + payload


async def handshake(r, w):
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        b = await r.read(1)
        if not b:
            raise EOFError
        head += b
    key = b""
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"sec-websocket-key:"):
            key = line.split(b":", 1)[1].strip()
    accept = binascii.b2a_base64(hashlib.sha1(key + GUID).digest())[:-1]
    w.write(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Protocol: ocpp2.0.1\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )
    await w.drain()


async def drain_client(r):
    try:
        while await r.read(4096):
            pass
    except OSError:
        pass  # the client reset the connection


async def send_pieces(w, data, rnd):
    # The frame whole, or in two or three pieces with pauses: the client then waits inside
    # a frame, in ws's wait_for(), for the rest.
    if rnd.below(3) == 0:
        w.write(data)
        await w.drain()
        return
    cut = 1 + rnd.below(len(data) - 1)
    w.write(data[:cut])
    await w.drain()
    await asyncio.sleep_ms(rnd.below(3))
    w.write(data[cut:])
    await w.drain()


async def serve(r, w):
    scenario = plan["scenario"]
    rnd = Rng(plan["seed"])
    reader = None
    try:
        await handshake(r, w)
        if scenario != "stuck":
            reader = asyncio.create_task(drain_client(r))
        n = 0
        while True:
            n += 1
            k = rnd.below(8)
            if scenario == "midframe":
                w.write(frame(1, b"x" * 300)[:3])  # a frame begins, the rest never comes
                await w.drain()
                await asyncio.sleep_ms(5000)
            elif scenario == "fail" and n == 3:
                # RSV bits set: the client fails the connection and waits (up to 2 s) for
                # our close frame, which never comes.
                await send_pieces(w, frame(1, b"bad", rsv=0x40), rnd)
                await asyncio.sleep_ms(5000)
            elif scenario == "server_close" and n == 3:
                await send_pieces(w, frame(8, struct.pack(">H", 1000)), rnd)
                await asyncio.sleep_ms(5000)
            elif k == 0:
                await send_pieces(w, frame(9, b"srv"), rnd)
            elif k == 1:
                await send_pieces(w, frame(1, b"y" * (200 + rnd.below(3000))), rnd)
            else:
                await send_pieces(w, frame(1, b"msg %d" % n), rnd)
            await asyncio.sleep_ms(rnd.below(3))
    except Exception:
        pass  # the client went away
    finally:
        if reader is not None:
            reader.cancel()
        w.s.close()


# ---- the client


async def settle(name):
    # A task that was not cancelled by anyone awaits something else after the connection
    # ended, as the station's connection loop sleeps before it reconnects: a CancelledError
    # meant for the connection must not land here.
    try:
        await asyncio.sleep_ms(15)
        await asyncio.sleep_ms(0)
    except asyncio.CancelledError:
        problem("stray CancelledError in %s after the connection ended (%s)" % (name, plan))


async def sender(c, big):
    # Like the station's senders: CALLs, some big enough to park a drain on a full socket.
    n = 0
    try:
        while True:
            n += 1
            await c.send("x" * 30000 if big and n % 2 else "call %d" % n)
            await asyncio.sleep_ms(rng.below(3))
    except ws.ConnectionClosed:
        pass
    await settle("sender")


async def caller(c):
    # Like ocppj.Session.call(): waits for an answer in wait_for(), pings in between.
    ev = asyncio.Event()
    try:
        while not c.closed:
            try:
                await asyncio.wait_for_ms(ev.wait(), 1 + rng.below(4))
            except asyncio.TimeoutError:
                pass
            await c.ping(b"cli")
    except ws.ConnectionClosed:
        pass
    await settle("caller")


async def receiver(c):
    try:
        while True:
            await c.recv()
    except ws.ConnectionClosed:
        pass


async def closer(c):
    # close() from a task of its own; without a recv() running, close() reads the server's
    # answer itself.
    await asyncio.sleep_ms(rng.below(4))
    await c.close()
    await settle("closer")


async def one_round(i, scenario, delay, yields, with_recv):
    plan["scenario"] = scenario
    plan["seed"] = rng.below(1 << 30)
    plan["round"] = i
    c = await ws.connect("ws://127.0.0.1:%d/ocpp/S" % PORT)
    helpers = [asyncio.create_task(sender(c, scenario == "stuck"))]
    helpers.append(asyncio.create_task(caller(c)))
    if scenario == "close":
        helpers.append(asyncio.create_task(closer(c)))
    # The connection loop: this task reads until the connection ends, like ocppj.Session.run
    # in firmware/connection.py, while another task aborts the connection after `delay` ms
    # and `yields` turns of the loop.

    async def abort_later():
        await asyncio.sleep_ms(delay)
        for _ in range(yields):
            await asyncio.sleep_ms(0)
        # What the abort interrupts (private state, so that the test can tell it still
        # reaches the timings that matter).
        covered["mid"] += c._mid and not c.closed
        covered["drain"] += c._wtask is not None
        covered["closing"] += c._state == 1
        c.abort()

    killer = asyncio.create_task(abort_later())
    if with_recv:
        await receiver(c)
    else:
        while not c.closed:
            await asyncio.sleep_ms(1)
    await settle("the connection loop")  # its back-off sleep before reconnecting
    for t in helpers + [killer]:
        try:
            await asyncio.wait_for_ms(t, 3000)
        except asyncio.TimeoutError:
            problem("hung task in round %d (%s)" % (i, plan))


async def round_checked(i, scenario, delay, yields, with_recv):
    try:
        await asyncio.wait_for_ms(one_round(i, scenario, delay, yields, with_recv), 5000)
    except asyncio.TimeoutError:
        problem("hung round %d (%s)" % (i, plan))
    except Exception as e:
        problem("round %d failed: %r (%s)" % (i, e, plan))
    except asyncio.CancelledError:
        problem("stray CancelledError in round %d (%s)" % (i, plan))


async def main():
    srv = await asyncio.start_server(serve, "127.0.0.1", PORT)
    for i, scenario in enumerate(FIXED):
        before = len(problems)
        await round_checked(-1 - i, scenario, 60, 0, scenario != "close")
        print(scenario + (" ok" if len(problems) == before else " FAILED"))
    for i in range(ROUNDS):
        scenario = SCENARIOS[i % len(SCENARIOS)]
        with_recv = scenario != "close" or rng.below(2)
        await round_checked(i, scenario, rng.below(25), rng.below(6), with_recv)
    srv.close()
    print("covered mid %(mid)d drain %(drain)d closing %(closing)d" % covered)
    print("rounds %d problems %d" % (ROUNDS, len(problems)))


asyncio.run(main())
