# Run by test_ws.py on the MicroPython unix port:
#   micropython mp_ws_client.py LIB PORT TLS_PORT CA STUCK_PORT OTHER_CA BAD_TLS_PORT
# PORT: websockets server; TLS_PORT: websockets echo over TLS for localhost, signed by the CA
# in the DER file CA; STUCK_PORT: a server that completes the handshake and then never reads;
# OTHER_CA: a CA that signed nothing; BAD_TLS_PORT: TLS with a valid certificate for another
# host name.
# Prints one line per check; the test compares them.

import sys

sys.path.insert(0, sys.argv[1])

import asyncio  # noqa: E402
import ssl  # noqa: E402
import time  # noqa: E402

import ws  # noqa: E402

PORT = int(sys.argv[2])
URL = "ws://127.0.0.1:%d/ocpp/MP1" % PORT


def check(cond, name):
    print(name + (" ok" if cond else " FAILED"))


async def session():
    c = await ws.connect(URL, basic_auth=("MP1", "secret"), max_size=200000)
    print("subprotocol", c.subprotocol)
    await c.send("héllo ⚡")
    check(await c.recv() == "héllo ⚡", "echo")
    await c.send("fragments please")
    check(await c.recv() == "fragmented ✓", "fragments")
    await c.send("ping me")
    check(await c.recv() == "pong seen", "server ping")
    await c.ping(b"cli")
    await c.send("after ping")
    check(await c.recv() == "after ping" and c.last_pong is not None, "client ping")
    big = "0123456789abcdé" * 6250  # 100 kB
    await c.send(big)
    check(await c.recv() == big, "100k")
    await c.close()
    check(c.closed, "close")


async def aborted():
    c = await ws.connect(URL)
    task = asyncio.create_task(ending(c.recv()))
    await asyncio.sleep_ms(100)
    t0 = time.ticks_ms()
    c.abort()
    code = await outcome(task)
    check(code == 1006 and time.ticks_diff(time.ticks_ms(), t0) < 500, "abort")


async def too_big():
    c = await ws.connect(URL, max_size=1000)
    await c.send("too big")
    try:
        await c.recv()
        code = None
    except ws.ConnectionClosed as e:
        code = e.code
    check(code == 1009 and c.closed, "too big")


def _tight(*args):
    # bytearray() as on a heap with no 10 kB block left
    if args and type(args[0]) is int and args[0] >= 10000:
        raise MemoryError
    return bytearray(*args)


async def no_room():
    # A message with no room is skipped, its head kept; the connection stays open. Then text
    # that is not UTF-8: recv_bytes() hands it up as it came (MicroPython's str() would have
    # let the overlong through), recv() refuses a stray continuation byte.
    c = await ws.connect(URL, max_size=200000)
    await c.send("no room please")
    got = []
    ws.bytearray = _tight
    try:
        for _ in range(4):
            try:
                got.append(await c.recv())
            except ws.OutOfMemory as e:
                got.append((e.head, e.size))
    finally:
        del ws.bytearray
    want = [(b"x" * 64, 20000), "small", (b"a" * 64, 12100), (b"c" * 64, 12010)]
    check(got == want, "no room")
    got = [await c.recv_bytes()]
    try:
        await c.recv()
    except UnicodeError:
        got.append("UnicodeError")
    got.append(await c.recv())
    check(got == [b'["\xc0\xaf"]', "UnicodeError", "after"] and not c.closed, "not utf-8")
    await c.close()


async def closed_port():
    t0 = time.ticks_ms()
    try:
        await ws.connect("ws://127.0.0.1:1/x", timeout_ms=5000)
        ok = False
    except (OSError, ws.WsError):
        ok = True
    check(ok and time.ticks_diff(time.ticks_ms(), t0) < 1000, "closed port")


def tls_ctx(path):
    with open(path, "rb") as f:
        ca = f.read()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=ca)
    return ctx


async def refused(url, ctx):
    try:
        c = await ws.connect(url, ssl_ctx=ctx)
        c.abort()
        return False
    except OSError:
        return True


async def tls():
    good = tls_ctx(sys.argv[4])
    c = await ws.connect("wss://localhost:%s/ocpp/MP1" % sys.argv[3], ssl_ctx=good)
    await c.send("über TLS")
    ok = await c.recv() == "über TLS"
    await c.close()
    check(ok, "wss")
    wrong = tls_ctx(sys.argv[6])
    check(await refused("wss://localhost:%s/x" % sys.argv[3], wrong), "wss wrong CA")
    check(await refused("wss://localhost:%s/x" % sys.argv[7], good), "wss wrong host")


async def ending(coro):
    # -> how coro ended: its value, or the code of its ConnectionClosed. Tasks made from it
    # never end with an exception (MicroPython reports those when nobody awaits them yet).
    try:
        return await coro
    except ws.ConnectionClosed as e:
        return e.code


async def outcome(task):
    try:
        return await asyncio.wait_for_ms(task, 1000)
    except asyncio.TimeoutError:
        return "hung"


async def stuck_sender():
    # -> (ws, sender task) with the sender parked on a full socket buffer.
    c = await ws.connect("ws://127.0.0.1:%s/ocpp/MP1" % sys.argv[5])
    sent = [0]
    chunk = "x" * 100000

    async def flood():
        while True:
            await c.send(chunk)
            sent[0] += 1

    sender = asyncio.create_task(ending(flood()))
    last = -1
    while sent[0] != last:  # until a send has not finished for 200 ms
        last = sent[0]
        await asyncio.sleep_ms(200)
    return c, sender


async def abort_blocked():
    # abort() wakes both a recv() and a send() parked on the same socket.
    c, sender = await stuck_sender()
    reader = asyncio.create_task(ending(c.recv()))
    await asyncio.sleep_ms(50)
    c.abort()
    got = (await outcome(sender), await outcome(reader))
    check(got == (1006, 1006), "abort blocked")


async def recv_cancel_blocked():
    # A caller's timeout on recv() while a send() is parked: MicroPython's asyncio unregisters
    # the socket for both; ws drops the connection rather than leave the sender hanging.
    c, sender = await stuck_sender()
    try:
        await asyncio.wait_for_ms(c.recv(), 100)
    except asyncio.TimeoutError:
        pass
    check(await outcome(sender) == 1006, "recv cancel with stuck sender")


async def main():
    await session()
    await aborted()
    await too_big()
    await no_room()
    await closed_port()
    await tls()
    await abort_blocked()
    await recv_cancel_blocked()
    print("done")


asyncio.run(main())
