# ota: the virtual ESP32's OTA app partitions (ota_0, ota_1), emulated in the state directory as
# esp32.Partition offers them, for full-image updates on the esp32 target. MIT licence.
#
# <state>/ota_0.img, ota_1.img  the partitions: SIZE bytes each, erased (0xFF) when first written
# <state>/otadata.json           which one boots, written atomically (lib/store.py):
#   {"boot": label, "running": label, "trial": bool, "tries": n, "prev": label,
#    "len": {label: image length}, "failed": label or absent}
# "factory" is the built program (build/esp32sim/micropython-esp32sim); no otadata: it boots.
# set_boot() puts the partition on trial; tools/esp32sim.py `boot` (run by tools/wallbox-sim
# before each start) counts the trial's boots and rolls back after MAX_TRIES unconfirmed ones;
# mark_app_valid_cancel_rollback() confirms the running image, as in ESP-IDF.
#
# An image (tools/ota.py image) is HEADER bytes, then the program (an ELF file):
#   MAGIC (8 bytes, first 0xE9 like an ESP32 image), program length (4, little-endian),
#   SHA-256 of the program (32), zeros up to HEADER. set_boot() checks all of it, as ESP-IDF
#   checks an image's header and appended digest.

import hashlib
import struct

from micropython import const

from store import Store

BLOCK = const(4096)
SIZE = const(0x200000)  # 2 MiB, as on a 4 MB ESP32; the program is about 1 MiB
HEADER = const(64)
MAGIC = b"\xe9MPWBSIM"
ELF = b"\x7fELF"
MAX_TRIES = const(2)  # boots a new image gets to confirm itself (lib/bootsel.py's rule)
FACTORY = "factory"
LABELS = ("ota_0", "ota_1")
OTADATA = "otadata"  # the store document
_CHUNK = const(512)  # file buffer: a block is too much heap on a 112K board
_EINVAL = const(22)
_EPERM = const(1)
_VALIDATE_FAILED = const(-5379)  # ESP_ERR_OTA_VALIDATE_FAILED
_CONFLICT = const(-5377)  # ESP_ERR_OTA_PARTITION_CONFLICT: the running one is not written


def image_path(root, label):
    return "%s/%s.img" % (root, label)


def load(root):
    """The otadata document ({} when absent: the factory program boots)."""
    doc = Store(root).load(OTADATA)
    return doc if type(doc) is dict else {}


def save(root, doc):
    Store(root).save(OTADATA, doc)


def running(root):
    """The Partition running now."""
    return Partition(root, load(root).get("running") or FACTORY)


def mark_app_valid_cancel_rollback(root):
    """The running image works: it stays (no rollback at the next boots)."""
    doc = load(root)
    if doc.get("trial") and doc.get("running") == doc.get("boot"):
        doc["trial"] = False
        doc["tries"] = 0
        save(root, doc)


class Partition:
    """An app partition of the emulated flash: the OTA part of esp32.Partition."""

    def __init__(self, root, label):
        if label != FACTORY and label not in LABELS:
            raise ValueError("partition not found")
        self.root = root
        self.label = label

    def info(self):
        """(type, subtype, address, size, label, encrypted), as esp32.Partition.info()."""
        if self.label == FACTORY:
            return (0, 0, 0x10000, SIZE, FACTORY, False)
        n = LABELS.index(self.label)
        return (0, 0x10 + n, 0x10000 + (n + 1) * SIZE, SIZE, self.label, False)

    def ioctl(self, op, arg):
        if op == 4:
            return SIZE // BLOCK
        if op == 5:
            return BLOCK
        if op == 6:  # erase a block (the extended block protocol)
            self._writable(arg)
            with self._open(True) as f:
                f.seek(arg * BLOCK)
                blank = b"\xff" * _CHUNK
                for _ in range(BLOCK // _CHUNK):
                    f.write(blank)
            return 0
        raise OSError(_EINVAL)

    def _writable(self, block):
        if self.label == FACTORY:
            raise OSError(_EPERM)
        if not 0 <= block < SIZE // BLOCK:
            raise OSError(_EINVAL)
        if load(self.root).get("running") == self.label:
            raise OSError(_CONFLICT)

    def _open(self, write):
        path = image_path(self.root, self.label)
        try:
            return open(path, "r+b" if write else "rb")
        except OSError:
            if not write:
                return None
        with open(path, "wb") as f:  # first use: an erased partition
            blank = b"\xff" * _CHUNK
            for _ in range(SIZE // _CHUNK):
                f.write(blank)
        return open(path, "r+b")

    def readblocks(self, block, buf, offset=0):
        pos = block * BLOCK + offset
        if pos < 0 or pos + len(buf) > SIZE:
            raise OSError(_EINVAL)
        f = None if self.label == FACTORY else self._open(False)
        if f is None:  # never written (or the factory program, not readable here): erased
            for i in range(len(buf)):
                buf[i] = 0xFF
            return
        with f:
            f.seek(pos)
            f.readinto(buf)

    def writeblocks(self, block, buf, offset=None):
        """Whole blocks (erased first) without `offset`; with it, bytes within one block
        that ioctl(6) erased: the extended block protocol lib/ota_image.py uses. (Real flash
        would AND the bits; the image writer only writes erased places.)"""
        self._writable(block)
        if offset is None:
            if len(buf) != BLOCK:
                raise OSError(_EINVAL)
            offset = 0
        elif offset < 0 or offset + len(buf) > BLOCK:
            raise OSError(_EINVAL)
        with self._open(True) as f:
            f.seek(block * BLOCK + offset)
            f.write(buf)

    def get_next_update(self):
        """The partition the next image goes to: ota_0 after the factory program and ota_1."""
        return Partition(self.root, "ota_1" if self.label == "ota_0" else "ota_0")

    def image_length(self):
        """The program length of a valid image in this partition; OSError when invalid."""
        f = None if self.label == FACTORY else self._open(False)
        if f is None:
            raise OSError(_VALIDATE_FAILED)
        with f:
            head = f.read(HEADER + 4)
            if len(head) < HEADER + 4 or head[:8] != MAGIC or head[HEADER:] != ELF:
                raise OSError(_VALIDATE_FAILED)
            n = struct.unpack("<I", head[8:12])[0]
            if HEADER + n > SIZE:
                raise OSError(_VALIDATE_FAILED)
            h = hashlib.sha256()
            f.seek(HEADER)
            buf = bytearray(_CHUNK)  # small: the update's download buffers may still be held
            left = n
            while left:
                k = f.readinto(buf) if left >= _CHUNK else f.readinto(memoryview(buf)[:left])
                if not k:
                    raise OSError(_VALIDATE_FAILED)
                h.update(memoryview(buf)[:k])
                left -= k
            if h.digest() != head[12:44]:
                raise OSError(_VALIDATE_FAILED)
        return n

    def set_boot(self):
        """Boot this partition's image at the next start, on trial: OSError when invalid."""
        n = self.image_length()
        doc = load(self.root)
        lens = doc.get("len") or {}
        lens[self.label] = n
        doc["len"] = lens
        doc["prev"] = doc.get("running") or FACTORY
        doc["boot"] = self.label
        doc["trial"] = True
        doc["tries"] = 0
        save(self.root, doc)

    def mark_app_valid_cancel_rollback(self):
        mark_app_valid_cancel_rollback(self.root)
