# esp32: what every ESP32 board shares: pins, PWM, ADC, UART, I2C and SPI built from a board's
# data dict, the drivers on them (one EvseHw per EVSE, the display, the status LED), Wi-Fi,
# clock, watchdog, and the Board. MIT licence.
#
# A board module (boards/esp32_devkit, boards/smartevse_v3) holds only data and create(); this
# file and those folders are the only code that imports machine.
#
# Board data keys (pins are GPIO numbers; attenuations are machine.ADC attribute names):
#   model, vendor           BootNotification model and vendor
#   hold_low                output pins driven low at boot and left there (e.g. CP disconnect)
#   evses                   one dict per EVSE:
#     cp_out, cp_in         CP PWM output, CP sense ADC input
#     cp_atten, cp_mv_full  ADC attenuation; pin mV at read_u16() 65535 (nominal)
#     cp_cal_mv             (lo, hi) or None: at boot, with the CP steady in x1, a level inside
#                           this range calibrates cp_mv_full against read_uv() (eFuse)
#     cp_th                 (A/B, B/C, C/D, D/E, E/F, diode max) mV at the pin
#     pp_in, pp_atten, pp_mv_full, pp_bands   PP sense (pp_in None: tethered cable)
#     contactor             coil output pins (1 or 2, switched together)
#     mirror, mirror_pull, mirror_closed      auxiliary contact input (mirror None: none)
#     phase_switch          coil output pins (1 or 2) of the second contactor, which connects
#                           L2/L3 (closed: 3 phases, open: L1 only); 3-phase EVSEs only (on a
#                           1-phase one: logged, ignored); absent or None: no phase switching
#     phase_switch_mirror, phase_switch_mirror_pull, phase_switch_mirror_closed   its mirror
#     rcd_fault, rcd_pull, rcd_active, rcd_test, rcd_test_active
#     lock                  (a, b, feedback or None) motor lock pins, or None
#     lock_locked, lock_pulse_ms
#     meter                 None; {"kind": "s0", "pin", "pull", "imp_per_kwh"}; or Modbus:
#                           {"kind": "sdm630"|"sdm120"|"abb_b23"|"eem350", "uart", "rx", "tx",
#                            "de", "baudrate", "parity", "stop", "addr"}
#     max_a, phases, ventilation, cable_a     as in EvseHw
#   mains_meter             None (the board modules' default), or a Modbus meter dict as
#                           "meter" above: the meter at the grid connection (Board.mains_meter,
#                           currents signed: negative on a phase that exports); not S0
#   display                 None (none), or the display (Board.display, boards/drivers/display.py):
#                           {"kind": "ssd1306", "sda", "scl", "i2c" (hardware I2C id; None:
#                            SoftI2C), "freq", "addr"}: micropython-lib's ssd1306 on I2C; or
#                           {"kind": "st7567", "spi" (id), "sck", "mosi", "a0", "rst",
#                            "baudrate", "backlight" (None: none), "backlight_on", "contrast"
#                            (0..63), "flip"}: boards/drivers/st7567.py, write-only SPI, no CS.
#                           One that cannot be built (no device answers, ssd1306 not installed)
#                           is logged and left out; the boot goes on
#   led                     None, or the status LED (Board.led, boards/drivers/status_led.py):
#                           {"kind": "rgb", "red", "green", "blue", "active"} or
#                           {"kind": "single", "charging", "error", "wifi", "active"} (a pin
#                           None: that LED is missing); active: the level that lights an LED
#
# /config.json (settings): csms_url, id, security_profile, variables, ... as for the sim board;
# "wifi": {"ssid", "password"}; installation overrides for every EVSE: "max_a" (only lower),
# "cable_a" (a tethered cable: no PP), "meter" (keys merged into the board's meter dict);
# "mains_meter" (keys merged into the board's mains_meter dict or, when it has none, into the
# first EVSE's Modbus meter dict: a second meter on the same bus is {"kind": "sdm630",
# "addr": 2}). A bad mains meter is logged and left out; the boot goes on.

