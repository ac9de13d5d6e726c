# logfile: a bounded log on flash, a few files in rotation appended in whole lines.
# MIT licence. Ours because MicroPython has no rotating file handler, and none that buffers for
# flash wear or reads back past a line cut by a power loss.
#
# Files: <root>/<name>.<seq>.log, seq a decimal number one higher for each new file (never
# renamed: a reader's file keeps its meaning while the log rotates). At most `count` files of at
# most `size` bytes each: starting a new one drops the oldest.
#
# Lines: "<stamp> <L> <tag>: <msg>" (lib/log.py), stamp "YYYY-MM-DDTHH:MM:SS.mmmZ" once the
# clock is set, else "boot N +<ms>ms". A line is kept only whole: a power loss can leave a
# torn last line (no newline) or NUL fill; the next boot ends a torn line with "\x00\n" before
# it appends, and a reader skips any line holding a NUL, not valid UTF-8 or not starting with a
# stamp.

import os

from micropython import const

import log  # its console only (log.stream), for our own complaints

_BUF = const(1024)  # bytes buffered in RAM; a line that would pass it writes the buffer first
_LINE = const(480)  # longest line kept (characters); longer ones are cut here
_PIECE = const(256)  # bytes read from flash at a time
_JUNK = const(2048)  # bytes without a newline after which a reader gives up on that line
_MARK = b"\x00\n"  # ends a torn line: a reader skips the line (it holds a NUL)
_EXT = const(".log")


