# modbus: Modbus RTU frames: CRC-16/MODBUS, read requests, reply parsing.
# MIT licence. Ours because micropython-modbus is a blocking, much larger package and we need
# only FC03/FC04 reads.

from array import array
from math import inf, ldexp, nan

from micropython import const

from meter import MeterError

FC_HOLDING = const(3)  # read holding registers (40001 = address 0)
FC_INPUT = const(4)  # read input registers (30001 = address 0)
MAX_REGS = const(125)  # most registers one read may ask for
MAX_FRAME = const(255)  # longest reply: 5 + 2 * MAX_REGS bytes
EXC_LEN = const(5)  # an exception reply: address, function | 0x80, code, CRC
_EXC_FLAG = const(0x80)
_POLY = const(0xA001)  # 0x8005 reflected

# Kinds of value for decode(). Words are 16-bit registers; "high first" is big-endian.
F32 = const(0)  # IEEE 754 float32, high word first
U16 = const(1)
S16 = const(2)
U32 = const(3)  # high word first
S32 = const(4)
U32_LW = const(5)  # low word first (Phoenix Contact EEM, some Orno)
S32_LW = const(6)
U64 = const(7)  # four words, high word first

_EXCEPTIONS = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
}


class ModbusError(MeterError):
    # code: the exception code of an exception reply (1..255), None for anything else (no
    # answer, a broken or foreign frame). The master retries only when code is None.
    def __init__(self, msg, code=None):
        super().__init__(msg)
        self.code = code


def _make_table():
    # 256 entries of 16 bits (512 bytes of RAM, built once at import in well under 1 ms).
    # Measured on the unix port: 0.06-0.09 µs/byte against 0.5-0.7 µs/byte bitwise (8x) and
    # 0.10-0.15 µs/byte with a 16-entry nibble table; a 255-byte frame is the worst case.
    t = array("H", bytes(512))
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ _POLY if c & 1 else c >> 1
        t[i] = c
    return t


_TABLE = _make_table()


def crc16(data, n=-1):
    """CRC-16/MODBUS (init 0xFFFF, reflected polynomial 0xA001) of the first n bytes (all when
    n < 0). Sent low byte first. Allocates nothing."""
    if n < 0:
        n = len(data)
    t = _TABLE
    crc = 0xFFFF
    for i in range(n):
        crc = (crc >> 8) ^ t[(crc ^ data[i]) & 0xFF]
    return crc


def read_request(addr, fc, start, count):
    """The 8-byte request to read `count` registers from `start` (0-based, on the wire)."""
    if fc != FC_HOLDING and fc != FC_INPUT:
        raise ValueError("function %r: only 3 and 4 are supported" % (fc,))
    if not _is_int(addr) or not 1 <= addr <= 247:
        raise ValueError("address %r not in 1..247" % (addr,))
    if not _is_int(count) or not 1 <= count <= MAX_REGS:
        raise ValueError("count %r not in 1..125" % (count,))
    if not _is_int(start) or not 0 <= start or start + count > 0x10000:
        raise ValueError("registers %r..+%r outside 0..65535" % (start, count))
    f = bytearray(8)
    f[0] = addr
    f[1] = fc
    f[2] = start >> 8
    f[3] = start & 0xFF
    f[4] = count >> 8
    f[5] = count & 0xFF
    crc = crc16(f, 6)
    f[6] = crc & 0xFF
    f[7] = crc >> 8
    return bytes(f)


def _is_int(v):
    # bool is an int subclass on CPython (not on MicroPython): refuse it on both.
    return isinstance(v, int) and not isinstance(v, bool)


def expected_length(fc, count):
    """Bytes in a normal reply to a read of `count` registers."""
    return 5 + 2 * count


def is_exception(head):
    """True when a reply whose first bytes (at least 2) are `head` is an exception frame,
    which is EXC_LEN bytes long whatever was asked."""
    return bool(head[1] & _EXC_FLAG)


def reply_length(head, count):
    """Total length of the reply that starts with `head` (at least 2 bytes received)."""
    return EXC_LEN if head[1] & _EXC_FLAG else 5 + 2 * count