import asyncio
import binascii
import json
import os
import time

import machine
from micropython import const

import boards
import log
from boards.drivers import EvseHw
from boards.drivers.contactor import Contactor
from boards.drivers.pilot import Pilot
from boards.drivers.proximity import Proximity
from boards.drivers.rcd import Rcd

_CP_HZ = const(1000)
_X1 = const(65535)
_CAL_READS = const(16)
_WIFI_POLL_MS = const(1000)
_WIFI_TRY_MS = const(20000)  # one association attempt, then disconnect and start over
# time.time() counts from 2000 on ports built without MICROPY_EPOCH_IS_1970.
_EPOCH_OFFSET = 946684800 if time.gmtime(0)[0] == 2000 else 0
CONFIG = "/config.json"
STATE_DIR = "/state"


def wdt(timeout_ms):
    """The hardware watchdog (>= 1000 ms; once started it cannot be stopped)."""
    return machine.WDT(timeout=timeout_ms)


def reset():
    machine.reset()


def unix_time():
    """Seconds since 1970 (an int: single-precision floats would lose whole minutes)."""
    return int(time.time()) + _EPOCH_OFFSET


def set_time(unix_s):
    """Set the RTC, which mbedTLS checks certificate dates against (it starts in 2000)."""
    t = time.gmtime(unix_s - _EPOCH_OFFSET)
    machine.RTC().datetime((t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0))


urandom = os.urandom


def _sta():
    import network

    return network.WLAN(network.STA_IF)


def network_up():
    return _sta().isconnected()


# -- building blocks -------------------------------------------------------------------------


def _input(gpio, pull=None):
    Pin = machine.Pin
    pull = {"up": Pin.PULL_UP, "down": Pin.PULL_DOWN}.get(pull)
    return Pin(gpio, Pin.IN, pull)


def _output(gpio, value=0):
    return machine.Pin(gpio, machine.Pin.OUT, value=value)


def _adc(gpio, atten):
    return machine.ADC(machine.Pin(gpio), atten=getattr(machine.ADC, atten))


def calibrate(adc, nominal, lo_hi):
    """mV at read_u16() 65535 from read_uv() on a steady level, else `nominal`.

    A ratio through zero, taken where it matters most (the x1 level): the ESP32's ~100 mV
    offset then costs at most a few tens of mV lower down, inside the thresholds' margins.
    Used only when the level is inside lo_hi (the attenuation's linear range) and the result
    within 20 % of nominal; a wrong calibration must not be worse than none.
    """
    if lo_hi is None or not hasattr(adc, "read_uv"):
        return nominal
    raw = uv = 0
    for _ in range(_CAL_READS):
        raw += adc.read_u16()
        uv += adc.read_uv()
    mv = uv // (1000 * _CAL_READS)
    if raw == 0 or not lo_hi[0] <= mv <= lo_hi[1]:
        return nominal
    full = (uv * 65535 + raw * 500) // (raw * 1000)  # rounded; a long int is fine at boot
    if not nominal * 4 // 5 <= full <= nominal * 6 // 5:
        log.warn("board", "ADC calibration %d mV off nominal %d: ignored" % (full, nominal))
        return nominal
    return full


def _meter(m, masters, store, evse_id, signed=False):
    if m is None:
        return None
    if m["kind"] == "s0":
        from boards.drivers.meter_s0 import S0Meter

        name = "s0_%d" % evse_id  # the persisted pulse total, Wh
        return S0Meter(
            _input(m["pin"], m.get("pull")),
            imp_per_kwh=m.get("imp_per_kwh", 1000),
            load=lambda: (store.load(name) or {}).get("wh"),
            save=lambda wh: store.save(name, {"wh": wh}),
        )
    from boards.drivers.meter_modbus import ModbusMaster, make_meter

    master = masters.get(m["uart"])  # meters on one RS-485 bus share its master
    if master is None:
        uart = machine.UART(
            m["uart"],
            baudrate=m["baudrate"],
            bits=8,
            parity=m.get("parity"),
            stop=m.get("stop", 1),
            tx=m["tx"],
            rx=m["rx"],
        )
        de = _output(m["de"]) if m.get("de") is not None else None
        master = ModbusMaster(uart, de=de, baudrate=m["baudrate"])
        masters[m["uart"]] = master
    return make_meter(m["kind"], master, m.get("addr", 1), signed)


