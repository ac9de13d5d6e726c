# logread: reading back a log on flash (lib/logfile.py), oldest first, within a time window.
# MIT licence. Ours because it reads the format of lib/logfile.py; kept apart from it so that
# a station that never uploads its log never loads this code.

import os

from micropython import const

_PIECE = const(256)  # bytes read from flash at a time (a file may be 16 KiB, the heap 112)
_JUNK = const(2048)  # bytes without a newline after which a reader gives up on that line


def select(lf, oldest, latest, raw):
    """LogFiles.lines, as bytes when `raw`: the lines of `lf` in [oldest, latest]."""
    return _select(lf, _key(oldest), _key(latest), raw)


def size(lf, oldest, latest):
    """LogFiles.size: the bytes of the same lines, a newline each."""
    n = 0
    for b in _select(lf, _key(oldest), _key(latest), True):
        n += len(b) + 1
    return n


def clear(lf):
    """LogFiles.clear: every file of `lf` removed, its buffer dropped."""
    lf._buf = None
    lf._seq = None
    for s in files(lf.root, lf.name):
        try:
            os.remove("%s/%s.%d.log" % (lf.root, lf.name, s))
        except OSError:
            pass


def files(root, name):
    """The seq of every file of log `name` in `root`, oldest first."""
    seqs = []
    try:
        names = os.listdir(root)
    except OSError:
        return seqs
    pre = name + "."
    for n in names:
        if n.startswith(pre) and n.endswith(".log") and n[len(pre) : -4].isdigit():
            seqs.append(int(n[len(pre) : -4]))
    seqs.sort()
    return seqs


def _select(lf, lo, hi, raw):
    buf = bytes(lf._buf or b"")  # as it is now: a flush while we read moves it to the files
    last = None  # key of the last UTC line so far: the time of a "boot N" line after it
    for seq in files(lf.root, lf.name):
        try:
            f = open("%s/%s.%d.log" % (lf.root, lf.name, seq), "rb")
        except OSError:
            continue  # dropped meanwhile
        try:
            for b in _pieces(f):
                s = _text(b)
                if s is not None:
                    if s[0] != "b":
                        last = s[:19]
                    if _within(last if s[0] == "b" else s[:19], lo, hi):
                        yield b if raw else s
        finally:
            f.close()
    for b in buf.split(b"\n")[:-1]:
        s = _text(b)
        if s is not None:
            if s[0] != "b":
                last = s[:19]
            if _within(last if s[0] == "b" else s[:19], lo, hi):
                yield b if raw else s


def _key(t):
    """Unix seconds as the start of a UTC stamp ("YYYY-MM-DDTHH:MM:SS"): stamps then compare
    as strings, with no parsing per line."""
    if t is None:
        return None
    import rfc3339

    return rfc3339.format(int(t))[:19]


def _within(key, lo, hi):
    if lo is None and hi is None:
        return True
    if key is None:  # no time known for it
        return False
    return (lo is None or key >= lo) and (hi is None or key <= hi)


def _pieces(f):
    """The newline-ended lines of file f (bytes, without the newline), read _PIECE bytes at a
    time. A last line without newline (torn) is not yielded; nor is a run of _JUNK bytes
    without newline (NUL fill), up to and including its next newline."""
    rest = b""
    skip = False
    while True:
        piece = f.read(_PIECE)
        if not piece:
            return
        data = rest + piece if rest else piece
        start = 0
        while True:
            i = data.find(b"\n", start)
            if i < 0:
                break
            if skip:
                skip = False
            else:
                yield data[start:i]
            start = i + 1
        rest = data[start:]
        if len(rest) > _JUNK:
            rest = b""
            skip = True


def _text(b):
    """Line b as str if it is a whole log line: valid UTF-8, no NUL, a stamp first."""
    if b"\x00" in b:
        return None
    try:
        s = b.decode()
    except ValueError:  # UnicodeError (MicroPython), UnicodeDecodeError (CPython)
        return None
    if s[:5] == "boot " or (len(s) > 24 and s[4] == "-" and s[10] == "T" and s[23] == "Z"):
        return s
    return None
