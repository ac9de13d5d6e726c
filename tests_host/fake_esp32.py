"""A fake `esp32` module with the OTA part of esp32.Partition, for host tests of image updates.

`install()` puts it into sys.modules and returns the Flash behind it: two app partitions
(ota_0 running, ota_1 next) of `blocks` 4096-byte blocks each, with ESP-IDF's rollback rules:
a newly booted image is pending verification until mark_app_valid_cancel_rollback(); a reset
before that boots the previous image again.
"""

import sys
import types

BLOCK = 4096


class Flash:
    def __init__(self, blocks=64, rollback=True):
        self.data = {"ota_0": bytearray(b"\xff" * blocks * BLOCK), "ota_1": bytearray()}
        self.data["ota_1"] = bytearray(b"\xff" * blocks * BLOCK)
        self.blocks = blocks
        self.rollback = rollback  # False: a build without rollback support
        self.running = "ota_0"
        self.boot = "ota_0"
        self.previous = None  # the image to return to while `running` is pending verify
        self.pending = False
        self.writes = []  # block numbers written to, in order (once per write)
        self.erases = []  # block numbers erased, in order

    def reset(self):
        """A hard reset: boot the boot partition, or roll back an unconfirmed image."""
        if self.pending and self.rollback:
            self.boot = self.previous
            self.running = self.previous
            self.pending = False
            return
        if self.boot != self.running:
            self.previous = self.running
            self.running = self.boot
            self.pending = True


def _module(flash):
    class Partition:
        BOOT = 0
        RUNNING = 1
        TYPE_APP = 0

        def __init__(self, id):
            if id == Partition.RUNNING:
                id = flash.running
            elif id == Partition.BOOT:
                id = flash.boot
            if id not in flash.data:
                raise ValueError("partition not found")
            self.label = id

        def info(self):
            n = 0 if self.label == "ota_0" else 1
            addr = 0x10000 + n * flash.blocks * BLOCK
            return (0, 0x10 + n, addr, flash.blocks * BLOCK, self.label, False)

        def ioctl(self, op, arg):
            if op == 4:
                return flash.blocks
            if op == 5:
                return BLOCK
            if op == 6 and 0 <= arg < flash.blocks:  # erase a block
                flash.data[self.label][arg * BLOCK : (arg + 1) * BLOCK] = b"\xff" * BLOCK
                flash.erases.append(arg)
                return 0
            raise OSError(22)

        def writeblocks(self, block, buf, offset=None):
            # Without offset: erase, then write whole blocks; with it (the extended block
            # protocol): write within a block, no erase, so bits only go from 1 to 0.
            if not 0 <= block < flash.blocks:
                raise OSError(22)
            data = flash.data[self.label]
            if offset is None:
                if len(buf) % BLOCK:
                    raise OSError(22)
                data[block * BLOCK : block * BLOCK + len(buf)] = buf
            else:
                start = block * BLOCK + offset
                if offset < 0 or offset + len(buf) > BLOCK:
                    raise OSError(22)
                for i in range(len(buf)):
                    data[start + i] &= buf[i]
            flash.writes.append(block)

        def readblocks(self, block, buf):
            buf[:] = flash.data[self.label][block * BLOCK : block * BLOCK + len(buf)]

        def get_next_update(self):
            return Partition("ota_1" if self.label == "ota_0" else "ota_0")

        def set_boot(self):
            if flash.data[self.label][0] != 0xE9:
                raise OSError(-5379)  # ESP_ERR_OTA_VALIDATE_FAILED
            flash.boot = self.label

        @classmethod
        def mark_app_valid_cancel_rollback(cls):
            if not flash.rollback:
                raise OSError(-261)
            flash.pending = False

    m = types.ModuleType("esp32")
    m.Partition = Partition
    return m


def install(flash=None, monkeypatch=None):
    flash = flash or Flash()
    m = _module(flash)
    if monkeypatch is not None:
        monkeypatch.setitem(sys.modules, "esp32", m)
    else:
        sys.modules["esp32"] = m
    return flash