def _evse_meter(e, settings):
    # The EVSE's meter dict: the board's, with /config.json "meter" merged in.
    m = e.get("meter")
    if m is not None and settings.get("meter"):
        m = dict(m)
        m.update(settings["meter"])
    return m


def mains_meter(data, settings, masters):
    """The mains meter (signed currents) of board data and /config.json, or None; on the first
    EVSE's RS-485 master when it shares its uart. Bad data is logged, never raised: a wallbox
    without its mains meter still charges (load management falls back, firmware side)."""
    m = data.get("mains_meter")
    cfg = settings.get("mains_meter")
    try:
        if cfg:
            if m is None:  # the bus (uart, pins, baud rate) of the first EVSE's Modbus meter
                m = _evse_meter(data["evses"][0], settings) if data["evses"] else None
                if m is not None and m.get("kind") == "s0":
                    m = None
            m = dict(m or ())
            m.update(cfg)
        if m is None:
            return None
        if m.get("kind") == "s0":
            raise ValueError("S0 gives no current and no sign")
        return _meter(m, masters, None, 0, True)
    except Exception as e:  # unknown kind, missing key, bad pin: no mains meter, boot goes on
        log.error("board", "mains meter %r: %s %s: none" % (m, type(e).__name__, e))
        return None


def _contactor(e, outputs, mirror):
    # A Contactor on the pins e[outputs] with the mirror keys mirror, mirror_pull, mirror_closed.
    fb = e.get(mirror)
    return Contactor(
        [_output(g) for g in e[outputs]],
        mirror=_input(fb, e.get(mirror + "_pull")) if fb is not None else None,
        mirror_closed=e.get(mirror + "_closed", 1),
    )


def build_display(d):
    """The display driver of board data `d`, or None: none in the data, or one that cannot be
    built (logged: a wallbox charges without its display)."""
    if d is None:
        return None
    Pin = machine.Pin
    try:
        from boards.drivers.display import Display

        kind = d["kind"]
        if kind == "ssd1306":
            import ssd1306  # micropython-lib's: frozen (make freeze) or mip-installed (deploy)

            pins = {"scl": Pin(d["scl"]), "sda": Pin(d["sda"]), "freq": d.get("freq", 400000)}
            i2c = d.get("i2c")
            bus = machine.SoftI2C(**pins) if i2c is None else machine.I2C(i2c, **pins)
            # Its init writes at once: OSError (ENODEV) when nothing answers at addr.
            dev = ssd1306.SSD1306_I2C(128, 64, bus, addr=d.get("addr", 0x3C))
            return Display(dev, True)
        if kind == "st7567":
            from boards.drivers.st7567 import ST7567

            spi = machine.SPI(
                d["spi"],
                baudrate=d.get("baudrate", 4000000),
                polarity=0,  # SCK idles low: no stray rising edge, which the LCD would count
                phase=0,
                sck=Pin(d["sck"]),
                mosi=Pin(d["mosi"]),
                miso=None,  # write-only; else the port takes its default MISO pin
            )
            dev = ST7567(
                spi,
                _output(d["a0"]),
                _output(d["rst"]),
                contrast=d.get("contrast", 32),
                flip=d.get("flip", False),
            )
            bl = d.get("backlight")
            on = d.get("backlight_on", 1)
            return Display(dev, False, None if bl is None else _output(bl, 1 - on), on)
        raise ValueError("unknown kind")
    except Exception as e:  # no display, or not this one: logged, the boot goes on
        log.warn("board", "display %r: %s %s: none" % (d.get("kind"), type(e).__name__, e))
        return None


