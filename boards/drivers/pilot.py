# pilot: the control pilot: 1 kHz +-12 V PWM out, burst-sampled CP level in (IEC 61851-1).
# MIT licence.

import time
from array import array

from micropython import const

import iec61851

_U16 = const(65535)
_TOP = const(3)  # samples averaged for each plateau: the top 3 (high), the bottom 3 (low)
# A burst spreads its samples evenly over this long: two 1 kHz periods plus one 10 % plateau.
# Any window of 2 periods holds 2 x the plateau time, and a plateau of P us holds at least
# floor(P / gap) samples, so with gap = 2100 / 48 = 43 us a 100 us plateau (6 A, 10 %) gives
# at least 3 samples per burst (4 when it is not split by the burst's ends).
_SPAN_US = const(2100)

_ticks_us = getattr(time, "ticks_us", None) or (lambda: time.perf_counter_ns() // 1000)  # CPython
_ticks_add = getattr(time, "ticks_add", None) or (lambda t, d: t + d)
_ticks_diff = getattr(time, "ticks_diff", None) or (lambda a, b: a - b)


class Pilot:
    """The EVSE end of the control pilot.

    pwm      machine.PWM on the CP driver, already at 1 kHz; duty_u16 65535 = +12 V steady
    adc      machine.ADC on the CP sense divider, attenuation set
    th       (ab, bc, cd, de, ef, diode_max): thresholds in mV at the ADC pin (iec61851.classify)
    mv_full  pin mV at read_u16() == 65535. Raw counts are taken as linear in the pin voltage:
             good to a few tens of mV inside the ADC's linear range, which the thresholds'
             hundreds-of-mV margins absorb; the board calibrates it where it can
    samples  reads per burst (>= 6); the burst lasts ~2.1 ms whatever the count
    ticks_us the clock pacing the burst (default time.ticks_us; the sim's is virtual)

    Output: offer(amps) = x2 (1 kHz PWM), standby() = x1 (steady +12 V), fault() = F (steady
    -12 V). `duty` is the duty_u16 value set (65535 in x1, 0 in F); duty_pct the duty cycle in
    percent and offered_a the current an EV decodes from it (0 in x1 and F), both computed
    when asked (floats: not for the safety tick). offer(), standby(), fault() and read()
    allocate nothing when offers are whole amperes.

    Input: read() takes one burst and returns the raw state "A".."F", not debounced. It also
    sets high_mv / low_mv (the plateau levels) and diode: True (low plateau at -12 V), False
    (it is not: a shorted diode, or no EV diode at all), None when not judged: in x1 and F,
    and while the low plateau is shorter than two sample gaps (duty above ~91 %, offers above
    ~68 A), where the bottom 3 samples could miss it.
    """

    # The clock that paces a burst's reads (time.ticks_us): a board's own; the sim hands its
    # virtual one (read(): the same code spends no real time there).
    ticks_us = staticmethod(_ticks_us)

    def __init__(self, pwm, adc, th, mv_full=3300, samples=48, ticks_us=None):
        iec61851.check_thresholds(th)
        if samples < 2 * _TOP:
            raise ValueError("samples must be >= 6")
        if not 0 < mv_full <= 5000:
            raise ValueError("mv_full must be 1..5000")
        self._pwm = pwm
        self._adc = adc
        self._th = tuple(th)
        self._mv_full = int(mv_full)
        self._n = samples
        self.gap_us = _SPAN_US // samples  # aimed spacing between reads; a slow ADC spaces more
        self.burst = array("H", [0] * samples)  # the last burst, raw (kept for diagnostics)
        self.high_mv = 0
        self.low_mv = 0
        self.diode = None
        self.duty = _U16
        self._amps = 0  # the amperes of the last offer, 0 in x1 and F
        self._pwm_on = False  # 0 < duty < 100 %: x2
        self._judge = False  # x2, and the low plateau is long enough to judge the diode
        if ticks_us is not None:
            self.ticks_us = ticks_us
        self.standby()

    # -- output -------------------------------------------------------------------------------

    def offer(self, amps):
        """x2: 1 kHz PWM offering `amps` (above 80 A: 80 A); below 6 A ValueError: standby()."""
        if amps < 6:
            raise ValueError("offer below 6 A: use standby()")
        if amps > 80:
            amps = 80
        self._set(iec61851.duty_u16_for(amps))
        self._amps = amps

    def standby(self):
        """x1: steady +12 V, the EVSE is not ready to deliver energy."""
        self._set(_U16)
        self._amps = 0

    def fault(self):
        """State F: steady -12 V, the EVSE is not available (>= 300 ms after a fault)."""
        self._set(0)
        self._amps = 0

    @property
    def duty_pct(self):
        d = self.duty
        if d == _U16 or d == 0:
            return 100.0 if d else 0.0
        return iec61851.duty_for_current(self._amps)

    @property
    def offered_a(self):
        return iec61851.current_for_duty(self.duty_pct)  # 0 for 0 % and 100 %

    def _set(self, d):
        self._pwm.duty_u16(d)
        self.duty = d
        self._pwm_on = 0 < d < _U16
        low_us = (_U16 - d) * 1000 // _U16  # length of the -12 V plateau per period
        self._judge = self._pwm_on and low_us >= 2 * self.gap_us

    # -- input --------------------------------------------------------------------------------

    def read(self):
        """One burst -> "A".."F"; sets high_mv, low_mv, diode. Allocates nothing.

        Timing: samples reads of read_u16(), one every gap_us (43 us at 48), so ~2.1 ms of
        busy loop on an ESP32 when a read takes <= 43 us (~35 us reported from a tight loop,
        unconfirmed: measure). A slower ADC stretches the burst, which keeps >= 2 periods but
        thins the 10 % plateau: above ~50 us per read, 6 A offers may misread now and then.
        """
        buf = self.burst
        adc = self._adc
        gap = self.gap_us
        ticks = self.ticks_us
        t = ticks()
        for i in range(self._n):
            buf[i] = adc.read_u16()
            t = _ticks_add(t, gap)
            while _ticks_diff(t, ticks()) > 0:
                pass
        # Top 3 and bottom 3 in one pass (h1 >= h2 >= h3, l1 <= l2 <= l3); no sort, no list.
        h1 = h2 = h3 = 0
        l1 = l2 = l3 = _U16
        for i in range(self._n):
            v = buf[i]
            if v > h3:
                if v > h1:
                    h1, h2, h3 = v, h1, h2
                elif v > h2:
                    h2, h3 = v, h2
                else:
                    h3 = v
            if v < l3:
                if v < l1:
                    l1, l2, l3 = v, l1, l2
                elif v < l2:
                    l2, l3 = v, l2
                else:
                    l3 = v
        # (3 x 65535) x mv_full stays a small int (< 2**30) for mv_full <= 5000.
        full = self._mv_full
        self.high_mv = (h1 + h2 + h3) * full // (_TOP * _U16)
        self.low_mv = (l1 + l2 + l3) * full // (_TOP * _U16)
        th = self._th
        self.diode = iec61851.diode_ok(self.low_mv, th) if self._judge else None
        return iec61851.classify(self.high_mv, self.low_mv, self._pwm_on, th)
