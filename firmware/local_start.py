# local_start: who may charge until OCPP authorization exists: the local button or any card
# presented starts or stops charging. The authorization and transaction blocks replace this.
# MIT licence.

import log


class LocalStart:
    def __init__(self, evses):
        self.evses = evses
        self._plugged = [e.plugged for e in evses]
        for e in evses:
            e.on_change.append(self._changed)

    def button(self, evse):
        """The start/stop button of one EVSE."""
        evse.permit(not evse.permitted)
        log.info(
            "local", "button: EVSE %d %s" % (evse.id, "permitted" if evse.permitted else "stopped")
        )

    def card(self, token):
        """A card at the reader: start the first plugged EVSE that waits, else stop the first
        charging one, else permit EVSE 1 ahead of the plug (pre-authorization)."""
        target = None
        for e in self.evses:
            if e.plugged and not e.permitted:
                target = e
                break
        if target is None:
            for e in self.evses:
                if e.permitted:
                    target = e
                    break
        self.button(target or self.evses[0])

    def _changed(self, evse):
        i = self.evses.index(evse)
        if self._plugged[i] and not evse.plugged:
            evse.permit(False)  # the session ends at unplug
        self._plugged[i] = evse.plugged
