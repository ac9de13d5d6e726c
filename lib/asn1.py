# asn1: a minimal DER reader, enough for X.509 certificates and signatures (ITU-T X.690).
# MIT licence. Ours because no maintained package parses ASN.1 on MicroPython.
#
# A Reader walks the elements of data[pos:end] one after another; each read checks the tag,
# moves past the element and returns its contents. Constructed elements (SEQUENCE, SET,
# explicit tags) are read with sub(), which returns a Reader over the contents. Only DER is
# accepted: one-byte tags, definite lengths in the fewest bytes, minimal INTEGERs, BOOLEANs
# 0x00/0xFF, zero padding bits in BIT STRINGs. Anything else, or running past the end,
# raises DerError; nothing else escapes for any input.
#
#   r = Reader(der)
#   seq = r.sub()            # SEQUENCE contents
#   r.finish()               # DerError unless everything was read
#   seq = one(der)           # the same three lines in one
#   n = seq.integer()
#   oid = seq.oid()          # "1.2.840.10045.2.1"
#
# And the few encoders that signing needs (CSRs, signatures, keys), each giving one element's
# DER as bytes: tlv(tag, contents); integer(n), n >= 0; oid(dotted); bits(data), a BIT STRING
# of whole bytes. Constructed elements nest them: tlv(SEQUENCE, integer(1) + oid(...)).

from micropython import const

BOOLEAN = const(0x01)
INTEGER = const(0x02)
BIT_STRING = const(0x03)
OCTET_STRING = const(0x04)
OID = const(0x06)
UTF8_STRING = const(0x0C)
PRINTABLE_STRING = const(0x13)
T61_STRING = const(0x14)
IA5_STRING = const(0x16)
UTC_TIME = const(0x17)
GENERALIZED_TIME = const(0x18)
VISIBLE_STRING = const(0x1A)
UNIVERSAL_STRING = const(0x1C)
BMP_STRING = const(0x1E)
SEQUENCE = const(0x30)
SET = const(0x31)


def bit_length(n):
    """The bits of integer n >= 0 (0 for 0). MicroPython's int has no bit_length(), and
    len(bin(n)) builds a string of one character per bit: 4 KB for an RSA-4096 modulus, which
    a board's fragmented heap may not have. Here the largest allocation is n shifted."""
    if n <= 0:
        return 0
    top = 64
    while n >> top:
        top <<= 1
    k = 0  # n >> k is not 0
    step = top >> 1
    while step:
        if n >> (k + step):
            k += step
        step >>= 1
    return k + 1


def explicit(n):
    """The tag of a constructed context-specific [n] (an EXPLICIT tag)."""
    return 0xA0 | n


class DerError(ValueError):
    pass


def one(data, tag=SEQUENCE):
    """A Reader over the contents of data, which must be exactly one element with this tag."""
    r = Reader(data)
    inner = r.sub(tag)
    r.finish()
    return inner


