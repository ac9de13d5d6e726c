"""1<->3-phase switching in the IEC 61851-1 controller (firmware/evse.py): the phase switch
moves only with the EV paused and the main contactor open, each step 3 s apart (hardware.md
1.5); fake hardware, fake clock, 10 ms ticks as in test_evse."""

import os
import subprocess

import pytest
from test_evse import HEAPLOCK, MICROPYTHON, ROOT, FakeContactor, Rig

from firmware import evse as E

GAP = 3000  # evse._PHASE_GAP_MS


class PhaseSwitch(FakeContactor):
    """The L2/L3 contactor; each move is kept as (ms, closed, main closed, main mirror)."""

    def __init__(self, rig):
        super().__init__()
        self.rig = rig
        self.moves = []

    def _move(self, closed):
        if closed != self.closed:
            main = self.rig.contactor
            self.moves.append((self.rig.now, closed, main.closed, main.feedback()))
        self.closed = closed

    def close(self):
        self._move(True)

    def open(self):
        self._move(False)


def rig(phases=3, switch=True, boot=True, **kw):
    """A Rig whose EVSE has a phase switch; `boot`: past the boot's switch gap."""
    r = Rig(**kw)
    r.switch = PhaseSwitch(r) if switch else None
    r.hw.phase_switch = r.switch
    r.hw.phases = phases
    r.evse = E.Evse(1, r.hw, ticks=lambda: r.now)
    if boot:
        r.run(GAP + 10)
        if switch:
            del r.switch.moves[:]  # the boot's move (test_boot_... has it)
    return r


def test_boot_closes_the_switch_in_the_first_tick_and_needs_no_gap_after():
    r = rig(boot=False)
    assert r.evse.phases == 1 and r.evse.switching  # the switch starts open: 3 is wanted
    r.pilot.ev = "B"
    r.evse.permit(True)
    r.step()
    assert r.switch.moves == [(1010, True, False, False)] and r.evse.phases == 3
    # no EV seen yet (the CP still debounced as A): none to give a pause, no gap after
    assert not r.evse.switching
    took = r.until(lambda: r.evse.offered_a == 32)
    assert took < GAP  # the plug-in debounce and the RCD self-test only


def test_switch_with_an_ev_that_pauses_x1_b_open_gap_switch_gap_pwm():
    r = rig()
    r.charging()
    assert r.evse.phases == 3 and not r.evse.switching
    r.evse.set_phases(1)
    assert r.evse.switching  # at once, for the caller
    r.step()
    # x1 at once, the contactor still closed (never opened under load by us here)
    assert r.pilot.history[-1] == ("x1",) and r.contactor.closed and r.evse.switching
    assert r.evse.suspended_evse and r.evse.phases == 3
    r.run(1000)  # the EV takes its time to stop
    assert r.contactor.closed and r.switch.moves == []
    r.pilot.ev = "B"
    assert r.until(lambda: not r.contactor.closed) <= 20  # B: open at once
    opened = r.now
    r.until(lambda: r.switch.moves)
    ((when, closed, main, mirror),) = r.switch.moves
    assert when - opened in range(GAP, GAP + 20) and not closed and not main and not mirror
    assert r.evse.phases == 1 and r.pilot.duty_pct == 100.0 and r.evse.switching
    took = r.until(lambda: r.evse.offered_a == 32)
    assert took in range(GAP - 10, GAP + 20) and not r.evse.switching
    r.pilot.ev = "C"
    r.until(lambda: r.contactor.closed, 1000)
    assert r.evse.phases == 1 and len(r.switch.moves) == 1


def test_an_ev_that_ignores_x1_is_opened_at_6_s_then_switched():
    r = rig()
    r.charging()
    r.evse.set_phases(1)
    took = r.until(lambda: not r.contactor.closed, 8000)
    assert took in range(6000, 6030)
    opened = r.now
    r.until(lambda: r.switch.moves)
    assert r.switch.moves[0][0] - opened in range(GAP, GAP + 20)
    assert r.switch.moves[0][1:] == (False, False, False)
    r.until(lambda: r.evse.offered_a == 32, GAP + 20)
    r.until(lambda: r.contactor.closed, 1000)  # still in C: charging goes on on one phase
    assert r.evse.phases == 1


def test_a_welded_main_contactor_never_lets_the_switch_move():
    r = rig()
    r.charging()
    r.contactor.mode = "welded"  # the mirror says closed whatever the coil
    r.evse.set_phases(1)
    r.run(500)
    r.pilot.ev = "B"
    r.run(20)
    assert not r.contactor.closed  # commanded open
    r.run(20000)
    assert E.WELDED in r.evse.faults
    assert r.switch.moves == [] and r.evse.phases == 3 and r.evse.switching
    r.contactor.mode = "follow"  # serviced: the mirror reads open
    r.until(lambda: r.switch.moves, 2000)
    assert r.switch.moves[0][1:] == (False, False, False) and r.evse.phases == 1


def test_an_idle_evse_switches_at_once_and_after_a_session_a_gap_after_the_opening():
    r = rig()
    r.evse.set_phases(1)
    r.step()
    assert r.switch.moves == [(r.now, False, False, False)] and r.evse.phases == 1
    r.run(GAP)
    r.charging()
    r.pilot.ev = "A"  # unplugged while charging: open at once
    r.until(lambda: not r.contactor.closed)
    opened = r.now
    r.evse.set_phases(3)
    r.until(lambda: len(r.switch.moves) == 2)
    assert r.switch.moves[1][0] - opened in range(GAP, GAP + 20)
    assert r.evse.phases == 3


