# jsonwire: strict, bounded checking of a received JSON text, and exact text for what is sent.
# MIT licence. Ours because MicroPython's json is lenient (trailing commas, 02, raw control
# characters, any bytes), decodes an escaped surrogate pair into two 3-byte sequences (CESU-8),
# prints floats with 16 digits (76.15000000000001), and no package checks JSON on a device.
#
#   r = await check(data)     data: the bytes of a received text message; r: a Checked
#   r = check_now(data)       the same without yielding to the loop (tests)
#   r.status                  OK, BAD (not UTF-8 / not JSON), LONE (a lone surrogate escape),
#                             BIG (beyond our bounds), NOMEM (out of memory while checking)
#   r.why                     short ASCII text for an errorDescription ("" when OK)
#   r.kind                    element 0 of a top-level array when it is an integer: its value,
#                             or LONG for one of more than 9 characters; else None
#   r.uid                     element 1 when element 0 is an integer and element 1 a valid
#                             string of 1..36 characters (a message id we can echo), else None
#   r.text                    what to give json.loads once OK: data itself, or a copy with
#                             each surrogate-pair escape turned into its 4-byte character
#   dumps(obj)                the UTF-8 bytes of compact JSON for obj: floats as the shortest
#                             text that reads back the same, never invalid UTF-8
#   num_text(x)               that text for one float
#   utf8_error(b, i, j)       -1 if b[i:j] is strict UTF-8, else the offset of the first defect
#   utf8_fix(b)               b with CESU-8 pairs joined and every other defect as U+FFFD
#
# The check is one pass over the bytes: RFC 8259 grammar with the nesting in a bytearray
# (no recursion), numbers of at most _MAX_NUM characters, valid escapes, no raw control
# characters in strings, strict UTF-8 (no overlongs, no surrogates, nothing past U+10FFFF).
# C does the bulk: min() and max() of the whole text decide whether control characters and
# non-ASCII bytes need looking at, bytes.find() jumps over string contents; Python runs once
# per token and per byte only in strings that hold non-ASCII bytes. check() yields to the
# loop every _STEP bytes, so no text holds it for long.

import asyncio
import json

try:
    from micropython import const
except ImportError:  # plain CPython, without tests_host/mpcompat.py

    def const(x):
        return x


OK = const(0)
BAD = const(1)
LONE = const(2)
BIG = const(3)
NOMEM = const(4)
LONG = const(-(1 << 30))  # r.kind of an integer too long to read (never 2, 3 or 4)

_MAX_DEPTH = const(32)  # OCPP's deepest request (RequestStartTransaction) nests 13 deep
_MAX_NUM = const(64)  # characters of a number: 17 significant digits need far fewer
_MAX_ID = const(36)  # longest message id
_STEP = const(2048)  # bytes between two yields

# What the scanner expects next.
_VAL = const(0)  # a value: at the start, after ':', after ',' in an array
_VAL_END = const(1)  # a value or ']': after '['
_KEY = const(2)  # a key: after ',' in an object
_KEY_END = const(3)  # a key or '}': after '{'
_COLON = const(4)  # ':' after a key
_NEXT = const(5)  # ',' or the closing bracket after a value; the end at the top level
# Container kinds on the nesting stack.
_ARR = const(0)
_OBJ = const(1)

_ESCAPES = b'"\\/bfnrt'


class Checked:
    """The verdict on one received text; see the module header."""

    def __init__(self, data):
        self.status = OK
        self.why = ""
        self.kind = None
        self.uid = None
        self.text = data


async def check(data):
    r = Checked(data)
    try:
        for _ in _scan(r, data):
            await asyncio.sleep_ms(0)
    except MemoryError:
        _fail(r, NOMEM, "out of memory to check it", -1)
    return r


def check_now(data):
    r = Checked(data)
    try:
        for _ in _scan(r, data):
            pass
    except MemoryError:
        _fail(r, NOMEM, "out of memory to check it", -1)
    return r


def _fail(r, status, why, at):
    r.status = status
    r.why = why if at < 0 else "%s at byte %d" % (why, at)
    r.text = None


