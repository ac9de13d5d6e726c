# store: small JSON documents on flash, each written atomically (temporary file, then rename).
# MIT licence. Ours because no MicroPython package offers crash-safe file replacement.

import json
import os

from micropython import const

import log

_TMP = const(".tmp")
_SEP = const((",", ":"))


class Store:
    """A directory of named JSON documents that survive power loss.

    `save` writes `<name>.json.tmp` in full, then renames it over `<name>.json`: a power loss
    leaves either the old or the new document, never half of one. A leftover temporary file
    is an interrupted write and is ignored.
    """

    def __init__(self, root):
        self.root = root.rstrip("/")
        _makedirs(self.root)

    def path(self, name):
        return "%s/%s.json" % (self.root, name)

    def load(self, name, default=None):
        """The saved document, or `default` when absent or unreadable (logged as a fault)."""
        try:
            with open(self.path(name)) as f:
                return json.load(f)
        except OSError:
            return default
        except ValueError as e:
            log.error("store", "%s unreadable, using defaults: %s" % (name, e))
            return default

    def save(self, name, doc):
        path = self.path(name)
        with open(path + _TMP, "w") as f:
            json.dump(doc, f)
        os.rename(path + _TMP, path)

    def exists(self, name):
        """A document `name` is saved (without reading it)."""
        try:
            os.stat(self.path(name))
            return True
        except OSError:
            return False

    def remove(self, name):
        try:
            os.remove(self.path(name))
        except OSError:
            pass


# -- files: line files (a record a line, appended), files rewritten whole (temporary file, then
# rename), read, sized and removed --------------------------------------------------------------


def append_line(path, doc):
    """Append `doc` as one JSON line; a power loss can only tear this last line, which the
    reader skips. False (logged) when the flash refused it."""
    try:
        with open(path, "a") as f:
            f.write(json.dumps(doc, separators=_SEP) + "\n")
        return True
    except OSError as e:
        log.error("store", "%s: line not kept: %r" % (path, e))
        return False


def write_lines(path, docs):
    """Replace the file with one JSON line per doc, atomically. False (logged) when the flash
    refused it."""
    try:
        write_file(path, (json.dumps(doc, separators=_SEP) + "\n" for doc in docs))
        return True
    except OSError as e:
        log.error("store", "%s not rewritten: %r" % (path, e))
        return False


def write_file(path, parts):
    """Replace `path` atomically with `parts` (str or bytes, all of one kind) written one after
    the other, so that a large file never has to be in RAM whole: `<path>.tmp` first, then
    the rename. OSError as it came, the temporary file removed."""
    try:
        f = None
        for part in parts:
            if f is None:
                f = open(path + _TMP, "wb" if type(part) is not str else "w")
            f.write(part)
        if f is None:
            f = open(path + _TMP, "wb")  # no parts: an empty file
        f.close()
        os.rename(path + _TMP, path)
    except OSError:
        if f is not None:
            f.close()
        remove_file(path + _TMP)
        raise


def remove_file(path):
    """Remove `path`; True when it is gone (also when there was none), False (logged) when it
    stays."""
    try:
        os.remove(path)
    except OSError as e:
        if file_size(path) >= 0:
            log.error("store", "removing %s: %r" % (path, e))
            return False
    return True


def read_file(path):
    """The bytes of `path`; OSError when it cannot be read."""
    with open(path, "rb") as f:
        return f.read()


def file_size(path):
    """The size of `path` in bytes, -1 when there is none."""
    try:
        return os.stat(path)[6]
    except OSError:
        return -1


def _makedirs(path):
    part = ""
    for seg in path.split("/"):
        part = part + seg + "/" if part or seg else "/"
        if seg:
            try:
                os.mkdir(part.rstrip("/"))
            except OSError:
                pass  # exists already
