# display: what the station's display and status LED show, decided from the station's state,
# the CSMS's display messages (block O) and the driver's tariff and cost (block I); the
# board's driver only draws the lines. MIT licence.
"""The display model.

Once a second the model makes the screen and hands it to the board's driver (boards/...:
`show(lines, qr)`, `cols`, `rows`, `pixels`; see its docs) when it differs from the one shown:

- the station's own screen: for each EVSE what a driver needs to know now (ready, car
  connected, authorized, charging with power and energy, paused, finished with the energy,
  reserved, faulted with the fault, out of service) and its session's tariff and cost lines
  (block I, `cost.lines(...)`, once that block has loaded and made itself `cost`); and
  "Offline" while the CSMS cannot be reached;
- the display messages the CSMS set (block O, `messages.active(now, state)`, once that block
  has loaded and made itself `messages`): the newest AlwaysFront one alone; else the InFront
  ones, taking turns; else the NormalCycle ones take turns with the station's screen, _CYCLE_S
  each. A URI message is a QR code on a pixel display, the line "QR:<uri>" on a text one.

`tick()` runs once a second in the station's own turn (firmware/main.py: no task of its own,
heap), never in the safety loop; a failing draw is logged and the next second tries again.
"""

from micropython import const

import log

_TAG = const("display")
_CYCLE_S = const(5)  # how long each screen of a rotation stays
# Short words for the fault codes of firmware/evse.py (at most 16 characters: a line of the
# 128 x 64 displays), in the order of the codes below.
_FAULTS = const(
    (
        ("rcd_trip", "RCD tripped"),
        ("rcd_selftest", "RCD test failed"),
        ("contactor_welded", "Contactor welded"),
        ("contactor_fault", "Contactor fault"),
        ("diode_fault", "EV diode fault"),
        ("cp_short", "Pilot shorted"),
        ("meter_timeout", "Meter silent"),
        ("pp_fault", "Cable fault"),
    )
)


