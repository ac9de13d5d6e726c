"""The whole firmware on an ESP32 board definition, over fake machine and network modules:
what a real board would run, minus the silicon."""

import asyncio
import json
import sys
import types

import pytest

import fake_machine


class _Wlan:
    def __init__(self, iface):
        self.active_ = False

    def active(self, on=None):
        if on is not None:
            self.active_ = on
        return self.active_

    def isconnected(self):
        return False

    def connect(self, ssid, password):
        pass

    def disconnect(self):
        pass


@pytest.fixture
def devkit(tmp_path, monkeypatch):
    m = fake_machine.install()
    m.unique_id = lambda: b"\x24\x0a\xc4\x01\x02\x03"
    net = types.ModuleType("network")
    net.STA_IF = 0
    net.WLAN = _Wlan
    monkeypatch.setitem(sys.modules, "network", net)
    for name in [n for n in sys.modules if n.startswith("boards.esp32")]:
        monkeypatch.delitem(sys.modules, name)
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"csms_url": "ws://127.0.0.1:1/ocpp", "wifi": {"ssid": "x"}}))
    import boards.esp32 as esp32
    from boards.esp32_devkit import BOARD

    yield esp32.Board(BOARD, config=str(cfg), state_dir=str(tmp_path / "state"))
    for name in ("machine", "esp32"):
        sys.modules.pop(name, None)


def test_the_station_boots_safe_on_the_devkit_and_feeds_the_watchdog(devkit):
    from firmware.main import Station

    station = Station(devkit)
    hw = devkit.evse_hw(1)
    # Every action the firmware answers has its validation table on the device.
    import ocpp_schema

    missing = [a for a in station.router.handlers if a + "Request" not in ocpp_schema.NAMES]
    assert missing == []
    assert station.dm.get("SecurityCtrlr/Identity") == "240AC4010203"
    assert hw.pilot.duty_pct == 100.0 and not hw.contactor.closed  # x1, open, from the start

    async def go():
        task = asyncio.create_task(station.run())
        await asyncio.sleep(0.5)
        station._stopped.set()
        await task

    asyncio.run(go())
    wdt = fake_machine.WDT.instances[-1]
    assert wdt.timeout == 5000 and wdt.feeds >= 3
    assert station.evses[0].last_step is not None
    # Stopping the station leaves the hardware safe: contactor open, pilot in F.
    assert not hw.contactor.closed and hw.pilot.duty_pct == 0.0


def _unstarted(station):
    """Close the coroutines a station built for `run`, which these tests never start."""
    for coro in station._waiting:
        coro.close()


def test_the_watchdog_starts_once_the_boot_has_verified_the_factory_roots(devkit, monkeypatch):
    """A factory root's self-signature takes seconds on a board: it is checked before the
    watchdog starts, else a first boot could starve it, and every boot after it too."""
    from firmware.blocks.certificates import Certificates
    from firmware.main import Station

    seen = []
    factory, wdt = Certificates._factory, devkit.wdt
    monkeypatch.setattr(
        Certificates, "_factory", lambda s, st: (seen.append("roots"), factory(s, st))
    )
    monkeypatch.setattr(devkit, "wdt", lambda ms: (seen.append("wdt"), wdt(ms))[1])
    Station(devkit)
    assert seen == ["roots", "wdt"]


def test_main_knows_the_lazy_blocks_records_without_importing_them():
    # firmware/main.py loads the update block and the local list at boot only when their
    # record is on flash.
    from firmware import main
    from firmware.blocks import display_messages, firmware_update, local_list, reservation

    assert main._MONITOR[1] == "firmware.blocks.monitoring"
    assert main._MONITOR[2] == "monitoring"  # monitoring.STORE (importing it costs heap)
    assert main._MESSAGES[1] == "firmware.blocks.display_messages"
    assert main._MESSAGES[2] == display_messages._STORE
    assert main._RESERVE[1] == "firmware.blocks.reservation"
    assert main._RESERVE[2] == reservation._STORE
    assert main._UPDATE[1] == "firmware.blocks.firmware_update"
    assert main._UPDATE[2] == firmware_update._STORE
    assert main._LOCAL_LIST[1] == "firmware.blocks.local_list"
    assert main._LOCAL_LIST[2] == local_list._STORE


def test_each_lazy_block_is_built_on_its_first_call(devkit):
    from firmware import main

    station = main.Station(devkit)
    lazy = main.LAZY + (main._LOCAL_LIST, main._UPDATE, main._RESERVE, main._MESSAGES)
    lazy += (main._MONITOR,)
    for actions, *_ in lazy:
        for action in actions:
            assert action not in station.router.handlers  # not built: only its loader
    assert station.local_list is None and station.firmware is None
    assert station.firmware_status() == ("Idle", None)
    for actions, module, *_ in lazy:
        handler, _ = station.router.entry(actions[0])
        assert handler.__self__.__class__.__module__ == module
        for action in actions:
            assert type(station.router.handlers[action]) is tuple
    assert type(station.local_list).__name__ == "LocalList"
    assert station.firmware_status() == station.firmware.status() == ("Idle", None)
    _unstarted(station)


