"""Transactions (block E), RequestStart/StopTransaction and GetTransactionStatus (F), meter
values in transactions and clock-aligned (J): firmware/blocks/transactions.py and
firmware/bay.py under CPython.

The EVSEs are fakes whose state a test sets; each change calls the on_change callbacks, as the
safety loop does at the end of its tick. The queue is a fake that records every post and answers
when told; authorization, device model and store are the real ones on tmp_path. Every
TransactionEvent is validated against the official OCPP 2.0.1 schema when posted, and compared
in a short form (see `short`). Time is fake: the wall clock and time.ticks_ms move only when a
test moves them, and the timers run by calling Transactions._tick.
"""

import asyncio
import json
import time
from types import SimpleNamespace

import pytest

import ocppj
import rfc3339
from clock import Clock
from firmware import bay as baymod
from firmware.auth_cache import token_key
from firmware.blocks import transactions as txmod
from firmware.blocks.authorization import Authorization
from firmware.blocks.transactions import Transactions
from firmware.device_model import DeviceModel
from firmware.queue import MessageQueue
from firmware.variables import declarations
from meter import Reading
from ocpp_oracle import valid
from store import Store

NOW = 1795285000  # 2026-11-21T18:16:40Z, 100 s past a quarter hour
TE = "TransactionEvent"
ENERGY = "Energy.Active.Import.Register"
QUIET = {  # no periodic or clock-aligned values unless a test asks for them
    "SampledDataCtrlr/TxUpdatedInterval": "0",
    "SampledDataCtrlr/TxEndedInterval": "0",
    "AlignedDataCtrlr/Interval": "0",
    "AlignedDataCtrlr/TxEndedInterval": "0",
}
START = "TxCtrlr/TxStartPoint"
STOP = "TxCtrlr/TxStopPoint"


# -- fakes -----------------------------------------------------------------------------------


class Time:
    """The board's wall clock (seconds) and tick counter (ms); both move only in `advance`."""

    def __init__(self):
        self.t = NOW
        self.ms = 7_000_000

    def __call__(self):
        return self.t

    def ticks(self):
        return self.ms

    def advance(self, s=0, ms=0):
        self.t += s
        self.ms += s * 1000 + ms


class FakeEvse:
    """What the transactions block reads of an EVSE; `set` changes it and calls on_change."""

    def __init__(self, n, tm, wh=1000.0):
        self.id = n
        self.tm = tm
        self.cp = "A"
        self.offered_a = 0
        self.faults = set()
        self.available = True
        self.permitted = False
        self.closed = False  # the contactor
        self.limited = False  # smart charging's limit is below 6 A
        self.reading = None
        self.reading_ms = None
        self.on_change = []
        self.touched = 0
        if wh is not None:
            self.read(wh)

    @property
    def plugged(self):
        return self.cp in "BCD"

    @property
    def ev_requesting(self):
        return self.cp in "CD"

    @property
    def energy_flowing(self):
        return self.closed

    def permit(self, on):
        self.permitted = bool(on)

    def touch(self):
        self.touched += 1

    def read(self, wh, w=0.0):
        """A new meter reading, taken now."""
        self.reading = Reading(wh, w)
        self.reading_ms = self.tm.ms

    def set(self, **kw):
        for k, v in kw.items():
            setattr(self, k, v)
        for fn in list(self.on_change):
            fn(self)

    # What an EV and the safety loop do, one safety-loop tick each.
    def plug(self):
        self.set(cp="B")

    def unplug(self):
        self.set(cp="A", offered_a=0, closed=False)

    def offer(self, amps=16):
        self.set(offered_a=amps)

    def draw(self):
        """The EV asks for energy (B -> C) and the contactor closes."""
        self.set(cp="C", closed=True)

    def suspend(self):
        """The EV stops asking (C -> B): the contactor opens."""
        self.set(cp="B", closed=False)

    def cut(self):
        """The EVSE withdrew its offer (x1), the EV went to B, the contactor opened."""
        self.set(offered_a=0, cp="B", closed=False)


class FakeQueue:
    """The MessageQueue API the block uses. `posted`: every (action, payload, tx_id) posted,
    validated; `live`: the unanswered ones, oldest first; `answer` replies to the oldest."""

    def __init__(self, queued=()):
        self.posted = []
        self.live = list(queued)
        self.on_reply = {}

    def post(self, action, payload, tx_id=None, kind=None):
        wire = valid(action + "Request", payload)
        if action == TE:
            assert kind == payload["eventType"]
            assert tx_id == payload["transactionInfo"]["transactionId"]
        else:
            assert tx_id is None and kind is None
        self.posted.append((action, wire, tx_id))
        self.live.append((action, wire, tx_id))
        return True

    def pending(self, tx_id=None, action=None):
        return sum(
            1
            for a, _, t in self.live
            if (tx_id is None or t == tx_id) and (action is None or a == action)
        )

    def messages(self):
        yield from list(self.live)

    def answer(self, response=None):
        action, payload, _ = self.live.pop(0)
        response = valid(action + "Response", response or {})
        fn = self.on_reply.get(action)
        if fn is not None:
            fn(payload, response)
        return payload


class FakeSession:
    """Answers Authorize with the next of `answers` (default Accepted), anything else with {}."""

    def __init__(self):
        self.sent = []
        self.answers = []
        self.timeout_s = 30

    async def call(self, action, payload):
        self.sent.append((action, valid(action + "Request", payload)))
        if action == "Authorize":
            a = self.answers.pop(0) if self.answers else accepted()
        else:
            a = {}
        return valid(action + "Response", a)


def accepted(group=None, status="Accepted", **kw):
    info = {"status": status}
    if group is not None:
        info["groupIdToken"] = {"idToken": group, "type": "Local"}
    info.update(kw)
    return {"idTokenInfo": info}


def hw():
    return SimpleNamespace(phases=3, max_a=32, cable_a=None, phase_switch=None)


@pytest.fixture
def tm(monkeypatch):
    t = Time()
    monkeypatch.setattr(time, "ticks_ms", t.ticks)
    return t


@pytest.fixture
def make(tmp_path, tm):
    def build(
        n=1,
        values=None,
        online=True,
        registration="Accepted",
        boot_reason="PowerUp",
        queue=None,
        evses=None,
    ):
        store = Store(str(tmp_path))
        dm = DeviceModel(store, declarations([hw() for _ in range(n)]))
        for k, v in dict(QUIET, **(values or {})).items():
            dm.set(k, v)
        ids = iter(range(1, 1000))
        st = SimpleNamespace(
            store=store,
            dm=dm,
            clock=Clock(tm),
            router=ocppj.Router(),
            session=FakeSession(),
            connection=SimpleNamespace(ready=asyncio.Event(), registration=registration),
            board=SimpleNamespace(urandom=lambda k: next(ids).to_bytes(k, "big")),
            boot_reason=boot_reason,
            evses=evses or [FakeEvse(i, tm) for i in range(1, n + 1)],
            queue=queue if queue is not None else FakeQueue(),
            spawned=[],
            seen=0,
        )
        st.spawn = st.spawned.append
        if online:
            st.connection.ready.set()
        st.authorization = Authorization(
            st.router, st.session, st.connection, dm, store, st.clock, lambda: None
        )
        st.txs = st.transactions = Transactions(
            st.router,
            st.session,
            st.connection,
            st.queue,
            dm,
            store,
            st.clock,
            st.evses,
            st.authorization,
            st.spawn,
            st.board.urandom,
            boot_reason,
        )
        stop_loop(st, "_timers")  # the tests call _tick themselves
        return st

    return build


def stop_loop(st, name):
    """Close the endless loop `name` a block spawned: the tests run its steps themselves."""
    (loop,) = [c for c in st.spawned if c.__name__ == name]
    st.spawned.remove(loop)
    loop.close()


def run(st):
    """Run what the block spawned, in order, each to its end."""
    while st.spawned:
        asyncio.run(st.spawned.pop(0))


