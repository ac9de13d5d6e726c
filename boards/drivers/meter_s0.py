# meter_s0: energy and power from an S0 pulse output (IEC 62053-31), counted by a pin IRQ.
# MIT licence.
#
# Why a Pin.irq and not esp32.PCNT: S0 pulses are 30-200 ms wide and come at most ~10 per
# second (22 kW at 1000 imp/kWh is ~6/s), so a soft IRQ (ESP32 pin IRQs are always scheduled,
# run between bytecodes, ms latency) loses nothing. The handler also stamps each pulse, which
# the power estimate needs and a hardware counter does not give (we would only see counts per
# poll, so power with a 1-2 s granularity). PCNT's glitch filter (<= 12.8 us) is far too short
# for contact bounce anyway; the minimum-interval filter here handles that. PCNT would win only
# where the IRQ could be starved for a whole pulse period, which the safety design already
# forbids. It is also testable on the host with the fake Pin.

import time

from micropython import const

import log
from meter import Reading

# Persistence (flash wear). The total is saved when it grew by _SAVE_WH since the last save,
# or when it grew at all and _SAVE_MS passed. LittleFS spreads writes over the partition's
# blocks; one save rewrites ~2-4 blocks. 100 Wh steps: 10 years at 30 kWh/day are ~1.1 million
# saves, well within the ~100k cycles x 500 blocks of a 2 MB partition; the 15-minute rule adds
# at most 96 saves a day and only while energy flows. A power cut loses < 100 Wh (less than one
# 15-minute slice at low power), which is why the firmware calls flush() before a reboot.
_SAVE_WH = const(100)
_SAVE_MS = const(900000)
_IDLE_FACTOR = const(3)  # no pulse for 3 x the last interval: the load stopped, 0 W
_STALE_MS = const(3600000)  # an interval longer than this says nothing about the power now
_MS_PER_H = 3.6e6


class S0Meter:
    """A meter that is anything with an S0 output on `pin` (a ready-made input Pin).

    imp_per_kwh      pulses per kWh (printed on the meter: 1000, 800, 100, ...)
    min_interval_ms  pulses closer than this to the last accepted one are bounce and ignored
    load()           returns the Wh total saved before (None or nothing saved: 0)
    save(wh)         persists the Wh total (atomic write); called from read() and flush()
    ticks            millisecond tick source (time.ticks_ms), injectable for tests
    trigger          the edge counted, default the falling one (open collector pulling low)
    """

    def __init__(
        self,
        pin,
        imp_per_kwh=1000,
        min_interval_ms=20,
        load=None,
        save=None,
        ticks=time.ticks_ms,
        trigger=None,
    ):
        if not imp_per_kwh > 0:
            raise ValueError("imp_per_kwh %r" % (imp_per_kwh,))
        self._pin = pin
        self._imp = imp_per_kwh
        self._min_ms = min_interval_ms
        self._save = save
        self._ticks = ticks
        base = load() if load else 0
        if base is None:
            base = 0
        if isinstance(base, bool) or not isinstance(base, (int, float)) or not base >= 0:
            log.error("s0", "saved total %r unusable, counting from 0" % (base,))
            base = 0
        self._base = base  # Wh at start
        # Written by the IRQ handler only: pulses accepted since start, tick of the last one,
        # ms between the last two (0 until there are two).
        self._count = 0
        self._last = 0
        self._interval = 0
        # Written by read() only: the pulse count when the load was last judged idle (the
        # interval ending at the next pulse spans the idle time and is not used either).
        self._idle_at = -1
        self._saved_count = 0
        self._since_save = 0  # ms since the last save, summed per read (no ticks wrap)
        self._read_at = ticks()
        pin.irq(self._pulse, trigger if trigger is not None else pin.IRQ_FALLING)

    def _pulse(self, pin):
        # Pin IRQ handler. ESP32 runs it soft (scheduled), but it keeps to the hard-IRQ rules
        # anyway: small ints in preallocated attributes, no allocation, no calls into asyncio.
        t = self._ticks()
        if self._count:
            d = time.ticks_diff(t, self._last)
            if d < self._min_ms:
                return  # bounce
            self._interval = d
        self._last = t
        self._count += 1

    def _snapshot(self):
        # The three handler fields, consistent: retry if a pulse came in between.
        while True:
            c = self._count
            last = self._last
            iv = self._interval
            if c == self._count:
                return c, last, iv

    def _wh(self, count):
        # Exact integer Wh when the pulses make whole Wh (1000/100/10/1 imp/kWh always do).
        q, r = divmod(count * 1000, self._imp)
        return self._base + q + (r / self._imp if r else 0)

    async def read(self):
        """Reading(energy_wh, power_w); no current or voltage from pulses."""
        now = self._ticks()
        c, last, iv = self._snapshot()
        power = 0
        if c and c != self._idle_at:
            since = time.ticks_diff(now, last)
            # `fresh`: the last interval lies between two pulses of a running load.
            fresh = iv and c - 1 != self._idle_at
            if (fresh and since > _IDLE_FACTOR * iv) or since > _STALE_MS:
                # Idle. Judged here, every read, so that ticks_diff never sees more than
                # _STALE_MS (it wraps after 2**29 ms, 6.2 days).
                self._idle_at = c
            elif fresh:
                # The last interval's power, or less once we have waited longer than that
                # interval: less than one pulse of energy came in `since` ms.
                power = _MS_PER_H * 1000 / (self._imp * max(iv, since))
        wh = self._wh(c)
        self._since_save += time.ticks_diff(now, self._read_at)
        self._read_at = now
        grown = c - self._saved_count
        if grown and (grown * 1000 >= _SAVE_WH * self._imp or self._since_save >= _SAVE_MS):
            self._store(c, wh)
        return Reading(wh, power)

    def flush(self):
        """Save the total now if it changed since the last save (before a reboot)."""
        c = self._snapshot()[0]
        if c != self._saved_count:
            self._store(c, self._wh(c))

    def _store(self, count, wh):
        # A failed save is logged and tried again at the next threshold, not at every read.
        self._saved_count = count
        self._since_save = 0
        if self._save:
            try:
                self._save(wh)
            except OSError as e:
                log.error("s0", "saving %r Wh failed: %r" % (wh, e))

    def deinit(self):
        self._pin.irq(None)
