"""The virtual wallbox's EV model (boards/sim/ev.py) and board wiring: the phase relay that
connects L2/L3, the phases and power that follow from it, and the count of relay moves under
load (must stay 0); fake clock."""

import asyncio

import iec61851
from boards.drivers.contactor import Contactor
from boards.sim.ev import SimEV


class Clock:
    def __init__(self):
        self.t = 1000

    def __call__(self):
        return self.t


def drawing(amps=16, ev_phases=3):
    """An EV in C behind a 16 A PWM, main relay closed."""
    clock = Clock()
    ev = SimEV(3, ticks=clock)
    ev.clock = clock
    ev.set_current(32, ev_phases)
    ev.plug_in(32)
    ev.set_request("C")
    ev.pwm.duty_u16(iec61851.duty_u16_for(amps))
    assert ev.state == "C"
    return ev


def test_the_phase_relay_starts_open_and_only_l1_carries_current():
    ev = drawing()
    assert ev.phase_relay.v == 0 and ev.phases_used == 1
    ev.relay.value(1)
    assert ev.amps == 16 and ev.power_w == 16 * 230.0
    reading = asyncio.run(ev.meter.read())
    assert reading.current_a == (16, 0.0, 0.0) and reading.power_w == 16 * 230.0


def test_a_closed_phase_relay_connects_three_phases_to_a_three_phase_ev():
    ev = drawing()
    ev.phase_relay.value(1)  # moved before the main relay closes: no load
    ev.relay.value(1)
    assert ev.phases_used == 3 and ev.power_w == 16 * 230.0 * 3
    assert asyncio.run(ev.meter.read()).current_a == (16, 16, 16)
    ev.set_current(32, 1)  # a one-phase EV draws on L1 only whatever the relay
    assert asyncio.run(ev.meter.read()).current_a == (16, 0.0, 0.0)
    assert ev.phases_used == 1 and ev.power_w == 16 * 230.0
    assert ev.phase_switches_under_load == 0


def test_energy_follows_the_phases_in_use():
    ev = drawing()
    ev.relay.value(1)
    ev.clock.t += 3600_000  # an hour on one phase
    ev.relay.value(0)
    assert round(ev.energy_wh) == 16 * 230
    ev.phase_relay.value(1)
    ev.relay.value(1)
    ev.clock.t += 3600_000  # an hour on three
    ev.update()
    assert round(ev.energy_wh) == 4 * 16 * 230


def test_a_phase_relay_move_under_load_is_counted():
    ev = drawing()
    ev.relay.value(1)
    ev.phase_relay.value(1)
    ev.update()  # as each meter read does
    assert ev.phase_switches_under_load == 1 and ev.power_w == 16 * 230.0 * 3
    ev.phase_relay.value(1)  # no move, nothing counted
    ev.update()
    assert ev.phase_switches_under_load == 1
    ev.phase_relay.value(0)  # moved under load, then the main relay opens: seen before
    ev.relay.value(0)
    assert ev.phase_switches_under_load == 2
    ev.phase_relay.value(1)  # moved without load, then the main relay closes
    ev.relay.value(1)
    ev.update()
    assert ev.phase_switches_under_load == 2 and ev.power_w == 16 * 230.0 * 3
    # A welded main contact carries the load whatever its coil says: counted too.
    ev.raise_error("contactor_welded")
    ev.relay.value(0)
    ev.phase_relay.value(0)
    asyncio.run(ev.meter.read())
    assert ev.phase_switches_under_load == 3


def test_the_board_gives_its_three_phase_evses_the_phase_relay_as_switch(tmp_path):
    from boards.sim import Board

    board = Board(["--state-dir", str(tmp_path), "--evses", "2"])
    for i in (1, 2):
        hw = board.evse_hw(i)
        ev = board.evs[i - 1]
        assert hw.phases == 3 and isinstance(hw.phase_switch, Contactor)
        assert hw.phase_switch.feedback() is None and not hw.phase_switch.closed
        hw.phase_switch.close()
        assert ev.phase_relay.v == 1 and ev.phases_used == 3
        hw.phase_switch.open()
        assert ev.phase_relay.v == 0 and ev.phases_used == 1


def test_the_pilot_bursts_on_the_sims_virtual_clock_in_no_real_time(tmp_path, monkeypatch):
    """The board's pilot driver paces its burst by the sim's virtual microseconds: one look at
    the clock per sample (no busy wait, so an idle virtual wallbox sleeps between its ticks),
    and it still reads the EV right: B at 16 A with the diode, C when it asks."""
    from boards.sim import Board
    from boards.sim import ev as ev_mod

    board = Board(["--state-dir", str(tmp_path)])
    hw = board.evse_hw(1)
    looks = []

    def counted():
        looks.append(1)
        return ev_mod.ticks_us()

    hw.pilot.ticks_us = counted
    board.evs[0].plug_in(32)
    hw.pilot.offer(16)
    assert hw.pilot.read() == "B" and hw.pilot.diode is True
    assert len(looks) == 1 + 48  # the start, then one look a sample
    board.evs[0].set_request("C")
    assert hw.pilot.read() == "C"
    hw.pilot.standby()
    board.evs[0].plug_out()
    assert hw.pilot.read() == "A"


HEAPLOCK = """
# The sim's pilot bursts under micropython.heap_lock(): once the EV model has worked out the CP
# levels for a state (the first read after a change), a burst allocates nothing.
import micropython
import sys

from boards.sim import Board

board = Board(["--state-dir", sys.argv[1]])
hw = board.evse_hw(1)
ev = board.evs[0]
seen = []
for step in ("A", "plug", "offer", "C"):
    if step == "plug":
        ev.plug_in(32)
    elif step == "offer":
        hw.pilot.offer(16)
    elif step == "C":
        ev.set_request("C")
    first = hw.pilot.read()  # the levels of the new state
    odd = i = 0
    micropython.heap_lock()
    try:
        while i < 200:
            if hw.pilot.read() != first:
                odd += 1
            i += 1
    finally:
        micropython.heap_unlock()
    seen.append(first + "?" * odd)
print(" ".join(seen))
"""


def test_a_burst_of_the_sims_pilot_allocates_nothing_on_micropython(tmp_path):
    """At 100 bursts a second per station, garbage would cost every virtual wallbox a
    collection every few seconds (a fleet's CPU): none once the levels are known."""
    import os
    import subprocess
    from pathlib import Path

    import pytest

    root = Path(__file__).resolve().parent.parent
    mp = root / ".venv" / "bin" / "micropython"
    if not mp.exists():
        pytest.skip("no MicroPython unix port in .venv")
    script = tmp_path / "heaplock_sim.py"
    script.write_text(HEAPLOCK)
    env = dict(os.environ, MICROPYPATH=".frozen:%s:%s" % (root / "lib", root))
    out = subprocess.run(
        [str(mp), str(script), str(tmp_path / "state")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=root,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["A", "B", "B", "C"]