def settle(st, tm):
    """A moment later: every meter has a fresh reading (same energy) and the timers run."""
    tm.advance(ms=100)
    for e in st.evses:
        if e.reading is not None:
            e.read(e.reading.energy_wh, e.reading.power_w)
    st.txs._tick()


def short(p):
    """(eventType, triggerReason, seqNo, {the optional fields that are present})."""
    info = p["transactionInfo"]
    extra = {}
    if "chargingState" in info:
        extra["state"] = info["chargingState"]
    if "stoppedReason" in info:
        extra["reason"] = info["stoppedReason"]
    if "remoteStartId" in info:
        extra["remote"] = info["remoteStartId"]
    if "idToken" in p:
        extra["token"] = p["idToken"]["idToken"]
    if "evse" in p:
        assert p["evse"]["connectorId"] == 1
        extra["evse"] = p["evse"]["id"]
    return (p["eventType"], p["triggerReason"], p["seqNo"], extra)


def events(st):
    return [p for a, p, _ in st.queue.posted if a == TE]


def new(st):
    """The TransactionEvents posted since the last call, in short form."""
    evs = events(st)
    out = [short(p) for p in evs[st.seen :]]
    st.seen = len(evs)
    return out


def card(st, token="AABBCCDD", *answers, kind="ISO14443"):
    st.session.answers.extend(answers)
    st.txs.card(token, kind)
    run(st)


def authorizes(st):
    return [p["idToken"]["idToken"] for a, p in st.session.sent if a == "Authorize"]


def request(st, action, req):
    """An incoming CALL: the handler's response, then its after-hook and what it spawned."""
    handler, after = st.router.handlers[action]
    req = valid(action + "Request", req)
    resp = valid(action + "Response", handler(req))
    if after is not None:
        after(req, resp)
    run(st)
    return resp


def remote_start(st, evse_id=1, rid=7, token="R1", kind="Central"):
    req = {"idToken": {"idToken": token, "type": kind}, "remoteStartId": rid}
    if evse_id is not None:
        req["evseId"] = evse_id
    return request(st, "RequestStartTransaction", req)


def values(p):
    """[(measurand, value, context)] of a payload's meterValue entries, in order."""
    out = []
    for mv in p.get("meterValue", ()):
        for sv in mv["sampledValue"]:
            out.append((sv["measurand"], sv["value"], sv["context"]))
    return out


def iso(t):
    return rfc3339.format(t)


def started(st, tm, token="AABBCCDD"):
    """EVSE 1: plugged in, authorized by `token`, charging; the events read."""
    ev = st.evses[0]
    ev.plug()
    card(st, token)
    ev.offer()
    ev.draw()
    evs = new(st)
    assert evs[0][:2] == ("Started", "Authorized")
    return ev


# -- start points ------------------------------------------------------------------------------


def test_power_path_closed_starts_at_plug_and_card_and_the_same_card_stops(make, tm, tmp_path):
    st = make()
    ev = st.evses[0]
    bay = st.txs.bays[0]
    ev.plug()
    assert new(st) == [] and not ev.permitted
    card(st, "AABBCCDD")
    assert authorizes(st) == ["AABBCCDD"]
    assert ev.permitted
    assert new(st) == [
        ("Started", "Authorized", 0, {"state": "EVConnected", "token": "AABBCCDD", "evse": 1})
    ]
    tx_id = bay.tx_id
    assert st.txs.busy(ev) and st.txs.authorized(ev) and st.txs.tx_id(ev) == tx_id
    assert st.store.load("tx1")["seq"] == 1
    ev.offer()
    ev.draw()
    assert new(st) == [
        ("Updated", "ChargingStateChanged", 1, {"state": "SuspendedEV"}),
        ("Updated", "ChargingStateChanged", 2, {"state": "Charging"}),
    ]
    ev.read(1500.0)
    card(st, "aabbccdd")  # the same card (tokens are case-insensitive): no Authorize
    assert authorizes(st) == ["AABBCCDD"]
    assert not ev.permitted
    assert new(st) == []  # Ended waits for the contactor
    ev.cut()
    settle(st, tm)
    assert new(st) == [
        (
            "Ended",
            "StopAuthorized",
            3,
            {"state": "EVConnected", "reason": "Local", "token": "aabbccdd"},
        )
    ]
    evs = events(st)
    assert {p["transactionInfo"]["transactionId"] for p in evs} == {tx_id}
    assert values(evs[0]) == [(ENERGY, 1000.0, "Transaction.Begin")]
    assert values(evs[-1]) == [
        (ENERGY, 1000.0, "Transaction.Begin"),
        (ENERGY, 1500.0, "Transaction.End"),
    ]
    assert bay.tx is None and bay.token is None and not st.txs.busy(ev)
    assert st.store.load("tx1") is None
    assert not (tmp_path / "tx1.mv").exists()
    assert ev.touched >= 1  # the availability listeners look again
    ev.unplug()
    settle(st, tm)
    assert new(st) == []


def test_ev_connected_start_point_starts_at_plug_in(make, tm):
    st = make(values={START: "EVConnected"})
    ev = st.evses[0]
    ev.plug()
    assert new(st) == [("Started", "CablePluggedIn", 0, {"state": "EVConnected", "evse": 1})]
    assert not ev.permitted
    card(st)
    assert ev.permitted
    assert new(st) == [("Updated", "Authorized", 1, {"token": "AABBCCDD"})]
    ev.unplug()
    settle(st, tm)
    assert new(st) == [
        ("Ended", "EVCommunicationLost", 2, {"state": "Idle", "reason": "EVDisconnected"})
    ]
    assert not ev.permitted and st.txs.bays[0].token is None


def test_authorized_start_point_token_before_plug(make, tm):
    st = make(values={START: "Authorized"})
    ev = st.evses[0]
    card(st)
    assert new(st) == [
        ("Started", "Authorized", 0, {"state": "Idle", "token": "AABBCCDD", "evse": 1})
    ]
    ev.plug()
    assert new(st) == [("Updated", "CablePluggedIn", 1, {"state": "EVConnected", "evse": 1})]
    card(st)
    assert new(st) == [("Ended", "StopAuthorized", 2, {"reason": "Local", "token": "AABBCCDD"})]


def test_energy_transfer_start_point_starts_when_energy_flows(make, tm):
    st = make(values={START: "EnergyTransfer"})
    ev = st.evses[0]
    ev.plug()
    card(st)
    ev.offer()
    assert new(st) == [] and ev.permitted
    ev.draw()
    assert new(st) == [
        (
            "Started",
            "ChargingStateChanged",
            0,
            {"state": "Charging", "token": "AABBCCDD", "evse": 1},
        )
    ]
    ev.suspend()  # the stop points are EVConnected,Authorized: the transaction goes on
    settle(st, tm)
    assert new(st) == [("Updated", "ChargingStateChanged", 1, {"state": "SuspendedEV"})]


# -- stop points -------------------------------------------------------------------------------


def test_stop_point_ev_connected_local_stop_ends_at_unplug_with_reason_local(make, tm):
    st = make(values={STOP: "EVConnected"})
    ev = started(st, tm)
    card(st)
    assert not ev.permitted
    assert new(st) == [("Updated", "StopAuthorized", 3, {"token": "AABBCCDD"})]
    ev.cut()
    settle(st, tm)
    assert new(st) == [("Updated", "ChargingStateChanged", 4, {"state": "EVConnected"})]
    ev.unplug()
    settle(st, tm)
    assert new(st) == [("Ended", "EVCommunicationLost", 5, {"state": "Idle", "reason": "Local"})]


def test_stop_point_ev_connected_remote_stop_ends_at_unplug_with_reason_remote(make, tm):
    st = make(values={STOP: "EVConnected"})
    ev = started(st, tm)
    tx_id = st.txs.bays[0].tx_id
    assert request(st, "RequestStopTransaction", {"transactionId": tx_id}) == {
        "status": "Accepted"
    }
    assert not ev.permitted
    assert new(st) == [("Updated", "RemoteStop", 3, {})]
    ev.unplug()
    settle(st, tm)
    assert new(st) == [("Ended", "EVCommunicationLost", 4, {"state": "Idle", "reason": "Remote"})]


