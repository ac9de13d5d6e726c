# local_start: who may charge until the transactions block exists: the local button starts or
# stops charging, and so does a card that the authorization block accepts. The transactions
# block replaces this. MIT licence.

import log
from firmware.auth_cache import token_key

_TAG = "local"


class LocalStart:
    """The button and the card reader of the station, before there are transactions.

    The button toggles its EVSE, no token involved. A card is authorized first (by the
    authorization block, which attaches itself with `attach`): in a task of the station, so
    the caller (the reader, the sim's control channel) never waits for the CSMS. Only an
    Accepted card changes anything; the card that started an EVSE stops it again without
    asking anyone (decision step 2 of ocpp201-station.md §2.4).
    """

    def __init__(self, evses):
        self.evses = evses
        self._plugged = [e.plugged for e in evses]
        self._starter = [None] * len(evses)  # per EVSE: token key of the card that started it
        self.authorization = None
        self._spawn = None
        self._busy = False  # a card is being authorized: further cards wait their turn
        for e in evses:
            e.on_change.append(self._changed)

    def attach(self, authorization, spawn):
        """Cards go through `authorization.authorize`, run by `spawn(coro)`."""
        self.authorization = authorization
        self._spawn = spawn

    def button(self, evse):
        """The start/stop button of one EVSE."""
        self._set(evse, not evse.permitted, None)

    def _set(self, evse, on, starter):
        evse.permit(on)
        self._starter[self.evses.index(evse)] = starter if on else None
        log.info(_TAG, "EVSE %d %s" % (evse.id, "permitted" if on else "stopped"))

    def card(self, token, kind="ISO14443"):
        """A card (idToken `token` of IdTokenEnum type `kind`) at the reader: start the first
        plugged EVSE that waits, else stop the first charging one, else permit an EVSE ahead
        of the plug (pre-authorization). Returns at once; the decision follows."""
        if self.authorization is None:
            log.warn(_TAG, "card refused: no authorization block")
            return
        if self._busy:
            log.warn(_TAG, "card ignored: the previous one is still being authorized")
            return
        self._busy = True
        self._spawn(self._card({"idToken": token, "type": kind}))

    async def _card(self, id_token):
        try:
            await self._decide(id_token)
        finally:
            self._busy = False

    async def _decide(self, id_token):
        key = token_key(id_token)
        target = self._waiting()
        if target is None:
            for i, e in enumerate(self.evses):
                if e.permitted and self._starter[i] == key:
                    self._set(e, False, None)  # its own card ends it: no Authorize
                    return
        evse_id = target.id if target is not None else None
        info = await self.authorization.authorize(id_token, evse_id)
        if info["status"] != "Accepted":
            log.info(_TAG, "card refused (%s)" % info["status"])
            return
        # Things may have moved while the CSMS was asked: choose again.
        target = self._waiting()
        if target is not None and _fits(info, target):
            self._set(target, True, key)
            return
        for e in self.evses:
            if e.permitted:
                self._set(e, False, None)
                return
        for e in self.evses:
            if _fits(info, e):
                self._set(e, True, key)  # ahead of the plug
                return
        log.info(_TAG, "card accepted, but no EVSE it may use")

    def _waiting(self):
        for e in self.evses:
            if e.plugged and not e.permitted:
                return e
        return None

    def _changed(self, evse):
        i = self.evses.index(evse)
        if self._plugged[i] and not evse.plugged:
            evse.permit(False)  # the session ends at unplug
            self._starter[i] = None
        self._plugged[i] = evse.plugged


def _fits(info, evse):
    ids = info.get("evseId")
    return ids is None or evse.id in ids