def test_a_stored_local_list_loads_its_block_at_boot(devkit):
    from firmware import main
    from store import Store

    Store(devkit.state_dir).save("local_list", {"version": 3, "list": {}})
    station = main.Station(devkit)
    assert station.local_list is not None and station.local_list.version == 3
    assert type(station.router.handlers["SendLocalList"]) is tuple
    _unstarted(station)


def test_stored_monitors_load_their_block_at_boot(devkit):
    from firmware import main
    from firmware.blocks import monitoring
    from store import Store

    m = [1, "EVSE.1/Power", 0, 7000, 5, False]
    Store(devkit.state_dir).save(
        monitoring.STORE, {"next": 2, "level": 9, "base": "All", "m": [m]}
    )
    station = main.Station(devkit)
    handler, _ = station.router.handlers["SetVariableMonitoring"]
    assert handler.__self__.monitors == [m + [None]]
    _unstarted(station)


def test_stored_display_messages_load_their_block_at_boot(devkit):
    from firmware import main
    from store import Store

    Store(devkit.state_dir).save(
        "display_messages", [[1, "NormalCycle", "UTF8", "Hi", None, None, None, None, None]]
    )
    station = main.Station(devkit)
    assert type(station.router.handlers["GetDisplayMessages"]) is tuple
    assert station.dm.get("DisplayMessageCtrlr/DisplayMessages") == "1"
    assert station.dm.get("DisplayMessageCtrlr/Available") == "false"  # no display here
    _unstarted(station)


def test_stored_reservations_load_their_block_at_boot(devkit):
    from firmware import main
    from store import Store

    Store(devkit.state_dir).save("reservations", [[4, 2000000000, "Central:r1", None, 1, None]])
    station = main.Station(devkit)
    assert type(station.router.handlers["ReserveNow"]) is tuple
    assert station.availability.status(station.evses[0]) == "Reserved"
    _unstarted(station)


def test_the_base_board_declares_the_optional_capabilities_as_none():
    from boards import Board

    b = Board()
    b.identity, b.settings = "X1", {"security_profile": 2}
    assert b.app_partition() is None and b.running_app() is None
    assert b.confirm_app() is None and b.safe() is None
    assert b.display is None and b.led is None  # firmware/display.py: none
    assert b.factory_variables() == (
        ("SecurityCtrlr/Identity", "X1"),
        ("SecurityCtrlr/SecurityProfile", "2"),
    )


def test_both_boards_are_boards(devkit, tmp_path):
    import boards
    from boards.sim import Board as SimBoard

    sim = SimBoard(["--state-dir", str(tmp_path / "sim"), "--id", "S1"])
    for b in (devkit, sim):
        assert isinstance(b, boards.Board)
    # The sim's host target takes no images: the base's answers; the devkit has OTA slots.
    assert sim.app_partition() is None and sim.running_app() is None
    assert sim.factory_variables()[1] == ("SecurityCtrlr/SecurityProfile", "1")
    assert devkit.factory_variables()[0] == ("SecurityCtrlr/Identity", "240AC4010203")