def build_led(d):
    """The status LED of board data `d`, or None; its pins start off."""
    if d is None:
        return None
    from boards.drivers.status_led import RGB, SINGLE, StatusLed

    kind = d["kind"]
    if kind == "rgb":
        names, table = ("red", "green", "blue"), RGB
    elif kind == "single":
        names, table = ("charging", "error", "wifi"), SINGLE
    else:
        raise ValueError("LED kind %r: not rgb or single" % kind)
    on = d.get("active", 1)
    pins = [None if d.get(n) is None else _output(d[n], 1 - on) for n in names]
    return StatusLed(pins, table, on)


def build_evse(e, settings, masters, store, evse_id):
    """One EvseHw from the board's dict `e`; outputs start safe (contactors open, CP x1)."""
    contactor = _contactor(e, "contactor", "mirror")
    phase_switch = None
    if e.get("phase_switch"):
        if e["phases"] == 3:
            phase_switch = _contactor(e, "phase_switch", "phase_switch_mirror")
        else:
            log.error(
                "board",
                "EVSE %d: phase_switch needs 3 phases, not %d: ignored" % (evse_id, e["phases"]),
            )
    pwm = machine.PWM(machine.Pin(e["cp_out"], machine.Pin.OUT), freq=_CP_HZ, duty_u16=_X1)
    cp_adc = _adc(e["cp_in"], e["cp_atten"])
    time.sleep(0.005)  # let the CP front end settle on the x1 level
    cp_full = calibrate(cp_adc, e["cp_mv_full"], e.get("cp_cal_mv"))
    pilot = Pilot(pwm, cp_adc, e["cp_th"], cp_full)
    cable_a = settings.get("cable_a", e.get("cable_a"))
    proximity = None
    if cable_a is None and e.get("pp_in") is not None:
        # Same ADC unit and attenuation as the CP: the CP's calibration holds for PP too.
        pp_full = cp_full if e["pp_atten"] == e["cp_atten"] else e["pp_mv_full"]
        proximity = Proximity(_adc(e["pp_in"], e["pp_atten"]), e["pp_bands"], pp_full)
    test = e.get("rcd_test")
    test_active = e.get("rcd_test_active", 1)
    rcd = Rcd(
        _input(e["rcd_fault"], e.get("rcd_pull")),
        fault_active=e.get("rcd_active", 1),
        test=_output(test, 1 - test_active) if test is not None else None,
        test_active=test_active,
    )
    lock = None
    if e.get("lock"):
        from boards.drivers.lock import Lock

        a, b, fb = e["lock"]
        lock = Lock(
            _output(a),
            _output(b),
            _input(fb) if fb is not None else None,
            locked_value=e.get("lock_locked", 1),
            pulse_ms=e.get("lock_pulse_ms", 300),
        )
    return EvseHw(
        pilot,
        contactor,
        rcd,
        _meter(_evse_meter(e, settings), masters, store, evse_id),
        min(e["max_a"], settings.get("max_a", e["max_a"])),
        phases=e["phases"],
        proximity=proximity,
        lock=lock,
        ventilation=e.get("ventilation", False),
        cable_a=cable_a,
        pp_fallback_a=e.get("pp_fallback_a"),
        phase_switch=phase_switch,
    )


def load_settings(path):
    try:
        with open(path) as f:
            return json.load(f)
    except OSError:
        log.warn("board", "%s missing: no CSMS, no Wi-Fi" % path)
    except ValueError as e:
        log.error("board", "%s unreadable: %s" % (path, e))
    return {}


# -- the board ---------------------------------------------------------------------------------