def test_moves_are_a_gap_apart_and_a_change_of_mind_before_the_move_moves_nothing():
    r = rig()
    r.evse.set_phases(1)
    r.step()
    r.evse.set_phases(3)  # at once back: the switch waits a gap
    r.until(lambda: len(r.switch.moves) == 2)
    assert r.switch.moves[1][0] - r.switch.moves[0][0] in range(GAP, GAP + 20)
    r.run(GAP)
    r.charging()
    r.evse.set_phases(1)
    r.run(500)
    assert r.pilot.duty_pct == 100.0 and r.contactor.closed
    r.evse.set_phases(3)  # the EV never left C: the offer comes back, nothing moved
    r.run(20)
    assert r.evse.offered_a == 32 and r.contactor.closed and len(r.switch.moves) == 2
    assert not r.evse.switching


def test_without_a_switch_set_phases_does_nothing():
    r = rig(switch=False)
    r.charging()
    assert r.evse.phases == 3 and not r.evse.switching
    r.evse.set_phases(1)
    r.run(8000)
    assert r.evse.phases == 3 and r.contactor.closed and r.evse.offered_a == 32
    assert not r.evse.switching


def test_a_single_phase_evse_ignores_its_switch():
    r = rig(phases=1)
    assert r.switch.moves == [] and r.evse.phases == 1  # not closed at boot either
    r.charging()
    r.evse.set_phases(3)
    r.run(8000)
    assert r.switch.moves == [] and r.evse.phases == 1 and r.contactor.closed
    assert not r.evse.switching


def test_set_phases_takes_1_or_3_only():
    r = rig()
    with pytest.raises(ValueError):
        r.evse.set_phases(2)
    assert not r.evse.switching


def test_limit_a_is_the_applications_and_max_a_the_hardwares():
    r = rig(cable=20)
    r.charging()
    assert r.evse.limit_a is None and r.evse.max_a == 20  # the cable
    r.evse.set_config_limit(16)
    r.evse.set_limit(10.7)
    assert r.evse.limit_a == 10 and r.evse.max_a == 16
    r.step()
    assert r.evse.offered_a == 10
    r.evse.set_limit(40)  # above the hardware: the hardware's ceiling holds
    r.run(5010)
    assert r.evse.offered_a == 16 and r.evse.limit_a == 40


# The tick under micropython.heap_lock() while the phases change: test_evse's rig (real pilot,
# contactor with mirror and RCD drivers) plus a phase switch on its own coil.
PHASE_HEAPLOCK = (
    HEAPLOCK.split("\ndef run(n):")[0]
    + """
sw_coil = Pin()
hw.phase_switch = Contactor([sw_coil])
evse = Evse(1, hw, ticks=lambda: clock.t)


def run(n):
    for _ in range(n):
        clock.t += 10
        evse.step(clock.t)
    b, k = marks.b, marks.k
    b[k] = ord(evse.cp)
    b[k + 1] = 1 if hw.contactor.closed else 0
    b[k + 2] = evse.offered_a
    b[k + 3] = evse.phases
    marks.k = k + 4


def sessions():
    run(1)  # boot: the switch closes at once
    run(300)  # the gap after it
    adc.high = RAW_B
    run(40)
    evse.permit(True)
    run(5)  # x2: 32 A
    adc.high = RAW_C
    run(30)  # closed
    evse.set_phases(1)
    run(5)  # x1, still closed
    adc.high = RAW_B
    run(5)  # the EV paused: open
    run(300)  # a gap later the switch opened: one phase
    run(300)  # a gap later the offer is back
    adc.high = RAW_C
    run(30)  # closed on one phase
    evse.set_phases(3)
    run(5)  # x1; the EV ignores it
    run(600)  # opened under load after 6 s
    run(300)  # the switch closed
    run(300)  # the offer is back and, the EV in C, the contactor closes
    run(30)
    adc.high = RAW_A
    run(30)


marks.b = bytearray(80)
micropython.heap_lock()
try:
    sessions()
    result = None
except MemoryError as e:
    result = e
micropython.heap_unlock()
if result is not None:
    import sys

    sys.print_exception(result)
b = marks.b
print(" ".join("%s%d/%d/%d" % (chr(b[i]), b[i + 1], b[i + 2], b[i + 3])
               for i in range(0, marks.k, 4)))
print(coil.ups, sw_coil.ups, pwm.d, sorted(evse.faults))
"""
)


def test_safety_tick_allocates_nothing_while_switching_phases_on_micropython(tmp_path):
    if not MICROPYTHON.exists():
        pytest.skip("no MicroPython unix port in .venv")
    script = tmp_path / "heaplock_phases.py"
    script.write_text(PHASE_HEAPLOCK)
    env = dict(os.environ, MICROPYPATH=".frozen:%s:%s" % (ROOT / "lib", ROOT))
    out = subprocess.run(
        [str(MICROPYTHON), str(script)], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == [
        "A0/0/3 A0/0/3 B0/0/3 B0/32/3 C1/32/3 C1/0/3 B0/0/3 B0/0/1 B0/32/1 C1/32/1 C1/0/1"
        " C0/0/1 C0/0/3 C1/32/3 C1/32/3 A0/0/3",
        "3 2 65535 []",
    ], out.stdout
