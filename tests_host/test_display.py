"""The display model (firmware/display.py) over the real transactions block and the
availability block's status rule, with the fakes of test_transactions.py: what a driver sees
in each state, display messages taking their turns, the LED, and no redraw without a change."""

import asyncio
from types import SimpleNamespace

import pytest
from test_transactions import (  # noqa: F401 (make and tm: its fixtures, used here too)
    card,
    make,
    settle,
    tm,
)

from firmware.blocks.availability import Availability
from firmware.display import Display


class Driver:
    """A text display as the sim's: records every screen drawn."""

    cols = 16
    rows = 8

    def __init__(self, pixels=False):
        self.pixels = pixels
        self.drawn = []

    def show(self, lines, qr=None):
        self.drawn.append((list(lines), qr))


class Led:
    def __init__(self):
        self.states = []

    def set(self, state):
        self.states.append(state)


class Messages:
    """Block O's side: `active` gives what the test put in `now`."""

    def __init__(self):
        self.now = []
        self.asked = []

    def active(self, now, state):
        self.asked.append(state)
        return self.now


@pytest.fixture
def station(make):  # noqa: F811
    def build(n=1, pixels=False, **kw):
        st = make(n=n, **kw)
        st.avail = SimpleNamespace(txs=st.txs, wish={}, held=False)
        st.avail.status = lambda e: Availability.status(st.avail, e)
        st.driver = Driver(pixels)
        st.led = Led()
        st.display = Display(st.driver, st.led, st.txs, st.avail, st.connection, st.clock)
        return st

    return build


def tick(st):
    asyncio.run(st.display.tick())


def screen(st):
    """Tick, and the lines on the screen now."""
    tick(st)
    return st.driver.drawn[-1][0]


def test_a_whole_session_on_the_screen(station, tm):  # noqa: F811
    st = station()
    e = st.evses[0]
    assert screen(st) == ["Ready", "Plug in or", "present a card"]
    e.plug()
    assert screen(st) == ["Car connected", "Present a card"]
    card(st, "AABBCCDD")
    e.offer(16)
    e.read(1000.0, 7360.0)
    e.draw()
    assert screen(st) == ["Charging", "7.4 kW", "0.00 kWh"]
    e.read(2234.0, 7360.0)
    assert screen(st) == ["Charging", "7.4 kW", "1.23 kWh"]
    e.suspend()
    assert screen(st) == ["Paused by car", "1.23 kWh"]
    card(st, "AABBCCDD")  # its own card ends the session, with a reading after the cut
    settle(st, tm)
    assert st.txs.bays[0].tx is None
    assert screen(st) == ["Finished", "1.23 kWh", "Unplug the car"]
    e.unplug()
    assert screen(st) == ["Ready", "Plug in or", "present a card"]
    assert st.led.states[0] == "ready" and "charging" in st.led.states


def test_faults_unavailable_reserved_and_offline(station):
    st = station()
    e = st.evses[0]
    st.connection.ready.clear()
    assert screen(st) == ["Ready", "Plug in or", "present a card", "Offline"]
    assert st.led.states[-1] == "offline"
    st.connection.ready.set()
    e.set(faults={"rcd_trip"})
    assert screen(st) == ["Fault", "RCD tripped"]
    assert st.led.states[-1] == "fault"
    e.set(faults={"something_new"})
    assert screen(st) == ["Fault", "Error"]
    e.set(faults=set(), available=False)
    assert screen(st) == ["Out of service"]
    e.set(available=True)
    st.txs.reservations = SimpleNamespace(holds=lambda n: True)
    assert screen(st) == ["Reserved"]


def test_two_evses_are_numbered(station):
    st = station(n=2)
    st.evses[1].plug()
    assert screen(st) == [
        "1 Ready",
        "Plug in or",
        "present a card",
        "2 Car connected",
        "Present a card",
    ]


def test_no_redraw_while_the_screen_stays(station):
    st = station()
    tick(st)
    tick(st)
    assert len(st.driver.drawn) == 1


