"""ESP32 board definitions (boards/esp32.py, boards/esp32_devkit, boards/smartevse_v3) built on
the fake machine module; and the layering rule: only boards/ touches the hardware modules."""

import asyncio
import json
import re
import sys
import time
import types
from pathlib import Path

import pytest

import fake_display
import fake_machine

ROOT = Path(__file__).resolve().parent.parent
MAC = b"\x24\x0a\xc4\x12\x34\x56"


_BOARD_MODULES = ("boards.esp32", "boards.esp32_devkit", "boards.smartevse_v3")


@pytest.fixture
def machine():
    """The fake machine module installed around one test; board modules imported afresh."""
    saved = {n: sys.modules.get(n) for n in ("machine", "esp32")}
    for n in _BOARD_MODULES:
        sys.modules.pop(n, None)
    m = fake_machine.install()
    m.unique_id = lambda: MAC
    yield m
    for n in _BOARD_MODULES:
        sys.modules.pop(n, None)
    for n, mod in saved.items():
        if mod is None:
            sys.modules.pop(n, None)
        else:
            sys.modules[n] = mod


class FakeMaster:
    def __init__(self, uart, de=None, baudrate=9600, timeout_ms=200, retries=2):
        self.uart, self.de, self.baudrate = uart, de, baudrate


class FakeMeter:
    def __init__(self, kind, master, addr, signed=False):
        if kind not in ("sdm630", "sdm120", "abb_b23", "eem350"):
            raise ValueError("unknown meter %r" % kind)  # as make_meter
        self.kind, self.master, self.addr, self.signed = kind, master, addr, signed


class FakeS0:
    def __init__(self, pin, imp_per_kwh=1000, load=None, save=None, **kw):
        self.pin, self.imp_per_kwh, self.load, self.save = pin, imp_per_kwh, load, save


@pytest.fixture
def meters(monkeypatch):
    """Stand-ins for the meter drivers (written elsewhere): the boards import them lazily."""
    mb = types.ModuleType("boards.drivers.meter_modbus")
    mb.ModbusMaster = FakeMaster
    mb.make_meter = FakeMeter
    s0 = types.ModuleType("boards.drivers.meter_s0")
    s0.S0Meter = FakeS0
    monkeypatch.setitem(sys.modules, "boards.drivers.meter_modbus", mb)
    monkeypatch.setitem(sys.modules, "boards.drivers.meter_s0", s0)


@pytest.fixture
def displays(monkeypatch):
    """Stand-ins for the display controllers' drivers: CPython has no framebuf."""
    fake_display.install(monkeypatch)


@pytest.fixture
def board_env(machine, meters, displays, tmp_path, monkeypatch):
    """Config file and state directory in tmp_path instead of the device's /config.json, /state."""
    import boards.esp32 as esp32

    cfg = tmp_path / "config.json"
    monkeypatch.setattr(esp32, "CONFIG", str(cfg))
    monkeypatch.setattr(esp32, "STATE_DIR", str(tmp_path / "state"))
    return cfg


def gpio(pin):
    return pin.id


# -- the DevKit --------------------------------------------------------------------------------


def test_devkit_pins_and_levels(board_env, machine):
    from boards import esp32_devkit

    board = esp32_devkit.create()
    hw = board.evse_hw(1)
    pilot = hw.pilot
    assert gpio(pilot._pwm.pin) == 27 and pilot._pwm.pin.mode == machine.Pin.OUT
    assert pilot._pwm.freq() == 1000
    assert pilot._pwm.duty_u16() == 65535  # x1 from the start
    assert gpio(pilot._adc.pin) == 36 and pilot._adc.atten == machine.ADC.ATTN_11DB
    assert pilot._th == (2262, 1973, 1693, 1404, 723, 303)
    assert pilot._mv_full == 3300  # the fake ADC reads 0: no calibration
    prox = hw.proximity
    assert gpio(prox._adc.pin) == 39 and prox._adc.atten == machine.ADC.ATTN_11DB
    c = hw.contactor
    assert [gpio(p) for p in c._outputs] == [26]
    assert [p.value() for p in c._outputs] == [0] and c.closed is False
    assert gpio(c._mirror) == 4 and c._mirror.pull == machine.Pin.PULL_UP
    assert c._mirror_closed == 0
    c._mirror._value = 0
    assert c.feedback() is True
    rcd = hw.rcd
    assert gpio(rcd._fault) == 13 and rcd._fault.pull == machine.Pin.PULL_UP
    assert rcd._fault.mode == machine.Pin.IN
    assert rcd.has_test and gpio(rcd._test) == 23 and rcd._test.value() == 0
    assert hw.lock is None
    assert hw.phase_switch is None
    meter = hw.meter
    assert (meter.kind, meter.addr, meter.signed) == ("sdm120", 1, False)
    assert board.mains_meter is None
    uart = meter.master.uart
    assert (uart.id, uart.baudrate, uart.parity, uart.kw["tx"], uart.kw["rx"]) == (
        1,
        2400,
        None,
        25,
        32,
    )
    assert gpio(meter.master.de) == 33 and meter.master.de.value() == 0
    assert (hw.max_a, hw.phases, hw.ventilation, hw.cable_a) == (16, 1, False, None)
    assert board.evses == 1
    assert board.serial == "240AC4123456"
    assert board.state_dir.endswith("state")
    assert board.settings == {}


