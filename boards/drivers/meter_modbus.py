# meter_modbus: asyncio Modbus RTU master on an RS-485 UART, and the meters read through it.
# MIT licence.

import asyncio
import time
from math import inf

from micropython import const

import log
import modbus
from meter import Reading
from modbus import ModbusError

try:
    from time import sleep_us
except ImportError:  # CPython, for the host tests

    def sleep_us(us):
        time.sleep(us * 1e-6)


_DE_SETTLE_US = const(50)  # DE high to first start bit: transceivers need a few µs, be generous
_BITS_PER_CHAR = const(11)  # start + 8 data + parity or second stop + stop
_FAST_GAP_US = const(1750)  # the fixed 3.5-character gap above 19200 baud
_TX_SLACK_MS = const(50)  # txdone() must come within the frame time plus this
_QUIET_ROUNDS = const(4)  # times we wait for silence and drain stale bytes before giving up
_ECHO_LEN = const(8)  # a read request, as echoed by a transceiver that hears itself


class ModbusMaster:
    """One RS-485 bus, one request at a time.

    uart          a configured machine.UART (the board sets pins, baud rate, parity); this class
                  only needs write(), any(), readinto(buf, n) and txdone()
    de            driver-enable Pin (DE and /RE tied), high while sending; None for transceivers
                  that switch direction by themselves
    baudrate      the UART's rate, for the frame time and the inter-frame gap
    timeout_ms    for the whole reply, from the end of our request
    retries       extra attempts after a timeout or a broken frame (never after an exception
                  reply: the meter answered, asking again gets the same answer)
    frame_gap_ms  silence before each request; default 3.5 characters of 11 bits, 1.75 ms
                  above 19200 baud

    Reading is polled, not event driven: any() says what is waiting, readinto() takes exactly
    that much (never more, so a UART configured with a read timeout cannot block the loop), then
    we sleep about the time the missing bytes take to arrive. It works the same on the device
    and on the host's fake UART, which is not pollable; asyncio.StreamReader would need a
    pollable stream and a wait_for_ms task per read (allocation) for no lower latency at these
    rates. The bytes the ESP32 driver hands over come in bursts anyway (RX FIFO timeout).
    """

    def __init__(self, uart, de=None, baudrate=9600, timeout_ms=200, retries=2, frame_gap_ms=None):
        self._uart = uart
        self._de = de
        self.timeout_ms = timeout_ms
        self.retries = retries
        self._char_us = (_BITS_PER_CHAR * 1000000 + baudrate - 1) // baudrate
        if frame_gap_ms is None:
            gap_us = _FAST_GAP_US if baudrate > 19200 else (35 * self._char_us + 9) // 10
        else:
            gap_us = int(frame_gap_ms * 1000)
        # Whole ms, rounded up; ticks_ms() counts whole ms, so "more than gap_ms ticks" below
        # guarantees at least gap_ms of real time. 9600 baud: 4.01 ms -> 5, > 5 ticks.
        self._gap_ms = (gap_us + 999) // 1000
        self._poll_ms = max(1, (4 * self._char_us) // 1000)  # idle poll: about 4 characters
        self._buf = bytearray(modbus.MAX_FRAME)  # the reply, reused by every request
        self._mv = memoryview(self._buf)
        self._lock = asyncio.Lock()
        self._idle = time.ticks_ms()  # when the bus was last seen busy (sent or received)
        if de is not None:
            de.value(0)

    async def request(self, addr, fc, start, count):
        """Read `count` registers from `start` with function `fc` (3 or 4) at `addr`.

        Returns the 2 * count data bytes as a memoryview into the master's reply buffer: decode
        them before the next await, the next request reuses the buffer. Raises ModbusError
        (with .code for an exception reply), ValueError for an impossible request."""
        req = modbus.read_request(addr, fc, start, count)
        # acquire/release rather than `async with`: half the allocation on MicroPython
        await self._lock.acquire()
        try:
            err = None
            for _ in range(self.retries + 1):
                try:
                    n = await self._transact(req, count)
                    return modbus.parse_reply(addr, fc, count, self._buf, n)
                except ModbusError as e:
                    if e.code is not None:
                        raise
                    err = e
            raise ModbusError("address %d: %s (%d tries)" % (addr, err, self.retries + 1))
        finally:
            self._lock.release()

    async def _transact(self, req, count):
        # One attempt: gap, send, receive. Returns the reply's length in self._buf.
        await self._quiet()
        de = self._de
        if de is not None:
            de.value(1)
            sleep_us(_DE_SETTLE_US)
        try:
            self._uart.write(req)
            await self._sent(len(req))
        finally:
            if de is not None:
                de.value(0)  # also when cancelled: never leave the bus driven
        self._idle = time.ticks_ms()
        return await self._receive(req, count)

    async def _quiet(self):
        # Wait out the inter-frame gap, then discard whatever arrived meanwhile (a late reply
        # to an abandoned request, line noise, our last echo); stale bytes restart the gap.
        uart = self._uart
        for _ in range(_QUIET_ROUNDS):
            wait = self._gap_ms + 1 - time.ticks_diff(time.ticks_ms(), self._idle)
            if wait > 0:
                await asyncio.sleep_ms(wait)
            k = uart.any()
            if not k:
                return
            while k:
                uart.readinto(self._buf, min(k, modbus.MAX_FRAME))
                k = uart.any()
            self._idle = time.ticks_ms()
        raise ModbusError("bus never quiet")

    async def _sent(self, nbytes):
        # write() only queued the bytes. Sleep the frame time, then poll txdone() (flush()
        # would block the loop) so that DE drops right after the last stop bit.
        await asyncio.sleep_ms(nbytes * self._char_us // 1000)
        t0 = time.ticks_ms()
        while not self._uart.txdone():
            if time.ticks_diff(time.ticks_ms(), t0) > _TX_SLACK_MS:
                raise ModbusError("UART transmission did not finish")
            await asyncio.sleep_ms(0)

    async def _receive(self, req, count):
        # Collect one reply into self._buf. Stops at the expected length, or at EXC_LEN once
        # the function byte says exception. An echo of `req` (a transceiver that hears itself)
        # is dropped: it is told apart from a reply by its third byte (start address high byte
        # against the byte count), so echo detection is off for the rare request where the two
        # are equal; none of the maps below is such a request.
        uart, buf, mv = self._uart, self._buf, self._mv
        want = 5 + 2 * count
        echo = req[2] != 2 * count  # True while what we hold may still be our own echo
        n = 0
        t0 = time.ticks_ms()
        while True:
            k = uart.any()
            if k:
                room = (_ECHO_LEN if echo and want < _ECHO_LEN else want) - n
                if room > 0:
                    got = uart.readinto(mv[n:], min(k, room))
                    n += got or 0
                self._idle = time.ticks_ms()
                if echo:
                    for i in range(min(n, _ECHO_LEN)):
                        if buf[i] != req[i]:
                            echo = False
                            break
                    if echo and n >= _ECHO_LEN:
                        for i in range(n - _ECHO_LEN):
                            buf[i] = buf[i + _ECHO_LEN]
                        n -= _ECHO_LEN
                        echo = False
                if not echo and n >= 2:
                    want = modbus.reply_length(buf, count)
                    if n >= want:
                        return want
            left = self.timeout_ms - time.ticks_diff(time.ticks_ms(), t0)
            if left <= 0:
                if n:
                    raise ModbusError("timeout after %d of %d bytes" % (n, want))
                raise ModbusError("no reply")
            # Sleep about as long as the missing bytes take, at least the idle poll period.
            await asyncio.sleep_ms(
                min(left, max(self._poll_ms, (want - n) * self._char_us // 1000))
            )


# Reading slots: where each value of a map goes.
_E = const(0)  # energy imported, Wh
_P = const(1)  # total active power, W
_I1 = const(2)  # current L1..L3, A
_V1 = const(5)  # voltage L1..L3, V
_P1 = const(8)  # active power L1..L3, W (read by signed meters only)
_SLOTS = const(11)


class _RegisterMeter:
    """A meter as data: function code, fields, block reads. Subclasses set

    _FC       3 or 4
    _FIELDS   ((slot, register, kind, mul, div), ...): value = decode(kind) * mul / div
    _BLOCKS   ((start, count), ...): the reads that cover every field, as few as possible
    _SIGN_FIELDS  the extra fields a signed meter reads (phase powers), () for none
    _SIGN_BLOCKS  the blocks that cover _FIELDS + _SIGN_FIELDS; None: _BLOCKS do
    _SIGN     (slot L1, slot L2, slot L3): the power whose sign each phase's current takes

    signed=False (an EVSE meter): currents as the meter gives them, and only _FIELDS read.
    signed=True (the mains meter): each current is negative while its phase exports (its
    active power is negative), so that load management sees solar surplus per phase.

    If the meter refuses a block read with "illegal data address/value" (some firmware rejects
    reads over registers it does not define), the meter falls back for good to one read per
    value, and says so in the log.
    """

    _FC = modbus.FC_INPUT
    _FIELDS = ()
    _BLOCKS = ()
    _SIGN_FIELDS = ()
    _SIGN_BLOCKS = None
    _SIGN = (_P, _P, _P)

    def __init__(self, master, addr=1, signed=False):
        self._m = master
        self.addr = addr
        self.signed = signed
        if signed:
            self._fields = self._FIELDS + self._SIGN_FIELDS
            blocks = self._BLOCKS if self._SIGN_BLOCKS is None else self._SIGN_BLOCKS
        else:
            self._fields = self._FIELDS
            blocks = self._BLOCKS
        self._plan = _plan(self._fields, blocks)
        self._split = False  # True once the meter refused a block read: one read per value
        self._vals = [None] * _SLOTS  # the values of the reading being made, by slot

    async def read(self):
        try:
            return await self._read()
        except ModbusError as e:
            if (e.code != 2 and e.code != 3) or self._split:
                raise
            log.warn(
                "meter", "address %d refuses block reads (%s): one read per value" % (self.addr, e)
            )
            self._split = True
            self._plan = _plan(self._fields, ())
            return await self._read()

    async def _read(self):
        v = self._vals
        for start, count, fields in self._plan:
            data = await self._m.request(self.addr, self._FC, start, count)
            for slot, off, kind, mul, div in fields:  # decode before the next await
                v[slot] = modbus.decode(data, off, kind, mul, div)
        for i in range(_SLOTS):
            x = v[i]
            if x is not None and (x != x or x == inf or x == -inf):
                raise ModbusError("implausible value %r from address %d" % (x, self.addr))
        if v[_E] < 0:
            raise ModbusError("implausible energy %r Wh from address %d" % (v[_E], self.addr))
        if self.signed:
            s = self._SIGN
            amps = (_signed(v[2], v[s[0]]), _signed(v[3], v[s[1]]), _signed(v[4], v[s[2]]))
        else:
            amps = (v[2], v[3], v[4])
        return Reading(v[_E], v[_P], amps, (v[5], v[6], v[7]))


def _signed(amps, watts):
    # A phase's current with its power's sign: negative while the phase exports.
    if amps is None:
        return None
    amps = abs(amps)
    return -amps if watts is not None and watts < 0 else amps


def _plan(fields, blocks):
    # [(start, count, ((slot, byte offset, kind, mul, div), ...)), ...] for the given blocks;
    # with no blocks, one read per field.
    if not blocks:
        blocks = [(f[1], modbus.words(f[2])) for f in fields]
    plan = []
    done = 0
    for start, count in blocks:
        inside = []
        for slot, reg, kind, mul, div in fields:
            if start <= reg and reg + modbus.words(kind) <= start + count:
                inside.append((slot, 2 * (reg - start), kind, mul, div))
        done += len(inside)
        plan.append((start, count, tuple(inside)))
    if done != len(fields):
        raise ValueError("register map: blocks do not cover each field once")
    return plan


_F32 = modbus.F32


class Sdm630(_RegisterMeter):
    """Eastron SDM630 (3-phase), FC04 float32; at most 60 registers per read."""

    _FIELDS = (
        (_V1, 0x0000, _F32, 1, 1),
        (_V1 + 1, 0x0002, _F32, 1, 1),
        (_V1 + 2, 0x0004, _F32, 1, 1),
        (_I1, 0x0006, _F32, 1, 1),
        (_I1 + 1, 0x0008, _F32, 1, 1),
        (_I1 + 2, 0x000A, _F32, 1, 1),
        (_P, 0x0034, _F32, 1, 1),
        (_E, 0x0048, _F32, 1000, 1),  # kWh
    )
    _BLOCKS = ((0x0000, 12), (0x0034, 22))
    # Signed: the phase powers follow the currents, so the first read grows by 6 registers.
    _SIGN_FIELDS = (
        (_P1, 0x000C, _F32, 1, 1),
        (_P1 + 1, 0x000E, _F32, 1, 1),
        (_P1 + 2, 0x0010, _F32, 1, 1),
    )
    _SIGN_BLOCKS = ((0x0000, 18), (0x0034, 22))
    _SIGN = (_P1, _P1 + 1, _P1 + 2)


class Sdm120(_RegisterMeter):
    """Eastron SDM120 (1-phase), FC04 float32; L2/L3 are None. Signed, L1 takes the sign of
    the total power (the one phase's), which the first read already covers."""

    _FIELDS = (
        (_V1, 0x0000, _F32, 1, 1),
        (_I1, 0x0006, _F32, 1, 1),
        (_P, 0x000C, _F32, 1, 1),
        (_E, 0x0048, _F32, 1000, 1),  # kWh
    )
    _BLOCKS = ((0x0000, 14), (0x0048, 2))


class AbbB23(_RegisterMeter):
    """ABB B23 (3-phase), FC03 integers, high word first."""

    _FC = modbus.FC_HOLDING
    _FIELDS = (
        (_V1, 0x5B00, modbus.U32, 1, 10),
        (_V1 + 1, 0x5B02, modbus.U32, 1, 10),
        (_V1 + 2, 0x5B04, modbus.U32, 1, 10),
        (_I1, 0x5B0C, modbus.U32, 1, 100),
        (_I1 + 1, 0x5B0E, modbus.U32, 1, 100),
        (_I1 + 2, 0x5B10, modbus.U32, 1, 100),
        (_P, 0x5B14, modbus.S32, 1, 100),
        (_E, 0x5000, modbus.U64, 10, 1),  # 0.01 kWh = 10 Wh, kept an exact integer
    )
    _BLOCKS = ((0x5B00, 22), (0x5000, 4))
    # Signed: the phase powers follow the total (S32 x 0.01 W like it, inferred), so the
    # first read grows by 6 registers.
    _SIGN_FIELDS = (
        (_P1, 0x5B16, modbus.S32, 1, 100),
        (_P1 + 1, 0x5B18, modbus.S32, 1, 100),
        (_P1 + 2, 0x5B1A, modbus.S32, 1, 100),
    )
    _SIGN_BLOCKS = ((0x5B00, 28), (0x5000, 4))
    _SIGN = (_P1, _P1 + 1, _P1 + 2)


class Eem350(_RegisterMeter):
    """Phoenix Contact EEM-350-D-MCB, FC04 int32 LOW word first (map unconfirmed, see
    hardware.md 5.2)."""

    _FIELDS = (
        (_V1, 0x0000, modbus.S32_LW, 1, 10),
        (_V1 + 1, 0x0002, modbus.S32_LW, 1, 10),
        (_V1 + 2, 0x0004, modbus.S32_LW, 1, 10),
        (_I1, 0x000C, modbus.S32_LW, 1, 1000),  # mA
        (_I1 + 1, 0x000E, modbus.S32_LW, 1, 1000),
        (_I1 + 2, 0x0010, modbus.S32_LW, 1, 1000),
        (_P, 0x0028, modbus.S32_LW, 1, 10),
        (_E, 0x003E, modbus.S32_LW, 100, 1),  # 0.1 kWh = 100 Wh, kept an exact integer
    )
    _BLOCKS = ((0x0000, 64),)
    # Signed: no per-phase power is known in this map, so every phase takes the sign of the
    # total power. A site exporting on one phase while importing more on the others reads as
    # importing on all three: less surplus than there is for Solar, more load than there is
    # for Capacity; both on the safe side. (A total near zero may flip the sign on all three.)
    _SIGN = (_P, _P, _P)


_KINDS = {"sdm630": Sdm630, "sdm120": Sdm120, "abb_b23": AbbB23, "eem350": Eem350}


def make_meter(kind, master, addr=1, signed=False):
    """The meter model named `kind` ("sdm630", "sdm120", "abb_b23", "eem350") at `addr`;
    signed=True for a mains meter: currents negative on phases that export."""
    cls = _KINDS.get(kind)
    if cls is None:
        raise ValueError("unknown meter %r (one of %s)" % (kind, ", ".join(sorted(_KINDS))))
    return cls(master, addr, signed)
