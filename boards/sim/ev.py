# ev: the virtual wallbox's hardware as the real drivers see it: an EV behind the control pilot,
# the cable's PP resistor, the relay and its mirror contact, the phase relay (L2/L3), the RCD,
# and an energy meter.
# MIT licence.

import asyncio
import time

from micropython import const

import iec61851
from meter import MeterError, Reading

# The sim board's analog front end, linear: pin mV = _CP_ZERO_MV + CP volts * _CP_MV_PER_V, so
# +12 V reads 2390 mV and -12 V 110 mV. Thresholds sit midway between the IEC bands.
_CP_ZERO_MV = const(1250)
_CP_MV_PER_V = const(95)
MV_FULL = const(3300)  # pin mV at read_u16() == 65535
CP_THRESHOLDS = (  # mV at the pin: A/B, B/C, C/D, D/E, E/F, highest low level with a diode
    _CP_ZERO_MV + 105 * _CP_MV_PER_V // 10,  # 10.5 V
    _CP_ZERO_MV + 74 * _CP_MV_PER_V // 10,  # 7.4 V
    _CP_ZERO_MV + 44 * _CP_MV_PER_V // 10,  # 4.4 V
    _CP_ZERO_MV + 13 * _CP_MV_PER_V // 10,  # 1.3 V
    _CP_ZERO_MV - 6 * _CP_MV_PER_V,  # -6 V
    _CP_ZERO_MV - 105 * _CP_MV_PER_V // 10,  # -10.5 V
)
# PP through a 1 kOhm pull-up to 3.3 V (hardware.md section 2): mV at the pin per cable rating.
PP_MV = {13: 1980, 20: 1340, 32: 600, 63: 300}
_PP_OPEN_MV = const(3250)
_SAMPLE_US = const(43)  # the pilot driver's pacing between reads (Pilot.gap_us): sample clock
_PERIOD_US = const(1000)  # 1 kHz PWM
_VOLTS = 230.0

# CP high level per EV state A, B, C, D, volts (hardware.md 1.1, the simulator model there).
# Tables as constant tuples, indexed by "ABCD".index(state): a dict would be built in RAM.
_HIGH_V = const((12.0, 8.98, 5.99, 2.93))
# Low level in B, C, D with a shorted EV diode (derived in hardware.md 1.1); -12 V when it is
# intact.
_SHORTED_LOW_V = const((-8.8, -5.6, -2.9))

FAULTS = ("rcd_trip", "contactor_welded", "diode_fault", "cp_short", "meter_timeout")


# The pilot driver's burst clock on the sim (boards/sim hands it to Pilot): virtual
# microseconds, moved on by each CP sample (_SAMPLE_US) and by each look at it (1 us, so that
# any pacing loop ends), so a burst takes no real time and an idle virtual wallbox sleeps
# between its 10 ms ticks. One clock for all EVs of the process (each sees its own PWM phase).
_vus = 0
_TICKS_MAX = const(0x3FFFFFFF)  # MicroPython's ticks wrap at 2**30


def ticks_us():
    global _vus
    _vus = (_vus + 1) & _TICKS_MAX  # as time.ticks_add, without the call
    return _vus


class SimPWM:
    """machine.PWM as the pilot driver uses it: only the duty matters here."""

    def __init__(self, ev):
        self.ev = ev
        self._duty = 65535

    def duty_u16(self, d=None):
        if d is None:
            return self._duty
        self._duty = d
        self.ev.pwm_changed()

    def freq(self, f=None):
        return 1000


class SimPin:
    """A digital pin. An input's level comes from `read()`; an output with `write(v)` acts on
    the EV model (it keeps the level itself), one without keeps it here."""

    def __init__(self, v=0, read=None, write=None):
        self.v = v
        self._read = read
        self._write = write

    def value(self, v=None):
        if v is None:
            return self._read() if self._read else self.v
        v = 1 if v else 0
        if self._write:
            self._write(v)
        else:
            self.v = v

    __call__ = value

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)


class _Adc:
    """An ADC channel whose reading (0..65535) the EV model computes."""

    def __init__(self, read):
        self.read_u16 = read


class SimMeter:
    """An energy meter that integrates what the simulated EV draws."""

    def __init__(self, ev):
        self.ev = ev
        self.wh = None  # the register as last saved with the world

    async def read(self):
        ev = self.ev
        if "meter_timeout" in ev.faults:
            await asyncio.sleep_ms(60000)  # silence: the caller's timeout ends this
            raise MeterError("no answer")
        ev.update()
        if ev.energy_wh != self.wh:  # the register never goes back below what was read
            ev.saved()
            self.wh = ev.energy_wh
        amps = ev.amps
        cur = tuple(amps if i < ev.phases_used else 0.0 for i in range(3))
        return Reading(ev.energy_wh, ev.power_w, cur, (_VOLTS, _VOLTS, _VOLTS))


