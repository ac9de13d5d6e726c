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


def test_main_knows_the_update_blocks_record_without_importing_it():
    # firmware/main.py loads the update block at boot only when its record is on flash.
    from firmware import main
    from firmware.blocks import firmware_update

    assert main._UPDATE_DOC == firmware_update._STORE
    assert main._UPDATE[1:] == ("firmware.blocks.firmware_update", "FirmwareUpdate")
