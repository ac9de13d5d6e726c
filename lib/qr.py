# qr: a QR Code (Model 2) encoder, so that a wallbox with a pixel display can show a URI (a
# payment or help page) for the driver's phone camera.
# MIT licence. Ours because micropython-lib has no QR encoder; written from the rules of
# ISO/IEC 18004: byte mode only, versions 1 to 10, levels L, M, Q and H, all eight masks scored.
#
# Memory: the tables below are bytes literals and const() tuples, which stay in flash when the
# module is frozen; the symbol is a packed bytearray (one bit per module, rows of whole bytes,
# 456 bytes at version 10) and encoding needs a few such bytearrays more: under 2.5 KiB in all
# at version 10 (frozen, 32-bit unix port), about 1.5 KiB for a 100-byte URI at level M.

from micropython import const

import steps

_LEVELS = const("LMQH")  # index 0..3; the format information codes them as index ^ 1
_MAX_VERSION = const(10)
_FORMAT_GEN = const(0x537)  # BCH(15,5) generator
_FORMAT_XOR = const(0x5412)  # keeps the format information from being all light
_VERSION_GEN = const(0x1F25)  # BCH(18,6) generator
_GF_MOD = const(255)

# Codewords (data and error correction) of versions 1 to 10.
_TOTAL = const((26, 44, 70, 100, 134, 172, 196, 242, 292, 346))
# Per version and level, at (version - 1) * 4 + level: error-correction codewords per block, and
# the number of blocks. A version's codewords share out evenly over its blocks, the last ones
# carrying one data codeword more when they do not divide.
_EC = const(
    b"\x07\x0a\x0d\x11\x0a\x10\x16\x1c\x0f\x1a\x12\x16\x14\x12\x1a\x10\x1a\x18\x12\x16"
    b"\x12\x10\x18\x1c\x14\x12\x12\x1a\x18\x16\x16\x1a\x1e\x16\x14\x18\x12\x1a\x18\x1c"
)
_BLOCKS = const(
    b"\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x02\x02\x01\x02\x02\x04\x01\x02\x04\x04"
    b"\x02\x04\x04\x04\x02\x04\x06\x05\x02\x04\x06\x06\x02\x05\x08\x08\x04\x05\x08\x08"
)

