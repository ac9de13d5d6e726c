"""make bench's CPython figures drive the real transactions block and queue with fakes of the
rest: they must keep up with the firmware (a fake EVSE missing a new attribute broke one), and
leave the modules they share with the unit tests as they found them (a fake clock left in
transactions broke twenty of its tests when this file ran first)."""

import time

import log
import store
from firmware import bay
from firmware.blocks import transactions
from tools import bench


def test_the_flash_figures_run_against_the_firmware_and_leave_it_as_it_was():
    before = (transactions.time, bay.time, store.append_line, store.write_lines, log.level)
    per_hour = bench.flash_bytes_per_charging_hour(hours=1)
    journal = bench.queue_flash_bytes_per_charging_hour(hours=1)
    # an hour of charging at the default sampling: tens of KB, the journal the larger part
    assert 20000 < journal < per_hour < 200000
    assert (transactions.time, bay.time, store.append_line, store.write_lines, log.level) == before
    assert transactions.time is time


def test_the_key_and_csr_figures_run_on_the_unix_port_and_the_csr_verifies():
    from tools import bench_crypto

    f = bench_crypto.key_figures()  # SystemExit when the CSR does not verify in cryptography
    assert set(f) == {"key_generation_ms", "csr_signature_ms"}
    assert all(0 < v < 10000 for v in f.values())


def test_the_50_monitors_of_the_monitoring_figure_are_50_distinct_ones():
    """SetVariableMonitoring answers Duplicate for a second monitor of the same variable, type
    and severity: the figure's 50 must all differ."""
    from tools import bench_esp32

    ms = bench_esp32._monitors()
    keys = {(repr(m["component"]), m["variable"]["name"], m["type"], m["severity"]) for m in ms}
    assert len(ms) == len(keys) == 50