class Board(boards.Board):
    """An ESP32 wallbox built from `data` (a board module's BOARD dict).

    The interface of boards.Board, firmware images included (app_partition, running_app,
    confirm_app). All hardware is built here, at once, so that the contactors are held open
    and the CP sits in x1 from the first moment.
    """

    def __init__(self, data, config=None, state_dir=None):
        from store import Store

        config = config or CONFIG
        state_dir = state_dir or STATE_DIR
        self.MODEL = data["model"]
        self.VENDOR = data["vendor"]
        uid = machine.unique_id() if hasattr(machine, "unique_id") else b"\0" * 6
        self.serial = binascii.hexlify(uid).decode().upper()  # the MAC on the ESP32
        self.state_dir = state_dir
        self.settings = load_settings(config)
        # A WROOM without PSRAM holds one TLS connection beside its 112 KiB heap
        # (boards.Board.tls_links); a board with PSRAM may say more in its settings.
        self.tls_links = self.settings.get("tls_links", 1)
        # Messages over 16 KiB are never buffered whole at 112 KiB (boards.Board.rx_limit).
        self.rx_limit = self.settings.get("rx_limit", 16384)
        self.identity = self.settings.get("id") or self.serial
        self.evses = len(data["evses"])
        self._held = [_output(g) for g in data.get("hold_low", ())]
        store = Store(state_dir)
        masters = {}
        self._hw = [
            build_evse(e, self.settings, masters, store, i + 1)
            for i, e in enumerate(data["evses"])
        ]
        self.mains_meter = mains_meter(data, self.settings, masters)
        # After the EVSEs (their outputs safe first); None without one (boards.Board).
        self.display = build_display(data.get("display"))
        self.led = build_led(data.get("led"))

    unix_time = staticmethod(unix_time)
    set_time = staticmethod(set_time)
    urandom = staticmethod(urandom)
    network_up = staticmethod(network_up)

    def evse_hw(self, evse_id):
        """The EvseHw of EVSE `evse_id` (1-based, as in OCPP)."""
        return self._hw[evse_id - 1]

    def wdt(self, timeout_ms):
        return wdt(timeout_ms)

    def boot_reason(self):
        """Watchdog after a watchdog reset, else None (the firmware's own record decides)."""
        cause = getattr(machine, "reset_cause", None)
        if cause is not None and cause() == getattr(machine, "WDT_RESET", None):
            return "Watchdog"
        return None

    def tasks(self, station):
        wifi = self.settings.get("wifi")
        return [self._wifi(wifi)] if wifi else []

    async def _wifi(self, cfg):
        """Keep the station interface associated; connect() returns at once, the IDF works on."""
        wlan = _sta()
        wlan.active(True)
        up = False
        while True:
            if wlan.isconnected():
                if not up:
                    log.info("wifi", "up, %s" % wlan.ifconfig()[0])
                    up = True
                await asyncio.sleep_ms(_WIFI_POLL_MS)
                continue
            if up:
                log.warn("wifi", "lost")
                up = False
            try:
                wlan.disconnect()  # end a half-finished attempt; may fail when there is none
            except OSError:
                pass
            try:
                wlan.connect(cfg["ssid"], cfg.get("password", ""))
            except OSError as e:
                log.warn("wifi", "connect: %r" % e)
            waited = 0
            while waited < _WIFI_TRY_MS and not wlan.isconnected():
                await asyncio.sleep_ms(_WIFI_POLL_MS)
                waited += _WIFI_POLL_MS

    # -- firmware images (block L; lib/ota_image.py writes them) ------------------------------

    def app_partition(self):
        """The OTA app partition the next firmware image goes to, None without OTA slots."""
        import esp32

        try:
            return esp32.Partition(esp32.Partition.RUNNING).get_next_update()
        except OSError:
            return None

    def running_app(self):
        """The label of the app partition running now ("ota_0", "ota_1")."""
        import esp32

        return esp32.Partition(esp32.Partition.RUNNING).info()[4]

    def confirm_app(self):
        """The running image works (its boot was Accepted): cancel the pending rollback.
        Builds without rollback support raise OSError(-261): nothing to cancel there."""
        import esp32

        try:
            esp32.Partition.mark_app_valid_cancel_rollback()
        except OSError:
            pass

    def safe(self):
        """Contactors open, CP in F: for the crash handler before it resets."""
        for hw in self._hw:
            try:
                hw.contactor.open()
                if hw.phase_switch is not None:  # after the main one: never under load
                    hw.phase_switch.open()
                hw.pilot.fault()
            except Exception:  # keep going: the next EVSE must be made safe too
                pass

    def reboot(self):
        self.safe()
        machine.reset()