@pytest.mark.parametrize(
    "cp, reason, extra", [("B", "StoppedByEV", {"state": "SuspendedEV"}), ("C", "Other", {})]
)
def test_stop_point_energy_transfer_ends_when_the_contactor_opens(make, tm, cp, reason, extra):
    st = make(values={STOP: "EnergyTransfer"})
    ev = started(st, tm)
    ev.set(cp=cp, closed=False)
    settle(st, tm)
    assert new(st) == [("Ended", "ChargingStateChanged", 3, dict(extra, reason=reason))]
    assert st.txs.bays[0].tx is None


def test_stop_point_energy_transfer_local_stop_keeps_the_first_reason(make, tm):
    st = make(values={STOP: "EnergyTransfer"})
    ev = started(st, tm)
    card(st)
    assert new(st) == [("Updated", "StopAuthorized", 3, {"token": "AABBCCDD"})]
    ev.cut()
    settle(st, tm)
    assert new(st) == [
        ("Ended", "ChargingStateChanged", 4, {"state": "EVConnected", "reason": "Local"})
    ]


def test_unplug_during_a_transaction_ends_it(make, tm):
    st = make()
    ev = started(st, tm)
    ev.unplug()
    settle(st, tm)
    assert new(st) == [
        ("Ended", "EVCommunicationLost", 3, {"state": "Idle", "reason": "EVDisconnected"})
    ]
    assert not ev.permitted and st.txs.bays[0].token is None


# -- Ended waits for the energy to be cut ------------------------------------------------------


def test_remote_stop_while_charging_ends_once_the_contactor_opened(make, tm):
    st = make()
    ev = started(st, tm)
    tx_id = st.txs.bays[0].tx_id
    assert request(st, "RequestStopTransaction", {"transactionId": tx_id}) == {
        "status": "Accepted"
    }
    assert not ev.permitted and new(st) == []
    tm.advance(7)
    st.txs._tick()
    assert new(st) == []  # still waiting
    assert st.txs.busy(ev)
    ev.read(1800.0)
    ev.cut()
    settle(st, tm)
    assert new(st) == [("Ended", "RemoteStop", 3, {"state": "EVConnected", "reason": "Remote"})]
    assert values(events(st)[-1])[-1] == (ENERGY, 1800.0, "Transaction.End")


def test_a_stop_ends_anyway_when_the_contactor_stays_closed(make, tm):
    st = make()
    ev = started(st, tm)
    card(st)
    tm.advance(ms=7999)
    st.txs._tick()
    assert new(st) == []
    tm.advance(ms=1)
    st.txs._tick()
    assert new(st) == [("Ended", "StopAuthorized", 3, {"reason": "Local", "token": "AABBCCDD"})]
    assert ev.energy_flowing and not ev.permitted
    assert st.txs.bays[0].tx is None


def test_stop_all_cuts_the_energy_and_ends_with_a_reading_taken_after_the_cut(make, tm):
    st = make()
    ev = started(st, tm)
    st.txs.stop_all("ResetCommand", "ImmediateReset")
    assert not ev.permitted and st.txs.bays[0].token is None
    assert new(st) == []  # the energy still flows: Ended waits for the cut
    ev.read(1400.0)  # a reading while it flows is not the end value
    st.txs.stop_all("ResetCommand", "ImmediateReset")  # a second reset changes nothing
    ev.cut()
    tm.advance(1)
    st.txs._tick()
    assert new(st) == []
    ev.read(1450.0)
    st.txs._tick()
    assert new(st) == [
        ("Ended", "ResetCommand", 3, {"state": "EVConnected", "reason": "ImmediateReset"})
    ]
    assert values(events(st)[-1])[-1] == (ENERGY, 1450.0, "Transaction.End")
    assert not st.txs.busy(ev)


def test_nothing_starts_after_stop_all(make, tm):
    st = make()
    ev = st.evses[0]
    st.txs.stop_all("ResetCommand", "ImmediateReset")
    ev.plug()
    card(st)
    assert new(st) == [] and not ev.permitted
    assert request(
        st,
        "RequestStartTransaction",
        {"idToken": {"idToken": "AABBCCDD", "type": "ISO14443"}, "remoteStartId": 1},
    ) == {"status": "Rejected"}


def test_ended_returns_once_every_transaction_ended(make, tm, monkeypatch):
    st = make()
    ev = started(st, tm)
    st.txs.stop_all("ResetCommand", "ImmediateReset")
    naps = []

    async def nap(ms):
        naps.append(ms)
        if len(naps) == 3:  # the cut and a reading after it, while ended() waits
            ev.cut()
            tm.advance(1)
            ev.read(1500.0)
            st.txs._tick()

    monkeypatch.setattr(asyncio, "sleep_ms", nap)
    asyncio.run(st.txs.ended(12000))
    assert len(naps) == 3 and not st.txs.busy(ev)
    assert [e[:2] for e in new(st)] == [("Ended", "ResetCommand")]
    naps.clear()
    ev.plug()  # still nothing open: ended() returns at once
    asyncio.run(st.txs.ended(12000))
    assert naps == []


def test_ended_gives_up_after_its_limit(make, tm, monkeypatch):
    st = make()
    ev = started(st, tm)
    st.txs.stop_all("ResetCommand", "ImmediateReset")
    naps = []

    async def nap(ms):
        naps.append(ms)

    monkeypatch.setattr(asyncio, "sleep_ms", nap)
    asyncio.run(st.txs.ended(1000))
    assert sum(naps) == 1000 and st.txs.busy(ev)


def test_ended_waits_for_a_meter_reading_taken_after_the_contactor_opened(make, tm):
    st = make()
    ev = started(st, tm)
    card(st)  # stop: energy off
    ev.read(1400.0)  # read while the energy still flowed
    tm.advance(ms=400)
    t_cut = tm.t
    ev.cut()
    tm.advance(1)
    st.txs._tick()
    assert new(st) == [] and st.txs.busy(ev)
    ev.unplug()  # what the EVSE does meanwhile changes nothing
    tm.advance(1)
    ev.read(1450.0)
    st.txs._tick()
    assert new(st) == [
        ("Ended", "StopAuthorized", 3, {"state": "Idle", "reason": "Local", "token": "AABBCCDD"})
    ]
    ended = events(st)[-1]
    assert ended["timestamp"] == iso(t_cut)
    assert ended["meterValue"][-1]["timestamp"] == iso(tm.t)
    assert values(ended)[-1] == (ENERGY, 1450.0, "Transaction.End")
    assert not st.txs.busy(ev) and not ev.permitted


def test_ended_without_a_fresh_reading_goes_after_the_read_wait(make, tm):
    st = make(values={STOP: "EnergyTransfer"})
    ev = started(st, tm)
    ev.suspend()
    tm.advance(ms=2999)
    st.txs._tick()
    assert new(st) == []
    tm.advance(ms=1)
    st.txs._tick()
    assert new(st) == [
        ("Ended", "ChargingStateChanged", 3, {"state": "SuspendedEV", "reason": "StoppedByEV"})
    ]
    assert values(events(st)[-1])[-1] == (ENERGY, 1000.0, "Transaction.End")  # the last one


def test_a_transaction_without_energy_ends_without_waiting_for_the_meter(make, tm):
    st = make()
    ev = st.evses[0]
    ev.plug()
    card(st)
    ev.offer()
    ev.unplug()
    assert new(st)[-1][:2] == ("Ended", "EVCommunicationLost")


