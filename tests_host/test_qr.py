"""lib/qr.py against segno (an independent QR Code encoder), and on the MicroPython unix port."""

import os
import subprocess
from pathlib import Path

import pytest
import segno
from hypothesis import given, settings
from hypothesis import strategies as st
from segno import encoder as segno_encoder

import qr

ROOT = Path(__file__).resolve().parent.parent
MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"
LEVELS = "LMQH"
# Bytes that fit in byte mode, versions 1 to 10 (ISO/IEC 18004:2015, table 7).
CAPACITY = {
    "L": (17, 32, 53, 78, 106, 134, 154, 192, 230, 271),
    "M": (14, 26, 42, 62, 84, 106, 122, 152, 180, 213),
    "Q": (11, 20, 32, 46, 60, 74, 86, 108, 130, 151),
    "H": (7, 14, 24, 34, 44, 58, 64, 84, 98, 119),
}
PAYMENT_URL = "https://pay.example.com/evse/DE*ABC*E1234*1?session=7f3a9c0e51b2&lang=de"


def _pad_to_byte(buff, version, length):
    buff.extend([0] * (-length % 8))


def _reference(data, ecl, mask=None):
    """segno's symbol for `data` (bytes). segno 1.6.6 writes a zero byte too many between the
    terminator and the pad codewords when the stream already ends on a byte edge, which in byte
    mode is always (heuer/segno#123, #148): its padding step is replaced by the standard's here,
    only for this call."""
    saved = segno_encoder.write_padding_bits
    segno_encoder.write_padding_bits = _pad_to_byte
    try:
        return segno.make_qr(data, error=ecl.lower(), mode="byte", boost_error=False, mask=mask)
    finally:
        segno_encoder.write_padding_bits = saved


def _rows(code):
    return [[bool(v) for v in row] for row in code.matrix]


def _matrix(symbol):
    return [[symbol.get(x, y) for x in range(symbol.size)] for y in range(symbol.size)]


def _check(data, ecl="M", mask=None):
    """Our symbol equals segno's: version, mask and every module."""
    symbol = qr.encode(data, ecl, mask)
    ref = _reference(data.encode() if isinstance(data, str) else data, ecl, mask)
    assert (symbol.size, symbol.version, symbol.mask) == (
        ref.symbol_size(border=0)[0],
        ref.version,
        ref.mask,
    )
    assert _matrix(symbol) == _rows(ref)
    return symbol


def _data(n, seed=0):
    """n bytes of every value, varied by `seed`."""
    return bytes((i * 131 + seed * 17 + (i >> 3)) & 0xFF for i in range(n))


@pytest.mark.parametrize("ecl", LEVELS)
@pytest.mark.parametrize("version", range(1, 11))
def test_capacity_edges(version, ecl):
    n = CAPACITY[ecl][version - 1]
    assert _check(_data(n, version), ecl).version == version  # full
    assert _check(_data(n - 1, version), ecl).version == version
    if version < 10:
        assert _check(_data(n + 1, version), ecl).version == version + 1  # one byte too many


@pytest.mark.parametrize("mask", range(8))
def test_each_mask(mask):
    for data, ecl in ((b"", "L"), (PAYMENT_URL, "M"), (_data(90, mask), "Q"), (_data(119), "H")):
        assert _check(data, ecl, mask).mask == mask
        assert _check(data, ecl.lower(), mask).mask == mask


@pytest.mark.parametrize("ecl", LEVELS)
def test_empty(ecl):
    assert _check(b"", ecl).size == 21
    assert _matrix(qr.encode("", ecl)) == _matrix(qr.encode(b"", ecl))


def test_binary_bytes():
    for ecl in LEVELS:
        _check(bytes(range(CAPACITY[ecl][9] - 16, 0, -1)), ecl)
    _check(bytes(range(256))[:213], "M")
    _check(b"\x00" * 40, "M")
    _check(b"\xff" * 40, "H")


def test_utf8_text():
    text = "Ladestation Zürich – Préférence: ¥€ 充电站 🔌"
    symbol = _check(text, "Q")
    assert _matrix(symbol) == _matrix(qr.encode(text.encode("utf-8"), "Q"))


def test_payment_url():
    symbol = _check(PAYMENT_URL)  # default level M
    assert (symbol.version, symbol.ecl) == (5, "M")
    for ecl in LEVELS:
        _check(PAYMENT_URL, ecl)


