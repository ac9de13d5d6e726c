# logfile: a bounded log on flash, a few files in rotation appended in whole lines.
# MIT licence. Ours because MicroPython has no rotating file handler, and none that buffers for
# flash wear or reads back past a line cut by a power loss.
#
# Files: <root>/<name>.<seq>.log, seq a decimal number one higher for each new file (never
# renamed: a reader's file keeps its meaning while the log rotates). At most `count` files of at
# most `size` bytes each: starting a new one drops the oldest. root's parent must exist.
#
# Lines: "<stamp> <L> <tag>: <msg>" (lib/log.py), stamp "YYYY-MM-DDTHH:MM:SS.mmmZ" once the
# clock is set, else "boot N +<ms>ms". A line is kept only whole: a power loss can leave a
# torn last line (no newline) or NUL fill; the next boot ends a torn line with "\x00\n" before
# it appends, and a reader skips any line holding a NUL, not valid UTF-8 or not starting with a
# stamp (lib/logread.py).
#
# Only the writing half is here: it is loaded at boot and stays, so it is kept to a few
# functions (each costs heap); reading loads lib/logread.py on first use.

import os

from micropython import const

_BUF = const(1024)  # bytes buffered in RAM; a line that would pass it writes the buffer first
_LINE = const(480)  # longest line kept (characters); longer ones are cut here
_PATH = const("%s/%s.%d.log")  # root, name, seq


class LogFiles:
    """A log of text lines on flash. `write` buffers in RAM; `flush` appends the buffer (the
    firmware calls it every second, and at once for errors); `lines` and `size` read back.
    No method raises: a refused write is counted (`lost` lines) and said on the console,
    never in the log itself."""

    def __init__(self, root, name, size, count):
        self.root = root
        self.name = name
        self._max = size
        self._count = count
        self._buf = None  # bytearray of the lines waiting, "\n" each; None while empty (idle)
        self._seq = None  # seq of the newest file, -1 while none; None: flash not looked at
        self._used = 0  # bytes in the newest file
        self.lost = 0  # lines the flash refused (or no RAM was left for)

    def write(self, line):
        """Buffer one line (a str without newline); a full buffer is written first."""
        try:
            if "\n" in line or "\x00" in line:  # one record, one line
                line = line.replace("\n", " ").replace("\x00", " ")
            b = line[:_LINE].encode()
            buf = self._buf
            if buf is not None and len(buf) + len(b) >= _BUF:
                self.flush()
                buf = None
            if buf is None:
                buf = self._buf = bytearray()
            buf.extend(b)
            buf.append(10)
        except Exception:  # MemoryError: this line is lost, the caller goes on
            self.lost += 1

    def flush(self):
        """Append the buffered lines to flash, starting a new file when the newest would
        pass `size`. Nothing buffered: returns at once. Never raises; on a refusal the buffer
        is dropped (counted in `lost`, said on the console)."""
        buf = self._buf
        if not buf:
            return
        self._buf = None
        root, name, start, end, f = self.root, self.name, 0, len(buf), None
        try:
            if self._seq is None:  # the first flush of this boot: what is on flash?
                try:
                    os.mkdir(root)
                except OSError:
                    pass  # there already
                seqs = []
                pre = name + "."
                for n in os.listdir(root):  # <name>.<seq>.log (as lib/logread.files)
                    if n.startswith(pre) and n.endswith(".log") and n[len(pre) : -4].isdigit():
                        seqs.append(int(n[len(pre) : -4]))
                seqs.sort()
                for s in seqs[: -self._count]:  # beyond `count`: dropped
                    try:
                        os.remove(_PATH % (root, name, s))
                    except OSError:
                        pass
                self._seq = seqs[-1] if seqs else -1
                self._used = 0
                if seqs:
                    with open(_PATH % (root, name, self._seq), "rb") as f:
                        self._used = f.seek(0, 2)
                        f.seek(max(0, self._used - 1))
                        torn = self._used and f.read(1) != b"\n"
                    f = None
                    if torn:  # a power loss tore its last line: end it with a NUL
                        f = open(_PATH % (root, name, self._seq), "ab")
                        f.write(b"\x00\n")  # (readers skip a line with a NUL)
                        self._used += 2
            while start < end:
                stop = end
                if self._seq < 0 or self._used + end - start > self._max:
                    # the whole lines that fit in the newest file, else a new file
                    room = self._max - self._used
                    stop = buf.rfind(b"\n", start, start + room) + 1 if self._seq >= 0 else 0
                    if stop <= start:
                        if self._seq >= 0 and not self._used:  # a line longer than a file
                            stop = buf.find(b"\n", start) + 1
                        else:
                            if f is not None:
                                f.close()
                                f = None
                            self._seq += 1  # a new file: the oldest beyond `count` goes
                            self._used = 0
                            try:
                                os.remove(_PATH % (root, name, self._seq - self._count))
                            except OSError:
                                pass
                            continue
                if f is None:
                    f = open(_PATH % (root, name, self._seq), "ab")
                f.write(memoryview(buf)[start:stop])
                self._used += stop - start
                start = stop
        except Exception as e:  # OSError (a full flash), MemoryError
            self._seq = None  # look again next time: what is on flash is not known now
            n = buf.count(b"\n", start)
            self.lost += n
            try:
                import log  # here, not at the top: no global (heap); its console only

                log.stream.write("logfile %s: %r, %d lines lost\n" % (name, e, n))
            except Exception:
                pass
        finally:
            if f is not None:
                try:
                    f.close()
                except Exception:
                    pass

    def lines(self, oldest=None, latest=None):
        """The stored lines (str, no newline), oldest first: the files, then the buffer, within
        [oldest, latest] (Unix seconds, either None for no bound). A line without UTC time
        ("boot N" stamp, before the clock was set) counts as the time of the last UTC line
        before it (it was written after that one); with none before it, it is yielded only
        when no bound is given. The files and buffer are those at the first next()."""
        from logread import select

        return select(self, oldest, latest, False)

    def size(self, oldest=None, latest=None):
        """The bytes `lines` would yield for the same window, one newline per line counted:
        equal as long as nothing is logged in between (a window whose `latest` is before now
        keeps newer lines out of both)."""
        from logread import size

        return size(self, oldest, latest)

    def clear(self):
        """Remove every file of this log and drop the buffer."""
        from logread import clear

        clear(self)