def _hex4(b, i):
    # The value of 4 hex digits at b[i:i+4], or -1.
    if i + 4 > len(b):
        return -1
    v = 0
    for k in range(i, i + 4):
        c = b[k]
        if 0x30 <= c <= 0x39:
            c -= 0x30
        elif 0x61 <= c <= 0x66:
            c -= 0x57
        elif 0x41 <= c <= 0x46:
            c -= 0x37
        else:
            return -1
        v = (v << 4) | c
    return v


def _digits(b, j, n):
    # The end of the run of ASCII digits from j: byte by byte for a number's worth, then in
    # slices checked by C (a 60,000-digit number costs a few hundred steps, not 60,000).
    stop = j + _MAX_NUM if j + _MAX_NUM < n else n
    while j < stop and 0x30 <= b[j] <= 0x39:
        j += 1
    if j == stop:
        while j + 256 <= n and b[j : j + 256].isdigit():
            j += 256
        while j < n and 0x30 <= b[j] <= 0x39:
            j += 1
    return j


def _cut(b, k):
    # k moved back off the continuation bytes of a character (a cut between characters).
    m = k - 3
    while k > m and 0x80 <= b[k] < 0xC0:
        k -= 1
    return k


def utf8_error(b, i, j):
    """-1 if b[i:j] is strict UTF-8 (RFC 3629), else the offset of the first defect."""
    while i < j:
        c = b[i]
        if c < 0x80:
            i += 1
            continue
        if c < 0xC2:  # a continuation byte first, or an overlong 2-byte form
            return i
        lo = 0x80
        hi = 0xBF
        if c < 0xE0:
            k = 1
        elif c < 0xF0:
            k = 2
            if c == 0xE0:
                lo = 0xA0  # overlong below
            elif c == 0xED:
                hi = 0x9F  # surrogates above
        elif c < 0xF5:
            k = 3
            if c == 0xF0:
                lo = 0x90  # overlong below
            elif c == 0xF4:
                hi = 0x8F  # past U+10FFFF above
        else:
            return i
        if i + k >= j:
            return i
        c = b[i + 1]
        if c < lo or c > hi:
            return i
        if k > 1:
            if not 0x80 <= b[i + 2] <= 0xBF:
                return i
            if k > 2 and not 0x80 <= b[i + 3] <= 0xBF:
                return i
        i += k + 1
    return -1


