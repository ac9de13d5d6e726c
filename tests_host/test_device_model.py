"""Device model, back-off and identity quoting under CPython."""

import os
import subprocess
from pathlib import Path

import pytest

from firmware.connection import Backoff, quote
from firmware.device_model import DeviceModel
from firmware.variables import VARIABLES
from store import Store

HB = "OCPPCommCtrlr/HeartbeatInterval"


def cv(comp, var, value, **kw):
    c = {"name": comp}
    c.update(kw)
    return {"component": c, "variable": {"name": var}, "attributeValue": value}


def model(tmp_path, config=(), factory=()):
    return DeviceModel(Store(str(tmp_path)), VARIABLES, factory, config)


def test_backoff_doubles_n_times_then_stays():
    b = Backoff(lambda r: 0)
    assert [b.next(10, 0, 2) for _ in range(5)] == [10, 20, 40, 40, 40]
    b.reset()
    assert b.next(3, 0, 2) == 3


def test_backoff_adds_the_random_part_each_step():
    b = Backoff(lambda r: r)
    assert [b.next(10, 5, 2) for _ in range(4)] == [15, 35, 75, 75]


def test_quote_keeps_unreserved_and_encodes_the_rest():
    assert quote("CS-1_a.b~") == "CS-1_a.b~"
    assert quote("WB 0042/ä") == "WB%200042%2F%C3%A4"


def test_lookup_is_case_insensitive_and_tells_component_from_variable(tmp_path):
    dm = model(tmp_path)
    assert dm.find({"name": "ocppcommctrlr"}, {"name": "heartbeatinterval"})[0] == "Accepted"
    assert dm.find({"name": "OCPPCommCtrlr"}, {"name": "Nope"}) == ("UnknownVariable", None)
    assert dm.find({"name": "Nope"}, {"name": "HeartbeatInterval"}) == ("UnknownComponent", None)
    timeout = {"name": "MessageTimeout", "instance": "Default"}
    assert dm.find({"name": "OCPPCommCtrlr"}, timeout)[0] == "Accepted"
    assert dm.find({"name": "OCPPCommCtrlr"}, {"name": "MessageTimeout"})[0] == "UnknownVariable"


@pytest.mark.parametrize(
    "value",
    [
        "300.1",
        "true",
        "2026-01-01T00:00:00Z",
        "abc",
        "",
        "1e3",
        " 30",
        "0",
        "86401",
        "99999999999999999999",
    ],
)
def test_integer_checks_are_strict(tmp_path, value):
    dm = model(tmp_path)
    assert dm.check(dm.decl(HB), value) is not None


@pytest.mark.parametrize(
    "key, value",
    [
        (HB, "30"),
        (HB, "+30"),
        (HB, "86400"),
        ("SecurityCtrlr/BasicAuthPassword", "0123456789abcdef"),
        ("ClockCtrlr/TimeSource", "Heartbeat"),
    ],
)
def test_good_values_pass(tmp_path, key, value):
    dm = model(tmp_path)
    assert dm.check(dm.decl(key), value) is None


def test_list_and_string_checks(tmp_path):
    dm = model(tmp_path)
    pw = dm.decl("SecurityCtrlr/BasicAuthPassword")
    assert dm.check(pw, "short") == "below minimum"
    assert dm.check(pw, "x" * 41) == "above maximum"
    src = dm.decl("ClockCtrlr/TimeSource")
    assert dm.check(src, "NTP,Heartbeat") is None
    assert dm.check(src, "GPS") == "not in valuesList"
    assert dm.check(src, "Heartbeat,") == "not in valuesList"


def test_values_persist_and_read_only_ones_come_from_the_factory(tmp_path):
    dm = model(tmp_path, factory=[("SecurityCtrlr/Identity", "CS9")])
    assert dm.set(HB, "42") == "Accepted"
    assert dm.set("OCPPCommCtrlr/NetworkConfigurationPriority", "1") == "RebootRequired"
    again = model(tmp_path, factory=[("SecurityCtrlr/Identity", "CS9")])
    assert again.get(HB) == "42"
    assert again.get("SecurityCtrlr/Identity") == "CS9"


def test_ram_holds_only_the_values_that_are_not_their_default(tmp_path):
    dm = model(tmp_path, factory=[("SecurityCtrlr/Identity", "CS9")])
    assert dm.values == {"SecurityCtrlr/Identity": "CS9"}  # not one entry per variable
    dm.set(HB, "42")
    again = model(tmp_path)  # every ReadWrite value is on flash, defaults too
    assert again.values == {HB: "42"} and again.get(HB) == "42"
    assert again.get("OCPPCommCtrlr/OfflineThreshold") == "120"  # the declared default
    again.set(HB, "300")  # back to the default: out of RAM again
    assert again.values == {} and again.get(HB) == "300"
    with pytest.raises(KeyError):
        again.get("OCPPCommCtrlr/NoSuchThing")
    assert model(tmp_path).get(HB) == "300"


def test_config_applies_on_first_boot_and_read_only_entries_on_every_boot(tmp_path):
    first = [cv("OCPPCommCtrlr", "HeartbeatInterval", "30")]
    assert model(tmp_path, first).get(HB) == "30"
    dm = model(tmp_path, [cv("OCPPCommCtrlr", "HeartbeatInterval", "99")])
    assert dm.get(HB) == "30"  # not first boot: the stored value stays
    ro = {
        "component": {"name": "OCPPCommCtrlr"},
        "variable": {"name": "MessageTimeout", "instance": "Default"},
        "attributeValue": "7",
    }
    assert model(tmp_path, [ro]).get("OCPPCommCtrlr/MessageTimeout:Default") == "7"