# GF(256) with the polynomial x^8 + x^4 + x^3 + x^2 + 1 (0x11D): _EXP[i] is alpha^i and _LOG
# its inverse (_LOG[0] unused). Plain globals, so that the two functions share one copy.
_EXP = (
    b"\x01\x02\x04\x08\x10\x20\x40\x80\x1d\x3a\x74\xe8\xcd\x87\x13\x26"
    b"\x4c\x98\x2d\x5a\xb4\x75\xea\xc9\x8f\x03\x06\x0c\x18\x30\x60\xc0"
    b"\x9d\x27\x4e\x9c\x25\x4a\x94\x35\x6a\xd4\xb5\x77\xee\xc1\x9f\x23"
    b"\x46\x8c\x05\x0a\x14\x28\x50\xa0\x5d\xba\x69\xd2\xb9\x6f\xde\xa1"
    b"\x5f\xbe\x61\xc2\x99\x2f\x5e\xbc\x65\xca\x89\x0f\x1e\x3c\x78\xf0"
    b"\xfd\xe7\xd3\xbb\x6b\xd6\xb1\x7f\xfe\xe1\xdf\xa3\x5b\xb6\x71\xe2"
    b"\xd9\xaf\x43\x86\x11\x22\x44\x88\x0d\x1a\x34\x68\xd0\xbd\x67\xce"
    b"\x81\x1f\x3e\x7c\xf8\xed\xc7\x93\x3b\x76\xec\xc5\x97\x33\x66\xcc"
    b"\x85\x17\x2e\x5c\xb8\x6d\xda\xa9\x4f\x9e\x21\x42\x84\x15\x2a\x54"
    b"\xa8\x4d\x9a\x29\x52\xa4\x55\xaa\x49\x92\x39\x72\xe4\xd5\xb7\x73"
    b"\xe6\xd1\xbf\x63\xc6\x91\x3f\x7e\xfc\xe5\xd7\xb3\x7b\xf6\xf1\xff"
    b"\xe3\xdb\xab\x4b\x96\x31\x62\xc4\x95\x37\x6e\xdc\xa5\x57\xae\x41"
    b"\x82\x19\x32\x64\xc8\x8d\x07\x0e\x1c\x38\x70\xe0\xdd\xa7\x53\xa6"
    b"\x51\xa2\x59\xb2\x79\xf2\xf9\xef\xc3\x9b\x2b\x56\xac\x45\x8a\x09"
    b"\x12\x24\x48\x90\x3d\x7a\xf4\xf5\xf7\xf3\xfb\xeb\xcb\x8b\x0b\x16"
    b"\x2c\x58\xb0\x7d\xfa\xe9\xcf\x83\x1b\x36\x6c\xd8\xad\x47\x8e\x01"
)
_LOG = (
    b"\x00\x00\x01\x19\x02\x32\x1a\xc6\x03\xdf\x33\xee\x1b\x68\xc7\x4b"
    b"\x04\x64\xe0\x0e\x34\x8d\xef\x81\x1c\xc1\x69\xf8\xc8\x08\x4c\x71"
    b"\x05\x8a\x65\x2f\xe1\x24\x0f\x21\x35\x93\x8e\xda\xf0\x12\x82\x45"
    b"\x1d\xb5\xc2\x7d\x6a\x27\xf9\xb9\xc9\x9a\x09\x78\x4d\xe4\x72\xa6"
    b"\x06\xbf\x8b\x62\x66\xdd\x30\xfd\xe2\x98\x25\xb3\x10\x91\x22\x88"
    b"\x36\xd0\x94\xce\x8f\x96\xdb\xbd\xf1\xd2\x13\x5c\x83\x38\x46\x40"
    b"\x1e\x42\xb6\xa3\xc3\x48\x7e\x6e\x6b\x3a\x28\x54\xfa\x85\xba\x3d"
    b"\xca\x5e\x9b\x9f\x0a\x15\x79\x2b\x4e\xd4\xe5\xac\x73\xf3\xa7\x57"
    b"\x07\x70\xc0\xf7\x8c\x80\x63\x0d\x67\x4a\xde\xed\x31\xc5\xfe\x18"
    b"\xe3\xa5\x99\x77\x26\xb8\xb4\x7c\x11\x44\x92\xd9\x23\x20\x89\x2e"
    b"\x37\x3f\xd1\x5b\x95\xbc\xcf\xcd\x90\x87\x97\xb2\xdc\xfc\xbe\x61"
    b"\xf2\x56\xd3\xab\x14\x2a\x5d\x9e\x84\x3c\x39\x53\x47\x6d\x41\xa2"
    b"\x1f\x2d\x43\xd8\xb7\x7b\xa4\x76\xc4\x17\x49\xec\x7f\x0c\x6f\xf6"
    b"\x6c\xa1\x3b\x52\x29\x9d\x55\xaa\xfb\x60\x86\xb1\xbb\xcc\x3e\x5a"
    b"\xcb\x59\x5f\xb0\x9c\xa9\xa0\x51\x0b\xf5\x16\xeb\x7a\x75\x2c\xd7"
    b"\x4f\xae\xd5\xe9\xe6\xe7\xad\xe8\x74\xd6\xf4\xea\xa8\x50\x58\xaf"
)


class QR:
    """An encoded symbol: `size` modules per side; `get(x, y)` is True for a dark module (x the
    column, y the row, 0 at the top left). Outside the symbol, the quiet zone, is light. Also
    `version` (1 to 10), `ecl` ("L", "M", "Q" or "H") and `mask` (0 to 7)."""

    def __init__(self, size, bits, version, ecl, mask):
        self.size = size
        self.version = version
        self.ecl = ecl
        self.mask = mask
        self._bits = bits
        self._stride = (size + 7) >> 3

    def get(self, x, y):
        if x < 0 or y < 0 or x >= self.size or y >= self.size:
            return False
        return bool(self._bits[y * self._stride + (x >> 3)] >> (x & 7) & 1)


def encode(data, ecl="M", mask=None):
    """`data` (bytes, or str sent as UTF-8) in byte mode, in the smallest version (1 to 10) that
    holds it at error-correction level `ecl` ("L", "M", "Q" or "H"); `mask` (0 to 7) forces a
    mask, None picks the one with the lowest penalty. ValueError when it does not fit."""
    return steps.run(encode_steps(data, ecl, mask))