def _scan(r, b):
    # The checker proper: a generator that fills r and yields every _STEP bytes or so.
    n = len(b)
    mv = memoryview(b)
    ctl = False  # some byte < 0x20: control characters need looking for in strings
    high = False  # some byte >= 0x80: strings need UTF-8 checking
    k = 0
    while k < n:
        part = mv[k : k + _STEP]
        if not ctl and min(part) < 0x20:
            ctl = True
        if not high and max(part) >= 0x80:
            high = True
        k += _STEP
        if k < n:
            yield
    stack = bytearray(_MAX_DEPTH)
    d = 0  # nesting depth: stack[d - 1] is the innermost container
    exp = _VAL
    el = -2  # index of the element being read in the top-level array (-2: not in one)
    pairs = None  # offsets of the surrogate-pair escapes, for the rewrite
    lone = -1  # offset of the first lone surrogate escape
    i = 0
    mark = _STEP
    while True:
        if i >= mark:
            yield
            mark = i + _STEP
        if i >= n:
            break
        c = b[i]
        if c == 0x20 or c == 0x0A or c == 0x0D or c == 0x09:
            i += 1
            continue
        if exp == _NEXT:
            if d == 0:
                return _fail(r, BAD, "not JSON: text after the value", i)
            top = stack[d - 1]
            if c == 0x2C:  # ,
                exp = _VAL if top == _ARR else _KEY
            elif c == 0x5D and top == _ARR:  # ]
                d -= 1
            elif c == 0x7D and top == _OBJ:  # }
                d -= 1
            else:
                return _fail(r, BAD, "not JSON: ',' or a closing bracket expected", i)
            i += 1
            continue
        if exp == _COLON:
            if c != 0x3A:
                return _fail(r, BAD, "not JSON: ':' expected", i)
            exp = _VAL
            i += 1
            continue
        key = exp == _KEY or exp == _KEY_END
        if c == 0x22:  # " : a string, key or value
            i += 1
            s0 = i
            esc = False
            bad = lone  # a new lone surrogate inside this string changes `lone`
            q = -1  # the first '"' at or after i
            while True:
                if i >= mark:
                    yield
                    mark = i + _STEP
                if q < i:
                    q = b.find(b'"', i)
                    if q < 0:
                        return _fail(r, BAD, "not JSON: unterminated string", s0 - 1)
                e = b.find(b"\\", i, q)
                end = q if e < 0 else e
                while i < end:  # raw content, in pieces of at most _STEP bytes
                    j = end
                    if j - i > _STEP:
                        j = i + _STEP
                        if high:
                            j = _cut(b, j)
                    if ctl and min(mv[i:j]) < 0x20:
                        while b[i] >= 0x20:
                            i += 1
                        return _fail(r, BAD, "not JSON: control character in a string", i)
                    if high and max(mv[i:j]) >= 0x80:
                        at = utf8_error(b, i, j)
                        if at >= 0:
                            return _fail(r, BAD, "not UTF-8", at)
                    i = j
                    if i >= mark:
                        yield
                        mark = i + _STEP
                if e < 0:
                    break
                esc = True
                i = e + 1
                c = b[i] if i < n else 0
                if c == 0x75:  # u
                    v = _hex4(b, i + 1)
                    if v < 0:
                        return _fail(r, BAD, "not JSON: bad \\u escape", e)
                    i += 5
                    if 0xD800 <= v < 0xDC00:
                        w = -1
                        if i + 1 < n and b[i] == 0x5C and b[i + 1] == 0x75:
                            w = _hex4(b, i + 2)
                        if 0xDC00 <= w < 0xE000:
                            if pairs is None:
                                pairs = []
                            pairs.append(e)
                            i += 6
                        elif lone < 0:
                            lone = e
                    elif 0xDC00 <= v < 0xE000 and lone < 0:
                        lone = e
                elif c and c in _ESCAPES:
                    i += 1
                else:
                    return _fail(r, BAD, "not JSON: bad escape", e)
            i = q + 1
            if key:
                exp = _COLON
                continue
            exp = _NEXT
            if d == 1 and el >= -1:
                el += 1
                if el == 1 and r.kind is not None and bad == lone:
                    r.uid = _id(b, s0, q, esc)
            continue
        if key:
            if c == 0x7D and exp == _KEY_END:  # } of an empty object
                d -= 1
                exp = _NEXT
                i += 1
                continue
            return _fail(r, BAD, "not JSON: a string key expected", i)
        # A value other than a string, or the ']' of an empty array.
        if c == 0x5B or c == 0x7B:  # [ {
            if d == _MAX_DEPTH:
                return _fail(r, BIG, "nested deeper than %d" % _MAX_DEPTH, i)
            if d == 1 and el >= -1:
                el += 1
            if d == 0 and c == 0x5B:
                el = -1
            stack[d] = _ARR if c == 0x5B else _OBJ
            d += 1
            exp = _VAL_END if c == 0x5B else _KEY_END
            i += 1
            continue
        if c == 0x5D and exp == _VAL_END:  # ] of an empty array
            d -= 1
            exp = _NEXT
            i += 1
            continue
        if d == 1 and el >= -1:
            el += 1
        if c == 0x2D or 0x30 <= c <= 0x39:  # - digit
            j = i + 1 if c == 0x2D else i
            if j < n and b[j] == 0x30:
                j += 1
            elif j < n and 0x31 <= b[j] <= 0x39:
                j = _digits(b, j + 1, n)
            else:
                return _fail(r, BAD, "not JSON: bad number", i)
            whole = j  # the end of the integer part
            if j < n and b[j] == 0x2E:  # .
                k = _digits(b, j + 1, n)
                if k == j + 1:
                    return _fail(r, BAD, "not JSON: bad number", i)
                j = k
            if j < n and (b[j] == 0x65 or b[j] == 0x45):  # e E
                j += 1
                if j < n and (b[j] == 0x2B or b[j] == 0x2D):
                    j += 1
                k = _digits(b, j, n)
                if k == j:
                    return _fail(r, BAD, "not JSON: bad number", i)
                j = k
            if el == 0 and d == 1 and whole == j:  # the message type
                r.kind = int(str(b[i:j], "ascii")) if j - i <= 9 else LONG
            elif j - i > _MAX_NUM:
                return _fail(r, BIG, "number longer than %d characters" % _MAX_NUM, i)
            elif whole != j and (j - i > 17 or b.find(b"e", i, j) >= 0 or b.find(b"E", i, j) >= 0):
                x = float(b[i:j])
                if x - x != 0:  # inf: no float holds it (nor could we send it back)
                    return _fail(r, BIG, "number out of range", i)
            i = j
            exp = _NEXT
            continue
        if c == 0x74 and b.startswith(b"true", i):
            i += 4
        elif c == 0x66 and b.startswith(b"false", i):
            i += 5
        elif c == 0x6E and b.startswith(b"null", i):
            i += 4
        else:
            return _fail(r, BAD, "not JSON: a value expected", i)
        exp = _NEXT
    if d or exp != _NEXT:
        return _fail(r, BAD, "not JSON: the text ends early", n)
    if lone >= 0:
        return _fail(r, LONE, "lone surrogate escape", lone)
    if pairs is not None:
        out = bytearray(n - 8 * len(pairs))
        yield from _join(b, pairs, out)
        r.text = out