def test_stop_all_while_ended_waits_for_the_meter_keeps_waiting(make, tm):
    st = make(values={STOP: "EnergyTransfer"})
    ev = started(st, tm)
    ev.set(cp="C", closed=False)  # the EVSE opened: Ended waits for a reading
    assert new(st) == []
    st.txs.stop_all("ResetCommand", "ImmediateReset")
    assert new(st) == [] and st.txs.busy(ev)
    tm.advance(ms=100)
    ev.read(1300.0)
    st.txs._tick()
    assert [e[:2] for e in new(st)] == [("Ended", "ChargingStateChanged")]
    assert values(events(st)[-1])[-1] == (ENERGY, 1300.0, "Transaction.End")
    assert not st.txs.busy(ev)


# -- stopping by token: same token, group, master pass -----------------------------------------


def test_group_member_stops_with_its_own_id_token(make, tm):
    st = make()
    ev = st.evses[0]
    ev.plug()
    card(st, "AAAA", accepted("G1"))
    assert new(st)[0][:2] == ("Started", "Authorized")
    card(st, "BBBB", accepted("g1"))  # group ids compare case-insensitively
    assert authorizes(st) == ["AAAA", "BBBB"]
    assert new(st) == [("Ended", "StopAuthorized", 1, {"reason": "Local", "token": "BBBB"})]
    assert not ev.permitted


def test_a_token_of_another_group_or_without_one_cannot_stop(make, tm):
    st = make()
    ev = st.evses[0]
    ev.plug()
    card(st, "AAAA", accepted("G1"))
    new(st)
    card(st, "BBBB", accepted("G2"))
    card(st, "CCCC", accepted())
    assert new(st) == []
    assert ev.permitted and token_key(st.txs.bays[0].token) == "ISO14443:aaaa"
    card(st, "DDDD", accepted("G1", status="Blocked"))  # refused: no stop either
    assert new(st) == [] and ev.permitted


def test_master_pass_stops_every_session_and_never_starts_one(make, tm):
    st = make(n=2, values={"AuthCtrlr/MasterPassGroupId": "MASTER"})
    e1, e2 = st.evses
    e1.plug()
    e2.plug()
    card(st, "MMMM", accepted("master"))
    assert new(st) == [] and not e1.permitted and not e2.permitted
    card(st, "AAAA")
    card(st, "BBBB")
    assert [e[:2] + (e[3].get("evse"),) for e in new(st)] == [
        ("Started", "Authorized", 1),
        ("Started", "Authorized", 2),
    ]
    card(st, "MMMM", accepted("MASTER"))
    assert new(st) == [
        ("Ended", "StopAuthorized", 1, {"reason": "MasterPass", "token": "MMMM"}),
        ("Ended", "StopAuthorized", 1, {"reason": "MasterPass", "token": "MMMM"}),
    ]
    assert [p["transactionInfo"]["transactionId"] for p in events(st)[2:]] == [
        p["transactionInfo"]["transactionId"] for p in events(st)[:2]
    ]
    assert not e1.permitted and not e2.permitted


def test_one_card_at_a_time(make, tm):
    st = make()
    st.evses[0].plug()
    st.txs.card("AAAA")
    st.txs.card("BBBB")  # still deciding the first: ignored
    assert len(st.spawned) == 1
    run(st)
    assert authorizes(st) == ["AAAA"]
    assert new(st)[0][3]["token"] == "AAAA"
    st.txs.card("AAAA")  # decided: the next card is taken
    run(st)
    assert new(st) == [("Ended", "StopAuthorized", 1, {"reason": "Local", "token": "AAAA"})]


def test_refused_card_starts_nothing_and_sends_no_transaction_event(make, tm):
    st = make()
    ev = st.evses[0]
    ev.plug()
    card(st, "AAAA", accepted(status="Invalid"))
    assert new(st) == [] and not ev.permitted and st.txs.bays[0].token is None
    card(st, "BBBB", accepted(evseId=[2]))  # Accepted, but for another EVSE
    assert new(st) == [] and not ev.permitted


def test_a_card_without_a_plugged_ev_authorizes_the_first_free_evse(make, tm):
    st = make(n=2)
    e1, e2 = st.evses
    e2.plug()
    card(st, "AAAA")  # the EVSE with the EV waiting comes first
    assert new(st) == [
        ("Started", "Authorized", 0, {"state": "EVConnected", "token": "AAAA", "evse": 2})
    ]
    card(st, "BBBB")  # no EV waiting: ahead of the plug on EVSE 1
    assert e1.permitted and new(st) == []
    e1.plug()
    assert new(st) == [
        ("Started", "CablePluggedIn", 0, {"state": "EVConnected", "token": "BBBB", "evse": 1})
    ]


# -- EVConnectionTimeOut -------------------------------------------------------------------------


def test_ev_connection_timeout_ends_a_transaction_started_at_authorized(make, tm):
    st = make(values={START: "Authorized"})
    ev = st.evses[0]
    card(st)
    assert new(st)[0][:2] == ("Started", "Authorized")
    tm.advance(119)
    st.txs._tick()
    assert new(st) == [] and ev.permitted
    tm.advance(1)
    st.txs._tick()
    assert new(st) == [("Ended", "EVConnectTimeout", 1, {"reason": "Timeout"})]
    assert not ev.permitted and st.txs.bays[0].token is None and st.txs.bays[0].tx is None


def test_ev_connection_timeout_without_a_transaction_sends_nothing(make, tm):
    st = make(values={"TxCtrlr/EVConnectionTimeOut": "30"})
    ev = st.evses[0]
    card(st)
    assert ev.permitted and st.txs.authorized(ev) and new(st) == []
    tm.advance(30)
    st.txs._tick()
    assert not ev.permitted and not st.txs.authorized(ev)
    ev.plug()
    settle(st, tm)
    assert new(st) == [] and st.txs.bays[0].tx is None


def test_ev_connection_timeout_is_cancelled_by_the_plug(make, tm):
    st = make(values={"TxCtrlr/EVConnectionTimeOut": "30"})
    ev = st.evses[0]
    card(st)
    tm.advance(29)
    ev.plug()
    assert new(st)[0][:2] == ("Started", "CablePluggedIn")
    tm.advance(60)
    st.txs._tick()
    assert new(st) == [] and ev.permitted


def test_ev_connection_timeout_with_stop_point_ev_connected_is_an_updated(make, tm):
    st = make(values={START: "Authorized", STOP: "EVConnected"})
    ev = st.evses[0]
    card(st)
    new(st)
    tm.advance(120)
    st.txs._tick()
    assert new(st) == [("Updated", "EVConnectTimeout", 1, {})]
    assert not ev.permitted and st.txs.bays[0].tx is not None


# -- the CSMS's idTokenInfo in a TransactionEventResponse -----------------------------------------


def test_rejected_token_in_the_response_ends_the_transaction(make, tm):
    st = make()
    ev = started(st, tm)
    started_payload = st.queue.answer(accepted(status="Blocked"))
    assert started_payload["eventType"] == "Started"
    assert st.authorization.cache.get("ISO14443:aabbccdd") == {"status": "Blocked"}  # remembered
    assert not ev.permitted and new(st) == []  # waits for the contactor
    ev.cut()
    settle(st, tm)
    assert new(st) == [
        ("Ended", "Deauthorized", 3, {"state": "EVConnected", "reason": "DeAuthorized"})
    ]


def test_accepted_token_in_the_response_changes_nothing_but_the_cache(make, tm):
    st = make()
    ev = started(st, tm)
    st.queue.answer(accepted("G7"))
    assert ev.permitted and new(st) == []
    assert st.authorization.cache.get("ISO14443:aabbccdd") == accepted("G7")["idTokenInfo"]
    st.queue.answer(accepted(status="Blocked"))  # an answer to an event without idToken
    assert ev.permitted


