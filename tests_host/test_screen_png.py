"""tools/screen_png.py: the docs' pictures of the display, drawn by the real driver on the
MicroPython unix port."""

import struct
import zlib

from tools import screen_png


def test_a_screen_becomes_a_png_of_the_frame_the_driver_drew(tmp_path):
    buf = screen_png.frame(["A"])
    assert len(buf) == 1024
    # framebuf's 8x8 "A" in the first column bytes, nothing beyond the first glyph.
    assert any(buf[:8]) and not any(buf[8:128]) and not any(buf[128:])
    out = tmp_path / "s.png"
    screen_png.png(buf, out)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", data[16:24])
    assert (w, h) == (512, 256)
    idat = data.index(b"IDAT")
    n = struct.unpack(">I", data[idat - 4 : idat])[0]
    pixels = zlib.decompress(data[idat + 4 : idat + 4 + n])
    assert len(pixels) == 256 * (512 + 1)


def test_a_qr_screen_is_drawn_at_the_left(tmp_path):
    buf = screen_png.frame([], "https://x.example")
    assert any(buf[:64]) and not any(buf[100:128])
