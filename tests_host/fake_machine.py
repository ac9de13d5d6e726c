"""A fake `machine` (and `esp32`) module for host tests of drivers and boards.

Install with `fake_machine.install()` before importing a board; each fake records what the code
under test did (pin levels, PWM duty, UART bytes) and lets the test script what it reads.
"""

import sys
import types


class Pin:
    IN, OUT, OPEN_DRAIN = 1, 3, 7
    PULL_UP, PULL_DOWN = 2, 1
    IRQ_RISING, IRQ_FALLING = 1, 2

    def __init__(self, id, mode=-1, pull=None, value=None):
        self.id = id
        self.mode = mode
        self.pull = pull
        self._value = 0 if value is None else value
        self.history = []  # every level written, in order
        self.handler = None
        self.trigger = None

    def value(self, v=None):
        if v is None:
            return self._value
        self._value = 1 if v else 0
        self.history.append(self._value)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    __call__ = value

    def irq(self, handler=None, trigger=None, hard=False):
        self.handler, self.trigger = handler, trigger

    def fire(self):
        """The test raises an edge: call the IRQ handler as MicroPython would."""
        if self.handler:
            self.handler(self)


class PWM:
    def __init__(self, pin, freq=0, duty_u16=None, invert=False):
        self.pin = pin
        self._freq = freq
        self._duty = duty_u16
        self.invert = invert
        self.history = []  # every duty_u16 set, in order

    def freq(self, f=None):
        if f is None:
            return self._freq
        self._freq = f

    def duty_u16(self, d=None):
        if d is None:
            return self._duty
        self._duty = d
        self.history.append(d)

    def deinit(self):
        self._duty = None


class ADC:
    ATTN_0DB, ATTN_2_5DB, ATTN_6DB, ATTN_11DB = 0, 1, 2, 3

    def __init__(self, pin, atten=None):
        self.pin = pin
        self.atten = atten
        self.samples = [0]  # read_u16 cycles through these (set by the test)
        self._i = 0

    def read_u16(self):
        v = self.samples[self._i % len(self.samples)]
        self._i += 1
        return v

    def read_uv(self):
        return self.read_u16() * 3300000 // 65535


class UART:
    def __init__(self, id, baudrate=9600, bits=8, parity=None, stop=1, **kw):
        self.id = id
        self.baudrate = baudrate
        self.bits, self.parity, self.stop = bits, parity, stop
        self.kw = kw
        self.written = bytearray()  # everything the code sent
        self.rx = bytearray()  # what the code will read next (the test appends replies)
        self.on_write = None  # optional callback(bytes) -> bytes to queue as the reply

    def write(self, b):
        self.written.extend(b)
        if self.on_write:
            self.rx.extend(self.on_write(bytes(b)))
        return len(b)

    def any(self):
        return len(self.rx)

    def read(self, n=-1):
        if not self.rx:
            return None
        n = len(self.rx) if n is None or n < 0 else min(n, len(self.rx))
        out = bytes(self.rx[:n])
        del self.rx[:n]
        return out

    def readinto(self, buf, n=None):
        data = self.read(len(buf) if n is None else n)
        if not data:
            return None
        buf[: len(data)] = data
        return len(data)

    def txdone(self):
        return True

    def flush(self):
        pass


class I2C:
    """A hardware I2C bus: records every write as (addr, bytes). A write to an address in
    `absent` (a test sets it, on the class for buses the code makes) raises OSError 19
    (ENODEV), as when no device acknowledges."""

    absent = frozenset()

    def __init__(self, id=-1, scl=None, sda=None, freq=400000, **kw):
        self.id, self.scl, self.sda, self.freq, self.kw = id, scl, sda, freq, kw
        self.written = []

    def writeto(self, addr, buf, stop=True):
        if addr in self.absent:
            raise OSError(19)
        self.written.append((addr, bytes(buf)))
        return len(buf)

    def writevto(self, addr, bufs, stop=True):
        return self.writeto(addr, b"".join(bytes(b) for b in bufs), stop)


class SoftI2C(I2C):
    def __init__(self, scl=None, sda=None, freq=400000, **kw):
        super().__init__(-1, scl, sda, freq, **kw)


class SPI:
    """A hardware SPI bus: records every write (bytes) in `written`."""

    def __init__(self, id, baudrate=500000, **kw):
        self.id, self.baudrate, self.kw = id, baudrate, kw
        self.written = []

    def write(self, buf):
        self.written.append(bytes(buf))


class WDT:
    instances = []

    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout
        self.feeds = 0
        WDT.instances.append(self)

    def feed(self):
        self.feeds += 1


resets = []


def reset():
    resets.append(True)
    raise SystemExit("machine.reset()")


def install():
    """Put fake `machine` and `esp32` modules into sys.modules; returns the machine module."""
    m = types.ModuleType("machine")
    for name in ("Pin", "PWM", "ADC", "UART", "I2C", "SoftI2C", "SPI", "WDT", "reset"):
        setattr(m, name, globals()[name])
    m.resets = resets
    sys.modules["machine"] = m
    e = types.ModuleType("esp32")
    sys.modules["esp32"] = e
    return m
