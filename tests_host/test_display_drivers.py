"""The display drivers (boards/drivers/display.py over micropython-lib's ssd1306 and our
boards/drivers/st7567.py), the status LED (boards/drivers/status_led.py) and how the ESP32
boards build them from their data (boards/esp32.py).

The drivers draw through framebuf, which CPython lacks: they run on the MicroPython unix port
(one script, fake I2C / SPI / Pin classes recording the exact bytes and levels sent), their
frames compared with what framebuf draws into a reference FrameBuffer in the same script and
decoded pixel by pixel here. micropython-lib's ssd1306.py comes from the MicroPython source of
the virtual ESP32 (ssd1306_dir), or that one file from its tarball when it is not extracted.
"""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

import fake_display
import fake_machine

ROOT = Path(__file__).resolve().parent.parent
MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"
SSD1306_REL = "lib/micropython-lib/micropython/drivers/display/ssd1306"


def ssd1306_dir():
    """The folder of micropython-lib's ssd1306.py: in $MPY_SRC when that is a checkout, else
    in the tarball's tree `make esp32sim` extracts under build/esp32sim (tools/esp32sim.py
    source_tree). A clear failure when neither holds it."""
    from tools import esp32sim

    places = []
    found = esp32sim.find_source()
    if found is not None and found[0] == "tree":
        places.append(found[1] / SSD1306_REL)
    places += sorted(esp32sim.BUILD.glob("micropython-*/" + SSD1306_REL))
    for p in places:
        if (p / "ssd1306.py").is_file():
            return p
    if found is not None and found[0] == "tarball":
        # Not extracted (no 32-bit compiler to build the virtual ESP32 with): this one file.
        import tarfile

        out = esp32sim.BUILD / "ssd1306-only"
        with tarfile.open(found[1]) as tar:
            for m in tar:
                if m.name.endswith(SSD1306_REL + "/ssd1306.py"):
                    out.mkdir(parents=True, exist_ok=True)
                    (out / "ssd1306.py").write_bytes(tar.extractfile(m).read())
                    return out
    pytest.fail(
        "micropython-lib's ssd1306.py not found (in %s): run `make esp32sim`, which extracts "
        "the MicroPython source ($MPY_SRC) under build/esp32sim"
        % ", ".join(str(p) for p in places or [esp32sim.BUILD / "micropython-*" / SSD1306_REL])
    )


