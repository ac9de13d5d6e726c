# reservation: OCPP block H: ReserveNow, CancelReservation, expiry, and which driver a
# reserved EVSE lets charge. MIT licence.
"""Reservations (ocpp201-station.md §2.11).

A reservation keeps an EVSE (ReserveNow with an evseId) or any one EVSE of a connector type
(without one, when ReservationCtrlr.NonEvseSpecific) for one idToken, or any token of its
group, until its expiryDateTime. Each is a list [id, expiry (unix s), token key, group idToken
(lower case) or None, evseId or None, connectorType or None], and all of them are the store
document "reservations" (removed with the last one: at boot the block loads only when it is
there).

An EVSE is *held* while a reservation names it, or while it is one of the free EVSEs that the
reservations without an EVSE need: when as many EVSEs of a type are free as such reservations
can use, all of them are held (H01.FR.20/24). Free means operative, without a fault, and with
nobody authorized or charging there; an EV plugged in by another driver does not make it less
free (that driver gets no energy there). Counted per connector type, exact when every
connector of the station has one type (the usual wallbox); with mixed types it holds rather
more than less.

What the transactions block asks, once this block has loaded and made itself its
`reservations`: `check(n, id_token, group)` before a token is authorized at EVSE n, `use(r)`
when it is (the reservation is consumed, its id goes in the Started event), and `holds(n)`
before a plug-in alone opens a transaction; the availability block asks it (`held`) too, and
a held EVSE shows Reserved while no transaction runs there.
"""

import asyncio

from micropython import const

import log
import rfc3339
from firmware.auth_cache import token_key

_TAG = const("reserve")
_STORE = const("reservations")
_CTRLR = const("ReservationCtrlr/")
_TICK_MS = const(1000)  # how often expiry is looked at
# Fields of a reservation.
_ID = const(0)
_EXPIRY = const(1)
_KEY = const(2)
_GROUP = const(3)
_EVSE = const(4)
_TYPE = const(5)


def _answer(status, reason=None):
    resp = {"status": status}
    if reason is not None:
        resp["statusInfo"] = {"reasonCode": reason}
    return resp


def _group(id_token):
    """The idToken of a groupIdToken (IdTokenType or None), lower case: groups compare so."""
    return id_token["idToken"].lower() if id_token else None


def _whole(r):
    """A reservation as this block writes it (it may come from a damaged flash)."""
    return (
        type(r) is list
        and len(r) == 6
        and type(r[_ID]) is int
        and type(r[_EXPIRY]) is int
        and type(r[_KEY]) is str
        and type(r[_GROUP]) in (str, type(None))
        and type(r[_EVSE]) in (int, type(None))
        and type(r[_TYPE]) in (str, type(None))
    )


