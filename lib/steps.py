# steps: long computations as generators, run at once or in turns with other asyncio tasks.
# MIT licence. Ours because no maintained MicroPython package splits CPU-bound work for asyncio.
#
# A signature check takes hundreds of milliseconds on an ESP32, far longer than the safety
# loop may wait. So the crypto modules write such work as a generator that yields (None)
# where it may pause and returns its result; `yield from` chains them.
#
#   run(gen)               drive gen to its end at once; its return value
#   await run_async(gen)   the same, letting the other tasks run at every pause

import asyncio


def run(gen):
    try:
        while True:
            next(gen)
    except StopIteration as e:
        return e.value


async def run_async(gen):
    try:
        while True:
            next(gen)
            await asyncio.sleep_ms(0)
    except StopIteration as e:
        return e.value