MP_SCRIPT = r"""
import json
import sys

import framebuf

LOG = []
LEVEL = {}
A0 = 25


class Pin:
    IN, OUT = 1, 3
    PULL_UP, PULL_DOWN = 2, 1

    def __init__(self, id, mode=-1, pull=None, value=None):
        self.id = id
        if value is not None:
            self.value(value)

    def value(self, v=None):
        if v is None:
            return LEVEL.get(self.id, 0)
        LEVEL[self.id] = v
        LOG.append(["pin", self.id, v])

    def __call__(self, v=None):
        return self.value(v)


def _args(kw):
    return sorted([k, getattr(v, "id", v)] for k, v in kw.items())


class I2C:
    def __init__(self, id=-1, **kw):
        LOG.append(["I2C", id, _args(kw)])

    def writeto(self, addr, buf):
        LOG.append(["i2c", addr, bytes(buf).hex()])

    def writevto(self, addr, bufs):
        self.writeto(addr, b"".join(bytes(b) for b in bufs))


class SoftI2C(I2C):
    pass


class SPI:
    def __init__(self, id, **kw):
        LOG.append(["SPI", id, _args(kw)])

    def write(self, buf):
        LOG.append(["spi", LEVEL.get(A0, 0), bytes(buf).hex()])


class QR:
    # As the test's qr_dark: dark on the left column, the bottom row and a scatter.
    def __init__(self, size):
        self.size = size

    def get(self, x, y):
        return x == 0 or y == self.size - 1 or (x * 7 + y * 3) % 5 < 2


def take():
    out = LOG[:]
    del LOG[:]
    return out


def emit(case, **kw):
    kw["case"] = case
    print(json.dumps(kw))


def ref(texts, x0=0):
    # What framebuf itself draws for `texts` (one per row) from column x0.
    buf = bytearray(1024)
    fb = framebuf.FrameBuffer(buf, 128, 64, framebuf.MONO_VLSB)
    for i, t in enumerate(texts):
        fb.text(t, x0, i * 8, 1)
    return bytes(buf).hex()


import ssd1306

from boards.drivers.display import Display
from boards.drivers.st7567 import ST7567

# -- SSD1306 on I2C: micropython-lib's driver under ours --------------------------------------
i2c = I2C(0)
take()
oled = Display(ssd1306.SSD1306_I2C(128, 64, i2c, addr=0x3C), True)
emit("ssd1306 init", log=take(), cols=oled.cols, rows=oled.rows, pixels=oled.pixels)
oled.show(["READY", "16 A"])
emit("ssd1306 screen", log=take(), ref=ref(["READY", "16 A"]))
QR_LINES = ["Scan to pay", "0.30 EUR/kWh"]
for size in (21, 29, 33):
    oled.show(QR_LINES, QR(size))
    emit("ssd1306 qr %d" % size, log=take())
emit("qr text", refs={str(x0): ref(QR_LINES, x0) for x0 in (40, 48, 64)})
try:
    oled.show(["x"], QR(63))
    emit("ssd1306 qr 63", error=None, log=take())
except ValueError as e:
    emit("ssd1306 qr 63", error=str(e), log=take())

# -- ST7567 on SPI: ours ------------------------------------------------------------------------
spi = SPI(1)
rst, a0, bl = Pin(5, Pin.OUT), Pin(A0, Pin.OUT), Pin(14, Pin.OUT, value=0)
take()
lcd = Display(ST7567(spi, a0, rst, contrast=32), False, bl, 1)
emit("st7567 init", log=take(), cols=lcd.cols, rows=lcd.rows, pixels=lcd.pixels)
lcd.show(["READY", "16 A"])
emit("st7567 screen", log=take(), ref=ref(["READY", "16 A"]))
lcd.show(QR_LINES, QR(21))
emit("st7567 qr 21", log=take())
lcd.off()
lcd.on()
emit("st7567 off on", log=take())
ST7567(spi, a0, rst, contrast=70, ratio=3, flip=True)
emit("st7567 flip", log=take())

# -- what gets drawn: '?' for characters outside printable ASCII, lines cut to the grid --------
calls = []


class Counting(ST7567):
    def text(self, s, x, y, c=1):
        calls.append([s, x, y, c])
        super().text(s, x, y, c)


d = Display(Counting(spi, a0, rst), False)
take()
d.show(["\u00e9\u20ac\x07ok\x7f", "ABCDEFGHIJKLMNOPQRST"] + ["%d" % i for i in range(2, 10)])
expect = ["???ok?", "ABCDEFGHIJKLMNOP"] + ["%d" % i for i in range(2, 8)]
emit("drawn", calls=calls[:], log=take(), ref=ref(expect))
del calls[:]
d.show(["ABCDEFGHIJKLMNOPQRST"], QR(21))
emit("drawn qr", calls=calls[:])

# -- the boards build them from their data (boards/esp32.py) -----------------------------------
class PWM:
    def __init__(self, pin, freq=0, duty_u16=0):
        pass

    def duty_u16(self, d=None):
        return 0


class ADC:
    ATTN_0DB, ATTN_2_5DB, ATTN_6DB, ATTN_11DB = 0, 1, 2, 3

    def __init__(self, pin, atten=None):
        pass

    def read_u16(self):
        return 47700


class M:
    pass


m = M()
m.Pin, m.PWM, m.ADC, m.I2C, m.SoftI2C, m.SPI = Pin, PWM, ADC, I2C, SoftI2C, SPI
m.unique_id = lambda: b"\x24\x0a\xc4\x12\x34\x56"
sys.modules["machine"] = m

import boards.esp32 as esp32
from boards.esp32_devkit import BOARD as DEVKIT
from boards.smartevse_v3 import BOARD as SMART

for name, data in (("devkit", DEVKIT), ("smartevse", SMART)):
    e = dict(data["evses"][0], meter=None)
    take()
    board = esp32.Board(dict(data, evses=(e,)), config="/nonexistent.json", state_dir=sys.argv[1])
    made = [x for x in take() if x[0] in ("I2C", "SPI")]
    board.display.show(["READY", "16 A"])
    take()
    board.led.set("charging")
    emit(
        "board " + name,
        made=made,
        display=type(board.display).__name__,
        dev=type(board.display._dev).__name__,
        frame=bytes(board.display._dev.buffer).hex(),
        led=take(),
        ref=ref(["READY", "16 A"]),
    )
"""


