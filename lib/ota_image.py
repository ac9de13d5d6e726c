# ota_image: stream a full firmware image, block by block, into an ESP32 OTA app partition.
# MIT licence. Ours: the update path of boards with a frozen build (esp32.Partition).
#
# The partition is handed in (on a board `esp32.Partition(Partition.RUNNING)
# .get_next_update()`, a fake in tests), so this module never imports esp32.
#
#   w = Writer(part)
#   w.write(data)        # as the download delivers it; written in 512-byte pieces
#   w.finish()           # the last piece, padded with 0xFF (erased flash); the byte count
#   w.set_boot()         # after the signature check: ESP-IDF checks the image (OSError when
#                        # it is not valid) and boots it at the next reset
#
# The extended block protocol of esp32.Partition: ioctl(6, block) erases a 4096-byte block,
# writeblocks(block, buf, offset) then writes into it without erasing. So the buffer is one
# 512-byte piece, not a whole block: a board's fragmented heap may hold no free 4 KB block by
# the time an update comes. An erase blocks for tens of milliseconds: the caller yields
# between writes, and a station installs only while no EVSE charges.

from micropython import const

BLOCK = const(4096)
_PIECE = const(512)  # bytes written at once; BLOCK is a multiple of it
_ERASE = const(6)  # MP_BLOCKDEV_IOCTL_BLOCK_ERASE


class ImageError(ValueError):
    pass


class Writer:
    def __init__(self, part):
        self.part = part
        if part.ioctl(5, 0) != BLOCK:
            raise ImageError("block size is not %d" % BLOCK)
        self.blocks = part.ioctl(4, 0)
        self.buf = bytearray(_PIECE)
        self.n = 0  # bytes in buf not yet written
        self.block = 0  # the block the next piece goes to
        self.offset = 0  # and where in it
        self.total = 0

    def write(self, data):
        mv = memoryview(data)
        i = 0
        while i < len(mv):
            k = min(_PIECE - self.n, len(mv) - i)
            self.buf[self.n : self.n + k] = mv[i : i + k]
            self.n += k
            i += k
            if self.n == _PIECE:
                self._flush()
        self.total += len(mv)

    def _flush(self):
        if self.block >= self.blocks:
            raise ImageError("image larger than the partition")
        part = self.part
        if self.offset == 0:
            part.ioctl(_ERASE, self.block)
        part.writeblocks(self.block, self.buf, self.offset)
        self.n = 0
        self.offset += _PIECE
        if self.offset == BLOCK:
            self.block += 1
            self.offset = 0

    def finish(self):
        if self.n:
            for i in range(self.n, _PIECE):
                self.buf[i] = 0xFF
            self._flush()
        if not self.total:
            raise ImageError("empty image")
        return self.total

    def label(self):
        return self.part.info()[4]

    def set_boot(self):
        self.part.set_boot()
