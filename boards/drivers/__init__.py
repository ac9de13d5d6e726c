# drivers: hardware drivers (pilot, proximity, contactor, RCD, meters, lock). Each receives
# ready-made pins and buses from its board; none imports machine. MIT licence.


class EvseHw:
    """What one EVSE is made of, as a board builds it for the charging controller.

    pilot       Pilot: offer(amps), standby(), fault(), duty (duty_u16 set), duty_pct, read()
                -> "A".."F" or None,
                diode (True / False / None when not judged)
    proximity   Proximity: read_amps() -> 13, 20, 32, 63 or None; None for a tethered cable
    contactor   Contactor: close(), open(), closed (commanded), feedback() -> bool or None
    rcd         Rcd: tripped() -> bool, has_test, test(on)
    meter       async read() -> lib meter.Reading, raises meter.MeterError
    lock        connector lock or None
    max_a       the most current per phase this EVSE's wiring allows (A)
    phases      1 or 3
    ventilation True when charging in state D is allowed
    cable_a     rating of a tethered cable (A), or None with a socket (then proximity reads it)
    pp_fallback_a  the rating to assume when PP is unreadable (13 on boards that say so), or
                None: then an unreadable PP means no charging
    phase_switch   Contactor of a three-phase EVSE's second contactor, which connects L2 and L3
                (closed: 3 phases, open: L1 only; it never switches L1), or None for none.
                Only the charging controller (firmware/evse.py) switches it, never under load
    """

    def __init__(
        self,
        pilot,
        contactor,
        rcd,
        meter,
        max_a,
        phases=3,
        proximity=None,
        lock=None,
        ventilation=False,
        cable_a=None,
        pp_fallback_a=None,
        phase_switch=None,
    ):
        self.pilot = pilot
        self.proximity = proximity
        self.contactor = contactor
        self.rcd = rcd
        self.meter = meter
        self.lock = lock
        self.max_a = max_a
        self.phases = phases
        self.ventilation = ventilation
        self.cable_a = cable_a
        self.pp_fallback_a = pp_fallback_a
        self.phase_switch = phase_switch