class LogFiles:
    """A log of text lines on flash. `write` buffers in RAM; `flush` appends the buffer (the
    firmware calls it every second, and at once for errors); `lines` and `size` read back.
    No method raises: a refused write is counted (`failed`, `lost` lines) and said on the
    console, never in the log itself."""

    def __init__(self, root, name, size, count):
        self.root = root.rstrip("/")
        self.name = name
        self._max = size
        self._count = max(1, count)
        self._buf = None  # lines waiting (str, no newline); None while empty (no RAM at idle)
        self._n = 0  # bytes (about: characters) in _buf, newlines included
        self._seqs = None  # seq of each file on flash, oldest first; None: not looked yet
        self._used = 0  # bytes in the newest file
        self._torn = False  # the newest file ends in a torn line (see _scan)
        self.failed = 0  # flushes the flash refused
        self.lost = 0  # lines dropped by them

    def _path(self, seq):
        return "%s/%s.%d%s" % (self.root, self.name, seq, _EXT)

    # -- writing ----------------------------------------------------------------------------

    def write(self, line):
        """Buffer one line (a str without newline); a full buffer is written first."""
        try:
            if "\n" in line or "\x00" in line:  # one record, one line
                line = line.replace("\n", " ").replace("\x00", " ")
            if len(line) > _LINE:
                line = line[:_LINE]
            n = len(line) + 1
            if self._n + n > _BUF:
                self.flush()
            if self._buf is None:
                self._buf = []
            self._buf.append(line)
            self._n += n
        except Exception as e:  # MemoryError: this line is lost, the caller goes on
            self._complain(e, 1)

    def flush(self):
        """Append the buffered lines to flash, starting a new file when the newest would
        pass `size`. Nothing buffered: returns at once. Never raises; on a refusal the buffer
        is dropped (counted)."""
        buf = self._buf
        if not buf:
            return
        self._buf = None
        self._n = 0
        done = 0
        f = None
        try:
            if self._seqs is None:
                self._scan()
            seqs = self._seqs
            if not seqs:
                self._start()
            f = open(self._path(seqs[-1]), "ab")
            if self._used and self._torn:
                f.write(_MARK)
                self._used += 2
            self._torn = False
            for line in buf:
                b = line.encode()
                n = len(b) + 1
                if self._used and self._used + n > self._max:
                    f.close()
                    f = None
                    self._start()
                    f = open(self._path(seqs[-1]), "ab")
                f.write(b)
                f.write(b"\n")
                self._used += n
                done += 1
        except Exception as e:  # OSError (a full flash), MemoryError
            self._seqs = None  # look again next time: what is on flash is not known now
            self._complain(e, len(buf) - done)
        finally:
            if f is not None:
                try:
                    f.close()
                except Exception:
                    pass

    def _scan(self):
        """Find the files (dropping any beyond `count`), the newest's size, and whether it
        ends torn (then _MARK ends it before the next line)."""
        _mkdirs(self.root)
        seqs = self._files()
        while len(seqs) > self._count:
            _remove(self._path(seqs.pop(0)))
        self._used = 0
        self._torn = False
        if seqs:
            with open(self._path(seqs[-1]), "rb") as f:
                self._used = f.seek(0, 2)
                if self._used:
                    f.seek(self._used - 1)
                    self._torn = f.read(1) != b"\n"
        self._seqs = seqs

    def _start(self):
        """Begin a new newest file, dropping the oldest ones to stay within `count`."""
        seqs = self._seqs
        seq = seqs[-1] + 1 if seqs else 0
        while len(seqs) >= self._count:
            _remove(self._path(seqs.pop(0)))
        seqs.append(seq)
        self._used = 0
        self._torn = False

    def _files(self):
        """The seq of every file of this log on flash, oldest first."""
        pre = self.name + "."
        seqs = []
        try:
            names = os.listdir(self.root)
        except OSError:
            return seqs
        for n in names:
            if n.startswith(pre) and n.endswith(_EXT):
                mid = n[len(pre) : -len(_EXT)]
                if mid.isdigit():
                    seqs.append(int(mid))
        seqs.sort()
        return seqs

    def _complain(self, e, lost):
        self.failed += 1
        self.lost += lost
        try:
            log.stream.write("logfile %s: %r, %d lines lost\n" % (self.name, e, lost))
        except Exception:
            pass

    def clear(self):
        """Remove every file of this log and drop the buffer."""
        self._buf = None
        self._n = 0
        for seq in self._files():
            _remove(self._path(seq))
        self._seqs = None

    # -- reading ----------------------------------------------------------------------------

    def lines(self, oldest=None, latest=None):
        """The stored lines (str, no newline), oldest first: the files, then the buffer, within
        [oldest, latest] (Unix seconds, either None for no bound). A line without UTC time
        ("boot N" stamp, before the clock was set) counts as the time of the last UTC line
        before it (it was written after that one); with none before it, it is yielded only
        when no bound is given. The files and buffer are those at the first next()."""
        return self._select(_key(oldest), _key(latest), False)

    def size(self, oldest=None, latest=None):
        """The bytes `lines` would yield for the same window, one newline per line counted:
        equal as long as nothing is logged in between (a window whose `latest` is before now
        keeps newer lines out of both)."""
        n = 0
        for b in self._select(_key(oldest), _key(latest), True):
            n += len(b) + 1
        return n

    def _select(self, lo, hi, raw):
        """Lines in the window [lo, hi] (stamp keys), as bytes when `raw`, else str."""
        buf = tuple(self._buf or ())
        last = None  # key of the last UTC line so far
        for seq in self._files():
            try:
                f = open(self._path(seq), "rb")
            except OSError:
                continue  # dropped meanwhile
            try:
                for b in _pieces(f):
                    s = _text(b)
                    if s is None:
                        continue
                    if s[0] != "b":
                        last = s[:19]
                    if _within(last if s[0] == "b" else s[:19], lo, hi):
                        yield b if raw else s
            finally:
                f.close()
        for s in buf:
            if s[0] != "b":
                last = s[:19]
            if _within(last if s[0] == "b" else s[:19], lo, hi):
                yield s.encode() if raw else s


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


def _mkdirs(path):
    """Make directory `path` and its parents (what is there already stays)."""
    i = 0
    while True:
        i = path.find("/", i + 1)
        try:
            os.mkdir(path if i < 0 else path[:i])
        except OSError:
            pass  # there already
        if i < 0:
            return


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass
