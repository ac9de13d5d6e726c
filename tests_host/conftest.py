import mpcompat

mpcompat.install()

import pytest  # noqa: E402


@pytest.fixture
def csms():
    from tools.harness import CsmsThread

    c = CsmsThread()
    yield c
    c.stop()


@pytest.fixture
def sims(tmp_path, request):
    """Factory of virtual wallboxes; all are killed at the end and their logs shown on failure."""
    from tools.harness import Sim

    made = []

    def make(url, **kw):
        s = Sim(tmp_path, url, **kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()
        print("---- wallbox-sim log (%s) ----\n%s" % (s.log_path.name, s.log()))


@pytest.fixture
def logged(monkeypatch):
    """The log's output, captured (without timestamps) in a StringIO."""
    import io

    import log

    out = io.StringIO()
    monkeypatch.setattr(log, "stream", out)
    monkeypatch.setattr(log, "clock", None)
    return out
