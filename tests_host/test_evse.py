"""The IEC 61851-1 controller (firmware/evse.py) on fake hardware, fake clock, 10 ms ticks."""

import asyncio

import pytest

import iec61851
from boards.drivers import EvseHw
from firmware import evse as E
from meter import MeterError, Reading


class FakePilot:
    """Reads what the test sets as the EV state; the diode answers while the PWM runs."""

    def __init__(self):
        self.ev = "A"
        self.diode_ok = True
        self.duty_pct = 100.0
        self.history = []  # ("x2", amps) / ("x1",) / ("F",)

    def offer(self, amps):
        self.duty_pct = iec61851.duty_for_current(amps)
        self.history.append(("x2", amps))

    def standby(self):
        self.duty_pct = 100.0
        self.history.append(("x1",))

    def fault(self):
        self.duty_pct = 0.0
        self.history.append(("F",))

    def read(self):
        x2 = 0 < self.duty_pct < 100
        self.diode = (self.diode_ok if x2 else None) if self.ev in "BCD" else None
        if self.duty_pct == 0:
            return "F"
        return self.ev


class FakeContactor:
    def __init__(self):
        self.closed = False
        self.mode = "follow"  # follow | welded | stuck_open | none
        self.history = []  # (now, "close"/"open") filled by the test loop

    def close(self):
        self.closed = True

    def open(self):
        self.closed = False

    def feedback(self):
        if self.mode == "none":
            return None
        if self.mode == "welded":
            return True
        if self.mode == "stuck_open":
            return False
        return self.closed


class FakeRcd:
    def __init__(self, has_test=True, test_works=True):
        self.fault = False
        self.has_test = has_test
        self.test_works = test_works
        self.testing = False
        self.tests = 0

    def tripped(self):
        return self.fault or (self.testing and self.test_works)

    def test(self, on):
        self.testing = on
        self.tests += on


class FakeProximity:
    def __init__(self, amps=32):
        self.amps = amps

    def read_amps(self):
        return self.amps


class FakeMeter:
    def __init__(self):
        self.fail = False

    async def read(self):
        if self.fail:
            raise MeterError("timeout")
        return Reading(1000.0, 7000.0)


