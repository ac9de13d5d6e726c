# memprobe: measurement only (make bench, WALLBOX_SIM_PROBE=1 tools/wallbox-sim --esp32): runs
# the virtual wallbox with the GC heap in its `status` reply. Not firmware, never frozen.
# MIT licence.
#
#   heap_alloc  bytes in use right after a collection (the live heap now)
#   heap_peak   the most bytes in use after a collection seen by a sampler task that collects
#               and reads every _SAMPLE_MS: the live heap's peak, short of what lives less
#               than a sample's gap (and the garbage a running GC would reclaim)
#   heap_free   bytes free right after that collection
#
# {"cmd":"heap_reset"} starts the peak again from the live heap now.
#
# The sampler costs a collection every 20 ms: a heavier GC load than the firmware's own, so
# timings under the probe are not the firmware's.

import asyncio
import gc

from micropython import const

import boards.sim.control as _control
import firmware.main as _main

_SAMPLE_MS = const(20)
_peak = [0]


def _status(self, _orig=_control.Control.status):
    d = _orig(self)
    gc.collect()
    alloc = gc.mem_alloc()
    _peak[0] = max(_peak[0], alloc)
    d["heap_alloc"] = alloc
    d["heap_free"] = gc.mem_free()
    d["heap_peak"] = _peak[0]
    return d


async def _dispatch(self, cmd, _orig=_control.Control.dispatch):
    # {"cmd":"heap_reset"}: the peak starts again from the live heap now (a step's own peak)
    if cmd.get("cmd") == "heap_reset":
        gc.collect()
        _peak[0] = gc.mem_alloc()
        return {"ok": True}
    return await _orig(self, cmd)


async def _sampler():
    while True:
        gc.collect()
        a = gc.mem_alloc()
        if a > _peak[0]:
            _peak[0] = a
        await asyncio.sleep_ms(_SAMPLE_MS)


def _run(board):
    _main._gc_often()  # as main.run does

    async def station_and_sampler():
        task = asyncio.create_task(_sampler())
        try:
            await _main.Station(board).run()
        finally:
            task.cancel()

    asyncio.run(station_and_sampler())


_control.Control.status = _status
_control.Control.dispatch = _dispatch
_main.run = _run
import boards.sim.run  # noqa: E402, F401  (starts the firmware)