def _id(b, s0, q, esc):
    # The message id b[s0:q] (checked content of a string) if we can echo it, else None.
    if q - s0 > 12 * _MAX_ID:  # more bytes than 36 characters can take (12: a pair escape)
        return None
    if esc:
        seg = b[s0 - 1 : q + 1]
        pairs = _pair_offsets(seg)
        out = bytearray(len(seg) - 8 * len(pairs))
        for _ in _join(seg, pairs, out):
            pass
        uid = json.loads(out)
    else:
        uid = str(b[s0:q], "utf-8")
    return uid if 0 < len(uid) <= _MAX_ID else None


def _pair_offsets(b):
    # Offsets of the surrogate-pair escapes in a checked string literal b (rare path).
    out = []
    i = b.find(b"\\")
    while i >= 0:
        c = b[i + 1]
        if c == 0x75 and 0xD800 <= _hex4(b, i + 2) < 0xDC00:
            out.append(i)
            i += 12
        else:
            i += 6 if c == 0x75 else 2
        i = b.find(b"\\", i)
    return out


def _join(b, pairs, out):
    # out = b with each 12-byte escape "\\uD8xx\\uDCxx" at the offsets `pairs` as its 4 UTF-8
    # bytes. A generator, yielding every 256 pairs.
    mv = memoryview(b)
    o = 0
    i = 0
    k = 0
    for p in pairs:
        k += 1
        if not k & 255:
            yield
        out[o : o + p - i] = mv[i:p]
        o += p - i
        cp = 0x10000 + ((_hex4(b, p + 2) - 0xD800) << 10) + (_hex4(b, p + 8) - 0xDC00)
        out[o] = 0xF0 | (cp >> 18)
        out[o + 1] = 0x80 | ((cp >> 12) & 0x3F)
        out[o + 2] = 0x80 | ((cp >> 6) & 0x3F)
        out[o + 3] = 0x80 | (cp & 0x3F)
        o += 4
        i = p + 12
    out[o:] = mv[i:]


def number_text(text, name, value):
    """The JSON text of the number that follows the key `name` in the checked JSON `text` and
    that json.loads read as `value`: "12.345" where the float is 12.344999..., so that an
    amount can be shown as it was sent. None when there is none. (A key inside a string has
    its quotes escaped there, so it is never found.)"""
    if type(text) is not bytes:
        text = bytes(text, "utf-8") if type(text) is str else bytes(text)
    key = ('"' + name + '"').encode()
    n = len(text)
    i = text.find(key)
    while i >= 0:
        j = i + len(key)
        while j < n and text[j] in b" \t\r\n:":
            j += 1
        k = j
        while k < n and text[k] in b"+-0123456789.eE":
            k += 1
        if k > j:
            t = text[j:k].decode()
            try:
                if float(t) == value:
                    return t
            except ValueError:
                pass
        i = text.find(key, k)
    return None


# ---- what goes out


def _precisions():
    # %g precisions to try, fewest first: 15 (6) digits always read back as written in a
    # double (a float, as on the ESP32), 17 (9) always give the number back. So a number
    # that has a text of up to 15 (6) digits gets that one (subnormals aside).
    if 1.0 + 1e-8 == 1.0:
        return ("%.6g", "%.7g", "%.8g", "%.9g")
    return ("%.15g", "%.16g", "%.17g")


