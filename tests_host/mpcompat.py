"""Run MicroPython code under CPython: the few names MicroPython has and CPython lacks.

Installed by conftest.py before any firmware or lib module is imported. Only the test host
uses this; the device and the unix port have the real thing.
"""

import asyncio
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def install():
    for p in (str(ROOT / "lib"), str(ROOT)):
        if p not in sys.path:
            sys.path.insert(0, p)
    if "micropython" not in sys.modules:
        mp = types.ModuleType("micropython")
        mp.const = lambda x: x
        mp.schedule = lambda f, a: f(a)
        mp.alloc_emergency_exception_buf = lambda n: None
        mp.heap_lock = mp.heap_unlock = lambda: 0
        sys.modules["micropython"] = mp
    if not hasattr(time, "ticks_ms"):
        time.ticks_ms = lambda: int(time.monotonic() * 1000)
        time.ticks_diff = lambda a, b: a - b
        time.ticks_add = lambda a, b: a + b
    if not hasattr(asyncio, "sleep_ms"):
        asyncio.sleep_ms = lambda ms: asyncio.sleep(ms / 1000)
        asyncio.wait_for_ms = lambda aw, ms: asyncio.wait_for(aw, ms / 1000)