def test_invalid_token_without_stop_tx_on_invalid_id_charges_up_to_the_energy_cap(make, tm):
    st = make(values={"TxCtrlr/StopTxOnInvalidId": "false", "TxCtrlr/MaxEnergyOnInvalidId": "500"})
    ev = started(st, tm)  # 1000 Wh at the start
    ev.read(1200.0)
    st.queue.answer(accepted(status="Invalid"))
    assert st.authorization.cache.get("ISO14443:aabbccdd") == {"status": "Invalid"}
    assert ev.permitted  # 200 Wh since the start
    ev.read(1499.0)
    settle(st, tm)
    assert ev.permitted
    ev.read(1500.0)
    settle(st, tm)
    assert not ev.permitted  # 500 Wh since the start: suspended, not ended
    ev.set(offered_a=0, closed=False)  # the EVSE withdrew its offer; the EV still asks (C)
    settle(st, tm)
    assert new(st) == [("Updated", "ChargingStateChanged", 3, {"state": "SuspendedEVSE"})]
    assert st.txs.bays[0].tx is not None


def test_a_limit_below_6_a_suspends_evse_and_the_transaction_stays_open(make, tm):
    # Smart charging's 0 A pause (K01, IEC 61851: no PWM below 6 A): SuspendedEVSE, not
    # EVConnected, and Charging again in the same transaction when the limit rises.
    st = make()
    ev = started(st, tm)
    tx = st.txs.bays[0].tx["id"]
    ev.set(limited=True, offered_a=0, closed=False)  # the EV still asks (C)
    settle(st, tm)
    assert new(st) == [("Updated", "ChargingStateChanged", 3, {"state": "SuspendedEVSE"})]
    ev.set(limited=False, offered_a=16, closed=True)
    settle(st, tm)
    assert new(st) == [("Updated", "ChargingStateChanged", 4, {"state": "Charging"})]
    assert st.txs.bays[0].tx["id"] == tx


def test_invalid_token_without_stop_tx_on_invalid_id_and_no_cap_suspends_at_once(make, tm):
    st = make(values={"TxCtrlr/StopTxOnInvalidId": "false"})
    ev = started(st, tm)
    st.queue.answer(accepted(status="Expired"))
    assert not ev.permitted and new(st) == []


# -- RequestStartTransaction, RequestStopTransaction -------------------------------------------


def test_request_start_rejections(make, tm):
    st = make(n=2)
    e1, e2 = st.evses
    assert remote_start(st, evse_id=3) == {"status": "Rejected"}
    assert remote_start(st, evse_id=0) == {"status": "Rejected"}
    e1.faults.add("rcd_trip")
    e2.available = False
    assert remote_start(st, evse_id=1) == {"status": "Rejected"}
    assert remote_start(st, evse_id=2) == {"status": "Rejected"}
    assert remote_start(st, evse_id=None) == {"status": "Rejected"}  # none usable
    e1.faults.clear()
    e1.plug()
    card(st)
    assert remote_start(st, evse_id=1) == {"status": "Rejected"}  # authorized already
    assert new(st)[0][:2] == ("Started", "Authorized")
    assert len(events(st)) == 1 and not e2.permitted


@pytest.mark.parametrize("reg", ["Pending", "Rejected"])
def test_request_start_while_not_accepted_needs_tx_before_accepted(make, tm, reg):
    st = make(online=False, registration=reg)
    assert remote_start(st) == {"status": "Rejected"}
    assert not st.evses[0].permitted
    st.dm.set("TxCtrlr/TxBeforeAcceptedEnabled", "true")
    assert remote_start(st) == {"status": "Accepted"}
    assert st.evses[0].permitted


def test_request_start_with_an_ev_plugged_starts_with_remote_start(make, tm):
    st = make()
    ev = st.evses[0]
    ev.plug()
    assert remote_start(st, rid=42) == {"status": "Accepted"}
    assert authorizes(st) == []  # AuthorizeRemoteStart false
    assert new(st) == [
        (
            "Started",
            "RemoteStart",
            0,
            {"state": "EVConnected", "remote": 42, "token": "R1", "evse": 1},
        )
    ]
    tx_id = st.txs.bays[0].tx_id
    assert request(st, "RequestStopTransaction", {"transactionId": tx_id}) == {
        "status": "Accepted"
    }
    assert new(st) == [("Ended", "RemoteStop", 1, {"reason": "Remote"})]  # no idToken


def test_request_start_before_the_plug_starts_at_the_plug_with_the_remote_start_id(make, tm):
    st = make()
    ev = st.evses[0]
    assert remote_start(st, evse_id=None, rid=5) == {"status": "Accepted"}  # the first free
    assert ev.permitted and new(st) == []
    ev.plug()
    assert new(st) == [
        (
            "Started",
            "CablePluggedIn",
            0,
            {"state": "EVConnected", "remote": 5, "token": "R1", "evse": 1},
        )
    ]
    ev.offer()
    assert new(st) == [("Updated", "ChargingStateChanged", 1, {"state": "SuspendedEV"})]


def test_request_start_on_a_running_transaction_answers_its_id(make, tm):
    st = make(values={START: "EVConnected"})
    ev = st.evses[0]
    ev.plug()
    tx_id = st.txs.bays[0].tx_id
    new(st)
    assert remote_start(st, rid=9) == {"status": "Accepted", "transactionId": tx_id}
    assert new(st) == [("Updated", "RemoteStart", 1, {"remote": 9, "token": "R1"})]
    assert ev.permitted


def test_request_start_with_authorize_remote_start_asks_first(make, tm):
    st = make(values={"AuthCtrlr/AuthorizeRemoteStart": "true"})
    ev = st.evses[0]
    ev.plug()
    st.session.answers = [accepted(status="Blocked")]
    assert remote_start(st, token="R1", kind="ISO14443") == {"status": "Accepted"}
    assert authorizes(st) == ["R1"]
    assert new(st) == [] and not ev.permitted
    assert remote_start(st, token="R2", kind="ISO14443", rid=8) == {"status": "Accepted"}
    assert authorizes(st) == ["R1", "R2"]
    assert new(st) == [
        (
            "Started",
            "RemoteStart",
            0,
            {"state": "EVConnected", "remote": 8, "token": "R2", "evse": 1},
        )
    ]


def test_request_start_group_id_token_lets_the_group_stop(make, tm):
    st = make()
    st.evses[0].plug()
    req = {
        "idToken": {"idToken": "R1", "type": "Central"},
        "remoteStartId": 3,
        "evseId": 1,
        "groupIdToken": {"idToken": "FLEET", "type": "Central"},
    }
    assert request(st, "RequestStartTransaction", req) == {"status": "Accepted"}
    new(st)
    card(st, "CARD1", accepted("fleet"))
    assert new(st) == [("Ended", "StopAuthorized", 1, {"reason": "Local", "token": "CARD1"})]


def test_request_stop_unknown_transaction_is_rejected(make, tm):
    st = make()
    ev = started(st, tm)
    assert request(st, "RequestStopTransaction", {"transactionId": "nope"}) == {
        "status": "Rejected"
    }
    assert ev.permitted and new(st) == []


# -- GetTransactionStatus ------------------------------------------------------------------------


def test_get_transaction_status(make, tm):
    st = make()

    def status(tx_id=None):
        return request(
            st, "GetTransactionStatus", {} if tx_id is None else {"transactionId": tx_id}
        )

    assert status() == {"messagesInQueue": False}
    assert status("unknown") == {"ongoingIndicator": False, "messagesInQueue": False}
    st.queue.post(
        "MeterValues",
        {"evseId": 1, "meterValue": [{"timestamp": iso(NOW), "sampledValue": [{"value": 1.0}]}]},
    )
    assert status() == {"messagesInQueue": False}  # only TransactionEvents count
    ev = started(st, tm)
    tx_id = st.txs.bays[0].tx_id
    assert status() == {"messagesInQueue": True}
    assert status(tx_id) == {"ongoingIndicator": True, "messagesInQueue": True}
    while st.queue.live:
        st.queue.answer()
    assert status(tx_id) == {"ongoingIndicator": True, "messagesInQueue": False}
    assert status() == {"messagesInQueue": False}
    ev.unplug()
    settle(st, tm)
    assert status(tx_id) == {"ongoingIndicator": False, "messagesInQueue": True}
    assert status() == {"messagesInQueue": True}
    st.queue.answer()
    assert status(tx_id) == {"ongoingIndicator": False, "messagesInQueue": False}


