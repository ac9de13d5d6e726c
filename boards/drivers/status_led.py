# status_led: the station's status LED for firmware/display.py: led.set(state), state one of
# "off", "ready", "charging", "fault", "offline". MIT licence.
#
# An RGB LED (SmartEVSE v3) shows ready green, charging blue, fault red, offline yellow (red and
# green). Separate single LEDs (esp32-evse's DevKitC: charging, error, Wi-Fi) show charging on
# the charging LED, fault on the error LED, and the Wi-Fi LED lit in every state but off and
# offline (the state names no link when it is fault: the link is taken to be up).

from micropython import const

STATES = ("off", "ready", "charging", "fault", "offline")
# Per state, which of the three pins are lit: bit 0 the first pin, bit 1 the second, bit 2 the
# third. RGB: (red, green, blue); single: (charging, error, wifi).
RGB = b"\x00\x02\x04\x01\x03"
SINGLE = b"\x00\x04\x05\x06\x00"
_PINS = const(3)


class StatusLed:
    """Three output Pins (None for one the board lacks), lit at level `active`, driven per
    `table` (RGB or SINGLE); all off to start with."""

    def __init__(self, pins, table, active=1):
        self._pins = tuple(pins)
        self._table = table
        self._on = 1 if active else 0
        self.state = None
        self.set("off")

    def set(self, state):
        """Light the LEDs of `state`; ValueError for a state not in STATES."""
        try:
            bits = self._table[STATES.index(state)]
        except ValueError:
            raise ValueError("LED state %r: not one of %s" % (state, ", ".join(STATES)))
        on = self._on
        for i in range(_PINS):
            p = self._pins[i]
            if p is not None:
                p.value(on if bits >> i & 1 else 1 - on)
        self.state = state
