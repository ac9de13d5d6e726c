# rcd: the residual-current device (RDC-DD, 6 mA DC) fault input and its test output.
# MIT licence.


class Rcd:
    """Fault input (polled) and optional self-test output of the residual-current monitor.

    fault         input Pin of the module's fault output
    fault_active  its value while tripped. With a pull-up and fault_active=1, an open-collector
                  output that conducts while healthy reads "tripped" on a broken wire or an
                  unpowered module: fail-safe, prefer it where the module allows
    test          output Pin to the module's test input, or None (then has_test is False)
    test_active   the test pin's value that starts a test

    tripped() never blocks: it reads the pin twice back to back and reports a trip only when
    both reads agree. That drops a glitch shorter than one pin read (a few us); SmartEVSE's
    re-read after ~1 ms would stall the safety loop, and a longer disturbance is a trip the
    controller must act on anyway (a false trip only stops charging). Poll it every cycle of
    the safety loop: pin IRQs on the ESP32 are soft and give no latency guarantee.
    """

    def __init__(self, fault, fault_active=1, test=None, test_active=1):
        self._fault = fault
        self._active = 1 if fault_active else 0
        self._test = test
        self._test_active = 1 if test_active else 0
        self.has_test = test is not None
        self.test(False)  # never leave a test running from before a reset

    def tripped(self):
        a = self._active
        return self._fault.value() == a and self._fault.value() == a

    def test(self, on):
        """Drive the test input (True: start the test; False: release). No-op without one."""
        if self._test is not None:
            self._test.value(self._test_active if on else 1 - self._test_active)
