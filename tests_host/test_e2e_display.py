"""End to end: what the virtual wallbox's display shows (`status` "display") through a
session, offline, faulted and reserved, on the MicroPython unix port."""

import pytest
from test_e2e_availability import accepted
from test_e2e_transactions import reconnected

from tools.harness import FAST, variables

pytestmark = pytest.mark.e2e

READY = ["Ready", "Plug in or", "present a card"]


def shows(sim, lines, timeout=10):
    return sim.wait_status(lambda s: s["display"] == lines, timeout)


def ok(sim, name, **kw):
    assert sim.cmd(name, **kw) == {"ok": True}


def test_the_display_through_a_session_offline_faulted_and_reserved(csms, sims):
    sim = sims(csms.url, config={"variables": variables(FAST)})
    st, _ = accepted(csms, sim)
    shows(sim, READY)
    ok(sim, "plug_in", evse=1)
    shows(sim, ["Car connected", "Present a card"])
    ok(sim, "swipe", token="AABBCCDD")
    ok(sim, "ev_state", evse=1, state="C")
    s = sim.wait_status(lambda s: s["display"][:1] == ["Charging"] and s["evse"][0]["power_w"])
    assert s["display"][1].endswith(" kW") and s["display"][2].endswith(" kWh")
    ok(sim, "swipe", token="AABBCCDD")
    s = sim.wait_status(lambda s: s["display"][:1] == ["Finished"])
    assert s["display"][2] == "Unplug the car"
    ok(sim, "plug_out", evse=1)
    shows(sim, READY)
    ok(sim, "ws_disconnect")
    shows(sim, READY + ["Offline"])
    ok(sim, "ws_connect")
    shows(sim, READY, timeout=20)
    st = reconnected(csms, st)
    req = {
        "id": 1,
        "expiryDateTime": "2099-01-01T00:00:00Z",
        "idToken": {"idToken": "X", "type": "Central"},
        "evseId": 1,
    }
    assert csms.call(st, "ReserveNow", req) == {"status": "Accepted"}
    shows(sim, ["Reserved"])
    ok(sim, "raise_error", evse=1, error="rcd_trip")  # it latches until an unplug
    shows(sim, ["Fault", "RCD tripped"])
