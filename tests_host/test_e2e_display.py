"""End to end: what the virtual wallbox's display shows (`status` "display") through a
session, offline, faulted and reserved, on the MicroPython unix port."""

from decimal import Decimal

import pytest
from test_e2e_availability import accepted
from test_e2e_transactions import reconnected

from tools.harness import FAST, CsmsThread, variables

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


def total_shown(s):
    """The Finished screen with a total from the CSMS (not the fallback)."""
    d = s["display"]
    return d[:1] == ["Finished"] and d[3:4] != ["Total: see app"] and d[3:4] != []


def test_a_priced_session_online_then_offline_with_the_fallbacks(sims):
    # 30 EUR/kWh: the sim's 11 kW make cents in a second.
    csms = CsmsThread(tariff=Decimal("30"))
    try:
        values = dict(FAST)
        values[("SampledDataCtrlr", "TxUpdatedInterval")] = "1"
        values[("TariffCostCtrlr", "TariffFallbackMessage")] = "Tariff: see app"
        values[("TariffCostCtrlr", "TotalCostFallbackMessage")] = "Total: see app"
        sim = sims(csms.url, config={"variables": variables(values)})
        st, _ = accepted(csms, sim)
        ok(sim, "plug_in", evse=1)
        ok(sim, "ev_state", evse=1, state="C")
        ok(sim, "swipe", token="AABBCCDD")
        s = sim.wait_status(lambda s: any(x.startswith("Cost ") for x in s["display"]))
        assert s["display"][:1] == ["Charging"] and "30.00 EUR/kWh" in s["display"]
        sim.wait_status(
            lambda s: (
                [x for x in s["display"] if x.startswith("Cost ")] not in (["Cost 0.00 EUR"], [])
            )
        )
        tx = s["evse"][0]["tx_id"]
        ok(sim, "swipe", token="AABBCCDD")
        s = sim.wait_status(total_shown)
        total = csms.csms.tariff.cost(tx)
        assert total > 0
        assert s["display"][2:] == ["Unplug the car", "Total %s EUR" % total]
        ok(sim, "plug_out", evse=1)
        shows(sim, READY)
        # Offline: the cached card charges, the fallbacks show, the total comes once back.
        ok(sim, "ws_disconnect")
        ok(sim, "plug_in", evse=1)
        ok(sim, "ev_state", evse=1, state="C")
        ok(sim, "swipe", token="AABBCCDD")
        s = sim.wait_status(lambda s: s["display"][:1] == ["Charging"])
        assert s["display"][3:] == ["Tariff: see app", "Offline"]
        tx = s["evse"][0]["tx_id"]
        ok(sim, "swipe", token="AABBCCDD")
        s = sim.wait_status(lambda s: s["display"][:1] == ["Finished"])
        assert s["display"][2:] == ["Unplug the car", "Total: see app", "Offline"]
        ok(sim, "ws_connect")
        s = sim.wait_status(total_shown)
        assert s["display"][2:] == ["Unplug the car", "Total %s EUR" % csms.csms.tariff.cost(tx)]
    finally:
        csms.stop()
