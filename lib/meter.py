# meter: what an energy meter reports, whatever its bus (Modbus, S0 pulses, simulation).
# MIT licence.


class MeterError(Exception):
    """The meter did not answer, or answered nonsense: a fault to report, never a crash."""


class Reading:
    """One complete reading. Phases a meter lacks are None in the tuples."""

    def __init__(
        self, energy_wh, power_w, current_a=(None, None, None), voltage_v=(None, None, None)
    ):
        self.energy_wh = energy_wh  # active energy imported, Wh (the billing register)
        self.power_w = power_w  # active power, W (total of all phases)
        self.current_a = current_a  # (L1, L2, L3), A
        self.voltage_v = voltage_v  # (L1-N, L2-N, L3-N), V

    def __repr__(self):
        return "Reading(%r Wh, %r W, %r A, %r V)" % (
            self.energy_wh,
            self.power_w,
            self.current_a,
            self.voltage_v,
        )