# -- TriggerMessage(TransactionEvent) ------------------------------------------------------------


def test_trigger_sends_an_updated_per_running_transaction(make, tm):
    st = make(n=2)
    assert st.txs.triggerable() == [] and st.txs.triggerable(1) == []
    started(st, tm)
    bay = st.txs.bays[0]
    assert st.txs.triggerable() == [bay]
    assert st.txs.triggerable(1) == [bay] and st.txs.triggerable(2) == []
    st.txs.trigger(2)
    assert new(st) == []
    st.evses[0].read(1234.5, 7000.0)
    st.txs.trigger()
    assert new(st) == [("Updated", "Trigger", 3, {})]
    assert values(events(st)[-1]) == [
        (ENERGY, 1234.5, "Trigger"),
        ("Power.Active.Import", 7000.0, "Trigger"),
    ]
    st.txs.trigger(1)
    assert new(st) == [("Updated", "Trigger", 4, {})]


# -- faults and availability -------------------------------------------------------------------


def test_a_fault_during_a_transaction_is_an_abnormal_condition(make, tm):
    st = make()
    ev = started(st, tm)
    ev.faults.add("rcd_trip")
    ev.set(offered_a=0, closed=False)
    settle(st, tm)
    assert new(st) == [("Updated", "AbnormalCondition", 3, {"state": "SuspendedEVSE"})]
    assert not st.txs.bays[0].usable()


# -- periodic and TxEnded sampled values -------------------------------------------------------


def test_periodic_updated_every_tx_updated_interval(make, tm):
    st = make(values={"SampledDataCtrlr/TxUpdatedInterval": "60"})
    ev = started(st, tm)
    ev.read(1100.0, 3000.0)
    tm.advance(59)
    st.txs._tick()
    assert new(st) == []
    tm.advance(1)
    st.txs._tick()
    assert new(st) == [("Updated", "MeterValuePeriodic", 3, {})]
    p = events(st)[-1]
    assert values(p) == [
        (ENERGY, 1100.0, "Sample.Periodic"),
        ("Power.Active.Import", 3000.0, "Sample.Periodic"),
    ]
    assert p["meterValue"][0]["timestamp"] == iso(tm.t)


def test_periodic_updates_keep_their_interval_when_the_timer_runs_late(make, tm):
    """Each tick comes 1.4 s apart: the Updated events still come every 10 s on average, the
    lateness of one tick not carried into the next interval."""
    st = make(values={"SampledDataCtrlr/TxUpdatedInterval": "10"})
    ev = started(st, tm)
    ev.read(1100.0, 3000.0)
    fired = []
    for k in range(1, 72):  # 99.4 s
        tm.advance(ms=1400)
        st.txs._tick()
        if new(st):
            fired.append(k)
    assert len(fired) == 9  # at 10, 20, ... 90 s; carrying the lateness over gave only 8


def test_a_plug_in_while_ended_waits_for_the_meter_starts_the_next_transaction(make, tm):
    st = make(values={START: "EVConnected"})
    ev = st.evses[0]
    ev.plug()
    card(st)
    ev.offer()
    ev.draw()
    new(st)
    ev.read(1400.0)
    tm.advance(ms=300)
    ev.unplug()  # ends the transaction: Ended waits for a reading after the cut
    assert new(st) == []
    ev.plug()  # the next car, within the second
    tm.advance(1)
    ev.read(1450.0)
    st.txs._tick()
    got = new(st)
    assert [e[:2] for e in got] == [
        ("Ended", "EVCommunicationLost"),
        ("Started", "CablePluggedIn"),
    ]
    assert st.txs.tx_id(ev) is not None


def test_tx_ended_samples_are_thinned_keeping_the_first_and_the_newest(make, tm, tmp_path):
    st = make(values={"SampledDataCtrlr/TxEndedInterval": "10"})
    ev = started(st, tm)
    bay = st.txs.bays[0]
    for k in range(1, 61):
        tm.advance(10)
        ev.read(1000.0 + k)
        st.txs._tick()
        assert len(bay.samples) <= baymod._MAX_SAMPLES
        assert bay.samples[0]["sampledValue"][0]["context"] == "Transaction.Begin"
        assert bay.samples[-1]["sampledValue"][0]["value"] == 1000.0 + k
    kept = [s["sampledValue"][0]["value"] for s in bay.samples]
    assert kept == [1000.0] + list(range(1002, 1049, 2)) + list(range(1049, 1061))
    lines = (tmp_path / "tx1.mv").read_text().splitlines()
    assert [json.loads(x) for x in lines] == bay.samples  # the file follows the thinning
    ev.read(1070.0)
    ev.unplug()
    settle(st, tm)
    ended = events(st)[-1]
    assert ended["eventType"] == "Ended"
    got = [v for _, v, _ in values(ended)]
    assert got == kept + [1070.0]
    assert [c for _, _, c in values(ended)] == (
        ["Transaction.Begin"] + ["Sample.Periodic"] * 36 + ["Transaction.End"]
    )
    assert not (tmp_path / "tx1.mv").exists()


# -- the button ----------------------------------------------------------------------------------


def test_button_starts_and_stops_without_authorization(make, tm):
    st = make()
    ev = st.evses[0]
    ev.plug()
    st.txs.button(ev)
    run(st)
    assert authorizes(st) == []
    assert new(st) == [
        ("Started", "Authorized", 0, {"state": "EVConnected", "token": "", "evse": 1})
    ]
    assert events(st)[0]["idToken"] == {"idToken": "", "type": "NoAuthorization"}
    st.txs.button(ev)
    assert st.spawned == []
    assert new(st) == [("Ended", "StopAuthorized", 1, {"reason": "Local", "token": ""})]
    assert not ev.permitted


def test_button_with_its_own_token_is_authorized_like_a_card(make, tm):
    st = make(values={"LocalButton/IdToken": "BTN1", "LocalButton/IdTokenType": "KeyCode"})
    ev = st.evses[0]
    ev.plug()
    st.session.answers = [accepted(status="Blocked")]
    st.txs.button(ev)
    run(st)
    assert authorizes(st) == ["BTN1"] and new(st) == [] and not ev.permitted
    st.txs.button(ev)
    run(st)
    assert new(st) == [
        ("Started", "Authorized", 0, {"state": "EVConnected", "token": "BTN1", "evse": 1})
    ]
    assert events(st)[0]["idToken"]["type"] == "KeyCode"


def test_button_stops_a_card_session(make, tm):
    st = make()
    ev = st.evses[0]
    ev.plug()
    card(st)
    new(st)
    st.txs.button(ev)
    assert new(st) == [("Ended", "StopAuthorized", 1, {"reason": "Local", "token": ""})]


# -- clock-aligned values ------------------------------------------------------------------------


def _to_boundary(tm, interval):
    """Move the clock to the next multiple of `interval`; returns it."""
    b = tm.t - tm.t % interval + interval
    tm.advance(b - tm.t)
    return b