class Display:
    # The display messages block and the tariff and cost block set their own once loaded
    # (class attributes until then: no slot in the instance, heap).
    messages = None
    cost = None
    _qr = None  # (uri, its QR code) while a URI is shown: encoded once (a class default)
    # (Few methods and functions: each one costs heap on a board, frozen or not.)

    def __init__(self, driver, led, transactions, availability, connection, clock):
        """driver: the board's display (None: none, only the LED); led: its status LED
        (None: none). The EVSEs are the transactions block's bays'."""
        self.driver = driver
        self.led = led
        self.txs = transactions
        self.availability = availability
        self.connection = connection
        self.clock = clock
        self._shown = None  # (lines, uri) last drawn
        # Per EVSE: the open transaction the last look saw (its document), then once it has
        # ended and while the car is still plugged in, the energy it delivered (Wh, the
        # "Finished" screen), else None.
        self._last = [None] * len(transactions.bays)

    async def tick(self):
        """Redraw if the screen changed, and set the LED. A QR code is encoded in steps that
        let the other tasks run (on an ESP32 it takes longer than the loop may wait)."""
        try:
            states = [self._state(i, b) for i, b in enumerate(self.txs.bays)]
            online = self.connection.ready.is_set()
            if "Faulted" in states:
                led = "fault"
            elif "Charging" in states:
                led = "charging"
            else:
                led = "ready" if online else "offline"
            if self.led is not None:
                self.led.set(led)  # every second: a few pin writes, no state kept here
            d = self.driver
            if d is None:
                return
            lines, uri = self.screen(states, online)
            if (lines, uri) == self._shown:
                return
            self._shown = (lines, uri)
            qr = None
            if uri is not None:
                if not d.pixels:
                    lines = ["QR:" + uri] + lines
                elif self._qr is not None and self._qr[0] == uri:
                    qr = self._qr[1]  # a message that takes turns comes back: no new encoding
                else:
                    from qr import encode_steps  # only while a URI is shown (heap)
                    from steps import run_async

                    self._qr = None
                    try:
                        qr = await run_async(encode_steps(uri))
                        self._qr = (uri, qr)
                    except ValueError:  # longer than the largest code (version 10): as text
                        lines = wrap(uri, d.cols, d.rows)
            d.show(lines, qr)
        except Exception as e:  # a bad message or a driver error: the next second again
            log.exc(_TAG, "refresh", e)

    def screen(self, states, online):
        """(lines, uri or None): what to show now, for the EVSEs' `states` (of _state)."""
        now = self.clock.now()
        d = self.driver
        m = self.messages
        shown = None
        active = None
        if m is not None:
            if "Faulted" in states:
                state = "Faulted"
            elif "Charging" in states:
                state = "Charging"
            elif all(s == "Unavailable" for s in states):
                state = "Unavailable"
            else:
                state = "Idle"
            active = m.active(now, state)  # MessageStateEnumType
            if active:
                turn = now // _CYCLE_S
                front = [a for a in active if a[1] != "NormalCycle"]
                if front:
                    # The newest AlwaysFront alone (it comes first), else InFront in turns.
                    shown = front[0] if front[0][1] == "AlwaysFront" else front[turn % len(front)]
                else:
                    k = turn % (len(active) + 1)  # the station's screen takes its turn too
                    shown = active[k - 1] if k else None
        if self._qr is not None and not (active and any(a[3] == self._qr[0] for a in active)):
            self._qr = None  # its message is gone: so is the code kept for it
        if shown is not None:
            if shown[2] == "URI":
                return [], shown[3]
            return wrap(shown[3], d.cols, d.rows), None
        # The station's own screen: each EVSE's lines (with its number when there are
        # several), the cost, and Offline.
        out = []
        bays = self.txs.bays
        for i, b in enumerate(bays):
            st = states[i]
            e = b.evse
            if st == "Faulted":
                faults = e.faults
                why = "Error"
                for code, text in _FAULTS:
                    if code in faults:
                        why = text
                        break
                lines = ["Fault", why]
            elif st == "Unavailable":
                lines = ["Out of service"]
            elif st == "Reserved":
                lines = ["Reserved"]
            elif st == "Charging":
                r = e.reading
                kw = "%.1f kW" % (r.power_w / 1000) if r is not None else "-- kW"
                lines = ["Charging", kw, _kwh(e, b.tx)]
            elif st == "Paused":
                why = "Paused by car" if b.charging_state() == "SuspendedEV" else "Paused"
                lines = [why, _kwh(e, b.tx)]
            elif st == "Stopping":
                lines = ["Stopping", _kwh(e, b.tx)]
            elif st == "Finished":
                lines = ["Finished", _kwh(e, self._last[i]), "Unplug the car"]
            elif st == "Authorized":
                lines = ["Authorized", "Starting" if e.plugged else "Plug in the car"]
            elif st == "Occupied":
                lines = ["Car connected", "Present a card"]
            else:
                lines = ["Ready", "Plug in or", "present a card"]
            if len(bays) > 1:
                lines[0] = "%d %s" % (b.n, lines[0])
            out += lines
            if self.cost is not None:
                out += self.cost.lines(b.n, st, d.cols, d.rows)
        if not online:
            out.append("Offline")
        del out[d.rows :]
        return out, None

    def _state(self, i, b):
        """What the EVSE of bay `b` (index i) is now, for the screen and the LED: the
        availability status, or Charging / Paused / Stopping / Finished / Authorized. Notes
        what it saw in _last."""
        e = b.evse
        st = self.availability.status(e)
        tx = b.tx
        last = self._last[i]
        if tx is not None:
            self._last[i] = tx
            cs = b.charging_state()
            if cs == "Charging":
                return "Charging"
            if cs in ("SuspendedEV", "SuspendedEVSE"):
                return "Paused"
            if b.token is None and st not in ("Faulted", "Unavailable"):
                return "Stopping"  # the authorization ended, the transaction ends soon
        elif type(last) is dict:
            # Ended since the last look: its energy stays on the screen until the unplug.
            r = e.reading
            self._last[i] = None if r is None else r.energy_wh - last.get("e0", r.energy_wh)
        if not e.plugged and tx is None:
            self._last[i] = None
        if st in ("Faulted", "Unavailable", "Reserved"):
            return st
        if tx is None and self._last[i] is not None:
            return "Finished"
        if b.token is not None:
            return "Authorized"
        return st  # Occupied (a car, nobody authorized yet) or Available


def _kwh(e, done):
    """The energy of a transaction as a line: `done` its document (the energy since its start
    reading "e0", from EVSE `e`'s meter), or the Wh it delivered."""
    if type(done) is dict:
        r = e.reading
        done = None if r is None else r.energy_wh - done.get("e0", r.energy_wh)
    return "-- kWh" if done is None else "%.2f kWh" % (done / 1000)


def wrap(text, cols, rows):
    """`text` in lines of at most `cols` characters, broken at spaces where it can be, at
    most `rows` lines."""
    out = []
    for para in text.split("\n"):
        line = ""
        for word in para.split(" "):
            while len(word) > cols:  # a word longer than a line: cut it
                if line:
                    out.append(line)
                    line = ""
                out.append(word[:cols])
                word = word[cols:]
            if not line:
                line = word
            elif len(line) + 1 + len(word) <= cols:
                line += " " + word
            else:
                out.append(line)
                line = word
        out.append(line)
    return out[:rows]