def test_messages_take_their_turns(station, tm):  # noqa: F811
    st = station()
    m = st.display.messages = Messages()
    own = ["Ready", "Plug in or", "present a card"]
    m.now = [(1, "NormalCycle", "UTF8", "Hello"), (2, "NormalCycle", "ASCII", "World")]
    seen = []
    for _ in range(3):
        seen.append(screen(st))
        tm.advance(s=5)
    assert sorted(map(tuple, seen)) == sorted([tuple(own), ("Hello",), ("World",)])
    assert m.asked[-1] == "Idle"
    m.now = [(3, "InFront", "UTF8", "Front A"), (4, "InFront", "UTF8", "Front B")] + m.now
    seen = []
    for _ in range(2):
        seen.append(screen(st))
        tm.advance(s=5)
    assert sorted(seen) == [["Front A"], ["Front B"]]
    m.now = [(5, "AlwaysFront", "UTF8", "Closed today, sorry about that")] + m.now
    for _ in range(2):
        assert screen(st) == ["Closed today,", "sorry about that"]
        tm.advance(s=5)


def test_a_uri_message_is_a_qr_line_on_a_text_display(station):
    st = station()
    st.display.messages = Messages()
    st.display.messages.now = [(1, "AlwaysFront", "URI", "https://pay.example/cs1")]
    assert screen(st) == ["QR:https://pay.example/cs1"]


def test_long_words_are_cut_and_lines_limited():
    from firmware.display import wrap

    assert wrap("a" * 20 + " b", 16, 8) == ["a" * 16, "aaaa b"]
    assert wrap("one\ntwo", 16, 8) == ["one", "two"]
    assert len(wrap("x " * 100, 16, 8)) == 8


def test_a_failing_driver_is_logged_and_the_next_tick_draws(station, logged):
    st = station()

    def broken(lines, qr=None):
        raise OSError(5)

    st.driver.show = broken
    tick(st)
    assert "refresh" in logged.getvalue()
    del st.driver.show
    st.display._shown = None
    tick(st)
    assert st.driver.drawn


def test_state_for_messages(station):
    st = station()
    m = st.display.messages = Messages()
    e = st.evses[0]
    e.set(faults={"rcd_trip"})
    tick(st)
    e.set(faults=set(), available=False)
    tick(st)
    assert m.asked == ["Faulted", "Unavailable"]


def test_a_uri_message_is_a_qr_code_on_a_pixel_display(station):
    st = station(pixels=True)
    st.display.messages = Messages()
    st.display.messages.now = [(1, "AlwaysFront", "URI", "https://pay.example/cs1")]
    tick(st)
    lines, qr = st.driver.drawn[-1]
    assert lines == [] and qr.size == 25  # version 2 at level M for 22 bytes
    tick(st)
    assert len(st.driver.drawn) == 1  # encoded and drawn once while it stays


def test_a_qr_code_is_encoded_in_steps_once_while_its_message_lasts(station, tm):  # noqa: F811
    import qr

    st = station(pixels=True)
    m = st.display.messages = Messages()
    m.now = [(1, "NormalCycle", "URI", "https://pay.example/cs1")]
    encoded = []
    real = qr.encode_steps

    def counting(uri):
        encoded.append(uri)
        return real(uri)

    qr.encode_steps = counting
    try:
        turns = []

        async def go():
            async def other():  # another task: it runs while the code is encoded
                while True:
                    turns.append(1)
                    await asyncio.sleep(0)

            t = asyncio.create_task(other())
            await asyncio.sleep(0)
            for _ in range(4):
                before, n = len(turns), len(encoded)
                await st.display.tick()
                if len(encoded) > n and len(turns) < before + 8:
                    raise AssertionError("the loop waited for the whole encoding")
                tm.advance(s=5)
            t.cancel()

        asyncio.run(go())
    finally:
        qr.encode_steps = real
    shown = [qr_ is not None for _, qr_ in st.driver.drawn]
    assert shown.count(True) >= 2 and encoded == ["https://pay.example/cs1"]
    m.now = []
    tick(st)
    assert st.display._qr is None  # its message gone, so is the code


def test_a_uri_too_long_for_a_qr_code_is_shown_as_text(station):
    st = station(pixels=True)
    st.display.messages = Messages()
    uri = "https://pay.example/" + "x" * 300
    st.display.messages.now = [(1, "AlwaysFront", "URI", uri)]
    tick(st)
    lines, qr = st.driver.drawn[-1]
    assert qr is None and lines[0] == uri[:16] and len(lines) == 8
