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


@pytest.fixture(scope="session")
def program():
    """build/esp32sim/micropython-esp32sim, up to date (`make esp32sim`); a skip where the
    virtual ESP32 cannot be built here."""
    import subprocess

    from tools import esp32sim

    try:
        esp32sim.check()
    except esp32sim.Unavailable as e:
        pytest.skip("virtual ESP32 not buildable here: %s" % e)
    out = subprocess.run(
        ["make", "esp32sim"], cwd=esp32sim.ROOT, capture_output=True, text=True, timeout=1800
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    return esp32sim.PROG
