# display: the display driver of firmware/display.py (cols, rows, pixels, show(lines, qr)) on a
# pixel display that draws through framebuf: micropython-lib's ssd1306 (128 x 64 OLED, I2C) or
# boards/drivers/st7567.py (128 x 64 LCD, SPI). MIT licence.
#
# Text in framebuf's 8 x 8 font: 16 columns x 8 rows on 128 x 64. A QR code goes at the left
# edge with a one-module quiet zone each side, as large as whole pixels per module let it,
# vertically centred; the lines go in the character columns right of it. On an OLED a lit
# pixel is light, so there the quiet zone is lit and dark modules are not (scanners want dark
# modules on light); on an LCD a set pixel is dark.


class Display:
    """The driver on `dev`: a framebuf.FrameBuffer subclass with width, height, show() (push
    the whole buffer), poweroff(), poweron(), whose buffer is the one frame reused for every
    screen. `lit_is_light`: True for an OLED. `backlight`: an output Pin or None."""

    pixels = True

    def __init__(self, dev, lit_is_light, backlight=None, backlight_on=1):
        self._dev = dev
        self._w = dev.width
        self._h = dev.height
        self.cols = dev.width // 8
        self.rows = dev.height // 8
        self._dark = 0 if lit_is_light else 1  # the colour of a dark QR module
        self._bl = backlight
        self._bl_on = 1 if backlight_on else 0
        if backlight is not None:
            backlight.value(self._bl_on)  # the controller is on after its init

    def show(self, lines, qr=None):
        """Draw `lines` (at most rows; each cut to the columns; characters outside printable
        ASCII as '?'), right of `qr` when given, and push the frame. A QR code too large for
        the height raises ValueError before anything is drawn."""
        fb = self._dev
        x0 = 0
        if qr is not None:
            n = qr.size + 2  # with the quiet zone
            s = self._h // n
            if s < 1:
                raise ValueError("QR code of %d modules: over %d pixels" % (qr.size, self._h))
        fb.fill(0)
        if qr is not None:
            x0 = self._qr(qr, n, s)
        cols = (self._w - x0) >> 3
        for row in range(min(len(lines), self.rows)):
            x = x0
            left = cols
            y = row << 3
            # One glyph at a time: no cut or cleaned copy of the line is made.
            for c in lines[row]:
                if not left:
                    break
                fb.text(c if " " <= c <= "~" else "?", x, y, 1)
                x += 8
                left -= 1
        fb.show()

    def _qr(self, qr, n, s):
        """Draw `qr` (n modules with the quiet zone, s pixels each) at the left edge; the x of
        the first character column right of it."""
        fb = self._dev
        side = n * s
        y0 = (self._h - side) >> 1
        dark = self._dark
        if not dark:
            fb.fill_rect(0, y0, side, side, 1)  # light ground, quiet zone included
        size = qr.size
        for y in range(size):
            py = y0 + (y + 1) * s
            for x in range(size):
                if qr.get(x, y):
                    fb.fill_rect((x + 1) * s, py, s, s, dark)
        return (side + 7) & ~7

    def off(self):
        """Display (and backlight) off; show() still draws, on() shows it again."""
        if self._bl is not None:
            self._bl.value(1 - self._bl_on)
        self._dev.poweroff()

    def on(self):
        self._dev.poweron()
        if self._bl is not None:
            self._bl.value(self._bl_on)