def test_clock_aligned_values_idle_and_in_a_transaction(make, tm):
    st = make(n=2, values={"AlignedDataCtrlr/Interval": "900"})
    st.txs._tick()  # the first look only notes the boundary
    run(st)
    b = _to_boundary(tm, 900)
    st.evses[1].read(2000.0)
    st.txs._tick()
    run(st)
    assert st.session.sent == [
        (
            "MeterValues",
            {
                "evseId": 1,
                "meterValue": [
                    {
                        "timestamp": iso(b),
                        "sampledValue": [
                            {
                                "value": 1000.0,
                                "measurand": ENERGY,
                                "context": "Sample.Clock",
                                "unitOfMeasure": {"unit": "Wh"},
                            }
                        ],
                    }
                ],
            },
        ),
        (
            "MeterValues",
            {
                "evseId": 2,
                "meterValue": [
                    {
                        "timestamp": iso(b),
                        "sampledValue": [
                            {
                                "value": 2000.0,
                                "measurand": ENERGY,
                                "context": "Sample.Clock",
                                "unitOfMeasure": {"unit": "Wh"},
                            }
                        ],
                    }
                ],
            },
        ),
    ]
    tm.advance(899)
    st.txs._tick()
    run(st)
    assert len(st.session.sent) == 2  # the same boundary
    ev = started(st, tm)  # on EVSE 1
    st.session.sent.clear()
    ev.read(1300.0)
    b = _to_boundary(tm, 900)
    st.txs._tick()
    run(st)
    assert new(st) == [("Updated", "MeterValueClock", 3, {})]
    p = events(st)[-1]
    assert values(p) == [(ENERGY, 1300.0, "Sample.Clock")]
    assert p["meterValue"][0]["timestamp"] == iso(b)
    assert [(a, m["evseId"]) for a, m in st.session.sent] == [("MeterValues", 2)]
    # Offline: idle values are not kept; the transaction's go to the queue.
    st.connection.ready.clear()
    st.session.sent.clear()
    _to_boundary(tm, 900)
    st.txs._tick()
    run(st)
    assert st.session.sent == [] and new(st) == [("Updated", "MeterValueClock", 4, {})]
    # QueueAllMessages: the idle ones are queued too.
    st.dm.set("OCPPCommCtrlr/QueueAllMessages", "true")
    _to_boundary(tm, 900)
    st.txs._tick()
    run(st)
    assert st.session.sent == [] and new(st) == [("Updated", "MeterValueClock", 5, {})]
    assert [(a, p["evseId"]) for a, p, _ in st.queue.posted if a == "MeterValues"] == [
        ("MeterValues", 2)
    ]


def test_send_during_idle_suppresses_clock_values_while_a_transaction_runs(make, tm):
    st = make(
        n=2, values={"AlignedDataCtrlr/Interval": "60", "AlignedDataCtrlr/SendDuringIdle": "true"}
    )
    st.txs._tick()
    ev = started(st, tm)
    _to_boundary(tm, 60)
    st.txs._tick()
    run(st)
    assert new(st) == [] and st.session.sent[1:] == []  # only the card's Authorize
    ev.unplug()
    settle(st, tm)
    new(st)
    _to_boundary(tm, 60)
    st.txs._tick()
    run(st)
    assert [(a, p["evseId"]) for a, p in st.session.sent[1:]] == [
        ("MeterValues", 1),
        ("MeterValues", 2),
    ]


def test_aligned_tx_ended_samples_go_into_ended(make, tm):
    st = make(
        values={
            "AlignedDataCtrlr/TxEndedInterval": "300",
            "AlignedDataCtrlr/TxEndedMeasurands": ENERGY + ",Power.Active.Import",
        }
    )
    st.txs._tick()
    ev = started(st, tm)
    ev.read(1111.0, 500.0)
    b1 = _to_boundary(tm, 300)
    st.txs._tick()
    ev.read(1222.0, 600.0)
    b2 = _to_boundary(tm, 300)
    st.txs._tick()
    assert new(st) == []  # nothing sent before Ended
    ev.read(1333.0)
    ev.unplug()
    settle(st, tm)
    ended = events(st)[-1]
    assert [mv["timestamp"] for mv in ended["meterValue"]][1:3] == [iso(b1), iso(b2)]
    assert values(ended) == [
        (ENERGY, 1000.0, "Transaction.Begin"),
        (ENERGY, 1111.0, "Sample.Clock"),
        ("Power.Active.Import", 500.0, "Sample.Clock"),
        (ENERGY, 1222.0, "Sample.Clock"),
        ("Power.Active.Import", 600.0, "Sample.Clock"),
        (ENERGY, 1333.0, "Transaction.End"),
    ]


# -- power-loss recovery -------------------------------------------------------------------------

OLD = "0f" * 16  # the transaction of the last boot


def _last_boot(tmp_path, seq=4, why=None, samples=None, torn=False):
    Store(str(tmp_path)).save(
        "tx1", {"id": OLD, "seq": seq, "t0": NOW - 600, "why": why, "st": "Charging", "e0": 900}
    )
    if samples is not None:
        with open(tmp_path / "tx1.mv", "w") as f:
            for wh in samples:
                mv = {
                    "timestamp": iso(NOW - 600),
                    "sampledValue": [
                        {"value": wh, "measurand": ENERGY, "context": "Sample.Periodic"}
                    ],
                }
                f.write(json.dumps(mv) + "\n")
            if torn:
                f.write('{"timestamp": 5, "sampledValue": []}\n[1]\n')  # damaged: dropped
                f.write('{"timestamp":"2026-11-21T1')


def _queued(seq, kind="Updated", tx_id=OLD):
    p = {
        "eventType": kind,
        "timestamp": iso(NOW - 60),
        "triggerReason": "MeterValuePeriodic",
        "seqNo": seq,
        "transactionInfo": {"transactionId": tx_id},
    }
    return (TE, valid("TransactionEventRequest", p), tx_id)


@pytest.mark.parametrize(
    "boot, reason",
    [("PowerUp", "PowerLoss"), ("Watchdog", "Reboot"), ("ApplicationReset", "Reboot")],
)
def test_an_open_transaction_of_the_last_boot_ends_with_power_loss_or_reboot(
    make, tm, tmp_path, boot, reason
):
    _last_boot(tmp_path, seq=4, samples=[900.0, 950.0], torn=True)
    queued = [_queued(6), _queued(40, tx_id="other"), _queued(5)]
    st = make(boot_reason=boot, queue=FakeQueue(queued))
    ev = st.evses[0]
    bay = st.txs.bays[0]
    assert bay.recovering and st.txs.busy(ev) and not bay.usable()
    req = {"idToken": {"idToken": "R1", "type": "Central"}, "remoteStartId": 1, "evseId": 1}
    assert st.txs.on_request_start(req) == {"status": "Rejected"}
    ev.plug()  # the EVSE's changes are ignored until the old transaction has ended
    ev.unplug()
    assert st.queue.posted == []
    ev.read(1000.0)
    run(st)
    assert new(st) == [("Ended", "AbnormalCondition", 7, {"state": "Idle", "reason": reason})]
    ended = events(st)[0]
    assert ended["transactionInfo"]["transactionId"] == OLD
    assert values(ended) == [
        (ENERGY, 900.0, "Sample.Periodic"),
        (ENERGY, 950.0, "Sample.Periodic"),
        (ENERGY, 1000.0, "Transaction.End"),
    ]
    assert not bay.recovering and bay.tx is None and not st.txs.busy(ev)
    assert st.store.load("tx1") is None
    assert not (tmp_path / "tx1.mv").exists()


@pytest.mark.parametrize(
    "doc",
    [[1, 2], {"seq": 3}, {"id": OLD}, {"id": "", "seq": 1}, {"id": OLD, "seq": "4"}, {"id": 7}],
)
def test_a_damaged_transaction_document_is_dropped_not_a_crash(make, tm, tmp_path, doc):
    Store(str(tmp_path)).save("tx1", doc)
    (tmp_path / "tx1.mv").write_text("{}\n")
    st = make()
    run(st)
    assert new(st) == [] and not st.txs.bays[0].recovering
    assert st.store.load("tx1") is None and not (tmp_path / "tx1.mv").exists()
    ev = started(st, tm)  # the EVSE works as ever
    assert st.txs.tx_id(ev) is not None


def test_recovery_seq_no_continues_after_the_document_when_it_is_ahead(make, tm, tmp_path):
    _last_boot(tmp_path, seq=9)
    st = make(queue=FakeQueue([_queued(6)]))
    run(st)
    assert new(st) == [("Ended", "AbnormalCondition", 9, {"state": "Idle", "reason": "PowerLoss"})]
    assert values(events(st)[0]) == [(ENERGY, 1000.0, "Transaction.End")]


