# Run by test_upload.py on the MicroPython unix port:
#   micropython mp_upload.py LIB KIND URL SIZE [CA]
# KIND: PUT or POST (httpc.upload) or FTP (ftpc.stor); HEAP-PUT, HEAP-POST, HEAP-FTP do the
# same and print the live heap the transfer needed. The body is bytes i & 0xFF (i = 0..SIZE-1)
# from one reused 1000-byte buffer. CA: a DER file to check an https:// server against.
# Prints "ok STATUS MS", or "error CLASS STATUS MS" (STATUS None when the error has none).

import sys

sys.path.insert(0, sys.argv[1])

import asyncio  # noqa: E402
import gc  # noqa: E402
import time  # noqa: E402

import ftpc  # noqa: E402
import httpc  # noqa: E402

KIND, URL, SIZE = sys.argv[2], sys.argv[3], int(sys.argv[4])
HEAP = KIND.startswith("HEAP-")
METHOD = KIND[5:] if HEAP else KIND
BUF = bytearray(1000)
peak = [0, 0]  # live bytes above the start (gc.collect() first), bytes allocated in all


def pieces():
    mv = memoryview(BUF)
    for i in range(0, SIZE, len(BUF)):
        n = min(len(BUF), SIZE - i)
        for k in range(n):
            BUF[k] = (i + k) & 0xFF
        if HEAP:
            peak[1] = max(peak[1], gc.mem_alloc() - base)
            gc.collect()
            peak[0] = max(peak[0], gc.mem_alloc() - base)
        yield mv[:n]


async def main():
    ctx = None
    if len(sys.argv) > 5:
        import ssl

        with open(sys.argv[5], "rb") as f:
            ca = f.read()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cadata=ca)
    t = time.ticks_ms()
    try:
        if METHOD == "FTP":
            await ftpc.stor(URL, SIZE, pieces, timeout_ms=3000)
            status = 226
        else:
            status = await httpc.upload(URL, SIZE, pieces, METHOD, ctx, 3000, "wallbox.log")
    except Exception as e:
        ms = time.ticks_diff(time.ticks_ms(), t)
        print("error", type(e).__name__, getattr(e, "status", None), ms)
        return
    print("ok", status, time.ticks_diff(time.ticks_ms(), t))


gc.collect()
base = gc.mem_alloc()
asyncio.run(main())
if HEAP:
    print("heap", peak[0], peak[1])
