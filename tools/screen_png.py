# screen_png: pictures of the station's 128 x 64 display for the docs, drawn by the real
# display driver (boards/drivers/display.py) with framebuf on the MicroPython unix port and
# written as PNG files here. MIT licence.
"""Usage: .venv/bin/python tools/screen_png.py OUT.png LINE [LINE ...]
          .venv/bin/python tools/screen_png.py --qr URI OUT.png [LINE ...]

Draws the lines (and a QR code of URI) as the SSD1306 OLED shows them, 4x enlarged, light
pixels on black."""

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"
W, H = 128, 64
SCALE = 4

# Runs on MicroPython: the driver draws into a FrameBuffer whose show() prints the frame.
SCRIPT = r"""
import sys, json, framebuf
sys.path[:0] = ["ROOT", "ROOT/lib"]
from boards.drivers.display import Display

class Screen(framebuf.FrameBuffer):
    def __init__(self):
        self.width, self.height = 128, 64
        self.buf = bytearray(128 * 64 // 8)
        super().__init__(self.buf, 128, 64, framebuf.MONO_VLSB)
    def show(self):
        print(self.buf.hex())

args = json.loads(sys.argv[1])
qr = None
if args["qr"]:
    from qr import encode
    qr = encode(args["qr"])
Display(Screen(), True).show(args["lines"], qr)
"""


def frame(lines, qr=None):
    """The 1024 bytes of the frame (MONO_VLSB: a byte is 8 pixels down a column)."""
    script = SCRIPT.replace("ROOT", str(ROOT))
    arg = json.dumps({"lines": lines, "qr": qr})
    out = subprocess.run(
        [str(MICROPYTHON), "-c", script, arg], capture_output=True, text=True, check=True
    )
    return bytes.fromhex(out.stdout.strip())


def png(buf, path):
    rows = []
    for y in range(H * SCALE):
        yy = y // SCALE
        row = bytearray([0])  # filter: none
        for x in range(W * SCALE):
            xx = x // SCALE
            lit = buf[(yy // 8) * W + xx] >> (yy % 8) & 1
            row.append(255 if lit else 0)
        rows.append(bytes(row))

    def chunk(kind, data):
        c = kind + data
        return struct.pack(">I", len(data)) + c + struct.pack(">I", zlib.crc32(c))

    ihdr = struct.pack(">IIBBBBB", W * SCALE, H * SCALE, 8, 0, 0, 0, 0)  # 8-bit grey
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
    data += chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + chunk(b"IEND", b"")
    Path(path).write_bytes(data)


def main(argv):
    qr = None
    if argv[:1] == ["--qr"]:
        qr, argv = argv[1], argv[2:]
    if not argv:
        print(__doc__)
        return 2
    png(frame(argv[1:], qr), argv[0])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
