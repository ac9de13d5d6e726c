# bundle: the application bundle format (compiled .mpy files plus a manifest in one signed
# file) and its installation into a slot folder. MIT licence. Ours: our own update format.
#
# Format, version 1 (all of it is covered by the update's signature):
#   b"MPWBNDL1"            magic and format version, 8 bytes
#   n                      manifest length, 4 bytes big-endian
#   manifest               n bytes of UTF-8 JSON: {"version": "0.1.1", "files": [[path, size],
#                          ...]}; paths relative ("firmware/main.mpy"), "/" separated
#   file data              each file's bytes, in the manifest's order, nothing after the last
#
# A full MicroPython image for the ESP32 starts with 0xE9 instead (`kind` tells them apart).

import asyncio
import json
import os
import struct

from micropython import const

MAGIC = b"MPWBNDL1"
BUNDLE = "bundle"
IMAGE = "image"
_ESP_IMAGE_MAGIC = const(0xE9)
_CHUNK = const(1024)  # copied this many bytes at a time, yielding between
_MAX_MANIFEST = const(16384)
_PATH_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./"


class BundleError(ValueError):
    pass


def kind(head):
    """BUNDLE, IMAGE or None from a file's first 8 bytes."""
    if head[:8] == MAGIC:
        return BUNDLE
    if head[:1] and head[0] == _ESP_IMAGE_MAGIC:
        return IMAGE
    return None


def _check_path(p):
    if type(p) is not str or not p or p[0] == "/" or p.strip(_PATH_CHARS):
        raise BundleError("bad path %r" % (p,))
    for seg in p.split("/"):
        if seg in ("", ".", ".."):
            raise BundleError("bad path %r" % p)


def read_manifest(f):
    """The manifest of the bundle open in f (binary), f then at the first file's data."""
    if f.read(8) != MAGIC:
        raise BundleError("not a bundle")
    raw = f.read(4)
    if len(raw) != 4:
        raise BundleError("truncated")
    n = struct.unpack(">I", raw)[0]
    if n > _MAX_MANIFEST:
        raise BundleError("manifest too large")
    data = f.read(n)
    if len(data) != n:
        raise BundleError("truncated")
    try:
        m = json.loads(data)
        version = m["version"]
        files = m["files"]
    except (ValueError, KeyError, TypeError):
        raise BundleError("bad manifest") from None
    if type(version) is not str or not version or type(files) is not list:
        raise BundleError("bad manifest")
    for entry in files:
        if type(entry) is not list or len(entry) != 2:
            raise BundleError("bad file entry")
        _check_path(entry[0])
        if type(entry[1]) is not int or entry[1] < 0:
            raise BundleError("bad file size")
    return m


def _isdir(p):
    try:
        return os.stat(p)[0] & 0x4000 != 0
    except OSError:
        return False


def _makedirs(p):
    part = ""
    for seg in p.split("/"):
        part = part + seg + "/" if part or seg else "/"
        if seg and not _isdir(part.rstrip("/")):
            os.mkdir(part.rstrip("/"))


def rmtree(p):
    """Remove folder p with everything in it; nothing when it is absent."""
    if not _isdir(p):
        try:
            os.remove(p)
        except OSError:
            pass
        return
    for name in os.listdir(p):
        rmtree(p + "/" + name)
    os.rmdir(p)


async def install(src, dest, each=None):
    """Unpack the bundle file `src` into the folder `dest`; its manifest. `each()`, when
    given, runs after every file (the update block samples and collects the heap there).

    Written into `dest + ".new"` first, then renamed: an interrupted install leaves `dest` as
    it was (or absent), never half-written. A leftover `.new` is removed at the next try.
    """
    tmp = dest + ".new"
    rmtree(tmp)
    with open(src, "rb") as f:
        m = read_manifest(f)
        _makedirs(tmp)
        buf = bytearray(_CHUNK)
        mv = memoryview(buf)
        for path, size in m["files"]:
            target = tmp + "/" + path
            k = target.rfind("/")
            _makedirs(target[:k])
            with open(target, "wb") as out:
                left = size
                while left:
                    n = f.readinto(mv[: min(left, _CHUNK)])
                    if not n:
                        raise BundleError("truncated in %s" % path)
                    out.write(mv[:n])
                    left -= n
                    await asyncio.sleep_ms(0)
            if each is not None:
                each()
        if f.read(1):
            raise BundleError("data after the last file")
    with open(tmp + "/manifest.json", "w") as out:
        json.dump(m, out)
    rmtree(dest)
    os.rename(tmp, dest)
    return m
