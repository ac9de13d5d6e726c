"""make bench's CPython figures drive the real transactions block and queue with fakes of the
rest: they must keep up with the firmware (a fake EVSE missing a new attribute broke one)."""

from tools import bench


def test_the_flash_figures_run_against_the_firmware():
    per_hour = bench.flash_bytes_per_charging_hour(hours=1)
    journal = bench.queue_flash_bytes_per_charging_hour(hours=1)
    # an hour of charging at the default sampling: tens of KB, the journal the larger part
    assert 20000 < journal < per_hour < 200000