def encode_steps(data, ecl="M", mask=None):
    """`encode` as a generator (lib/steps.py) that yields every few rows of the mask scoring,
    the longest part: on an ESP32 the whole takes far longer than the asyncio loop may wait,
    so the display awaits it with steps.run_async."""
    if isinstance(data, str):
        data = data.encode()
    level = _LEVELS.find(ecl.upper()) if isinstance(ecl, str) and len(ecl) == 1 else -1
    if level < 0:
        raise ValueError("qr: error-correction level must be L, M, Q or H, not %r" % (ecl,))
    if mask is not None and (not isinstance(mask, int) or mask < 0 or mask > 7):
        raise ValueError("qr: mask must be 0 to 7, not %r" % (mask,))
    n = len(data)
    for version in range(1, _MAX_VERSION + 1):
        i = (version - 1) * 4 + level
        ec = _EC[i]
        nblocks = _BLOCKS[i]
        total = _TOTAL[version - 1]
        ndata = total - ec * nblocks
        cbits = 8 if version < 10 else 16  # the character count field widens at version 10
        if 4 + cbits + 8 * n <= 8 * ndata:
            break
    else:
        raise ValueError(
            "qr: %d bytes do not fit in a version %d symbol at level %s (at most %d)"
            % (n, _MAX_VERSION, _LEVELS[level], (8 * ndata - 4 - cbits) // 8)
        )
    codewords = _codewords(data, cbits, ndata, total, ec, nblocks)
    size = 4 * version + 17
    stride = (size + 7) >> 3
    bits = bytearray(stride * size)
    fn = bytearray(stride * size)  # function modules, which data and masks leave alone
    _draw_functions(bits, fn, stride, size, version)
    _place(bits, fn, stride, size, codewords)
    codewords = None
    pat = bytearray(36)
    if mask is None:
        work = bytearray(stride * size)
        line = bytearray(size)
        prev = bytearray(size)
        best = -1
        for m in range(8):
            _mask(work, bits, fn, stride, size, m, pat)
            yield
            score = yield from _penalty(work, stride, size, line, prev)
            if best < 0 or score < best:  # on a tie the lower mask number stays
                best = score
                mask = m
        work = line = prev = None
    _mask(bits, bits, fn, stride, size, mask, pat)
    # The masks were scored with the format and version areas and the dark module still light,
    # as segno (the reference of the tests) does, so that both choose the same mask.
    _format(bits, fn, stride, size, _bch(((level ^ 1) << 3) | mask, _FORMAT_GEN, 10) ^ _FORMAT_XOR)
    if version >= 7:
        _version(bits, fn, stride, size, _bch(version, _VERSION_GEN, 12))
    return QR(size, bits, version, _LEVELS[level], mask)


def _bch(value, gen, check_bits):
    """`value` (at most 6 bits) then its BCH check bits: value * x^check_bits mod `gen`."""
    r = value << check_bits
    for b in range(check_bits + 5, check_bits - 1, -1):
        if r >> b & 1:
            r ^= gen << (b - check_bits)
    return (value << check_bits) | r


def _codewords(data, cbits, ndata, total, ec, nblocks):
    """The final sequence: data codewords (padded) and error correction, interleaved by block."""
    buf = bytearray(ndata)
    # Mode 0100 (byte), the count, the bytes, the terminator 0000: 4 + cbits is 12 or 20 bits,
    # so 4 bits stay pending between bytes and the terminator ends the stream on a byte edge.
    acc = (4 << cbits) | len(data)
    p = 0
    if cbits == 16:
        buf[0] = acc >> 12
        p = 1
    buf[p] = acc >> 4 & 0xFF
    p += 1
    acc &= 0xF
    for b in data:
        buf[p] = acc << 4 | b >> 4
        acc = b & 0xF
        p += 1
    buf[p] = acc << 4
    p += 1
    pad = 0xEC
    while p < ndata:
        buf[p] = pad
        pad ^= 0xEC ^ 0x11
        p += 1
    out = bytearray(total)
    short = total // nblocks - ec  # data codewords of a short block
    nshort = nblocks - total % nblocks  # the blocks after these carry one more
    gen = _generator(ec)
    rem = bytearray(ec)
    start = 0
    for b in range(nblocks):
        length = short + (b >= nshort)
        _remainder(buf, start, length, gen, rem)
        for i in range(short):
            out[i * nblocks + b] = buf[start + i]
        if length > short:
            out[short * nblocks + b - nshort] = buf[start + short]
        for i in range(ec):
            out[ndata + i * nblocks + b] = rem[i]
        start += length
    return out


def _generator(ec):
    """The Reed-Solomon generator (x - a^0)(x - a^1)...(x - a^(ec-1)), highest power first."""
    g = bytearray(ec + 1)
    g[0] = 1
    for i in range(ec):
        # multiply by (x + a^i): each coefficient gains the one above it times a^i
        for j in range(i + 1, 0, -1):
            c = g[j - 1]
            if c:
                g[j] ^= _EXP[(_LOG[c] + i) % _GF_MOD]
    return g


def _remainder(buf, start, length, gen, rem):
    """Into `rem`: buf[start:start + length] times x^ec, modulo the generator `gen`."""
    ec = len(rem)
    for j in range(ec):
        rem[j] = 0
    for k in range(start, start + length):
        f = buf[k] ^ rem[0]
        lf = _LOG[f]
        for j in range(ec):
            r = rem[j + 1] if j + 1 < ec else 0
            c = gen[j + 1]
            if f and c:
                r ^= _EXP[(_LOG[c] + lf) % _GF_MOD]
            rem[j] = r


def _put(bits, fn, stride, x, y, dark):
    """A function module: marked as such, dark or light."""
    i = y * stride + (x >> 3)
    b = 1 << (x & 7)
    fn[i] |= b
    if dark:
        bits[i] |= b
    else:
        bits[i] &= ~b


def _draw_functions(bits, fn, stride, size, version):
    """Finder patterns with their separators, timing, alignment patterns, and the format and
    version areas reserved (light while the masks are scored)."""
    for x in range(size, stride * 8):  # the padding bits of each row count as function modules
        for y in range(size):
            fn[y * stride + (x >> 3)] |= 1 << (x & 7)
    for corner in range(3):
        cx = size - 4 if corner == 1 else 3
        cy = size - 4 if corner == 2 else 3
        for dy in range(-4, 5):
            for dx in range(-4, 5):
                x = cx + dx
                y = cy + dy
                if 0 <= x < size and 0 <= y < size:
                    d = max(abs(dx), abs(dy))  # rings: 0-1 dark, 2 light, 3 dark, 4 separator
                    _put(bits, fn, stride, x, y, d != 2 and d != 4)
    for i in range(8, size - 8):
        _put(bits, fn, stride, i, 6, i % 2 == 0)
        _put(bits, fn, stride, 6, i, i % 2 == 0)
    if version >= 2:
        # Centres on 6, the last at size - 7 and, from version 7 to 13, one halfway.
        last = size - 7
        count = 3 if version >= 7 else 2
        for i in range(count):
            cx = 6 if i == 0 else (last if i == count - 1 else (6 + last) // 2)
            for j in range(count):
                cy = 6 if j == 0 else (last if j == count - 1 else (6 + last) // 2)
                if (cx == 6 and (cy == 6 or cy == last)) or (cx == last and cy == 6):
                    continue  # under a finder pattern
                for dy in range(-2, 3):
                    for dx in range(-2, 3):
                        _put(bits, fn, stride, cx + dx, cy + dy, max(abs(dx), abs(dy)) != 1)
    _format(bits, fn, stride, size, 0, False)
    if version >= 7:
        _version(bits, fn, stride, size, 0)


def _format(bits, fn, stride, size, value, dark=True):
    """The 15 format bits (bit 0 first) in both copies, and the dark module beside them."""
    for i in range(15):
        v = value >> i & 1
        if i < 6:
            _put(bits, fn, stride, 8, i, v)
        elif i < 8:
            _put(bits, fn, stride, 8, i + 1, v)  # past the timing pattern
        elif i == 8:
            _put(bits, fn, stride, 7, 8, v)
        else:
            _put(bits, fn, stride, 14 - i, 8, v)
        if i < 8:
            _put(bits, fn, stride, size - 1 - i, 8, v)
        else:
            _put(bits, fn, stride, 8, size - 15 + i, v)
    _put(bits, fn, stride, 8, size - 8, dark)


def _version(bits, fn, stride, size, value):
    """The 18 version bits, 6 x 3 above the bottom left finder and 3 x 6 left of the top right."""
    for i in range(18):
        v = value >> i & 1
        a = size - 11 + i % 3
        b = i // 3
        _put(bits, fn, stride, b, a, v)
        _put(bits, fn, stride, a, b, v)


def _place(bits, fn, stride, size, codewords):
    """Codeword bits, most significant first, up and down two-module columns from the right,
    skipping the vertical timing pattern; the remainder modules stay light."""
    nbits = len(codewords) * 8
    k = 0
    right = size - 1
    upward = True
    while right > 0:
        if right == 6:
            right = 5
        for step in range(size):
            y = size - 1 - step if upward else step
            for x in range(right, right - 2, -1):
                i = y * stride + (x >> 3)
                b = 1 << (x & 7)
                if fn[i] & b:
                    continue
                if k < nbits and codewords[k >> 3] >> (7 - (k & 7)) & 1:
                    bits[i] |= b
                k += 1
        upward = not upward
        right -= 2


def _dark(mask, x, y):
    """Mask `mask` inverts the data module in column x, row y."""
    if mask == 0:
        return (x + y) % 2 == 0
    if mask == 1:
        return y % 2 == 0
    if mask == 2:
        return x % 3 == 0
    if mask == 3:
        return (x + y) % 3 == 0
    if mask == 4:
        return (y // 2 + x // 3) % 2 == 0
    p = x * y
    if mask == 5:
        return p % 2 + p % 3 == 0
    if mask == 6:
        return (p % 2 + p % 3) % 2 == 0
    return ((x + y) % 2 + p % 3) % 2 == 0


def _mask(dst, src, fn, stride, size, mask, pat):
    """dst = src with mask `mask` applied to the data modules. Every mask repeats after 6
    columns and 12 rows, so one row of it packs into 3 bytes (24 columns): `pat` holds the 12."""
    for i in range(36):
        pat[i] = 0
    for y in range(12):
        for x in range(24):
            if _dark(mask, x, y):
                pat[y * 3 + (x >> 3)] |= 1 << (x & 7)
    for y in range(size):
        p = (y % 12) * 3
        base = y * stride
        for k in range(stride):
            dst[base + k] = src[base + k] ^ (pat[p + k % 3] & ~fn[base + k])


def _penalty(work, stride, size, line, prev):
    """The penalty of a masked symbol: runs, 2 x 2 blocks, finder-like patterns and the
    balance of dark and light (ISO/IEC 18004:2015, 7.8.3.1). A generator: it yields every 8
    rows and columns."""
    score = 0
    dark = 0
    for y in range(size):
        if y & 7 == 7:
            yield
        base = y * stride
        for x in range(size):
            line[x] = work[base + (x >> 3)] >> (x & 7) & 1
        score += _line(line, size)
        if y:
            c = line[0]
            for x in range(1, size):
                d = line[x]
                if d == c and d == prev[x] and d == prev[x - 1]:
                    score += 3
                c = d
        for x in range(size):
            dark += line[x]
        line, prev = prev, line
    for x in range(size):
        if x & 7 == 7:
            yield
        i = x >> 3
        s = x & 7
        for y in range(size):
            line[y] = work[y * stride + i] >> s & 1
        score += _line(line, size)
    total = size * size
    return score + 10 * (abs(20 * dark - 10 * total) // total)  # 10 per 5 % away from half


def _line(line, n):
    """Penalties of one row or column: 3 + (length - 5) for each run of 5 or more modules of
    one colour; 40 for each dark-light-dark-dark-dark-light-dark pattern with 4 light modules
    (or the symbol's edge) on one side. A pattern counted is skipped as a whole, so patterns
    that share modules count once (as in segno)."""
    score = 0
    run = 0
    last = 2
    for x in range(n):
        c = line[x]
        if c == last:
            run += 1
        else:
            if run >= 5:
                score += run - 2
            run = 1
            last = c
    if run >= 5:
        score += run - 2
    x = 0
    end = n - 7
    while x <= end:
        if (
            line[x]
            and not line[x + 1]
            and line[x + 2]
            and line[x + 3]
            and line[x + 4]
            and not line[x + 5]
            and line[x + 6]
            and (_light(line, x - 4, x, n) or _light(line, x + 7, x + 11, n))
        ):
            score += 40
            x += 7
        else:
            x += 1
    return score


def _light(line, a, b, n):
    for i in range(a if a > 0 else 0, b if b < n else n):
        if line[i]:
            return False
    return True