class Rig:
    """One Evse on fake hardware, stepped by a fake clock."""

    def __init__(
        self, max_a=32, ventilation=False, cable=32, rcd=None, tethered_a=None, pp_fallback_a=None
    ):
        self.pilot = FakePilot()
        self.contactor = FakeContactor()
        self.rcd = rcd or FakeRcd()
        prox = None if tethered_a else FakeProximity(cable)
        self.hw = EvseHw(
            self.pilot,
            self.contactor,
            self.rcd,
            FakeMeter(),
            max_a,
            proximity=prox,
            ventilation=ventilation,
            cable_a=tethered_a,
            pp_fallback_a=pp_fallback_a,
        )
        self.now = 1000
        self.evse = E.Evse(1, self.hw, ticks=lambda: self.now)
        self.changes = 0
        self.evse.on_change.append(lambda e: setattr(self, "changes", self.changes + 1))

    def run(self, ms):
        for _ in range(ms // 10):
            self.now += 10
            self.evse.step(self.now)

    def until(self, pred, limit_ms=10000):
        """Step until pred() holds; return the ms it took."""
        start = self.now
        while not pred():
            if self.now - start > limit_ms:
                raise AssertionError("never happened")
            self.now += 10
            self.evse.step(self.now)
        return self.now - start

    def charging(self, amps=None):
        """Plug in, permit, EV to C: returns with the contactor closed."""
        self.pilot.ev = "B"
        self.run(300)
        self.evse.permit(True)
        if amps:
            self.evse.set_limit(amps)
        self.run(50)
        self.pilot.ev = "C"
        self.until(lambda: self.contactor.closed, 1000)


def test_full_session_a_b_c_b_a():
    r = Rig()
    r.run(100)
    assert r.evse.cp == "A" and r.pilot.duty_pct == 100.0 and not r.contactor.closed
    r.pilot.ev = "B"
    took = r.until(lambda: r.evse.cp == "B")
    assert 200 <= took <= 220  # towards charging: stable for 200 ms first
    r.run(50)
    assert r.rcd.tests == 1  # self-test at the start of the session
    assert r.pilot.duty_pct == 100.0  # not permitted yet: x1, no energy offered
    r.evse.permit(True)
    r.run(20)
    assert r.pilot.history[-1] == ("x2", 32) and r.evse.offered_a == 32
    assert r.evse.suspended_ev
    r.pilot.ev = "C"
    took = r.until(lambda: r.contactor.closed)
    assert 200 <= took <= 220
    assert r.evse.energy_flowing and not r.evse.suspended_ev
    r.pilot.ev = "B"
    assert r.until(lambda: not r.contactor.closed) <= 20  # EV stops: open within two reads
    assert r.pilot.duty_pct == iec61851.duty_for_current(32)  # B2: the EV may resume
    r.pilot.ev = "A"
    r.until(lambda: r.evse.cp == "A")
    assert r.pilot.duty_pct == 100.0 and r.evse.offered_a == 0
    assert r.changes > 0


def test_no_permission_no_energy_even_in_c():
    r = Rig()
    r.pilot.ev = "C"
    r.run(2000)
    assert r.evse.cp == "C" and not r.contactor.closed and r.pilot.duty_pct == 100.0
    assert r.evse.suspended_evse


def test_ev_pausing_in_b_then_resuming():
    r = Rig()
    r.charging()
    r.pilot.ev = "B"
    r.run(3000)
    assert not r.contactor.closed and r.evse.suspended_ev and r.evse.offered_a == 32
    r.pilot.ev = "C"
    r.until(lambda: r.contactor.closed, 300)


def test_unplug_while_charging_opens_within_20_ms():
    r = Rig()
    r.charging()
    r.pilot.ev = "A"
    assert r.until(lambda: not r.contactor.closed) <= 20
    assert r.evse.cp == "A" and r.pilot.duty_pct == 100.0


def test_rcd_trip_opens_at_once_signals_f_then_x1_and_latches_until_unplug():
    r = Rig()
    r.charging()
    r.rcd.fault = True
    r.run(10)
    assert not r.contactor.closed and r.pilot.duty_pct == 0.0
    assert r.evse.faults == {E.RCD_TRIP}
    r.run(280)
    assert r.pilot.duty_pct == 0.0  # F held >= 300 ms
    r.run(40)
    assert r.pilot.duty_pct == 100.0  # then x1 while faulted
    r.rcd.fault = False
    r.run(2000)
    assert E.RCD_TRIP in r.evse.faults and not r.contactor.closed
    r.pilot.ev = "A"
    r.run(50)
    assert r.evse.faults == set()


def test_welded_contactor_is_reported_and_blocks_charging_until_it_reads_open():
    r = Rig()
    r.charging()
    r.contactor.mode = "welded"
    r.pilot.ev = "B"
    r.run(20)
    assert not r.contactor.closed  # commanded open at once
    r.run(600)
    assert E.WELDED in r.evse.faults
    r.pilot.ev = "C"
    r.run(2000)
    assert not r.contactor.closed
    r.contactor.mode = "follow"  # serviced
    r.run(1100)
    assert E.WELDED not in r.evse.faults


def test_contactor_that_never_closes_is_a_fault():
    r = Rig()
    r.contactor.mode = "stuck_open"
    r.charging()
    r.run(600)
    assert not r.contactor.closed and E.CONTACTOR_FAULT in r.evse.faults


def test_missing_diode_is_a_fault_and_opens():
    r = Rig()
    r.charging()
    r.pilot.diode_ok = False
    assert r.until(lambda: not r.contactor.closed) <= 20
    assert E.DIODE_FAULT in r.evse.faults


def test_no_diode_ever_seen_means_no_closing():
    r = Rig()
    r.pilot.diode_ok = False
    r.pilot.ev = "B"
    r.run(300)
    r.evse.permit(True)
    r.pilot.ev = "C"
    r.run(1000)
    assert not r.contactor.closed and E.DIODE_FAULT in r.evse.faults


def test_cp_short_opens_and_clears_when_gone():
    r = Rig()
    r.charging()
    r.pilot.ev = "E"
    assert r.until(lambda: not r.contactor.closed) <= 20
    assert E.CP_SHORT in r.evse.faults
    r.run(400)
    r.pilot.ev = "C"
    r.run(300)
    assert E.CP_SHORT not in r.evse.faults


def test_charger_stop_goes_x1_first_and_opens_when_the_ev_goes_to_b():
    r = Rig()
    r.charging()
    r.evse.permit(False)
    r.run(10)
    assert r.pilot.duty_pct == 100.0 and r.contactor.closed  # x1 first, under load still
    r.run(2000)
    assert r.contactor.closed
    r.pilot.ev = "B"
    assert r.until(lambda: not r.contactor.closed) <= 20


def test_charger_stop_opens_under_load_after_6_s():
    r = Rig()
    r.charging()
    r.evse.permit(False)
    took = r.until(lambda: not r.contactor.closed, 8000)
    assert 6000 <= took <= 6020


def test_offered_current_falls_at_once_rises_once_per_5_s_and_obeys_the_cable():
    r = Rig(cable=20)
    r.charging()
    assert r.evse.offered_a == 20  # clamped by the cable's PP rating
    r.evse.set_limit(10)
    r.run(10)
    assert r.evse.offered_a == 10  # falls at once
    r.evse.set_limit(16)
    took = r.until(lambda: r.evse.offered_a == 16)
    assert 4990 <= took <= 5010
    r.evse.set_limit(18)
    took = r.until(lambda: r.evse.offered_a == 18)
    assert 4990 <= took <= 5010
    r.evse.set_limit(5)  # below 6 A: no offer, the EV is suspended by the EVSE
    r.run(10)
    assert r.evse.offered_a == 0 and r.pilot.duty_pct == 100.0
    r.pilot.ev = "B"
    r.run(30)
    assert not r.contactor.closed


def test_tethered_cable_rating_is_board_data():
    r = Rig(tethered_a=16)
    r.charging()
    assert r.evse.offered_a == 16


def test_unreadable_proximity_blocks_charging():
    r = Rig(cable=None)
    r.pilot.ev = "B"
    r.run(300)
    r.evse.permit(True)
    r.run(100)
    assert E.PP_FAULT in r.evse.faults and r.pilot.duty_pct == 100.0


def test_unreadable_proximity_charges_at_13_a_where_the_board_says_so():
    r = Rig(cable=None, pp_fallback_a=13)
    r.charging()
    assert r.evse.offered_a == 13 and not r.evse.faults


def test_state_d_needs_ventilation():
    r = Rig()
    r.pilot.ev = "B"
    r.run(300)
    r.evse.permit(True)
    r.pilot.ev = "D"
    r.run(1000)
    assert not r.contactor.closed
    r = Rig(ventilation=True)
    r.pilot.ev = "B"
    r.run(300)
    r.evse.permit(True)
    r.pilot.ev = "D"
    r.until(lambda: r.contactor.closed, 1000)


def test_failed_rcd_self_test_blocks_charging():
    r = Rig(rcd=FakeRcd(test_works=False))
    r.pilot.ev = "B"
    r.evse.permit(True)
    r.run(800)
    assert E.RCD_SELFTEST in r.evse.faults and r.pilot.duty_pct in (0.0, 100.0)
    r.pilot.ev = "C"
    r.run(1000)
    assert not r.contactor.closed


def test_unavailable_evse_offers_nothing():
    r = Rig()
    r.evse.set_available(False)
    r.pilot.ev = "B"
    r.run(300)
    r.evse.permit(True)
    r.pilot.ev = "C"
    r.run(1000)
    assert not r.contactor.closed and r.pilot.duty_pct == 100.0


def test_meter_silent_for_8_s_is_a_fault_that_opens_and_clears_when_it_answers():
    r = Rig()
    r.charging()

    async def go():
        task = asyncio.create_task(r.evse.meter_loop())
        await asyncio.sleep(0.05)
        assert r.evse.reading.energy_wh == 1000.0
        r.hw.meter.fail = True
        r.now += 8500  # time passes for the meter loop's clock
        await asyncio.sleep(1.1)
        assert E.METER_TIMEOUT in r.evse.faults
        r.run(10)
        assert not r.contactor.closed
        r.hw.meter.fail = False
        await asyncio.sleep(1.1)
        assert E.METER_TIMEOUT not in r.evse.faults
        task.cancel()

    asyncio.run(go())


def test_a_dying_safety_loop_opens_the_contactor():
    r = Rig()
    r.charging()

    def boom():
        raise RuntimeError("bug")

    r.evse.ticks = boom

    async def go():
        with pytest.raises(RuntimeError):
            await r.evse.run()

    asyncio.run(go())
    assert not r.contactor.closed and r.pilot.duty_pct == 0.0


def test_offers_above_63_a_wait_until_the_diode_has_answered():
    r = Rig(max_a=80, cable=None, tethered_a=80)
    r.pilot.ev = "B"
    r.run(300)
    r.evse.permit(True)
    r.run(20)
    assert r.evse.offered_a == 63  # the diode is judged at this duty
    r.pilot.ev = "C"
    r.until(lambda: r.contactor.closed, 1000)
    r.until(lambda: r.evse.offered_a == 80, 6000)
