"""Fixtures, and the targets: every end-to-end test that starts virtual wallboxes (`sims`) runs
on each target, `host` (the 64-bit unix port, sources) and `esp32` (the virtual ESP32: 32-bit,
frozen, 112 KiB heap), as `test_x[host]` and `test_x[esp32]`; `@pytest.mark.targets("host")`
keeps a test to the targets named. `--target T` (repeatable; default both) runs one target's
tests only: the unit tests count as host tests, the tests of the virtual ESP32 itself (those
using `program`) as esp32 tests, so that `make test` runs the two in parallel. `--shard I/N`
runs the I-th of N shares of what is left, whole modules each (their module fixtures are built
once), balanced by the number of tests (a module's `SHARD_WEIGHT` says more where its tests are
long): the end-to-end tests mostly wait on the virtual wallboxes' real time, so several runs
share the two cores well."""

import mpcompat

mpcompat.install()

import pytest  # noqa: E402

TARGETS = ("host", "esp32")


def pytest_addoption(parser):
    parser.addoption(
        "--target",
        action="append",
        choices=TARGETS,
        dest="targets",
        help="run this target's tests only (repeatable; default: both)",
    )
    parser.addoption("--shard", help="I/N: run the I-th of N shares of the tests (1 <= I <= N)")


def pytest_configure(config):
    config.addinivalue_line("markers", "targets(*names): run only on these targets")


def _targets(config):
    return config.getoption("targets") or TARGETS


def pytest_generate_tests(metafunc):
    if "target" in metafunc.fixturenames:
        mark = metafunc.definition.get_closest_marker("targets")
        chosen = _targets(metafunc.config)
        names = [t for t in TARGETS if t in chosen and (mark is None or t in mark.args)]
        # session scope: module fixtures (built artefacts) may depend on the target
        metafunc.parametrize("target", names, scope="session")


@pytest.hookimpl(trylast=True)  # after -m and -k: the shares divide what is left of those
def pytest_collection_modifyitems(config, items):
    chosen = _targets(config)
    keep, drop = [], []
    for item in items:
        spec = getattr(item, "callspec", None)
        target = spec.params.get("target") if spec else None
        if target is None:
            target = "esp32" if "program" in item.fixturenames else "host"
        (keep if target in chosen else drop).append(item)
    shard = config.getoption("shard")
    if shard:
        keep, more = _shard(keep, shard)
        drop += more
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def _shard(items, spec):
    """(kept, dropped): the items of the modules that fall to share I of N (spec "I/N"). Each
    module goes, heaviest first, to the share with the least weight so far."""
    i, n = (int(x) for x in spec.split("/"))
    if not 1 <= i <= n:
        raise pytest.UsageError("--shard %s: I must be between 1 and N" % spec)
    weights = {}
    for item in items:
        mod = item.module
        weights[mod] = getattr(mod, "SHARD_WEIGHT", weights.get(mod, 0) + 1)
    load = [0] * n
    share = {}
    for mod in sorted(weights, key=lambda m: (-weights[m], m.__name__)):
        k = load.index(min(load))
        share[mod] = k
        load[k] += weights[mod]
    kept = [t for t in items if share[t.module] == i - 1]
    return kept, [t for t in items if share[t.module] != i - 1]


@pytest.fixture
def csms():
    from tools.harness import CsmsThread

    c = CsmsThread()
    yield c
    c.stop()


@pytest.fixture
def sims(tmp_path, request, target):
    """Factory of virtual wallboxes on the test's target; all are killed at the end and their
    logs shown on failure."""
    from tools.harness import Sim

    made = []
    esp32 = target == "esp32"
    if esp32:
        request.getfixturevalue("program")  # built, or the test skips

    def make(url, **kw):
        if esp32 and "code" not in kw:
            kw.setdefault("esp32", True)
        s = Sim(tmp_path, url, **kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()
        print("---- wallbox-sim log (%s) ----\n%s" % (s.log_path.name, s.log()))


@pytest.fixture(autouse=True)
def _no_log_file():
    """Every test starts and ends without a log on flash (a Station built by a test sets
    log.file: firmware/main.py)."""
    import log

    log.file, log.file_level, log.boot = None, 1, 0
    yield
    log.file, log.file_level, log.boot = None, 1, 0


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
