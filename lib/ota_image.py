# ota_image: stream a full firmware image, block by block, into an ESP32 OTA app partition.
# MIT licence. Ours: the update path of boards with a frozen build (esp32.Partition).
#
# The partition is handed in (on a board `esp32.Partition(Partition.RUNNING)
# .get_next_update()`, a fake in tests), so this module never imports esp32.
#
#   w = Writer(part)
#   w.write(data)        # as the download delivers it; full 4096-byte blocks go to flash
#   w.finish()           # the last block, padded with 0xFF (erased flash); the byte count
#   w.set_boot()         # after the signature check: ESP-IDF checks the image (OSError when
#                        # it is not valid) and boots it at the next reset
#
# writeblocks(block, buf) erases and writes one block and blocks for tens of milliseconds: the
# caller yields between writes, and a station installs only while no EVSE charges.

from micropython import const

BLOCK = const(4096)


class ImageError(ValueError):
    pass


class Writer:
    def __init__(self, part):
        self.part = part
        if part.ioctl(5, 0) != BLOCK:
            raise ImageError("block size is not %d" % BLOCK)
        self.blocks = part.ioctl(4, 0)
        self.buf = bytearray(BLOCK)
        self.n = 0  # bytes in buf not yet written
        self.block = 0  # the next block to write
        self.total = 0

    def write(self, data):
        mv = memoryview(data)
        i = 0
        while i < len(mv):
            k = min(BLOCK - self.n, len(mv) - i)
            self.buf[self.n : self.n + k] = mv[i : i + k]
            self.n += k
            i += k
            if self.n == BLOCK:
                self._flush()
        self.total += len(mv)

    def _flush(self):
        if self.block >= self.blocks:
            raise ImageError("image larger than the partition")
        self.part.writeblocks(self.block, self.buf)
        self.block += 1
        self.n = 0

    def finish(self):
        if self.n:
            for i in range(self.n, BLOCK):
                self.buf[i] = 0xFF
            self._flush()
        if not self.total:
            raise ImageError("empty image")
        return self.total

    def label(self):
        return self.part.info()[4]

    def set_boot(self):
        self.part.set_boot()