class SimEV:
    """The car at one EVSE (and the EVSE's own relay, RCD and meter), driven by commands."""

    # Class defaults, in an instance only once set (the virtual ESP32's idle heap): its clock
    # (tests give a fake one), the world's saving (boards/sim), the counters for the bench.
    ticks = staticmethod(time.ticks_ms)
    save = None  # () -> None: persists the simulated world
    max_open_ms = 0  # slowest pilot change -> relay open seen so far (bench)
    phase_switches_under_load = 0  # phase relay moves with the main contact closed
    _x1_since = None  # the PWM stopped while the EV was in C
    _must_open_ms = None  # the CP changed so that the relay must open, at this tick
    _levels = None  # the CP sense ADC's (duty x period, high, low counts): see read_u16

    def __init__(self, phases=3, ticks=None, save=None):
        if ticks is not None:
            self.ticks = ticks
        if save is not None:
            self.save = save
        self.phases = phases  # what the EVSE is wired for
        self.plugged = False
        self.cable_a = 32
        self.request = "B"  # what the EV wants: B (nothing), C, or D (with ventilation)
        self.max_a = 32.0  # the most current per phase the EV draws
        self.ev_phases = 3
        self.stop_delay_ms = 1000  # the EV leaves C this long after the PWM stops
        self.faults = set()
        self.energy_wh = 0.0
        self.power_w = 0.0
        self.amps = 0.0
        self._t = self.ticks()
        self._charged = False  # the EV has seen the PWM while asking: it is in C (or D)
        self._stuck = False  # the relay contact is welded shut
        self.pwm = SimPWM(self)
        self.pp_adc = _Adc(self._pp_u16)
        self.relay = SimPin(0, None, self._relay_set)
        self.mirror = SimPin(0, lambda: 1 if self.contact_closed else 0)
        # The phase relay of a 3-phase EVSE: energised it connects L2 and L3; de-energised (as
        # at power-up) only L1. update() sees its moves (it runs before any move of the main
        # contact, so one under load is seen under load).
        self.phase_relay = SimPin(0)
        self._phase_seen = 0
        self.rcd_test = SimPin(0)
        self.rcd_fault = SimPin(
            0, lambda: 1 if "rcd_trip" in self.faults or self.rcd_test.v else 0
        )
        self.meter = SimMeter(self)
        self.locked = False  # the socket's cable lock, moved by the lock motor's H-bridge
        self.lock_a = SimPin(0, None, lambda v: self._motor(self.lock_a, v, True))
        self.lock_b = SimPin(0, None, lambda v: self._motor(self.lock_b, v, False))
        self.lock_switch = SimPin(0, lambda: 1 if self.locked else 0)

    # -- the EV's side of the pilot ---------------------------------------------------------

    @property
    def pwm_on(self):
        return 0 < self.pwm._duty < 65535

    @property
    def state(self):
        """The state the EV presents on the CP line now."""
        if "cp_short" in self.faults:
            return "E"
        if not self.plugged:
            return "A"
        if self.request in "CD" and self._charged:
            if self.pwm_on:
                return self.request
            if time.ticks_diff(self.ticks(), self._x1_since) < self.stop_delay_ms:
                return self.request  # still reacting to the end of the PWM
            self._charged = False
        if self.request in "CD" and self.pwm_on:
            self._charged = True
            return self.request
        return "B"

    @property
    def high_v(self):
        if self.pwm._duty == 0:
            return -12.0  # we drive F: the line sits at -12 V
        state = self.state
        return 0.0 if state == "E" else _HIGH_V["ABCD".index(state)]

    @property
    def low_v(self):
        state = self.state
        if state == "E":
            return 0.0
        if "diode_fault" in self.faults and state in "BCD":
            return _SHORTED_LOW_V["BCD".index(state)]
        return -12.0

    def read_u16(self):
        """The CP sense ADC (the board hands the EV model to the pilot driver as that): each
        read moves the virtual clock on by a sample gap (_SAMPLE_US) and returns the high or
        the low plateau's level at that PWM phase. The two levels are worked out once per
        change of the EV or the PWM (update() drops them), not per sample: a burst of the
        pilot driver allocates nothing and takes a few us of real time."""
        global _vus
        _vus = (_vus + _SAMPLE_US) & _TICKS_MAX
        lv = self._levels
        if lv is None:
            lv = (
                self.pwm._duty * _PERIOD_US,
                int((_CP_ZERO_MV + self.high_v * _CP_MV_PER_V) * 65535 / MV_FULL),
                int((_CP_ZERO_MV + self.low_v * _CP_MV_PER_V) * 65535 / MV_FULL),
            )
            if self._x1_since is None or not self._charged:
                self._levels = lv  # not while the EV still reacts to the end of the PWM
        return lv[1] if _vus % _PERIOD_US * 65535 < lv[0] else lv[2]

    def _pp_u16(self):
        mv = PP_MV.get(self.cable_a, _PP_OPEN_MV) if self.plugged else _PP_OPEN_MV
        return mv * 65535 // MV_FULL

    @property
    def contact_closed(self):
        return bool(self.relay.v) or self._stuck

    def pwm_changed(self):
        if not self.pwm_on and self._charged and self._x1_since is None:
            self._x1_since = self.ticks()
        elif self.pwm_on:
            self._x1_since = None
        self.update()

    # -- the world outlives the firmware: a reboot or a power loss does not unplug the car ----

    _KEEP = (
        "plugged",
        "cable_a",
        "request",
        "max_a",
        "ev_phases",
        "stop_delay_ms",
        "energy_wh",
        "locked",
        "_stuck",
    )

    def state_doc(self):
        d = {k: getattr(self, k) for k in self._KEEP}
        d["faults"] = sorted(self.faults)
        return d

    def restore(self, d):
        for k in self._KEEP:
            if k in d:
                setattr(self, k, d[k])
        self.faults = set(d.get("faults", ()))
        self.update()

    def saved(self):
        if self.save:
            self.save()

    # -- commands ---------------------------------------------------------------------------

    def plug_in(self, cable_a):
        self.cable_a = cable_a
        self.plugged = True
        self.update()

    def plug_out(self):
        self._cp_left()
        self.plugged = False
        self._charged = False
        self.update()

    def set_request(self, state):
        if state not in "BCD":
            raise ValueError("state must be B, C or D")
        if state == "B":
            self._cp_left()
        self.request = state
        self.update()

    def set_current(self, amps, phases):
        self.update()
        self.max_a = float(amps)
        self.ev_phases = phases

    def raise_error(self, code):
        if code not in FAULTS:
            raise ValueError("unknown error " + code)
        self.update()
        if code in ("rcd_trip", "diode_fault", "cp_short"):
            self._cp_left()
        if code == "contactor_welded" and self.relay.v:
            self._stuck = True
        self.faults.add(code)

    def clear_error(self, code):
        if code not in FAULTS:
            raise ValueError("unknown error " + code)
        self.update()
        self.faults.discard(code)
        if code == "contactor_welded":
            self._stuck = False

    # -- physics ----------------------------------------------------------------------------

    def _relay_set(self, v):
        relay = self.relay
        self.update()
        was, relay.v = relay.v, v
        if was != v:
            self.relay_changed(v)

    def _motor(self, pin, v, locks):
        """One output of the lock motor's H-bridge (`locks`: it drives towards locked)."""
        pin.v = v
        if v:
            self.locked = locks

    def relay_changed(self, closed):
        if closed and "contactor_welded" in self.faults:
            self._stuck = True
        if not closed and self._must_open_ms is not None:
            took = time.ticks_diff(self.ticks(), self._must_open_ms)
            self.max_open_ms = max(self.max_open_ms, took)
        self._must_open_ms = None
        self.update()

    def _cp_left(self):
        """The EV side just did something after which the relay must open (bench figure)."""
        if self.relay.v and self._must_open_ms is None:
            self._must_open_ms = self.ticks()

    @property
    def phases_used(self):
        """The phases current flows on: the EV's, of those the relays connect."""
        n = min(self.phases, self.ev_phases)
        if self.phases == 3 and not self.phase_relay.v:
            return 1
        return n

    def update(self):
        """Integrate energy up to now, then recompute what flows (and, on its next read, what
        the CP sense ADC sees). Every change of the EV, the PWM or the relays comes here."""
        self._levels = None
        now = self.ticks()
        dt = time.ticks_diff(now, self._t)
        self._t = now
        self.energy_wh += self.power_w * dt / 3600000
        if self.phase_relay.v != self._phase_seen:
            self._phase_seen = self.phase_relay.v
            if self.contact_closed:
                self.phase_switches_under_load += 1  # never allowed: the firmware's bug
        offered = iec61851.current_for_duty(self.pwm._duty * 100 / 65535) if self.pwm_on else 0
        drawing = self.contact_closed and self.state in "CD"
        self.amps = min(offered, self.max_a) if drawing else 0.0
        self.power_w = self.amps * _VOLTS * self.phases_used