@pytest.fixture(scope="module")
def mp(tmp_path_factory):
    """Every case of MP_SCRIPT run once on the unix port: {case: its record}."""
    if not MICROPYTHON.exists():
        pytest.skip("no MicroPython unix port in .venv")
    src = ssd1306_dir()
    tmp = tmp_path_factory.mktemp("display")
    script = tmp / "mp_display.py"
    script.write_text(MP_SCRIPT)
    path = ".frozen:%s:%s:%s" % (ROOT / "lib", ROOT, src)
    out = subprocess.run(
        [str(MICROPYTHON), str(script), str(tmp / "state")],
        env=dict(os.environ, MICROPYPATH=path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr
    records = [json.loads(ln) for ln in out.stdout.splitlines() if ln.startswith("{")]
    return {r["case"]: r for r in records}


# -- helpers: the frame as pixels -----------------------------------------------------------


def pixels(frame):
    """The lit (x, y) of a 128 x 64 MONO_VLSB frame (bytes or hex): byte page * 128 + x, bit
    y % 8."""
    if isinstance(frame, str):
        frame = bytes.fromhex(frame)
    assert len(frame) == 1024
    return {
        (i % 128, (i // 128) * 8 + b) for i, v in enumerate(frame) for b in range(8) if v >> b & 1
    }


def qr_dark(size, x, y):
    return x == 0 or y == size - 1 or (x * 7 + y * 3) % 5 < 2


def qr_geometry(size, height=64):
    """(pixels per module, side with the quiet zone, top y, x of the text) per display-api.md:
    the largest whole scale at which size + 2 modules fit the height, centred; text from the
    first character column right of it."""
    n = size + 2
    s = height // n
    side = n * s
    return s, side, (height - side) // 2, -(-side // 8) * 8


def qr_pixels(size, lit_is_light):
    """The set pixels of the QR area alone."""
    s, side, y0, _ = qr_geometry(size)
    out = set()
    for px in range(side):
        for py in range(y0, y0 + side):
            mx, my = px // s - 1, (py - y0) // s - 1
            dark = 0 <= mx < size and 0 <= my < size and qr_dark(size, mx, my)
            if dark != lit_is_light:  # OLED: light lit; LCD: dark set
                out.add((px, py))
    return out


SSD1306_INIT = [
    0xAE,  # display off
    0x20,
    0x00,  # horizontal addressing
    0x40,  # start line 0
    0xA1,  # column 127 on SEG0
    0xA8,
    0x3F,  # 64 rows
    0xC8,  # COM scan reversed
    0xD3,
    0x00,  # no offset
    0xDA,
    0x12,  # COM pins for 64 rows
    0xD5,
    0x80,  # clock
    0xD9,
    0xF1,  # precharge, internal VCC
    0xDB,
    0x30,  # VCOMH
    0x81,
    0xFF,  # contrast
    0xA4,  # follow RAM
    0xA6,  # not inverted
    0xAD,
    0x30,  # internal IREF
    0x8D,
    0x14,  # charge pump on
    0xAF,  # display on
]
SSD1306_FRAME = [0x21, 0, 127, 0x22, 0, 7]  # columns 0..127, pages 0..7, then the data


def i2c_cmds(cmds):
    return [["i2c", 0x3C, "80%02x" % c] for c in cmds]


def ssd1306_push(log):
    """The frame of one SSD1306 show(): its address commands, then one data write."""
    assert log[:-1] == i2c_cmds(SSD1306_FRAME)
    kind, addr, data = log[-1]
    assert (kind, addr, data[:2]) == ("i2c", 0x3C, "40")  # Co=0, D/C#=1: data
    return bytes.fromhex(data[2:])


def st7567_push(log):
    """The frame of one ST7567 show(): per page, its address with A0 low, its 128 bytes with
    A0 high."""
    frame = b""
    for p in range(8):
        assert log[4 * p] == ["pin", 25, 0]
        assert log[4 * p + 1] == ["spi", 0, "%02x1000" % (0xB0 + p)]  # page p, column 0
        assert log[4 * p + 2] == ["pin", 25, 1]
        kind, a0, data = log[4 * p + 3]
        assert (kind, a0, len(data)) == ("spi", 1, 256)
        frame += bytes.fromhex(data)
    assert len(log) == 32
    return frame


# "A" in framebuf's 8 x 8 font (MicroPython's font_petme128_8x8), column by column.
GLYPH_A = bytes.fromhex("007c7e0b0b7e7c00")


# -- SSD1306 ------------------------------------------------------------------------------------


def test_ssd1306_init_is_micropython_libs_sequence_then_a_blank_frame(mp):
    r = mp["ssd1306 init"]
    log = r["log"]
    n = len(SSD1306_INIT)
    assert log[:n] == i2c_cmds(SSD1306_INIT)
    assert ssd1306_push(log[n:]) == bytes(1024)
    assert (r["cols"], r["rows"], r["pixels"]) == (16, 8, True)


def test_ssd1306_draws_a_known_screen(mp):
    r = mp["ssd1306 screen"]
    frame = ssd1306_push(r["log"])
    assert frame.hex() == r["ref"]  # framebuf's own drawing of the same text
    # "READY" in page 0, columns 0..39; "16 A" in page 1, columns 0..31; nothing else.
    lit = pixels(frame)
    assert {(x, y) for x, y in lit if y < 8} and max(x for x, y in lit if y < 8) < 40
    assert max(x for x, y in lit if 8 <= y < 16) < 32 and max(y for x, y in lit) < 16
    assert frame[16:24] == GLYPH_A  # READY's A: the third glyph
    assert frame[128 + 24 : 128 + 32] == GLYPH_A  # 16 A's A: the fourth


@pytest.mark.parametrize("size", [21, 29, 33])
def test_qr_at_the_left_edge_scaled_centred_with_text_right_of_it(mp, size):
    s, side, y0, x_text = qr_geometry(size)
    assert (size, s, side, y0, x_text) in (
        (21, 2, 46, 9, 48),
        (29, 2, 62, 1, 64),
        (33, 1, 35, 14, 40),
    )
    frame = ssd1306_push(mp["ssd1306 qr %d" % size]["log"])
    text = pixels(mp["qr text"]["refs"][str(x_text)])
    assert min(x for x, y in text) >= x_text
    # An OLED lights the quiet zone and the light modules; the rest is the text.
    assert pixels(frame) == qr_pixels(size, lit_is_light=True) | text


def test_st7567_draws_dark_modules_on_the_lcds_light_ground(mp):
    frame = st7567_push(mp["st7567 qr 21"]["log"])
    text = pixels(mp["qr text"]["refs"]["48"])
    qr = qr_pixels(21, lit_is_light=False)
    assert len(qr) == 4 * sum(qr_dark(21, x, y) for x in range(21) for y in range(21))
    assert pixels(frame) == qr | text


def test_a_qr_code_taller_than_the_display_is_refused_before_anything_is_sent(mp):
    r = mp["ssd1306 qr 63"]
    assert r["error"] == "QR code of 63 modules: over 64 pixels" and r["log"] == []


# -- ST7567 -------------------------------------------------------------------------------------


def test_st7567_reset_init_sequence_blank_ram_then_display_on(mp):
    r = mp["st7567 init"]
    log = r["log"]
    assert log[:2] == [["pin", 5, 0], ["pin", 5, 1]]  # hardware reset, RST active low
    assert log[2:4] == [["pin", 25, 0], ["spi", 0, "a2a0c8402481202fa6a4"]]
    # bias 1/9, SEG normal, COM reversed, start line 0, ratio 5.0 (0x24), volume 32 (0x81 0x20),
    # booster + regulator + follower on, not inverted, RAM shown
    assert st7567_push(log[4:36]) == bytes(1024)
    assert log[36:] == [["pin", 25, 0], ["spi", 0, "af"], ["pin", 14, 1]]  # on, backlight on
    assert (r["cols"], r["rows"], r["pixels"]) == (16, 8, True)


def test_st7567_writes_the_frame_page_by_page(mp):
    r = mp["st7567 screen"]
    frame = st7567_push(r["log"])
    assert frame.hex() == r["ref"]
    assert frame[16:24] == GLYPH_A


def test_st7567_off_and_on_switch_the_display_and_the_backlight(mp):
    assert mp["st7567 off on"]["log"] == [
        ["pin", 14, 0],
        ["pin", 25, 0],
        ["spi", 0, "ae"],
        ["pin", 25, 0],
        ["spi", 0, "af"],
        ["pin", 14, 1],
    ]


def test_st7567_flip_contrast_and_ratio_are_masked_into_their_commands(mp):
    log = mp["st7567 flip"]["log"]
    # SEG reversed, COM normal, ratio 3 (0x23), volume 70 & 63 = 6; the panel from RAM column 4
    assert log[3] == ["spi", 0, "a2a1c0402381062fa6a4"]
    assert log[5] == ["spi", 0, "b01004"]


# -- text -----------------------------------------------------------------------------------------


def test_characters_outside_printable_ascii_are_drawn_as_question_marks(mp):
    r = mp["drawn"]
    row0 = [c for c in r["calls"] if c[2] == 0]
    assert [c[0] for c in row0] == ["?", "?", "?", "o", "k", "?"]
    assert [c[1] for c in row0] == [0, 8, 16, 24, 32, 40]
    assert st7567_push(r["log"]).hex() == r["ref"]


def test_lines_are_cut_to_the_columns_and_rows(mp):
    calls = mp["drawn"]["calls"]
    row1 = [c for c in calls if c[2] == 8]
    assert "".join(c[0] for c in row1) == "ABCDEFGHIJKLMNOP"  # 16 of 20
    assert max(c[2] for c in calls) == 56  # 10 lines given: 8 rows drawn, "7" the last
    assert [c[0] for c in calls if c[2] == 56] == ["7"]
    assert all(c[3] == 1 for c in calls)
    # Right of a 21-module QR code: 10 columns from x 48.
    drawn = mp["drawn qr"]["calls"]
    assert [(c[0], c[1]) for c in drawn] == [(ch, 48 + 8 * i) for i, ch in enumerate("ABCDEFGHIJ")]


# -- the boards build them ----------------------------------------------------------------------


def test_both_boards_build_their_display_and_led_on_micropython(mp):
    dk = mp["board devkit"]
    assert dk["made"] == [["I2C", 0, [["freq", 400000], ["scl", 22], ["sda", 21]]]]
    assert (dk["display"], dk["dev"]) == ("Display", "SSD1306_I2C")
    assert dk["frame"] == dk["ref"]
    assert dk["led"] == [["pin", 19, 1], ["pin", 18, 0], ["pin", 17, 1]]  # charging + Wi-Fi
    se = mp["board smartevse"]
    assert se["made"] == [
        [
            "SPI",
            1,
            [
                ["baudrate", 4000000],
                ["miso", None],
                ["mosi", 33],
                ["phase", 0],
                ["polarity", 0],
                ["sck", 26],
            ],
        ]
    ]
    assert (se["display"], se["dev"]) == ("Display", "ST7567")
    assert se["frame"] == se["ref"]
    assert se["led"] == [["pin", 2, 0], ["pin", 4, 0], ["pin", 12, 1]]  # blue


# -- the status LED (CPython, fake pins) ---------------------------------------------------------


def _leds(ids, table, active=1):
    from boards.drivers.status_led import StatusLed

    pins = [None if g is None else fake_machine.Pin(g, fake_machine.Pin.OUT) for g in ids]
    return StatusLed(pins, table, active), pins


def test_rgb_led_colours():
    from boards.drivers.status_led import RGB

    led, pins = _leds((2, 4, 12), RGB)
    assert [p.value() for p in pins] == [0, 0, 0] and led.state == "off"
    for state, rgb in (
        ("ready", [0, 1, 0]),  # green
        ("charging", [0, 0, 1]),  # blue
        ("fault", [1, 0, 0]),  # red
        ("offline", [1, 1, 0]),  # yellow
        ("off", [0, 0, 0]),
    ):
        led.set(state)
        assert [p.value() for p in pins] == rgb, state
        assert led.state == state


def test_single_leds_charging_error_wifi():
    from boards.drivers.status_led import SINGLE

    led, pins = _leds((19, 18, 17), SINGLE)
    for state, lit in (
        ("ready", [0, 0, 1]),
        ("charging", [1, 0, 1]),
        ("fault", [0, 1, 1]),
        ("offline", [0, 0, 0]),
        ("off", [0, 0, 0]),
    ):
        led.set(state)
        assert [p.value() for p in pins] == lit, state


def test_active_low_leds_and_a_missing_one():
    from boards.drivers.status_led import SINGLE

    led, pins = _leds((19, None, 17), SINGLE, active=0)
    assert [pins[0].value(), pins[2].value()] == [1, 1]  # off: high
    led.set("charging")
    assert [pins[0].value(), pins[2].value()] == [0, 0]


def test_an_unknown_led_state_is_a_clear_error():
    from boards.drivers.status_led import RGB

    led, pins = _leds((2, 4, 12), RGB)
    led.set("ready")
    with pytest.raises(ValueError, match="LED state 'blinking': not one of off, ready"):
        led.set("blinking")
    assert led.state == "ready" and [p.value() for p in pins] == [0, 1, 0]


# -- the boards build them (CPython: fake machine, stand-in controller drivers) ------------------


@pytest.fixture
def machine(monkeypatch):
    import sys

    for n in ("machine", "esp32", "boards.esp32", "boards.esp32_devkit", "boards.smartevse_v3"):
        monkeypatch.delitem(sys.modules, n, raising=False)
    m = fake_machine.install()
    m.unique_id = lambda: b"\x24\x0a\xc4\x12\x34\x56"
    stub = type(sys)("boards.drivers.meter_modbus")  # the meters are tested elsewhere
    stub.ModbusMaster = lambda uart, de=None, baudrate=9600: None
    stub.make_meter = lambda kind, master, addr, signed=False: None
    monkeypatch.setitem(sys.modules, "boards.drivers.meter_modbus", stub)
    yield m
    for n in ("machine", "esp32"):
        sys.modules.pop(n, None)


def _board(name, tmp_path, **data):
    import importlib

    import boards.esp32 as esp32

    board_data = importlib.import_module("boards." + name).BOARD
    return esp32.Board(
        dict(board_data, **data),
        config=str(tmp_path / "none.json"),
        state_dir=str(tmp_path / "state"),
    )


def test_devkit_display_on_hardware_i2c_and_its_three_leds(machine, tmp_path, monkeypatch):
    fake_display.install(monkeypatch)
    board = _board("esp32_devkit", tmp_path)
    d = board.display
    dev = d._dev
    assert type(dev) is fake_display.SSD1306_I2C and dev.addr == 0x3C
    bus = dev.i2c
    assert type(bus) is fake_machine.I2C and bus.id == 0 and bus.freq == 400000
    assert (bus.scl.id, bus.sda.id) == (22, 21)
    assert (d.cols, d.rows, d.pixels) == (16, 8, True)
    pins = board.led._pins
    assert [p.id for p in pins] == [19, 18, 17] and [p.mode for p in pins] == [3, 3, 3]
    assert [p.history for p in pins] == [[0], [0], [0]]  # built off, set off: never lit
    board.led.set("fault")
    assert [p.value() for p in pins] == [0, 1, 1]


def test_soft_i2c_when_the_data_names_no_controller(machine, tmp_path, monkeypatch):
    fake_display.install(monkeypatch)
    display = {"kind": "ssd1306", "i2c": None, "sda": 16, "scl": 17, "addr": 0x3D}
    board = _board("esp32_devkit", tmp_path, display=display, led=None)
    dev = board.display._dev
    assert type(dev.i2c) is fake_machine.SoftI2C and dev.addr == 0x3D
    assert (dev.i2c.scl.id, dev.i2c.sda.id, dev.i2c.freq) == (17, 16, 400000)
    assert board.led is None


def test_smartevse_lcd_on_spi_and_its_rgb_led(machine, tmp_path, monkeypatch):
    fake_display.install(monkeypatch)
    board = _board("smartevse_v3", tmp_path)
    d = board.display
    dev = d._dev
    assert type(dev) is fake_display.ST7567
    spi = dev.spi
    assert (spi.id, spi.baudrate) == (1, 4000000)
    assert (spi.kw["polarity"], spi.kw["phase"], spi.kw["miso"]) == (0, 0, None)
    assert (spi.kw["sck"].id, spi.kw["mosi"].id) == (26, 33)
    assert (dev.a0.id, dev.rst.id, dev.contrast, dev.flip) == (25, 5, 32, False)
    assert (dev.a0.mode, dev.rst.mode) == (3, 3)
    bl = d._bl
    assert bl.id == 14 and bl.value() == 1 and bl.history == [1]  # built dark, lit once up
    d.off()
    assert bl.value() == 0 and dev.calls[-1] == ("poweroff", ())
    pins = board.led._pins
    assert [p.id for p in pins] == [2, 4, 12]
    assert pins[2].history == [0]  # GPIO12 (a strap): built low, never high
    board.led.set("offline")
    assert [p.value() for p in pins] == [1, 1, 0]


def test_a_display_that_does_not_answer_is_logged_and_left_out(
    machine, tmp_path, monkeypatch, logged
):
    fake_display.install(monkeypatch)
    monkeypatch.setattr(fake_machine.I2C, "absent", {0x3C})
    board = _board("esp32_devkit", tmp_path)
    assert board.display is None and board.led is not None
    assert board.evse_hw(1).pilot is not None  # the rest is built
    assert " W board: display 'ssd1306': OSError 19: none" in logged.getvalue()


def test_a_missing_ssd1306_package_is_logged_and_left_out(machine, tmp_path, monkeypatch, logged):
    import sys

    monkeypatch.setitem(sys.modules, "ssd1306", None)  # import ssd1306 -> ImportError
    board = _board("esp32_devkit", tmp_path)
    assert board.display is None
    assert re.search(
        r" W board: display 'ssd1306': (ModuleNotFound|Import)Error .*: none", logged.getvalue()
    )


def test_an_unknown_display_kind_is_logged_and_left_out(machine, tmp_path, logged):
    board = _board("smartevse_v3", tmp_path, display={"kind": "hd44780"})
    assert board.display is None
    assert " W board: display 'hd44780': ValueError unknown kind: none" in logged.getvalue()


def test_an_unknown_led_kind_is_refused(machine, tmp_path):
    with pytest.raises(ValueError, match="LED kind 'neopixel': not rgb or single"):
        _board("smartevse_v3", tmp_path, led={"kind": "neopixel", "pin": 17})


def test_boards_without_display_or_led_data_have_none(machine, tmp_path):
    board = _board("smartevse_v3", tmp_path, display=None, led=None)
    assert board.display is None and board.led is None