def test_bad_config_entries_are_logged_and_skipped(tmp_path):
    bad = [
        cv("OCPPCommCtrlr", "HeartbeatInterval", "abc"),
        {"component": {}},
        cv("Nope", "X", "1"),
    ]
    assert model(tmp_path, bad).get(HB) == "300"


def test_watchers_hear_changes(tmp_path):
    dm = model(tmp_path)
    seen = []
    dm.watch(HB, seen.append)
    dm.set(HB, "5")
    assert seen == ["5"]
    also = []
    dm.watch(HB, also.append)  # a second and a third watcher of the same key
    dm.watch(HB, lambda v: also.append(v + "!"))
    dm.set(HB, "6")
    assert seen == ["5", "6"] and also == ["6", "6!"]


def test_store_survives_a_leftover_temporary_file_and_garbage(tmp_path):
    s = Store(str(tmp_path / "a" / "b"))
    s.save("x", {"v": 1})
    (tmp_path / "a" / "b" / "x.json.tmp").write_text('{"v": 2')  # interrupted write
    assert s.load("x") == {"v": 1}
    (tmp_path / "a" / "b" / "x.json").write_text("{not json")
    assert s.load("x", "default") == "default"


def test_decimal_checks_are_strict():
    from firmware.device_model import _is_decimal

    good = ["0", "-1", "+2.5", "230.0", "12345.678"]
    bad = ["", ".", "1.", ".5", "1e3", "nan", "inf", "-inf", " 1", "1.2.3", "1,5", "--1"]
    assert [v for v in good if not _is_decimal(v)] == []
    assert [v for v in bad if _is_decimal(v)] == []


def test_clock_keeps_whole_seconds_over_an_integer_source():
    from clock import Clock

    c = Clock(lambda: 1795285072)
    c.set(1795285000.9)
    assert c.now() == 1795285000 and c.iso() == "2026-11-21T18:16:40Z"
    assert isinstance(c.now(), int)


DM_HEAP = """
import gc
import time

from firmware.device_model import DeviceModel
from firmware.variables import declarations
from store import Store


class Hw:
    phases = 3
    max_a = 32
    cable_a = None
    phase_switch = None


gc.collect()
a = gc.mem_alloc()
decls = declarations([Hw()])
gc.collect()
b = gc.mem_alloc()
dm = DeviceModel(Store(STATE), decls, (), ())
gc.collect()
c = gc.mem_alloc()
print(len(decls), b - a, c - b)
"""


def test_device_model_heap_on_micropython(tmp_path):
    """The device model's own heap, above its declarations (64-bit unix port; an ESP32, with
    4-byte pointers, needs about half)."""
    root = Path(__file__).resolve().parent.parent
    mp = root / ".venv" / "bin" / "micropython"
    if not mp.exists():
        pytest.skip("no MicroPython unix port in .venv")
    script = tmp_path / "dm_heap.py"
    script.write_text(DM_HEAP.replace("STATE", repr(str(tmp_path / "state"))))
    env = dict(os.environ, MICROPYPATH="%s:%s" % (root / "lib", root))
    out = subprocess.run(
        [str(mp), str(script)], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    n, decls_bytes, dm_bytes = map(int, out.stdout.split())
    print(
        "%d declarations: %d B for declarations(), %d B DeviceModel" % (n, decls_bytes, dm_bytes)
    )
    assert n == 137
    # the station's own row and each EVSE's figures: its 14 rows are made when asked for
    # (2048 B while they were kept)
    assert decls_bytes < 600
    assert dm_bytes < 5000  # two dicts of references: no per-variable objects, no key copies


def test_setting_reads_an_optional_variable_as_its_defaults_type(tmp_path):
    dm = model(tmp_path)
    dm.set("TxCtrlr/EVConnectionTimeOut", "45")
    assert dm.setting("TxCtrlr/EVConnectionTimeOut", 120) == 45
    assert dm.setting("TxCtrlr/StopTxOnInvalidId", False) is True  # default value "true"
    assert dm.setting("TxCtrlr/TxStartPoint", "") == dm.get("TxCtrlr/TxStartPoint")
    # Not declared in this device model: the default, of any type.
    assert dm.setting("LocalButton/IdToken", "") == ""
    assert dm.setting("Nope/Nothing", 7) == 7
    assert dm.setting("Nope/Nothing", True) is True


LIVE_SCRIPT = """
import micropython
from firmware.blocks.availability import Availability


class Avail:
    wish = {}
    evses = ()


a = Avail()
live = Availability._live
live(a, "TxCtrlr/TxStartPoint")
r = "alloc"
x = y = z = 0
micropython.heap_lock()
try:
    x = live(a, "TxCtrlr/TxStartPoint")
    y = live(a, "SampledDataCtrlr/TxUpdatedInterval")
    z = live(a, "AuthCtrlr/Enabled")
    r = "noalloc"
except MemoryError:
    pass
micropython.heap_unlock()
print(r, x is None and y is None and z is None)
print(live(a, "ChargingStation/Available"), live(a, "EVSE.1/Available"))
"""


def test_the_availability_states_cost_other_keys_no_allocation_on_micropython(tmp_path):
    # DeviceModel.get asks the availability block's live(key) for every key it reads (the
    # settings each tick of the timers): any other key must go without allocating.
    root = Path(__file__).resolve().parent.parent
    mp = root / ".venv" / "bin" / "micropython"
    if not mp.exists():
        pytest.skip("no MicroPython unix port in .venv")
    script = tmp_path / "live.py"
    script.write_text(LIVE_SCRIPT)
    env = dict(os.environ, MICROPYPATH=".frozen:%s:%s" % (root / "lib", root))
    out = subprocess.run([str(mp), str(script)], env=env, capture_output=True, text=True)
    assert out.stdout.split() == ["noalloc", "True", "true", "None"], out.stdout + out.stderr
