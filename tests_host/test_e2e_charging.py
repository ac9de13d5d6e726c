"""End to end: charging on the virtual wallbox, driven through the control channel.

The real firmware (IEC 61851 controller and drivers) runs on the MicroPython unix port; the sim
board puts a simulated EV, relay, RCD and meter behind the pins the drivers read.
"""

import pytest

from tools.harness import FAST, variables

pytestmark = pytest.mark.e2e

CONFIG = {"variables": variables(FAST)}


def evse(sim, pred, timeout=10):
    return sim.wait_status(lambda s: pred(s["evse"][0]), timeout)["evse"][0]


def charging(sim, cable=32):
    assert sim.cmd("plug_in", evse=1, cable_a=cable) == {"ok": True}
    evse(sim, lambda e: e["cp"] == "B" and e["connector_status"] == "Occupied")
    assert sim.cmd("button", evse=1) == {"ok": True}
    assert sim.cmd("ev_state", evse=1, state="C") == {"ok": True}
    return evse(sim, lambda e: e["contactor"] and e["power_w"] > 0)


def test_status_reports_an_idle_evse(csms, sims):
    sim = sims(csms.url, config=CONFIG)
    e = evse(sim, lambda e: e["cp"] == "A" and e["phases"] == 3)  # the switch closes at boot
    assert e == {
        "id": 1,
        "cp": "A",
        "pwm_duty": 100.0,
        "offered_a": 0.0,
        "contactor": False,
        "energy_wh": 0.0,
        "power_w": 0.0,
        "connector_status": "Available",
        "tx_id": None,
        "faults": [],
        "max_open_ms": 0,
        "phases": 3,
        "limit_a": None,
        "phase_switches_under_load": 0,
    }


def test_plug_in_button_c_closes_energy_rises_b_opens(csms, sims):
    sim = sims(csms.url, config=CONFIG)
    e = charging(sim)
    assert e["cp"] == "C" and e["offered_a"] == 32.0 and e["pwm_duty"] == 53.3
    assert e["power_w"] == 32 * 230.0 * 3
    first = e["energy_wh"]
    e = evse(sim, lambda e: e["energy_wh"] > first + 5)
    assert sim.cmd("ev_current", evse=1, a=16, phases=1) == {"ok": True}
    e = evse(sim, lambda e: e["power_w"] == 16 * 230.0)
    assert sim.cmd("ev_state", evse=1, state="B") == {"ok": True}
    e = evse(sim, lambda e: not e["contactor"])
    assert e["cp"] == "B" and e["pwm_duty"] == 53.3  # B2: the EV may resume
    assert 0 < e["max_open_ms"] <= 100
    assert sim.cmd("plug_out", evse=1) == {"ok": True}
    e = evse(sim, lambda e: e["cp"] == "A")
    assert e["pwm_duty"] == 100.0
    # Occupied until the transaction's Ended is out (it waits for a reading after the stop).
    e = evse(sim, lambda e: e["connector_status"] == "Available" and e["tx_id"] is None)


def test_cable_rating_clamps_the_offer_and_a_swipe_permits(csms, sims):
    sim = sims(csms.url, config=CONFIG)
    sim.wait_status(lambda s: s["registration"] == "Accepted")  # the card is authorized online
    assert sim.cmd("plug_in", evse=1, cable_a=13) == {"ok": True}
    evse(sim, lambda e: e["cp"] == "B")
    assert sim.cmd("swipe", token="AABBCCDD") == {"ok": True}
    assert sim.cmd("ev_state", evse=1, state="C") == {"ok": True}
    e = evse(sim, lambda e: e["contactor"])
    assert e["offered_a"] == 13.0 and e["pwm_duty"] == 21.7


@pytest.mark.parametrize("error", ["rcd_trip", "diode_fault", "cp_short", "contactor_welded"])
def test_each_fault_while_charging_opens_and_is_reported(csms, sims, error):
    sim = sims(csms.url, config=CONFIG)
    charging(sim)
    if error == "contactor_welded":
        sim.cmd("raise_error", evse=1, error=error)
        sim.cmd("ev_state", evse=1, state="B")  # the weld shows when the contactor opens
    else:
        assert sim.cmd("raise_error", evse=1, error=error) == {"ok": True}
    e = evse(sim, lambda e: not e["contactor"] and e["faults"])
    assert e["faults"] == [error] and e["connector_status"] == "Faulted"
    assert e["max_open_ms"] <= 100
    assert sim.cmd("clear_error", evse=1, error=error) == {"ok": True}


def test_meter_timeout_while_charging_is_a_fault_and_clears(csms, sims):
    sim = sims(csms.url, config=CONFIG)
    charging(sim)
    assert sim.cmd("raise_error", evse=1, error="meter_timeout") == {"ok": True}
    e = evse(sim, lambda e: e["faults"] and not e["contactor"], timeout=15)
    assert e["faults"] == ["meter_timeout"] and e["connector_status"] == "Faulted"
    sim.cmd("clear_error", evse=1, error="meter_timeout")
    evse(sim, lambda e: e["contactor"] and not e["faults"], timeout=10)


def test_button_stop_goes_x1_and_opens_when_the_ev_follows(csms, sims):
    sim = sims(csms.url, config=CONFIG)
    charging(sim)
    assert sim.cmd("button", evse=1) == {"ok": True}
    e = evse(sim, lambda e: e["pwm_duty"] == 100.0)
    assert e["contactor"]  # x1 first, under load; the EV leaves C within its 1 s delay
    evse(sim, lambda e: not e["contactor"] and e["cp"] == "B", timeout=5)


def test_bad_commands_change_nothing(csms, sims):
    sim = sims(csms.url, config=CONFIG)
    assert sim.cmd("plug_in", evse=2)["ok"] is False
    assert sim.cmd("plug_in", evse=1, cable_a=40)["ok"] is False
    assert sim.cmd("ev_state", evse=1, state="X")["ok"] is False
    assert sim.cmd("ev_current", evse=1, a=-1)["ok"] is False
    assert sim.cmd("raise_error", evse=1, error="fire")["ok"] is False
    assert sim.cmd("swipe")["ok"] is False
    assert evse(sim, lambda e: True)["cp"] == "A"