def test_recovery_keeps_the_first_stop_reason(make, tm, tmp_path):
    _last_boot(tmp_path, why="Remote")
    st = make()
    run(st)
    assert new(st) == [("Ended", "AbnormalCondition", 4, {"state": "Idle", "reason": "Remote"})]


def test_a_queued_ended_means_no_second_ended(make, tm, tmp_path):
    _last_boot(tmp_path, seq=3, samples=[900.0])
    st = make(queue=FakeQueue([_queued(2), _queued(3, kind="Ended")]))
    run(st)
    assert new(st) == [] and st.queue.posted == []
    bay = st.txs.bays[0]
    assert bay.tx is None and not bay.recovering and not st.txs.busy(st.evses[0])
    assert st.store.load("tx1") is None
    assert not (tmp_path / "tx1.mv").exists()


def test_stale_samples_without_a_transaction_are_removed(make, tm, tmp_path):
    (tmp_path / "tx1.mv").write_text('{"timestamp":"x"}\n')
    st = make()
    assert not (tmp_path / "tx1.mv").exists() and st.spawned == []


def test_recovery_starts_a_new_transaction_when_an_ev_is_plugged(make, tm, tmp_path):
    _last_boot(tmp_path, seq=2)
    ev = FakeEvse(1, tm)
    ev.cp = "B"
    st = make(values={START: "EVConnected"}, evses=[ev])
    ev.set(offered_a=0)  # the EVSE's ticks meanwhile are ignored
    assert new(st) == []
    run(st)
    assert new(st) == [
        ("Ended", "AbnormalCondition", 2, {"state": "EVConnected", "reason": "PowerLoss"}),
        ("Started", "CablePluggedIn", 0, {"state": "EVConnected", "evse": 1}),
    ]
    ids = [p["transactionInfo"]["transactionId"] for p in events(st)]
    assert ids[0] == OLD and ids[1] != OLD and st.store.load("tx1")["id"] == ids[1]


def test_recovery_waits_for_a_reading_but_not_forever(make, tm, tmp_path, monkeypatch):
    naps = []

    async def nap(ms):
        naps.append(ms)
        if len(naps) == 3 and arrives:
            ev.read(1010.0)

    monkeypatch.setattr(asyncio, "sleep_ms", nap)
    for arrives in (True, False):
        _last_boot(tmp_path, seq=1)
        ev = FakeEvse(1, tm, wh=None)
        st = make(evses=[ev])
        naps.clear()
        run(st)
        ended = events(st)[0]
        if arrives:
            assert len(naps) == 3
            assert values(ended) == [(ENERGY, 1010.0, "Transaction.End")]
        else:
            assert sum(naps) == txmod._METER_WAIT_MS
            assert "meterValue" not in ended
        assert short(ended)[:3] == ("Ended", "AbnormalCondition", 1)


def test_recovery_with_the_real_queue(make, tm, tmp_path):
    """The real MessageQueue's journal, replayed at boot, gives the queued seqNo."""
    conn = SimpleNamespace(ready=asyncio.Event())
    path = str(tmp_path / "queue.jnl")
    q = MessageQueue(path, None, conn, None)
    for action, p, tx_id in (_queued(5), _queued(6), _queued(7, tx_id="other")):
        assert q.post(action, p, tx_id)
    q.close()
    _last_boot(tmp_path, seq=5)
    q = MessageQueue(path, None, conn, None)  # the next boot
    st = make(queue=q)
    run(st)
    got = list(q.messages())
    assert [(p["eventType"], p["seqNo"], t) for _, p, t in got] == [
        ("Updated", 5, OLD),
        ("Updated", 6, OLD),
        ("Updated", 7, "other"),
        ("Ended", 7, OLD),
    ]
    ended = valid("TransactionEventRequest", got[-1][1])
    assert ended["transactionInfo"]["stoppedReason"] == "PowerLoss"
    assert ended["offline"] is True  # posted before the link was up
    assert q.pending(OLD, TE) == 3
    q.close()


# -- regressions (each was a bug) ---------------------------------------------------------


@pytest.mark.parametrize("how", ["card", "button", "remote start"])
def test_nothing_authorizes_an_evse_whose_transaction_is_stopping(make, tm, how):
    st = make()
    ev = started(st, tm)
    bay = st.txs.bays[0]
    card(st)  # stop: Ended waits for the contactor
    assert bay.stopping is not None and new(st) == []
    if how == "card":
        card(st)  # the driver taps again before the EV has reacted
    elif how == "button":
        st.txs.button(ev)
        run(st)
    else:
        remote_start(st)
    assert new(st) == []  # no event for a transaction that is ending
    tm.advance(8)
    st.txs._tick()
    assert [e[:2] for e in new(st)] == [("Ended", "StopAuthorized")]
    assert not (ev.permitted and bay.tx is None)  # no energy without a transaction


def test_a_remote_start_that_started_nothing_is_forgotten_at_unplug(make, tm):
    st = make(values={START: "EnergyTransfer"})
    ev = st.evses[0]
    ev.plug()
    assert remote_start(st, rid=7) == {"status": "Accepted"}
    ev.unplug()  # the EV leaves without having charged
    settle(st, tm)
    assert new(st) == [] and not ev.permitted
    ev.plug()  # another EV, another driver
    card(st, "AAAA")
    ev.offer()
    ev.draw()
    assert new(st) == [
        ("Started", "ChargingStateChanged", 0, {"state": "Charging", "token": "AAAA", "evse": 1})
    ]


def test_no_charging_without_a_transaction_while_pending(make, tm):
    st = make(online=False, registration="Pending")
    st.authorization.remember({"idToken": "AABBCCDD", "type": "ISO14443"}, {"status": "Accepted"})
    ev = st.evses[0]
    ev.plug()
    card(st)  # known and Accepted: allowed offline
    assert st.txs.bays[0].tx is None  # no transaction may start ...
    assert not ev.permitted  # ... so no energy either
    st.txs.button(ev)
    run(st)
    assert st.txs.bays[0].tx is None and not ev.permitted
    ev.offer()
    ev.draw()
    assert events(st) == []


def test_remote_stop_of_a_transaction_of_the_last_boot_being_ended(make, tm, tmp_path):
    _last_boot(tmp_path, seq=2)
    ev = FakeEvse(1, tm, wh=None)  # no reading yet: the recovery waits for one
    st = make(evses=[ev])
    boot_end = st.spawned.pop(0)
    request(st, "RequestStopTransaction", {"transactionId": OLD})
    ev.read(1000.0)
    asyncio.run(boot_end)
    evs = new(st)
    assert [e[0] for e in evs] == ["Ended"]  # one, either the remote stop's or PowerLoss
    assert st.txs.bays[0].tx is None and not st.txs.bays[0].recovering


def test_a_transaction_after_an_energy_transfer_stop_is_not_anonymous(make, tm):
    st = make(values={STOP: "EnergyTransfer"})
    ev = started(st, tm)
    bay = st.txs.bays[0]
    ev.suspend()
    settle(st, tm)
    assert [e[:2] for e in new(st)] == [("Ended", "ChargingStateChanged")]
    ev.draw()  # the EV asks again
    settle(st, tm)
    evs = new(st)
    assert all("token" in e[3] for e in evs if e[0] == "Started")
    assert not (ev.permitted and bay.tx is None)


@pytest.mark.parametrize("then", ["reset", "remote stop"])
def test_the_first_stop_reason_holds_while_ended_waits_for_the_meter(make, tm, then):
    st = make()
    ev = started(st, tm)
    tx_id = st.txs.bays[0].tx_id
    ev.unplug()  # while charging: Ended (EVDisconnected) waits for a reading
    assert new(st) == []
    if then == "reset":
        st.txs.stop_all("ResetCommand", "ImmediateReset")
        settle(st, tm)
    else:
        request(st, "RequestStopTransaction", {"transactionId": tx_id})
        settle(st, tm)
    evs = new(st)
    assert [e[0] for e in evs] == ["Ended"]
    assert evs[0][3]["reason"] == "EVDisconnected"
