# tariff_cost: OCPP block I: the driver's tariff and the cost of the session on the display
# (personalMessage, updatedPersonalMessage, totalCost, CostUpdated). MIT licence.
"""Tariff and cost (ocpp201-station.md §2.12).

Loaded only on a station with a display: with the first CostUpdated, or by the transactions
block when an answer of the CSMS brings a tariff or a cost, or at an authorization while a
fallback message is set (TariffCostCtrlr.TariffFallbackMessage, TotalCostFallbackMessage).
It keeps, per EVSE, the session it is about (transactionId, once known), the tariff text and
the cost line, and gives the display model the lines to show (`lines`):

- from the authorization on: the driver's tariff, `idTokenInfo.personalMessage` of the
  Authorize or TransactionEvent answer (else TariffFallbackMessage), replaced by a
  TransactionEvent answer's `updatedPersonalMessage`;
- while it runs: "Cost <amount> <Currency>" from `totalCost` in TransactionEvent answers and
  CostUpdated (ignored for a transaction that is not running here);
- once it has ended: "Total <amount> <Currency>" from the answer to Ended, or
  TotalCostFallbackMessage until that comes (offline, it may come much later).

Amounts keep two decimals, rounded from the JSON text the CSMS sent (the session's `decimal`),
never through a float: a float (single precision on the ESP32) would show 12345.67 as
12345.66.
"""

from micropython import const

import log
from firmware.display import wrap

_TAG = const("cost")
_CTRLR = const("TariffCostCtrlr/")
# Fields of an EVSE's record.
_TX = const(0)  # the transactionId it is about, once known
_TARIFF = const(1)  # the tariff (or updated personal message) text, or None
_COST = const(2)  # the cost line, or None
_FINAL = const(3)  # the cost line is the final one (the answer to Ended)
_TEXT_LINES = const(3)  # at most this many lines of a tariff text on the display


class TariffCost:
    def __init__(self, router, session, dm, transactions, display):
        self.session = session  # its `decimal`: the text of the last totalCost received
        self.dm = dm
        self.txs = transactions
        self.evse = [[None, None, None, False] for _ in transactions.bays]
        transactions.tariff = self
        display.cost = self
        router.on("CostUpdated", self.on_cost_updated)

    def _on(self, which):
        return self.dm.setting(_CTRLR + "Enabled:" + which, True)

    # -- what the transactions block tells ----------------------------------------------------

    def authorized(self, b, info):
        """Bay `b` was authorized with idTokenInfo `info`: a new session's tariff."""
        rec = self.evse[b.n - 1]
        rec[_TX] = b.tx_id
        rec[_TARIFF] = self._tariff(info)
        rec[_COST] = None
        rec[_FINAL] = False

    def _tariff(self, info):
        if not self._on("Tariff"):
            return None
        m = info.get("personalMessage") if info else None
        if m is not None:
            return m["content"]
        return self.dm.setting(_CTRLR + "TariffFallbackMessage", "") or None

    def reply(self, payload, response):
        """The CSMS answered TransactionEvent `payload` with `response`."""
        tx_id = payload["transactionInfo"]["transactionId"]
        rec = self._record(tx_id)
        if rec is None:
            return
        info = response.get("idTokenInfo")
        if info is not None and "personalMessage" in info:
            rec[_TARIFF] = self._tariff(info)
        m = response.get("updatedPersonalMessage")
        if m is not None and self._on("Tariff"):
            rec[_TARIFF] = m["content"]
        if "totalCost" in response and self._on("Cost"):
            final = payload["eventType"] == "Ended"
            rec[_COST] = self._line("Total" if final else "Cost", response["totalCost"])
            rec[_FINAL] = final

    def _record(self, tx_id):
        """The record of transaction `tx_id`: the EVSE's it was about, or the one of the EVSE
        where it runs (a session authorized before its transaction began); else None."""
        for rec in self.evse:
            if rec[_TX] == tx_id:
                return rec
        for b in self.txs.bays:
            if b.tx_id == tx_id:
                rec = self.evse[b.n - 1]
                rec[_TX] = tx_id
                return rec
        return None

    # -- CostUpdated (I03) ------------------------------------------------------------------

    def on_cost_updated(self, req):
        tx_id = req["transactionId"]
        for b in self.txs.bays:
            if b.tx_id == tx_id and self._on("Cost"):
                rec = self._record(tx_id)
                rec[_COST] = self._line("Cost", req["totalCost"])
                rec[_FINAL] = False
                return {}
        log.info(_TAG, "CostUpdated for %s ignored: not running here" % tx_id)
        return {}

    def _line(self, word, value):
        """ "Cost 12.35 EUR": `value` (a number as json read it) with two decimals, from its
        JSON text when the session kept it."""
        text = self.session.decimal
        amount = money(text) if text is not None and float(text) == value else None
        if amount is None:
            amount = "%.2f" % value
        return "%s %s %s" % (word, amount, self.dm.setting(_CTRLR + "Currency", "EUR"))

    # -- what the display shows --------------------------------------------------------------

    def lines(self, n, state, cols, rows):
        """The lines for EVSE n in the display model's `state` of it."""
        rec = self.evse[n - 1]
        if state == "Finished":
            if rec[_FINAL]:
                return [rec[_COST]]
            text = self.dm.setting(_CTRLR + "TotalCostFallbackMessage", "")
            return wrap(text, cols, _TEXT_LINES) if text and self._on("Cost") else []
        if state == "Available" and (rec[_TX] or rec[_TARIFF] or rec[_COST]):
            rec[_TX] = rec[_TARIFF] = rec[_COST] = None  # no car, no session: forgotten
            rec[_FINAL] = False
        if state not in ("Authorized", "Charging", "Paused", "Stopping"):
            return []
        if rec[_TX] is None:
            # Authorized ahead of the plug: its transaction has begun since. Noted now, an
            # answer that comes after its end (offline) still finds it.
            rec[_TX] = self.txs.bays[n - 1].tx_id
        out = wrap(rec[_TARIFF], cols, _TEXT_LINES) if rec[_TARIFF] else []
        if rec[_COST] is not None:
            out.append(rec[_COST])
        return out


def money(text):
    """A JSON number's text as an amount with two decimals, rounded half away from zero with
    integers ("12.345" -> "12.35", "-0.5e1" -> "-5.00"); None when it is no such text or its
    exponent is out of any amount's range."""
    s = text.strip()
    neg = s.startswith("-")
    if neg or s.startswith("+"):
        s = s[1:]
    mant, _, exp = s.lower().partition("e")
    whole, _, frac = mant.partition(".")
    digits = whole + frac
    if not digits.isdigit() or (exp and not exp.lstrip("+-").isdigit()):
        return None
    e = (int(exp) if exp else 0) - len(frac) + 2  # value * 100 = int(digits) * 10^e
    if not -40 < e < 20:
        return None
    n = int(digits)
    if e >= 0:
        n *= 10**e
    else:
        q, r = divmod(n, 10**-e)
        n = q + (1 if 2 * r >= 10**-e else 0)
    return "%s%d.%02d" % ("-" if neg and n else "", n // 100, n % 100)
