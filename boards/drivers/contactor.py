# contactor: the mains contactor (one or two coil outputs switched together) and its optional
# mirror contact. MIT licence.


class Contactor:
    """Coil outputs and feedback; the charging controller owns all timing (weld checks).

    outputs        list of 1 or 2 output Pins, driven together; 1 = coil energised
    mirror         input Pin of the auxiliary (mirror) contact, or None
    mirror_closed  the mirror's pin value while the main contacts are closed (0 with a contact
                   to GND and a pull-up, 1 with active-high AC sensing)

    close() / open() switch; closed is what was commanded; feedback() is what the mirror says:
    True closed, False open, None without a mirror. The driver only reports: comparing command
    and feedback after a settle time is the controller's job.
    """

    def __init__(self, outputs, mirror=None, mirror_closed=1):
        outputs = tuple(outputs)
        if not 1 <= len(outputs) <= 2:
            raise ValueError("one or two contactor outputs")
        self._outputs = outputs
        self._mirror = mirror
        self._mirror_closed = 1 if mirror_closed else 0
        self.closed = False
        self.open()  # a known state from the start, whatever the pins were built with

    def close(self):
        for p in self._outputs:
            p.value(1)
        self.closed = True

    def open(self):
        for p in self._outputs:
            p.value(0)
        self.closed = False

    def feedback(self):
        m = self._mirror
        if m is None:
            return None
        return m.value() == self._mirror_closed