def test_devkit_outputs_avoid_strapping_and_input_only_pins():
    from boards.esp32_devkit import BOARD

    e = BOARD["evses"][0]
    m = e["meter"]
    outputs = [e["cp_out"], e["rcd_test"], m["tx"], m["de"], *e["contactor"]]
    for g in outputs:
        assert g not in (0, 2, 5, 12, 15) and not 34 <= g <= 39 and not 6 <= g <= 11
    inputs = [e["cp_in"], e["pp_in"], e["mirror"], e["rcd_fault"], m["rx"]]
    used = outputs + inputs
    assert len(set(used)) == len(used)  # no pin twice
    assert e["cp_in"] in range(32, 40) and e["pp_in"] in range(32, 40)  # ADC1 only (Wi-Fi)
    for g in (e["mirror"], e["rcd_fault"]):  # inputs with pull-ups: not 34..39
        assert not 34 <= g <= 39


def test_devkit_thresholds_follow_its_divider():
    """CP -> 100k -> node, 24k to 3V3, 18k to GND; hardware.md's CP-side splits."""
    from boards.esp32_devkit import BOARD

    def pin_mv(v):
        r1, r2, r3 = 100e3, 24e3, 18e3
        return (v / r1 + 3.3 / r2) / (1 / r1 + 1 / r2 + 1 / r3) * 1000

    assert pin_mv(12) <= 2450 and pin_mv(-12) >= 150  # inside the 11 dB linear range
    th = BOARD["evses"][0]["cp_th"]
    assert th == tuple(round(pin_mv(v)) for v in (10.5, 7.4, 4.4, 1.3, -6.0, -10.5))
    # every nominal level sits >= 100 mV from the thresholds around it
    for volts in (12, 9, 6, 3, 0, -12):
        assert min(abs(pin_mv(volts) - t) for t in th[:5]) >= 100