def test_blocks_get_what_they_use_and_nothing_probes_for_it():
    # The wiring is explicit (firmware/main.py): no part of the firmware but main is handed
    # the station, so none registers itself on it, and nothing asks getattr whether a
    # station, block or board has something (boards.Board declares the optional capabilities).
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    for path in sorted((root / "firmware").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id != "getattr", "%s:%d" % (path, node.lineno)
            if path.name == "main.py":
                continue
            if isinstance(node, ast.arg):
                assert node.arg != "station", "%s:%d" % (path, node.lineno)
            if isinstance(node, ast.Attribute):
                assert node.attr != "station", "%s:%d" % (path, node.lineno)
    # The sim's control channel may dispatch on its own commands, nothing else.
    src = (root / "boards" / "sim" / "control.py").read_text()
    assert src.count("getattr(") == src.count('getattr(self, "cmd_"') == 1


def test_a_reboot_is_one_path_closing_the_link_and_the_contactors(devkit, monkeypatch):
    from firmware import main

    station = main.Station(devkit)
    _unstarted(station)
    done = []
    monkeypatch.setattr(devkit, "reboot", lambda: done.append("reset"))

    async def close():
        done.append("close")

    monkeypatch.setattr(station.connection, "close", close)
    hw = devkit.evse_hw(1)
    hw.contactor.close()
    asyncio.run(station.reboot("RemoteReset"))
    assert done == ["close", "reset"] and not hw.contactor.closed
    assert station.store.load("boot") == {"count": 1, "reason": "RemoteReset"}
    # What the logs on flash held in RAM was written before the reset.
    logs = devkit.state_dir + "/logs/"
    assert open(logs + "diagnostics.0.log").read().endswith(" I main: rebooting (RemoteReset)\n")


def test_the_logs_live_in_the_state_folder_at_the_level_of_a_variable(devkit):
    import os

    import log
    from firmware import main

    station = main.Station(devkit)
    _unstarted(station)
    assert log.file.name == "diagnostics" and station.security.journal.name == "security"
    assert log.boot == station.boot_count == 1 and log.file_level == 1
    assert not os.path.exists(devkit.state_dir + "/logs")  # nothing written yet: buffered
    station.dm.set("DiagnosticsCtrlr/LogLevel", "Warning")
    assert log.file_level == 2
    log.info("t", "not kept")
    log.warn("t", "kept")
    station.security.event("InvalidCsmsCertificate", "expired")  # written at once
    log.file.flush()
    logs = devkit.state_dir + "/logs/"
    assert sorted(os.listdir(logs)) == ["diagnostics.0.log", "security.0.log"]
    got = [s.split(" ", 1)[1] for s in log.file.lines()]
    # The boot's lines came at the Info level of then; the security event's info line is
    # below Warning here, and in the security log.
    assert got[0] == "I main: boot 1, reason PowerUp" and got[-1] == "W t: kept"
    (sec,) = station.security.journal.lines()
    assert sec.endswith(" I security: event InvalidCsmsCertificate (expired)")
    # The level persists: the next boot keeps Warning from its first line on.
    station = main.Station(devkit)
    _unstarted(station)
    assert log.file_level == 2 and log.boot == 2


# A background task that fails, on MicroPython (the firmware's own asyncio): the station's loop
# logs it as it ends, without a wrapper coroutine per task.
MP_FAILING_TASK = """
import asyncio
import sys

import log
from boards.sim import Board
from firmware.main import Station

st = Station(Board(["--state-dir", sys.argv[1]]))
log.stream = sys.stdout


async def broken():
    raise ValueError("broken")


async def go():
    run = asyncio.create_task(st.run())
    await asyncio.sleep_ms(50)
    st.spawn(broken())
    await asyncio.sleep_ms(50)
    print("still running", not run.done())
    st._stopped.set()
    await run


asyncio.run(go())
"""


def test_a_failing_background_task_is_logged_on_micropython(tmp_path):
    import os
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    mp = root / ".venv" / "bin" / "micropython"
    if not mp.exists():
        pytest.skip("no MicroPython unix port in .venv")
    (tmp_path / "failing.py").write_text(MP_FAILING_TASK)
    env = dict(os.environ, MICROPYPATH=".frozen:%s:%s" % (root / "lib", root))
    out = subprocess.run(
        [str(mp), "failing.py", str(tmp_path / "state")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 0, out.stderr
    assert "background task failed: ValueError('broken',)" in out.stdout
    assert "still running True" in out.stdout


def test_the_config_files_variables_go_to_the_device_model_and_leave_the_settings(devkit):
    from firmware.main import Station

    devkit.settings["variables"] = [
        {
            "component": {"name": "OCPPCommCtrlr"},
            "variable": {"name": "HeartbeatInterval"},
            "attributeValue": "77",
        }
    ]
    station = Station(devkit)
    assert station.dm.get("OCPPCommCtrlr/HeartbeatInterval") == "77"
    assert "variables" not in devkit.settings  # the device model's now: no second copy in RAM


def test_the_station_flushes_the_logs_each_second_and_the_auth_cache_each_minute(
    devkit, monkeypatch
):
    from firmware import main

    monkeypatch.setattr(main, "_TURN_MS", 5)  # a minute of turns in 3 s
    station = main.Station(devkit)
    flushes = []
    monkeypatch.setattr(station.authorization, "flush", lambda: flushes.append("cache"))
    monkeypatch.setattr(main.log.file, "flush", lambda: flushes.append("log"))

    async def go():
        task = asyncio.create_task(station.run())
        for _ in range(3000):  # up to 30 s on a loaded machine
            if "cache" in flushes:
                break
            await asyncio.sleep(0.01)
        station._stopped.set()
        await task

    asyncio.run(go())
    # The logs every 10th turn, the cache on the 600th, after that turn's log flush.
    assert flushes.count("cache") == 1 and flushes.index("cache") == 60


def test_the_auth_cache_flush_logs_a_failing_flash_and_goes_on(devkit, logged, monkeypatch):
    from firmware import main

    station = main.Station(devkit)
    _unstarted(station)

    def full(force=False):
        raise OSError(28, "no space")

    monkeypatch.setattr(station.authorization.cache, "flush", full)
    station.authorization.flush()
    assert "cache flush: OSError(28" in logged.getvalue()
