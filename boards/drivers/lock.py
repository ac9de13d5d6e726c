# lock: the socket's motor-driven cable lock (two outputs driving an H-bridge, SmartEVSE style)
# with an optional position switch. MIT licence.

import asyncio

from micropython import const

_CONFIRM_MS = const(500)  # after the pulse, how long the position switch may take to agree
_POLL_MS = const(20)


class Lock:
    """A motor lock: lock() drives a=1, b=0 for pulse_ms, unlock() a=0, b=1, then both 0.

    a, b          output Pins of the motor driver
    feedback      input Pin of the lock's position switch, or None
    locked_value  the switch's value when locked
    pulse_ms      how long the motor runs per movement

    lock() / unlock() return True when the switch confirms the new position within
    _CONFIRM_MS after the pulse (without a switch: always True). locked is the switch's
    reading when there is one, else the last command. A cancelled movement still stops the
    motor (finally). Movements never overlap: a second call waits for the first.
    """

    def __init__(self, a, b, feedback=None, locked_value=1, pulse_ms=300):
        self._a = a
        self._b = b
        self._fb = feedback
        self._locked_value = 1 if locked_value else 0
        self._pulse_ms = pulse_ms
        self._commanded = False  # the last movement asked for: True locked
        self._busy = asyncio.Lock()
        a.value(0)
        b.value(0)

    @property
    def locked(self):
        if self._fb is None:
            return self._commanded
        return self._fb.value() == self._locked_value

    async def lock(self):
        return await self._move(True)

    async def unlock(self):
        return await self._move(False)

    async def _move(self, lock):
        async with self._busy:
            self._commanded = lock
            try:
                (self._a if lock else self._b).value(1)
                await asyncio.sleep_ms(self._pulse_ms)
            finally:
                self._a.value(0)
                self._b.value(0)
            if self._fb is None:
                return True
            waited = 0
            while self.locked != lock:
                if waited >= _CONFIRM_MS:
                    return False
                await asyncio.sleep_ms(_POLL_MS)
                waited += _POLL_MS
            return True
