# mains: the virtual wallbox's mains meter at the grid connection: what the rest of the site
# draws (the control channel's mains_load, negative = exported) plus what the EVSEs draw.
# MIT licence.

import asyncio

from meter import MeterError, Reading

_VOLTS = 230.0


class SimMains:
    """A three-phase meter with signed currents (boards.Board.mains_meter), over the sim's
    EVs (boards/sim/ev.SimEV)."""

    def __init__(self, evs):
        self.evs = evs
        self.load_a = [0.0, 0.0, 0.0]  # the rest of the site, per phase; negative: export
        self.silent = False  # the meter_timeout fault of EVSE 0 (the site)

    def state_doc(self):
        return {"a": self.load_a, "silent": self.silent}

    def restore(self, d):
        a = d.get("a")
        if type(a) is list and len(a) == 3:
            self.load_a = [float(x) for x in a]
        self.silent = bool(d.get("silent"))

    def currents(self):
        """(L1, L2, L3) at the grid connection now, A."""
        cur = list(self.load_a)
        for ev in self.evs:
            ev.update()
            for p in range(ev.phases_used):
                cur[p] += ev.amps
        return tuple(cur)

    async def read(self):
        if self.silent:
            await asyncio.sleep_ms(60000)  # silence: the caller's timeout ends this
            raise MeterError("no answer")
        cur = self.currents()
        return Reading(0.0, sum(cur) * _VOLTS, cur, (_VOLTS, _VOLTS, _VOLTS))
