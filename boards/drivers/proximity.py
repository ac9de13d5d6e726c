# proximity: the proximity pilot (PP) of a Type 2 socket: the cable's rating from its PP-PE
# resistor (IEC 61851-1 Annex B), read through a pull-up on an ADC pin. MIT licence.

from array import array

from micropython import const

_U16 = const(65535)
_N = const(5)  # samples per reading; the median rejects one or two outliers either way
# At or below this many mV at the pin, PP is shorted to PE. With the usual pull-up front end
# (hardware.md section 2) a short reads ~0 V and the lowest rating (100 Ohm, 63 A) ~300 mV.
_SHORT_MV = const(150)


class Proximity:
    """The cable's current rating, from the PP voltage.

    adc      machine.ADC on the PP pin, attenuation set
    bands    ((max_mv, amps), ...), ascending in max_mv: a reading in (previous max, max_mv]
             belongs to that band. amps is 13, 20, 32, 63, or None for a gap between ratings
             (a resistor outside every tolerance window). Above the last band: PP open
    mv_full  pin mV at read_u16() == 65535 (raw counts taken as linear)

    read_amps() -> 13 / 20 / 32 / 63, or None for a proximity fault: open (no cable, or a
    broken PP wire), shorted (<= 150 mV), or between bands. The caller must not charge on None.
    """

    def __init__(self, adc, bands, mv_full=3300):
        last = _SHORT_MV
        for max_mv, amps in bands:
            if max_mv <= last:
                raise ValueError("PP bands must ascend above %d mV" % _SHORT_MV)
            if amps is not None and not amps > 0:
                raise ValueError("PP band rating must be > 0 A or None")
            last = max_mv
        self._adc = adc
        self._bands = tuple(bands)
        self._mv_full = int(mv_full)
        self._buf = array("H", [0] * _N)
        self.mv = None  # the last reading, mV at the pin (for logs and calibration)

    def read_mv(self):
        """Median of a few reads, mV at the pin."""
        buf = self._buf
        adc = self._adc
        for i in range(_N):
            v = adc.read_u16()
            j = i
            while j > 0 and buf[j - 1] > v:  # insertion sort, in place
                buf[j] = buf[j - 1]
                j -= 1
            buf[j] = v
        self.mv = buf[_N // 2] * self._mv_full // _U16
        return self.mv

    def read_amps(self):
        mv = self.read_mv()
        if mv <= _SHORT_MV:
            return None
        for max_mv, amps in self._bands:
            if mv <= max_mv:
                return amps
        return None