def check_reply(addr, fc, count, frame, n=-1):
    """Validate the reply held in the first n bytes of `frame` (all when n < 0); the data then
    starts at byte 3. Raises ModbusError; allocates nothing when the frame is good."""
    if n < 0:
        n = len(frame)
    if n < EXC_LEN:
        raise ModbusError("reply too short: %d bytes" % n)
    exc = frame[1] & _EXC_FLAG
    want = EXC_LEN if exc else 5 + 2 * count
    if n != want:
        raise ModbusError("reply of %d bytes, expected %d" % (n, want))
    crc = crc16(frame, n - 2)
    if frame[n - 2] != crc & 0xFF or frame[n - 1] != crc >> 8:
        raise ModbusError("bad CRC")
    if frame[0] != addr:
        raise ModbusError("reply from address %d, expected %d" % (frame[0], addr))
    if frame[1] & 0x7F != fc:
        raise ModbusError("reply to function 0x%02x, expected %d" % (frame[1], fc))
    if exc:
        code = frame[2]
        raise ModbusError(
            "exception %d (%s) from address %d"
            % (code, _EXCEPTIONS.get(code, "unknown exception"), addr),
            code,
        )
    if frame[2] != 2 * count:
        raise ModbusError("byte count %d, expected %d" % (frame[2], 2 * count))


def parse_reply(addr, fc, count, frame, n=-1):
    """The 2 * count data bytes of a valid reply (a memoryview into `frame`), else ModbusError.
    For the exception replies, `.code` is the Modbus exception code."""
    check_reply(addr, fc, count, frame, n)
    return memoryview(frame)[3 : 3 + 2 * count]


# Decoders. `off` is the byte offset of the value's first register in `buf`. They index the
# buffer byte by byte: no slices, no tuples (struct.unpack_from builds one per call), so the
# integer ones allocate nothing while the result fits a small int (up to 2**30 on a 32-bit
# port) and the float one allocates just its float.


def u16(buf, off):
    return (buf[off] << 8) | buf[off + 1]


def s16(buf, off):
    v = (buf[off] << 8) | buf[off + 1]
    return v - 0x10000 if v & 0x8000 else v


def u32(buf, off, low_first=False):
    hi = off + 2 if low_first else off  # the word order, without a tuple
    lo = off if low_first else off + 2
    return (((buf[hi] << 8) | buf[hi + 1]) << 16) | (buf[lo] << 8) | buf[lo + 1]


def s32(buf, off, low_first=False):
    hi = off + 2 if low_first else off  # the word order, without a tuple
    lo = off if low_first else off + 2
    h = (buf[hi] << 8) | buf[hi + 1]
    if h & 0x8000:
        h -= 0x10000  # so that small negatives stay small ints on the way
    return h * 0x10000 + ((buf[lo] << 8) | buf[lo + 1])


def u64(buf, off):
    v = 0
    for i in range(off, off + 8):
        v = (v << 8) | buf[i]
    return v


def f32(buf, off, low_first=False):
    """IEEE 754 binary32; NaN and infinities come back as such (the caller judges them)."""
    hi = off + 2 if low_first else off  # the word order, without a tuple
    lo = off if low_first else off + 2
    b0 = buf[hi]
    b1 = buf[hi + 1]
    e = ((b0 & 0x7F) << 1) | (b1 >> 7)
    m = ((b1 & 0x7F) << 16) | (buf[lo] << 8) | buf[lo + 1]
    if e == 0xFF:
        if m:
            return nan
        return -inf if b0 & 0x80 else inf
    if e:
        m |= 0x800000
    elif m:
        e = 1  # subnormal
    else:
        return -0.0 if b0 & 0x80 else 0.0  # an int has no negative zero
    return ldexp(-m if b0 & 0x80 else m, e - 150)


def decode(buf, off, kind, mul=1, div=1):
    """One value of `kind` (F32, U16, ...) at byte `off`, times `mul`, divided by `div`.

    Scale with `div` for decimal fractions: 2301 / 10 is 230.1 exactly rounded, 2301 * 0.1 is
    not. Integer results with integer `mul` and div == 1 stay integers (exact energy)."""
    if kind == F32:
        v = f32(buf, off)
    elif kind == U32:
        v = u32(buf, off)
    elif kind == S32:
        v = s32(buf, off)
    elif kind == U32_LW:
        v = u32(buf, off, True)
    elif kind == S32_LW:
        v = s32(buf, off, True)
    elif kind == U64:
        v = u64(buf, off)
    elif kind == U16:
        v = u16(buf, off)
    elif kind == S16:
        v = s16(buf, off)
    else:
        raise ValueError("unknown kind %r" % (kind,))
    if div != 1:
        v = v / div
    if mul != 1:
        v = v * mul
    return v


def words(kind):
    """Registers a value of `kind` occupies."""
    if kind == U16 or kind == S16:
        return 1
    return 4 if kind == U64 else 2