class Reader:
    """Reads the elements of data[pos:end] in order."""

    def __init__(self, data, pos=0, end=None):
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def done(self):
        return self.pos >= self.end

    def peek(self):
        """The tag of the next element, or None at the end."""
        return self.data[self.pos] if self.pos < self.end else None

    def finish(self):
        """DerError unless every element was read."""
        if self.pos != self.end:
            raise DerError("unexpected data after the last element")

    def _next(self, tag):
        # The contents' (start, stop) of the next element, which must have this tag.
        d = self.data
        i = self.pos
        if self.end - i < 2:
            raise DerError("truncated")
        if d[i] != tag:
            raise DerError("tag 0x%02x where 0x%02x belongs" % (d[i], tag))
        n = d[i + 1]
        i += 2
        if n & 0x80:
            k = n & 0x7F  # the length's own length in bytes; 0 is BER's indefinite length
            if not 1 <= k <= 4 or self.end - i < k:
                raise DerError("bad length")
            n = int.from_bytes(d[i : i + k], "big")
            if d[i] == 0 or n < 0x80:
                raise DerError("length not in the fewest bytes")
            i += k
        if n > self.end - i:
            raise DerError("truncated")
        self.pos = i + n
        return i, i + n

    def read(self, tag):
        """The contents of the next element as bytes."""
        a, b = self._next(tag)
        return bytes(self.data[a:b])

    def raw(self, tag=SEQUENCE):
        """The next element whole (tag, length and contents) as bytes."""
        start = self.pos
        self._next(tag)
        return bytes(self.data[start : self.pos])

    def sub(self, tag=SEQUENCE):
        """A Reader over the contents of the next (constructed) element."""
        a, b = self._next(tag)
        return Reader(self.data, a, b)

    def rest(self):
        """Everything not read yet, as bytes; the Reader is then done."""
        v = bytes(self.data[self.pos : self.end])
        self.pos = self.end
        return v

    def optional(self, tag):
        """sub(tag) when the next element has this tag, else None."""
        return self.sub(tag) if self.peek() == tag else None

    def integer(self):
        v = self.read(INTEGER)
        if not v or (len(v) > 1 and (v[0] == 0 and v[1] < 0x80 or v[0] == 0xFF and v[1] >= 0x80)):
            raise DerError("INTEGER not minimal")
        n = int.from_bytes(v, "big")
        return n - (1 << 8 * len(v)) if v[0] >= 0x80 else n

    def boolean(self):
        v = self.read(BOOLEAN)
        if v != b"\x00" and v != b"\xff":
            raise DerError("BOOLEAN not 0x00 or 0xFF")
        return v == b"\xff"

    def bits(self):
        """A BIT STRING as (bytes, number of unused bits at the end of the last byte)."""
        v = self.read(BIT_STRING)
        if not v or v[0] > 7 or (len(v) == 1 and v[0]) or (len(v) > 1 and v[-1] & (1 << v[0]) - 1):
            raise DerError("bad BIT STRING")
        return v[1:], v[0]

    def oid(self):
        """An OBJECT IDENTIFIER in dotted form."""
        v = self.read(OID)
        if not v or v[-1] & 0x80:
            raise DerError("bad OID")
        arcs = []
        n = 0
        for c in v:
            if n == 0 and c == 0x80:
                raise DerError("OID arc not minimal")
            n = n << 7 | c & 0x7F
            if not c & 0x80:
                if not arcs:  # the first number holds two arcs: 40 * first + second
                    first = min(n // 40, 2)
                    arcs.append(str(first))
                    n -= 40 * first
                arcs.append(str(n))
                n = 0
        return ".".join(arcs)

    def string(self):
        """A character string of any of the types X.509 names use, decoded to str."""
        tag = self.peek()
        v = self.read(tag)
        if tag == BMP_STRING or tag == UNIVERSAL_STRING:
            w = 2 if tag == BMP_STRING else 4
            if len(v) % w:
                raise DerError("bad string length")
            try:
                return "".join(
                    chr(int.from_bytes(v[i : i + w], "big")) for i in range(0, len(v), w)
                )
            except ValueError:  # beyond U+10FFFF (or a surrogate, on MicroPython)
                raise DerError("bad character")
        if tag == UTF8_STRING:
            try:
                return v.decode()
            except UnicodeError:
                raise DerError("bad UTF-8")
        if tag in (PRINTABLE_STRING, T61_STRING, IA5_STRING, VISIBLE_STRING):
            return "".join(chr(c) for c in v)  # ASCII, or Latin-1 for T61 as in practice
        raise DerError("not a string (tag 0x%02x)" % tag)


def tlv(tag, contents):
    """One element: tag, length in the fewest bytes, contents (bytes)."""
    n = len(contents)
    if n < 0x80:
        return bytes((tag, n)) + contents
    k = (bit_length(n) + 7) // 8
    return bytes((tag, 0x80 | k)) + n.to_bytes(k, "big") + contents


def integer(n):
    """An INTEGER n >= 0 in the fewest bytes: a leading 0x00 where the top bit is set."""
    if n < 0:
        raise ValueError("negative INTEGER")
    return tlv(INTEGER, n.to_bytes(bit_length(n) // 8 + 1, "big"))


def oid(dotted):
    """An OBJECT IDENTIFIER from its dotted form ("1.2.840.10045.2.1")."""
    arcs = [int(a) for a in dotted.split(".")]
    arcs[0:2] = [40 * arcs[0] + arcs[1]]  # the first two arcs share one number
    out = bytearray()
    for n in arcs:
        shift = (bit_length(n) - 1) // 7 * 7 if n else 0  # base 128, most significant first
        while shift:
            out.append(0x80 | n >> shift & 0x7F)
            shift -= 7
        out.append(n & 0x7F)
    return tlv(OID, bytes(out))


def bits(data):
    """A BIT STRING of whole bytes (no unused bits)."""
    return tlv(BIT_STRING, b"\x00" + data)