def test_devkit_pp_bands_hold_each_resistor():
    from boards.drivers.proximity import Proximity
    from boards.esp32_devkit import PP_BANDS

    adc = fake_machine.ADC(fake_machine.Pin(39))
    prox = Proximity(adc, PP_BANDS, 3300)
    for ohms, amps in ((1500, 13), (680, 20), (220, 32), (100, 63)):
        for tol in (0.75, 1.0, 1.3):
            adc.samples = [int(3300 * ohms * tol / (1000 + ohms * tol) * 65535 / 3300)]
            assert prox.read_amps() == amps, (ohms, tol)
    for mv in (0, 3300, 3100):
        adc.samples = [mv * 65535 // 3300]
        assert prox.read_amps() is None


# -- SmartEVSE v3 ---------------------------------------------------------------------------


def test_smartevse_v3_pins_and_levels(board_env, machine):
    from boards import smartevse_v3

    board = smartevse_v3.create()
    hw = board.evse_hw(1)
    assert [gpio(p) for p in board._held] == [15] and board._held[0].value() == 0
    pilot = hw.pilot
    assert gpio(pilot._pwm.pin) == 19 and pilot._pwm.duty_u16() == 65535
    assert gpio(pilot._adc.pin) == 39 and pilot._adc.atten == machine.ADC.ATTN_11DB
    assert pilot._th == (3055, 2735, 2400, 2000, 1000, 400)
    prox = hw.proximity
    assert gpio(prox._adc.pin) == 34 and prox._adc.atten == machine.ADC.ATTN_6DB
    assert prox._mv_full == 2200
    c = hw.contactor
    assert [gpio(p) for p in c._outputs] == [32] and c.feedback() is None
    ps = hw.phase_switch  # C2: L2/L3, open from the start (L1 only until closed)
    assert [gpio(p) for p in ps._outputs] == [27] and ps.feedback() is None
    assert ps._outputs[0].value() == 0 and ps.closed is False
    assert gpio(hw.rcd._fault) == 13 and hw.rcd.has_test is False
    lock = hw.lock
    assert (gpio(lock._a), gpio(lock._b), gpio(lock._fb)) == (17, 18, 35)
    assert lock._a.value() == 0 and lock._b.value() == 0
    meter = hw.meter
    assert (meter.kind, meter.addr) == ("sdm630", 1)
    uart = meter.master.uart
    assert (uart.id, uart.baudrate, uart.kw["tx"], uart.kw["rx"]) == (1, 9600, 21, 23)
    assert gpio(meter.master.de) == 22
    assert (hw.max_a, hw.phases, hw.cable_a) == (32, 3, None)
    assert board.MODEL == "SmartEVSE v3.0" and board.VENDOR == "mpwallbox"


def test_smartevse_v3_derived_thresholds():
    """E/F and diode from pin mV ~= 1800 + 133.3 x CP volts (the vendor's band centres)."""
    from boards.smartevse_v3 import BOARD

    th = BOARD["evses"][0]["cp_th"]

    def line(v):
        return 1800 + (1800 - 200) / 12 * v

    assert th[4] == round(line(-6.0)) and th[5] == round(line(-10.5))
    assert abs(th[2] - line(4.4)) < 30 and abs(th[3] - line(1.3)) < 30


# -- composition details ----------------------------------------------------------------------


def test_config_overrides(board_env, machine):
    board_env.write_text(
        json.dumps(
            {
                "csms_url": "ws://csms/ocpp",
                "id": "WB-1",
                "security_profile": 2,
                "cable_a": 20,
                "max_a": 10,
                "meter": {"addr": 7, "baudrate": 9600},
            }
        )
    )
    from boards import esp32_devkit

    board = esp32_devkit.create()
    hw = board.evse_hw(1)
    assert hw.proximity is None and hw.cable_a == 20  # tethered: no PP
    assert hw.max_a == 10
    assert hw.meter.addr == 7 and hw.meter.master.uart.baudrate == 9600
    assert board.settings["csms_url"] == "ws://csms/ocpp"
    assert board.factory_variables() == (
        ("SecurityCtrlr/Identity", "WB-1"),
        ("SecurityCtrlr/SecurityProfile", "2"),
    )


def test_max_a_cannot_be_raised(board_env, machine):
    board_env.write_text(json.dumps({"max_a": 63}))
    from boards import esp32_devkit

    assert esp32_devkit.create().evse_hw(1).max_a == 16


def test_unreadable_config_is_empty(board_env, machine):
    board_env.write_text("{not json")
    from boards import esp32_devkit

    board = esp32_devkit.create()
    assert board.settings == {}
    assert board.factory_variables()[0] == ("SecurityCtrlr/Identity", "240AC4123456")


def test_s0_meter_and_shared_bus(board_env, machine, tmp_path):
    import boards.esp32 as esp32
    from boards.esp32_devkit import BOARD

    data = dict(BOARD)
    e1 = dict(BOARD["evses"][0])
    e2 = dict(e1, cp_out=18, cp_in=35, pp_in=34, contactor=(21,), mirror=None, rcd_fault=22)
    e2["rcd_test"] = None
    e1["meter"] = {"kind": "s0", "pin": 16, "pull": "up", "imp_per_kwh": 800}
    data["evses"] = (e1, e2, dict(e2, cp_out=5))
    board = esp32.Board(data)
    s0 = board.evse_hw(1).meter
    assert isinstance(s0, FakeS0) and s0.imp_per_kwh == 800 and gpio(s0.pin) == 16
    assert s0.pin.pull == machine.Pin.PULL_UP
    assert s0.load() is None
    s0.save(1234.5)
    assert s0.load() == 1234.5  # persisted under the state directory
    assert (tmp_path / "state" / "s0_1.json").exists()
    assert board.evse_hw(2).meter.master is board.evse_hw(3).meter.master  # one RS-485 bus


# -- the mains meter and the phase switch --------------------------------------------------


def test_mains_meter_from_board_data(board_env, machine, logged):
    import boards.esp32 as esp32
    from boards.esp32_devkit import BOARD

    mains = dict(BOARD["evses"][0]["meter"], kind="sdm630", addr=3)
    board = esp32.Board(dict(BOARD, mains_meter=mains))
    m, evse = board.mains_meter, board.evse_hw(1).meter
    assert (m.kind, m.addr, m.signed) == ("sdm630", 3, True)
    assert m.master is evse.master  # one RS-485 bus, one master
    assert (evse.kind, evse.addr, evse.signed) == ("sdm120", 1, False)
    assert "mains meter" not in logged.getvalue()


def test_mains_meter_from_config_over_the_first_evse_meter(board_env, machine, logged):
    board_env.write_text(
        json.dumps({"meter": {"baudrate": 9600}, "mains_meter": {"kind": "sdm630", "addr": 2}})
    )
    from boards import esp32_devkit

    board = esp32_devkit.create()
    m, evse = board.mains_meter, board.evse_hw(1).meter
    assert (m.kind, m.addr, m.signed) == ("sdm630", 2, True)
    assert m.master is evse.master
    assert m.master.uart.baudrate == 9600 and gpio(m.master.de) == 33  # the EVSE's bus
    assert (evse.kind, evse.addr, evse.signed) == ("sdm120", 1, False)  # unchanged
    assert esp32_devkit.BOARD["mains_meter"] is None
    assert "error" not in logged.getvalue().lower()


def test_mains_meter_config_merged_over_the_boards_own(board_env, machine):
    import boards.esp32 as esp32
    from boards.smartevse_v3 import BOARD

    board_env.write_text(json.dumps({"mains_meter": {"addr": 5}}))
    mains = dict(BOARD["evses"][0]["meter"], uart=2, rx=4, tx=5, de=None, kind="abb_b23")
    board = esp32.Board(dict(BOARD, mains_meter=mains))
    m = board.mains_meter
    assert (m.kind, m.addr, m.signed) == ("abb_b23", 5, True)
    assert m.master is not board.evse_hw(1).meter.master and m.master.uart.id == 2
    assert m.master.de is None


@pytest.mark.parametrize(
    "cfg,why",
    [
        ({"kind": "s0", "pin": 16}, "S0 gives no current"),
        ({"kind": "sdm72", "addr": 2}, "unknown meter"),
        ("sdm630", "mains meter"),  # not a dict
    ],
)
def test_bad_mains_meter_is_logged_and_the_boot_goes_on(board_env, machine, logged, cfg, why):
    board_env.write_text(json.dumps({"mains_meter": cfg}))
    from boards import esp32_devkit

    board = esp32_devkit.create()
    assert board.mains_meter is None
    assert board.evse_hw(1).meter.kind == "sdm120"  # the rest is built
    out = logged.getvalue()
    assert " E board: mains meter " in out and why in out


def test_mains_meter_without_a_modbus_bus_to_share(board_env, machine, logged):
    # The first EVSE counts S0 pulses: no bus to add the meter to, the config must name one.
    import boards.esp32 as esp32
    from boards.esp32_devkit import BOARD

    board_env.write_text(json.dumps({"mains_meter": {"kind": "sdm630", "addr": 2}}))
    e = dict(BOARD["evses"][0], meter={"kind": "s0", "pin": 16})
    board = esp32.Board(dict(BOARD, evses=(e,)))
    assert board.mains_meter is None
    assert "KeyError" in logged.getvalue() and "'uart'" in logged.getvalue()
    board_env.write_text(
        json.dumps({"mains_meter": dict(BOARD["evses"][0]["meter"], kind="eem350", addr=2)})
    )
    m = esp32.Board(dict(BOARD, evses=(e,))).mains_meter
    assert (m.kind, m.addr, m.signed) == ("eem350", 2, True)


def test_s0_mains_meter_in_board_data_is_refused(board_env, machine, logged):
    import boards.esp32 as esp32
    from boards.esp32_devkit import BOARD

    board = esp32.Board(dict(BOARD, mains_meter={"kind": "s0", "pin": 16}))
    assert board.mains_meter is None and "S0 gives no current" in logged.getvalue()


def test_phase_switch_only_on_three_phase_evses(board_env, machine, logged, monkeypatch):
    import boards.esp32 as esp32
    from boards.esp32_devkit import BOARD

    made = []

    class Pin(fake_machine.Pin):
        def __init__(self, id, *a, **kw):
            super().__init__(id, *a, **kw)
            made.append(self)

    monkeypatch.setattr(machine, "Pin", Pin)
    e1 = dict(BOARD["evses"][0], phases=3, max_a=32, phase_switch=(21, 22))
    e1.update(phase_switch_mirror=35, phase_switch_mirror_closed=0)
    e2 = dict(BOARD["evses"][0], cp_out=18, cp_in=35, pp_in=34, contactor=(5,), mirror=None)
    e2.update(rcd_fault=14, rcd_test=None, meter=None, phase_switch=(19,))  # 1 phase
    # The devkit's display (I2C on 21/22) and LEDs (19, 18, 17) left out: their pins used here.
    board = esp32.Board(dict(BOARD, evses=(e1, e2), display=None, led=None))
    ps = board.evse_hw(1).phase_switch
    assert [gpio(p) for p in ps._outputs] == [21, 22]
    assert [p.value() for p in ps._outputs] == [0, 0] and ps.closed is False  # open: safe
    assert [p.mode for p in ps._outputs] == [machine.Pin.OUT] * 2
    assert gpio(ps._mirror) == 35 and ps._mirror.pull is None and ps._mirror_closed == 0
    ps._mirror._value = 0
    assert ps.feedback() is True
    ps.close()
    assert board.evse_hw(1).contactor.closed is False  # its own outputs
    assert [gpio(p) for p in board.evse_hw(1).contactor._outputs] == [26]
    assert board.evse_hw(2).phase_switch is None
    assert 19 not in [gpio(p) for p in made]  # ignored: its pin never driven
    assert " E board: EVSE 2: phase_switch needs 3 phases, not 1: ignored" in logged.getvalue()
    e3 = dict(e1, phase_switch=(21,))
    del e3["phase_switch_mirror"], e3["phase_switch_mirror_closed"]
    ps = esp32.Board(dict(BOARD, evses=(e3,), display=None, led=None)).evse_hw(1).phase_switch
    assert ps.feedback() is None and ps._mirror_closed == 1


def test_safe_opens_the_phase_switch_too(board_env, machine):
    from boards import smartevse_v3

    board = smartevse_v3.create()
    hw = board.evse_hw(1)
    hw.contactor.close()
    hw.phase_switch.close()
    board.safe()
    assert hw.contactor.closed is False and hw.phase_switch.closed is False
    assert hw.phase_switch._outputs[0].value() == 0


def test_calibration(machine):
    import boards.esp32 as esp32

    class Adc(fake_machine.ADC):
        def __init__(self, raw, mv_per_full):
            super().__init__(fake_machine.Pin(36))
            self.samples = [raw]
            self.full = mv_per_full

        def read_uv(self):
            return self.read_u16() * self.full * 1000 // 65535

    assert esp32.calibrate(Adc(46000, 3450), 3300, (1000, 2450)) == 3450
    assert esp32.calibrate(Adc(46000, 3450), 3300, None) == 3300
    assert esp32.calibrate(Adc(60000, 3450), 3300, (1000, 2450)) == 3300  # 3159 mV: too high
    assert esp32.calibrate(Adc(10000, 3450), 3300, (1000, 2450)) == 3300  # 526 mV: too low
    assert esp32.calibrate(Adc(40000, 4500), 3300, (1000, 2450)) == 3300  # 36 % off: ignored
    assert esp32.calibrate(Adc(0, 3450), 3300, (0, 2450)) == 3300


def test_calibrated_cp_is_shared_with_pp(board_env, machine, monkeypatch):
    class Adc(fake_machine.ADC):
        def __init__(self, pin, atten=None):
            super().__init__(pin, atten)
            self.samples = [45000]

        def read_uv(self):
            return self.read_u16() * 3400 * 1000 // 65535

    monkeypatch.setattr(machine, "ADC", Adc)
    from boards import esp32_devkit

    hw = esp32_devkit.create().evse_hw(1)
    assert hw.pilot._mv_full == 3400 and hw.proximity._mv_full == 3400


def test_board_services(board_env, machine, monkeypatch):
    from boards import esp32_devkit

    board = esp32_devkit.create()
    w = board.wdt(5000)
    assert isinstance(w, fake_machine.WDT) and w.timeout == 5000
    t = board.unix_time()
    assert isinstance(t, int) and abs(t - time.time()) < 2
    assert len(board.urandom(16)) == 16
    assert board.boot_reason() is None
    machine.WDT_RESET = 3
    machine.reset_cause = lambda: 3
    assert board.boot_reason() == "Watchdog"
    hw = board.evse_hw(1)
    hw.contactor.close()
    hw.pilot.offer(16)
    with pytest.raises(SystemExit):
        board.reboot()
    assert hw.contactor.closed is False and hw.contactor._outputs[0].value() == 0
    assert hw.pilot.duty_pct == 0.0
    assert machine.resets


class FakeWlan:
    def __init__(self, connect_after=2):
        self.calls = []
        self.polls = 0
        self.connect_after = connect_after
        self._active = False

    def active(self, on=None):
        if on is not None:
            self._active = on
        return self._active

    def isconnected(self):
        self.polls += 1
        return any(c[0] == "connect" for c in self.calls) and self.polls > self.connect_after

    def connect(self, ssid, password):
        self.calls.append(("connect", ssid, password))

    def disconnect(self):
        self.calls.append(("disconnect",))

    def ifconfig(self):
        return ("192.0.2.7", "255.255.255.0", "192.0.2.1", "192.0.2.1")


def test_wifi_task_connects_without_blocking(board_env, machine, monkeypatch):
    import boards.esp32 as esp32

    board_env.write_text(json.dumps({"wifi": {"ssid": "garage", "password": "pw"}}))
    wlan = FakeWlan()
    net = types.ModuleType("network")
    net.STA_IF = 0
    net.WLAN = lambda i: wlan
    monkeypatch.setitem(sys.modules, "network", net)
    monkeypatch.setattr(esp32, "_WIFI_POLL_MS", 5)
    from boards import esp32_devkit

    board = esp32_devkit.create()
    assert board.network_up() is False

    async def go():
        (task,) = [asyncio.create_task(c) for c in board.tasks(None)]
        ticks = 0
        while not wlan.isconnected():
            await asyncio.sleep(0.001)  # the loop keeps running meanwhile
            ticks += 1
        task.cancel()
        return ticks

    assert asyncio.run(go()) > 0
    assert wlan.active() is True
    assert ("connect", "garage", "pw") in wlan.calls
    assert board.network_up() is True


def test_no_wifi_no_task(board_env, machine):
    from boards import esp32_devkit

    assert esp32_devkit.create().tasks(None) == []


# -- layering ---------------------------------------------------------------------------------

_HW_IMPORT = re.compile(r"^\s*(import|from)\s+(machine|esp32|network)\b", re.M)


def _sources(*dirs):
    for d in dirs:
        yield from sorted((ROOT / d).rglob("*.py"))


def test_only_boards_import_hardware_modules():
    offenders = [
        str(p.relative_to(ROOT))
        for p in _sources("firmware", "lib")
        if _HW_IMPORT.search(p.read_text())
    ]
    assert offenders == []


def test_drivers_receive_their_pins():
    """boards/drivers never import machine: each driver is handed ready-made pins."""
    pat = re.compile(r"^\s*(import|from)\s+machine\b", re.M)
    offenders = [
        str(p.relative_to(ROOT)) for p in _sources("boards/drivers") if pat.search(p.read_text())
    ]
    assert offenders == []


def test_board_modules_import_without_machine():
    """The data modules import nothing hardware-specific until create() runs."""
    import importlib

    for name in ("boards.esp32_devkit", "boards.smartevse_v3"):
        sys.modules.pop(name, None)
        saved = sys.modules.pop("machine", None)
        try:
            mod = importlib.import_module(name)
            assert "machine" not in sys.modules
            assert mod.BOARD["evses"]
        finally:
            if saved is not None:
                sys.modules["machine"] = saved
            sys.modules.pop(name, None)


MP_SCRIPT = """
import sys


class Pin:
    IN, OUT = 1, 3
    PULL_UP, PULL_DOWN = 2, 1

    def __init__(self, id, mode=-1, pull=None, value=None):
        self.id, self.mode, self.pull, self.v = id, mode, pull, value or 0

    def value(self, v=None):
        if v is None:
            return self.v
        self.v = v


class PWM:
    def __init__(self, pin, freq=0, duty_u16=0):
        self.pin, self.f, self.d = pin, freq, duty_u16

    def duty_u16(self, d=None):
        if d is None:
            return self.d
        self.d = d


class ADC:
    ATTN_0DB, ATTN_2_5DB, ATTN_6DB, ATTN_11DB = 0, 1, 2, 3

    def __init__(self, pin, atten=None):
        self.pin, self.atten = pin, atten

    def read_u16(self):  # +12 V on the DevKit's front end: 2402 mV
        return 47700

    def read_uv(self):
        return 2402000


class UART:
    def __init__(self, id, **kw):
        self.id = id


class M:
    pass


m = M()
m.Pin, m.PWM, m.ADC, m.UART = Pin, PWM, ADC, UART
m.unique_id = lambda: b"\\x24\\x0a\\xc4\\x12\\x34\\x56"
m.reset = lambda: print("reset")
sys.modules["machine"] = m

import boards.esp32 as esp32
from boards.esp32_devkit import BOARD as DEVKIT
from boards.smartevse_v3 import BOARD as SMART

for data in (DEVKIT, SMART):
    e = dict(data["evses"][0])
    e["meter"] = None  # the meter drivers are tested elsewhere
    data = dict(data)
    data["evses"] = (e,)
    board = esp32.Board(data, config="/nonexistent/config.json", state_dir=sys.argv[1])
    hw = board.evse_hw(1)
    print(board.MODEL, board.serial, hw.pilot.read(), hw.pilot._mv_full, hw.proximity.read_amps())
    print(type(board.unix_time()).__name__, board.boot_reason(), board.tasks(None))

# SmartEVSE with its meter on RS-485, a mains meter added by /config.json, C2 the phase switch
import json

cfg = sys.argv[1] + "_config.json"
for mains in ({"kind": "sdm630", "addr": 2}, {"kind": "s0", "pin": 16}, {"kind": "x"}):
    with open(cfg, "w") as f:
        json.dump({"mains_meter": mains}, f)
    board = esp32.Board(SMART, config=cfg, state_dir=sys.argv[1])
    hw = board.evse_hw(1)
    mm = board.mains_meter
    shared = mm is not None and mm._m is hw.meter._m
    ps = hw.phase_switch
    print(type(mm).__name__, mm and mm.addr, mm and mm.signed, shared, hw.meter.signed,
          [p.id for p in hw.contactor._outputs], [(p.id, p.v) for p in ps._outputs], ps.closed)
"""


def test_esp32_composition_on_micropython(tmp_path):
    """boards/esp32.py and both boards run on MicroPython itself, not only under CPython."""
    import os
    import subprocess

    mp = ROOT / ".venv" / "bin" / "micropython"
    if not mp.exists():
        pytest.skip("no MicroPython unix port in .venv")
    script = tmp_path / "mp_boards.py"
    script.write_text(MP_SCRIPT)
    env = dict(os.environ, MICROPYPATH=".frozen:%s:%s" % (ROOT / "lib", ROOT))  # asyncio
    out = subprocess.run(
        [str(mp), str(script), str(tmp_path / "state")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    lines = [ln for ln in out.stdout.splitlines() if not ln.startswith(" W ")]
    errors = [ln for ln in lines if ln.startswith(" E ")]  # the dict's order differs on MP
    assert len(errors) == 2
    assert errors[0].startswith(" E board: mains meter {")
    assert errors[0].endswith("}: ValueError S0 gives no current and no sign: none")
    assert errors[1].endswith(
        "}: ValueError unknown meter 'x' (one of abb_b23, eem350, sdm120, sdm630): none"
    )
    lines = [ln for ln in lines if not ln.startswith(" E ")]
    assert lines == [
        # 47700 counts = 2402 mV: A on the DevKit (calibrated: 3300), PP open (None)
        "ESP32-DevKitC EVSE 240AC4123456 A 3300 None",
        "int None []",
        # the same counts: C on SmartEVSE's front end; PP at 6 dB: 1601 mV, 680 Ohm, 20 A
        "SmartEVSE v3.0 240AC4123456 C 3300 20",
        "int None []",
        "Sdm630 2 True True False [32] [(27, 0)] False",
        "NoneType None None False False [32] [(27, 0)] False",
        "NoneType None None False False [32] [(27, 0)] False",
    ]