class Reservations:
    def __init__(self, router, queue, dm, store, clock, evses, transactions, spawn):
        self.queue = queue
        self.dm = dm
        self.store = store
        self.clock = clock
        self.evses = evses
        self.txs = transactions
        # The connector type of each EVSE (one connector each), in EVSE order.
        self.types = tuple(dm.get("Connector.%d.1/ConnectorType" % e.id) for e in evses)
        items = store.load(_STORE) or []
        self.items = [r for r in items if _whole(r)] if type(items) is list else []
        if len(self.items) != (len(items) if type(items) is list else -1):
            log.error(_TAG, "damaged reservations dropped: %r" % (items,))
            self._save()
        transactions.reservations = self  # it asks check, use and holds
        for e in evses:
            e.on_change.append(self._changed)
            e.touch()  # its status is looked at again, Reserved now
        router.on("ReserveNow", self.on_reserve, self._after)
        router.on("CancelReservation", self.on_cancel, self._after)
        spawn(self._expiry())

    # -- what is held -----------------------------------------------------------------------

    def _free(self, e):
        """Nobody is authorized or charging at `e`, and it may be used."""
        txs = self.txs
        return e.available and not e.faults and not txs.busy(e) and not txs.authorized(e)

    def _named(self, n):
        """The reservation that names EVSE n, or None."""
        for r in self.items:
            if r[_EVSE] == n:
                return r
        return None

    def _serves(self, n, ctype):
        """EVSE n has a connector of type `ctype` (None: any type)."""
        return ctype is None or self.types[n - 1] == ctype

    def _need(self, ctype):
        """The reservations without an EVSE that an EVSE of `ctype` could serve (None: all)."""
        count = 0
        for r in self.items:
            if r[_EVSE] is None and (ctype is None or r[_TYPE] in (None, ctype)):
                count += 1
        return count

    def _spare(self, ctype, free=True):
        """The EVSEs of `ctype` that no reservation names and that are free (`free`), or only
        operative and without a fault."""
        count = 0
        for e in self.evses:
            if not self._serves(e.id, ctype) or self._named(e.id) is not None:
                continue
            if self._free(e) if free else (e.available and not e.faults):
                count += 1
        return count

    def holds(self, n):
        """EVSE n is kept for a reservation: another driver may not start there."""
        if self._named(n) is not None:
            return True
        e = self.evses[n - 1]
        ctype = self.types[n - 1]
        need = self._need(ctype)
        return need > 0 and self._free(e) and self._spare(ctype) <= need

    def check(self, n, id_token, group):
        """What the reservations say of `id_token` (of group `group`, an IdTokenType or None)
        charging at EVSE n: the reservation it uses there, None when none stands in the way,
        False when n is held for another driver (H03.FR.07-09)."""
        key = token_key(id_token)
        group = _group(group)
        r = self._named(n)
        if r is not None:
            return r if r[_KEY] == key or (group is not None and r[_GROUP] == group) else False
        ctype = self.types[n - 1]
        for r in self.items:
            if r[_EVSE] is None and r[_TYPE] in (None, ctype):
                if r[_KEY] == key or (group is not None and r[_GROUP] == group):
                    return r
        return False if self.holds(n) else None

    def use(self, r):
        """Reservation `r` is used by its driver (check gave it): it ends. Its id."""
        log.info(_TAG, "reservation %d used" % r[_ID])
        self._remove(r)
        self._touch()
        return r[_ID]

    # -- ReserveNow, CancelReservation (H01, H02) ------------------------------------------

    def on_reserve(self, req):
        if not self.dm.setting(_CTRLR + "Enabled", True):
            return _answer("Rejected", "NotEnabled")  # H01.FR.01
        n = req.get("evseId")
        ctype = req.get("connectorType")
        if n is None and not self.dm.setting(_CTRLR + "NonEvseSpecific", False):
            return _answer("Rejected", "MissingParam")  # H01.FR.19
        if n is not None and not 1 <= n <= len(self.evses):
            return _answer("Rejected", "UnknownEvse")
        if ctype is not None and not (
            self.types[n - 1] == ctype if n is not None else ctype in self.types
        ):
            return _answer("Rejected", "UnknownConnectorType")
        try:
            expiry = rfc3339.parse(req["expiryDateTime"])
        except ValueError:
            return _answer("Rejected", "InvalidValue")
        if expiry <= self.clock.now():
            return _answer("Rejected", "InvalidValue")  # over before it begins
        # The same id replaces its reservation (H01.FR.02), which is left out of the count;
        # refused, the old one stays.
        old = None
        for r in self.items:
            if r[_ID] == req["id"]:
                old = r
        if old is not None:
            self.items.remove(old)
        status = self._room(n, ctype)
        if status != "Accepted":
            if old is not None:
                self.items.append(old)
            return _answer(status)
        group = _group(req.get("groupIdToken"))
        self.items.append([req["id"], expiry, token_key(req["idToken"]), group, n, ctype])
        self._save()
        log.info(_TAG, "reservation %d on EVSE %s" % (req["id"], n or "any"))
        return _answer(status)

    def _room(self, n, ctype):
        """Accepted when EVSE n (or, None, one of `ctype`'s) can be reserved now; else why
        not: Occupied, Faulted or Unavailable."""
        if n is not None:
            e = self.evses[n - 1]
            if e.faults:
                return "Faulted"
            if not e.available:
                return "Unavailable"
            if e.plugged or not self._free(e) or self.holds(n):
                return "Occupied"
            return "Accepted"
        if self._spare(ctype) > self._need(ctype):
            return "Accepted"
        status = "Unavailable"
        for e in self.evses:
            if self._serves(e.id, ctype):
                if e.available and not e.faults:
                    return "Occupied"  # in use or reserved
                if e.faults:
                    status = "Faulted"
        return status

    def on_cancel(self, req):
        for r in self.items:
            if r[_ID] == req["reservationId"]:
                self._remove(r)
                log.info(_TAG, "reservation %d cancelled" % r[_ID])
                return _answer("Accepted")
        return _answer("Rejected")

    def _after(self, req, resp):
        if resp["status"] == "Accepted":
            self._touch()  # the statuses go out after the answer

    # -- ending -----------------------------------------------------------------------------

    def _changed(self, e):
        """An EVSE's listener: one that is Faulted or Unavailable ends its reservation, and
        those without an EVSE that too few usable EVSEs are left for (the newest first)."""
        if e.available and not e.faults:
            return
        r = self._named(e.id)
        if r is not None:
            self._end(r, "Removed")
        while True:
            over = None
            for r in self.items:
                ctype = r[_TYPE]
                if r[_EVSE] is None and self._need(ctype) > self._spare(ctype, False):
                    over = r  # the last such one: the newest
            if over is None:
                return
            self._end(over, "Removed")

    async def _expiry(self):
        while True:
            await asyncio.sleep_ms(_TICK_MS)
            try:
                self._expire(self.clock.now())
            except Exception as e:  # a bug here must not end expiry for good
                log.exc(_TAG, "expiry", e)

    def _expire(self, now):
        """End every reservation past its expiry, also those that expired while the station
        was off (the first look is a second after boot)."""
        items = self.items
        i = 0
        while i < len(items):
            if items[i][_EXPIRY] <= now:
                self._end(items[i], "Expired")
            else:
                i += 1

    def _end(self, r, status):
        """The station ends reservation `r`: the CSMS hears it through the durable queue."""
        log.info(_TAG, "reservation %d %s" % (r[_ID], status.lower()))
        self._remove(r)
        self.queue.post(
            "ReservationStatusUpdate", {"reservationId": r[_ID], "reservationUpdateStatus": status}
        )
        self._touch()

    def _remove(self, r):
        self.items.remove(r)
        self._save()

    def _save(self):
        if self.items:
            self.store.save(_STORE, self.items)
        else:
            self.store.remove(_STORE)

    def _touch(self):
        for e in self.evses:
            e.touch()
