"""Stand-ins for the display controllers' drivers under CPython, which has no framebuf:
micropython-lib's `ssd1306` and boards/drivers/st7567.py. Each records what it was built with
and every call a display driver makes; the real ones are tested on MicroPython
(test_display_drivers.py).

`install(monkeypatch)` puts both into sys.modules for one test."""

import sys
import types


class _Fb:
    def __init__(self, width, height):
        self.width, self.height = width, height
        self.calls = []  # (name, args) in order: fill, text, fill_rect, show, poweroff, poweron

    def _record(name):
        def method(self, *args):
            self.calls.append((name, args))

        return method

    fill = _record("fill")
    text = _record("text")
    fill_rect = _record("fill_rect")
    show = _record("show")
    poweroff = _record("poweroff")
    poweron = _record("poweron")


class SSD1306_I2C(_Fb):
    """As micropython-lib's: its init writes to the bus at once (OSError without a device)."""

    def __init__(self, width, height, i2c, addr=0x3C, external_vcc=False):
        super().__init__(width, height)
        self.i2c, self.addr = i2c, addr
        i2c.writeto(addr, b"\x80\xae")  # the first of its init commands: display off


class ST7567(_Fb):
    def __init__(self, spi, a0, rst, width=128, height=64, contrast=32, ratio=4, flip=False):
        super().__init__(width, height)
        self.spi, self.a0, self.rst = spi, a0, rst
        self.contrast, self.ratio, self.flip = contrast, ratio, flip


def install(monkeypatch):
    ssd = types.ModuleType("ssd1306")
    ssd.SSD1306_I2C = SSD1306_I2C
    st = types.ModuleType("boards.drivers.st7567")
    st.ST7567 = ST7567
    monkeypatch.setitem(sys.modules, "ssd1306", ssd)
    monkeypatch.setitem(sys.modules, "boards.drivers.st7567", st)
