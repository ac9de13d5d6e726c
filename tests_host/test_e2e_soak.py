"""End to end: a short soak (tools/soak.py) on each target, and the virtual ESP32's reference
scenario (tools/esp32_scenario.py) at 112 KiB, as `make bench` runs them."""

import pytest

from tools import esp32_scenario, soak

pytestmark = pytest.mark.e2e
SHARD_WEIGHT = 18  # a minute and a half a target: as many as some 18 other end-to-end tests


def test_a_short_soak_bills_every_session_exactly_once(request, target):
    # Sessions with outages and power losses for a minute; the checks of tools/soak.py.
    if target == "esp32":
        request.getfixturevalue("program")
    said = []
    problems, counts, run, log = soak.soak(1.0, seed=11, esp32=target == "esp32", say=said.append)
    assert problems == [], "\n".join(said) + "\n" + log[-3000:]
    assert run.sessions >= 3 and counts["transactions"] >= 3


@pytest.mark.targets("esp32")
def test_the_reference_scenario_passes_at_112k(program):
    said = []
    ok, _, missing = esp32_scenario.run("112K", said.append)
    assert ok and missing == (), "\n".join(said)
