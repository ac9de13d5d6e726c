"""Tariff and cost (block I): firmware/blocks/tariff_cost.py with the real transactions block
(the fakes of test_transactions.py), loaded the way the station loads it (on the first
answer that brings a tariff or a cost, or a set fallback message), and the lines it gives
the display model."""

from types import SimpleNamespace

import pytest
from test_transactions import (  # noqa: F401 (make and tm: its fixtures, used here too)
    accepted,
    card,
    make,
    run,
    settle,
    tm,
)

from firmware.blocks.tariff_cost import TariffCost, money
from ocpp_oracle import valid


@pytest.mark.parametrize(
    "text, shown",
    [
        ("12.345", "12.35"),
        ("12.344999", "12.34"),
        ("12.3", "12.30"),
        ("0", "0.00"),
        ("0.005", "0.01"),
        ("-0.004", "0.00"),
        ("-0.5e1", "-5.00"),
        ("1E2", "100.00"),
        ("12345678.905", "12345678.91"),
        ("1e99", None),
        ("1e-99", None),
        ("abc", None),
        ("1.2.3", None),
    ],
)
def test_money_rounds_the_json_text_with_integers(text, shown):
    assert money(text) == shown


@pytest.fixture
def station(make):  # noqa: F811
    def build(**kw):
        st = make(**kw)
        st.session.decimal = None
        st.display = SimpleNamespace(cost=None)

        def load(entry):
            TariffCost(st.router, st.session, st.dm, st.txs, st.display)

        st.router.load = load
        st.router.later((("CostUpdated",),))
        return st

    return build


def cost_updated(st, req):
    """A CostUpdated CALL, its block loaded first if need be (as the router does)."""
    handler, _ = st.router.entry("CostUpdated")
    out = handler(valid("CostUpdatedRequest", req))
    run(st)
    return valid("CostUpdatedResponse", out)


def lines(st, state, n=1):
    return st.display.cost.lines(n, state, 16, 8)


def reply(st, response=None):
    """The CSMS answers the oldest queued TransactionEvent with `response`."""
    return st.queue.answer(response)


def test_not_loaded_without_a_tariff_or_a_fallback(station):
    st = station()
    st.evses[0].plug()
    card(st, "AABBCCDD")
    assert st.txs.tariff is None and st.display.cost is None


def test_the_tariff_on_the_card_the_running_cost_and_the_total(station, tm):  # noqa: F811
    st = station()
    e = st.evses[0]
    e.plug()
    tariff = {"format": "UTF8", "content": "0.30 EUR/kWh, 1 EUR/h after 4 h"}
    card(st, "AABBCCDD", accepted(personalMessage=tariff))
    assert lines(st, "Charging") == ["0.30 EUR/kWh, 1", "EUR/h after 4 h"]
    reply(st)  # the Started's answer brings nothing new
    e.offer(16)
    e.draw()
    st.session.decimal = "1.225"  # as the frame said: a float would show 1.22
    reply(st, {"totalCost": 1.225})
    assert lines(st, "Charging")[-1] == "Cost 1.23 EUR"
    st.dm.set("TariffCostCtrlr/Currency", "CHF")
    st.session.decimal = None  # no text kept: the float, formatted
    reply(st, {"totalCost": 2.5, "updatedPersonalMessage": {"format": "ASCII", "content": "Hi"}})
    assert lines(st, "Charging") == ["Hi", "Cost 2.50 CHF"]
    card(st, "AABBCCDD")  # its own card stops it
    e.cut()
    settle(st, tm)
    while st.queue.live[0][1]["eventType"] != "Ended":
        reply(st)
    assert lines(st, "Finished") == []  # no final cost yet, no fallback set
    st.dm.set("TariffCostCtrlr/TotalCostFallbackMessage", "Cost: see the app")
    assert lines(st, "Finished") == ["Cost: see the", "app"]
    st.session.decimal = "4.5"
    reply(st, {"totalCost": 4.5})
    assert lines(st, "Finished") == ["Total 4.50 CHF"]
    assert lines(st, "Available") == []  # unplugged: the session is forgotten
    assert st.display.cost.evse[0] == [None, None, None, False]


def test_the_fallback_tariff_loads_the_block_at_the_authorization(station):
    st = station()
    st.dm.set("TariffCostCtrlr/TariffFallbackMessage", "Ask the operator")
    st.evses[0].plug()
    card(st, "AABBCCDD")
    assert lines(st, "Authorized") == ["Ask the operator"]
    st.dm.set("TariffCostCtrlr/Enabled:Tariff", "false")
    card(st, "AABBCCDD")  # stop
    card(st, "AABBCCDD")  # a new session
    assert lines(st, "Authorized") == []


def test_cost_updated_for_a_running_transaction_only(station):
    st = station()
    st.evses[0].plug()
    card(st, "AABBCCDD")
    tx = st.txs.bays[0].tx_id
    assert cost_updated(st, {"totalCost": 9, "transactionId": "other"}) == {}
    assert st.display.cost is not None and lines(st, "Charging") == []
    assert cost_updated(st, {"totalCost": 9, "transactionId": tx}) == {}
    assert lines(st, "Charging") == ["Cost 9.00 EUR"]
    st.dm.set("TariffCostCtrlr/Enabled:Cost", "false")
    assert cost_updated(st, {"totalCost": 10, "transactionId": tx}) == {}
    assert lines(st, "Charging") == ["Cost 9.00 EUR"]


def test_a_total_for_a_transaction_nobody_knows_is_ignored(station):
    st = station()
    st.evses[0].plug()
    card(st, "AABBCCDD", accepted(personalMessage={"format": "ASCII", "content": "T"}))
    cost = st.display.cost
    ended = {"eventType": "Ended", "transactionInfo": {"transactionId": "zz"}}
    cost.reply(ended, {"totalCost": 1})
    assert lines(st, "Charging") == ["T"]


def test_a_session_authorized_ahead_of_the_plug_gets_its_total_after_its_end(station, tm):  # noqa: F811
    st = station()
    e = st.evses[0]
    card(st, "AABBCCDD", accepted(personalMessage={"format": "ASCII", "content": "T"}))
    assert st.txs.bays[0].tx is None and lines(st, "Authorized") == ["T"]
    e.plug()  # the transaction begins now
    assert lines(st, "Paused") == ["T"]  # the display looks each second: it is noted
    card(st, "AABBCCDD")
    settle(st, tm)
    assert st.txs.bays[0].tx is None
    while st.queue.live:
        p = st.queue.live[0][1]
        reply(st, {"totalCost": 3} if p["eventType"] == "Ended" else {})
    assert lines(st, "Finished") == ["Total 3.00 EUR"]