_PRECISIONS = _precisions()


def num_text(x):
    """The shortest %g text that reads back as the float x ("76.15", "1693300.0", "1e+22"),
    or one of 16 or 17 digits for a number that needs that many."""
    if x - x != 0:  # inf, nan: JSON has no text for them; leave them to json
        return repr(x)
    for f in _PRECISIONS:
        t = f % x
        if float(t) == x:
            break
    if "." not in t and "e" not in t:
        t += ".0"  # still a float on the wire, as repr() writes it
    return t


class _Float(float):
    # A float that MicroPython's json.dumps prints as num_text() (it prints anything but a
    # plain float with its __repr__); CPython's prints a float subclass as float.__repr__,
    # which already is the shortest text.
    def __repr__(self):
        return num_text(self * 1.0)  # a plain float: MicroPython's % refuses a subclass


def _swap(obj, wrap):
    # Replace, in place, each float in the lists and dicts of obj by a _Float (wrap) or each
    # _Float by its float (not wrap); -> how many. An explicit stack: no recursion.
    n = 0
    stack = [obj]
    while stack:
        c = stack.pop()
        items = c.items() if type(c) is dict else enumerate(c)
        for k, v in items:
            t = type(v)
            if t is dict or t is list:
                stack.append(v)
            elif wrap and t is float:
                c[k] = _Float(v)
                n += 1
            elif not wrap and t is _Float:
                c[k] = v * 1.0
                n += 1
    return n


def dumps(obj):
    """Compact JSON of obj (a list or dict) as UTF-8 bytes (a memoryview of the str on
    MicroPython: no copy): floats as num_text(), and strict UTF-8 whatever the strings held."""
    wrapped = _swap(obj, True)
    try:
        text = json.dumps(obj, separators=(",", ":"))
    finally:
        if wrapped:
            _swap(obj, False)
    try:
        data = memoryview(text)  # MicroPython: the str's own UTF-8 bytes
    except TypeError:
        data = text.encode()  # CPython: ASCII, as its json escapes the rest
    if len(data) != len(text) and _utf8_bad(data):  # not all ASCII
        data = utf8_fix(data)
    return data


def _utf8_bad(b):
    # True if b is not strict UTF-8. Runs of ASCII are skipped 256 bytes at a time by max().
    mv = memoryview(b)
    n = len(b)
    i = 0
    while i < n:
        j = i + 256 if i + 256 < n else n
        if max(mv[i:j]) >= 0x80:
            while j < n and 0x80 <= b[j] < 0xC0:  # take in the character cut at j
                j += 1
            if utf8_error(b, i, j) >= 0:
                return True
        i = j
    return False


def utf8_fix(b):
    """b with each CESU-8 surrogate pair as its 4-byte character and every other defect
    (lone surrogate, overlong, stray byte) as U+FFFD: what MicroPython's json may have let
    into a string before we checked (it is stored in flash, say)."""
    out = bytearray()
    n = len(b)
    i = 0
    while i < n:
        at = utf8_error(b, i, n)
        if at < 0:
            out.extend(b[i:n])
            break
        out.extend(b[i:at])
        if (
            at + 6 <= n
            and b[at] == 0xED
            and 0xA0 <= b[at + 1] <= 0xAF
            and 0x80 <= b[at + 2] <= 0xBF
            and b[at + 3] == 0xED
            and 0xB0 <= b[at + 4] <= 0xBF
            and 0x80 <= b[at + 5] <= 0xBF
        ):
            hi = ((b[at + 1] & 0x0F) << 6) | (b[at + 2] & 0x3F)
            lo = ((b[at + 4] & 0x0F) << 6) | (b[at + 5] & 0x3F)
            cp = 0x10000 + (hi << 10) + lo
            out.append(0xF0 | (cp >> 18))
            out.append(0x80 | ((cp >> 12) & 0x3F))
            out.append(0x80 | ((cp >> 6) & 0x3F))
            out.append(0x80 | (cp & 0x3F))
            i = at + 6
            continue
        out.extend(b"\xef\xbf\xbd")
        i = at + 1
        while i < n and 0x80 <= b[i] < 0xC0:  # the rest of the bad sequence
            i += 1
    return bytes(out)
