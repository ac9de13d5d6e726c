# st7567: the Sitronix ST7567 128 x 64 monochrome LCD controller on a write-only SPI bus (the
# SmartEVSE v3's LCD: no CS line, A0 low for a command, high for display data). MIT licence.
#
# Ours because micropython-lib has drivers for the SSD1306 and a few colour controllers but
# none for the ST7567 (nor for the ST7565 it follows). It keeps micropython-lib ssd1306's
# interface (a framebuf.FrameBuffer with show(), poweroff(), poweron(), contrast()), so that
# boards/drivers/display.py draws on either alike.
#
# The init values are the datasheet's usual ones for a 1/65-duty glass, not measured on a
# SmartEVSE (unconfirmed): bias 1/9, SEG normal with COM reversed (flip: the other way round,
# the 128 columns then start at RAM column 4 of 132), regulation ratio 5.0, electronic volume
# `contrast` (0..63, board data). A pale or dark screen wants another contrast; a mirrored or
# upside-down one wants flip.

import time

import framebuf
from micropython import const

_BIAS_9 = const(0xA2)  # LCD bias 1/9 (0xA3: 1/7)
_SEG_NORMAL = const(0xA0)  # ADC: column 0 drives SEG0 (0xA1: reversed)
_COM_NORMAL = const(0xC0)  # SHL: COM0 first (0xC8: reversed)
_START_LINE = const(0x40)  # display start line 0
_RATIO = const(0x20)  # regulation resistor ratio, | 0..7 (3.0 .. 6.5)
_VOLUME = const(0x81)  # electronic volume, then 0..63
_POWER_ALL = const(0x2F)  # booster, regulator and follower on
_NORMAL = const(0xA6)  # not inverted
_FOLLOW_RAM = const(0xA4)  # not all points on
_DISP_OFF = const(0xAE)
_DISP_ON = const(0xAF)
_PAGE = const(0xB0)  # page address, | 0..7
_COL_HI = const(0x10)  # column address, high nibble
_FLIP_OFFSET = const(4)  # 132 RAM columns: with SEG reversed, the panel's first is RAM col. 4


class ST7567(framebuf.FrameBuffer):
    """The LCD on `spi` (write-only), `a0` (output Pin: 0 command, 1 data) and `rst` (output
    Pin, active low), reset and initialised here, its RAM cleared, then switched on."""

    def __init__(self, spi, a0, rst, width=128, height=64, contrast=32, ratio=4, flip=False):
        self.width = width
        self.height = height
        self.pages = height // 8
        self.buffer = bytearray(self.pages * width)
        super().__init__(self.buffer, width, height, framebuf.MONO_VLSB)
        self._spi = spi
        self._a0 = a0
        self._col = _FLIP_OFFSET if flip else 0
        self._addr = bytearray(3)  # page, column high, column low: reused by show()
        self._cmd1 = bytearray(1)
        mv = memoryview(self.buffer)
        self._rows = tuple(mv[p * width : (p + 1) * width] for p in range(self.pages))
        rst.value(0)  # a hardware reset also brings the serial interface back into step
        time.sleep_ms(1)
        rst.value(1)
        time.sleep_ms(5)
        self.write_cmd(
            bytes(
                (
                    _BIAS_9,
                    _SEG_NORMAL | (1 if flip else 0),
                    _COM_NORMAL | (0 if flip else 8),
                    _START_LINE,
                    _RATIO | (ratio & 7),
                    _VOLUME,
                    contrast & 0x3F,
                    _POWER_ALL,
                    _NORMAL,
                    _FOLLOW_RAM,
                )
            )
        )
        self.fill(0)
        self.show()  # a blank RAM before the display goes on: no power-up noise shown
        self.poweron()

    def write_cmd(self, cmds):
        self._a0.value(0)
        self._spi.write(cmds)

    def _cmd(self, c):
        self._cmd1[0] = c
        self.write_cmd(self._cmd1)

    def show(self):
        """Write the frame buffer to the display RAM, page by page (8 rows each)."""
        addr = self._addr
        addr[1] = _COL_HI | (self._col >> 4)
        addr[2] = self._col & 0x0F
        spi = self._spi
        for p in range(self.pages):
            addr[0] = _PAGE | p
            self.write_cmd(addr)
            self._a0.value(1)
            spi.write(self._rows[p])

    def poweroff(self):
        self._cmd(_DISP_OFF)

    def poweron(self):
        self._cmd(_DISP_ON)

    def contrast(self, contrast):
        self._cmd(_VOLUME)
        self._cmd(contrast & 0x3F)