def test_too_long():
    for ecl in LEVELS:
        most = CAPACITY[ecl][9]
        qr.encode(b"x" * most, ecl)
        with pytest.raises(ValueError) as e:
            qr.encode(b"x" * (most + 1), ecl)
        text = "qr: %d bytes do not fit in a version 10 symbol at level %s (at most %d)"
        assert str(e.value) == text % (most + 1, ecl, most)
    with pytest.raises(ValueError, match="300 bytes"):
        qr.encode("é" * 150, "L")  # 150 characters, 300 bytes


def test_bad_arguments():
    for ecl in ("X", "", "LM", None, 1):
        with pytest.raises(ValueError, match="error-correction level must be L, M, Q or H"):
            qr.encode(b"a", ecl)
    for mask in (-1, 8, "1", 1.0):
        with pytest.raises(ValueError, match="mask must be 0 to 7"):
            qr.encode(b"a", "M", mask)


def test_get_outside_is_light():
    symbol = qr.encode(b"a")
    assert symbol.get(0, 0) is True and symbol.get(7, 7) is False
    for x, y in ((-1, 0), (0, -1), (21, 0), (0, 21), (-5, 30)):
        assert symbol.get(x, y) is False


def test_gf_tables():
    v = 1
    for i in range(255):
        assert qr._EXP[i] == v and qr._LOG[v] == i
        v <<= 1
        if v & 0x100:
            v ^= 0x11D
    assert len(qr._EXP) == len(qr._LOG) == 256


def test_padding():
    # Mode 0100, count 3, "abc", terminator 0000, then the pad codewords at once (segno 1.6.6
    # puts a zero byte before them: see _reference); 1-M has 16 data codewords.
    words = qr._codewords(b"abc", 8, 16, 26, 10, 1)
    assert words[:16] == bytes.fromhex("4036162630ec11ec11ec11ec11ec11ec")


def test_reed_solomon():
    # The worked example of ISO/IEC 18004 (annex I): "01234567" at 1-M, 10 EC codewords.
    data = bytes.fromhex("10200c566180ec11ec11ec11ec11ec11")
    rem = bytearray(10)
    qr._remainder(data, 0, 16, qr._generator(10), rem)
    assert rem == bytes.fromhex("a524d4c1ed36c7872c55")


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(LEVELS), st.data())
def test_random_bytes_like_segno(ecl, data):
    n = data.draw(st.integers(min_value=0, max_value=CAPACITY[ecl][9]))  # every version
    payload = data.draw(st.binary(min_size=n, max_size=n))
    _check(payload, ecl)


MP_INPUTS = (
    (b"", "M"),
    (PAYMENT_URL.encode(), "M"),
    (bytes(range(256))[:119], "H"),  # version 10
    (b"\x00" * 70, "L"),  # version 4
    ("Zürich 充电站".encode(), "Q"),
)
MP_SCRIPT = """
import qr
for data, ecl in %r:
    s = qr.encode(data, ecl)
    print(s.version, s.mask)
    for y in range(s.size):
        v = 0
        for x in range(s.size):
            v = v << 1 | s.get(x, y)
        print("%%x" %% v)
""" % (MP_INPUTS,)


def _expected_mp_output():
    lines = []
    for data, ecl in MP_INPUTS:
        s = qr.encode(data, ecl)
        lines.append("%d %d" % (s.version, s.mask))
        for row in _matrix(s):
            lines.append("%x" % int("".join("1" if d else "0" for d in row), 2))
    return lines


def test_on_micropython(tmp_path):
    if not MICROPYTHON.exists():
        pytest.skip("no MicroPython unix port in .venv")
    script = tmp_path / "mp_qr.py"
    script.write_text(MP_SCRIPT)
    env = dict(os.environ, MICROPYPATH=".frozen:%s" % (ROOT / "lib"))
    out = subprocess.run(
        [str(MICROPYTHON), str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:-1] == _expected_mp_output()


def test_encode_steps_yield_often_and_give_the_same_symbol():
    from test_crypto_steps import counted

    import qr
    import steps

    symbol, n = counted(qr.encode_steps("https://pay.example/cs1"))
    assert n >= 8 * 6  # every 8 rows and columns of each of the 8 masks, and between masks
    direct = qr.encode("https://pay.example/cs1")
    assert symbol.size == direct.size and symbol.mask == direct.mask
    assert all(symbol.get(x, y) == direct.get(x, y) for x in range(25) for y in range(25))
    assert steps.run(qr.encode_steps(b"x", "H")).version == 1
