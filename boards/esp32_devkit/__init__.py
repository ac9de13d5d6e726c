# esp32_devkit: an ESP32-DevKitC wired like esp32-evse's DevKitC board (hardware.md section 8),
# plus this project's RCD and contactor-mirror inputs. Data only; boards/esp32.py builds it.
# MIT licence.
#
# Pins (esp32-evse DevKitC): CP PWM GPIO27, CP sense GPIO36 (ADC1 CH0), PP sense GPIO39 (ADC1
# CH3), relay GPIO26, RS-485 RX32 / TX25 / DE33, status LEDs charging GPIO19, error GPIO18,
# Wi-Fi GPIO17 (active high: unconfirmed; GPIO17 is PSRAM on a WROVER module: there set the
# "wifi" LED to None). Its DS18x20 (16), AC current / voltage inputs (35, 34) and button (0)
# are not used by this firmware yet.
#
# This project's choice for what esp32-evse's DevKitC lacks (free GPIOs; no strapping pin
# 0/2/5/12/15, no input-only pin 34-39 as an output, no flash pin 6-11, not 16/17 (PSRAM on
# WROVER), not 14 (pulses at boot), 21/22 kept free for I2C):
#   GPIO13  RCD fault in, internal pull-up, active high: an open collector that conducts while
#           healthy reads "tripped" on a broken wire or an unpowered module (fail-safe)
#   GPIO23  RCD test out, active high, low at boot
#   GPIO4   contactor mirror in, internal pull-up: an auxiliary NO contact to GND reads 0 when
#           the main contacts are closed
#   GPIO21  SDA, GPIO22 SCL: an SSD1306 128 x 64 OLED module on I2C (hardware I2C 0, 400 kHz),
#           address 0x3C (some modules are 0x3D: set "addr"). Wiring: module VCC -> 3V3 (not
#           5 V: the module's pull-ups go to its VCC), GND -> GND, SDA -> GPIO21, SCL ->
#           GPIO22. The module's own pull-ups (usually 4.7k..10k) serve the bus. Optional:
#           without a module the boot logs "display ... ENODEV" and goes on without one.
#
# CP front end (this project's, following hardware.md 1.2: +12 V -> <= 2.4 V, -12 V -> >=
# 0.15 V at the pin): CP -> 100k -> node; node -> 24k -> 3V3; node -> 18k -> GND. Thevenin:
# pin mV = 1282 + 93.26 x CP volts, so +12 V -> 2402 mV, 0 V -> 1282 mV, -12 V -> 163 mV, all
# inside the 11 dB linear range (150..2450 mV). The thresholds are hardware.md's derived
# CP-side splits put through that line (unconfirmed until measured on a built board):
#   A/B 10.5 V -> 2262   B/C 7.4 V -> 1973   C/D 4.4 V -> 1693   D/E 1.3 V -> 1404
#   E/F -6.0 V -> 723 (halfway from 0 V to -12 V)   diode: low <= -10.5 V -> 303
# A shorted EV diode leaves the low level at -8.8 V (B, 462 mV) or -5.6 V (C, 760 mV): caught.
# esp32-evse's own front end differs (its published thresholds, 2405 / 2099 / 1792 / 1484 mV,
# imply ~1331 mV + 102 mV/V): with that circuit, put its levels through the same splits.
#
# PP front end: 1 kOhm pull-up to 3.3 V (hardware.md 2): 1.5k -> 1980 mV (13 A), 680 -> 1336
# (20 A), 220 -> 595 (32 A), 100 -> 300 (63 A); open reads the rail. Each rating gets the
# window of about -30 % / +45 % around its resistor (R = 1000 x mV / (3300 - mV)); readings
# between windows are a proximity fault, as are <= 150 mV (short) and > 2300 mV (open):
#   63 A 201..420 mV (65..146 Ohm)      gap 420..450
#   32 A 451..800 (158..320 Ohm)        gap 800..1050
#   20 A 1051..1620 (467..964 Ohm)      gap 1620..1700
#   13 A 1701..2300 (1.06..2.3 kOhm)    above: open
#
# ADC: raw read_u16() taken as linear; mv_full nominal 3300, replaced at boot by a read_uv()
# calibration on the steady x1 level (boards/esp32.calibrate), which PP shares (same ADC1 and
# attenuation).

PP_BANDS = (
    (420, 63),
    (450, None),
    (800, 32),
    (1050, None),
    (1620, 20),
    (1700, None),
    (2300, 13),
)

BOARD = {
    "model": "ESP32-DevKitC EVSE",
    "vendor": "mpwallbox",
    "evses": (
        {
            "cp_out": 27,
            "cp_in": 36,
            "cp_atten": "ATTN_11DB",
            "cp_mv_full": 3300,
            "cp_cal_mv": (1000, 2450),  # x1 at boot: 2402 mV (A) or 2122 (B), 1282 (E)
            "cp_th": (2262, 1973, 1693, 1404, 723, 303),
            "pp_in": 39,
            "pp_atten": "ATTN_11DB",
            "pp_mv_full": 3300,
            "pp_bands": PP_BANDS,
            "contactor": (26,),
            "mirror": 4,
            "mirror_pull": "up",
            "mirror_closed": 0,
            "rcd_fault": 13,
            "rcd_pull": "up",
            "rcd_active": 1,
            "rcd_test": 23,
            "rcd_test_active": 1,
            "lock": None,
            # Single-phase SDM120 on the RS-485 port; its factory setting is 2400 8N1, address
            # 1 (hardware.md 5.2, unconfirmed for all revisions). /config.json "meter" overrides.
            "meter": {
                "kind": "sdm120",
                "uart": 1,
                "rx": 32,
                "tx": 25,
                "de": 33,
                "baudrate": 2400,
                "parity": None,
                "addr": 1,
            },
            "max_a": 16,  # one relay on a demo board: set the installation's limit in max_a
            "phases": 1,
            "ventilation": False,
            "cable_a": None,  # a socket: PP reads the cable
            # No phase switch: one relay, one phase.
        },
    ),
    # No mains meter on the board; /config.json "mains_meter" adds one on the RS-485 bus.
    "mains_meter": None,
    "display": {"kind": "ssd1306", "i2c": 0, "sda": 21, "scl": 22, "freq": 400000, "addr": 0x3C},
    "led": {"kind": "single", "charging": 19, "error": 18, "wifi": 17, "active": 1},
}


def create():
    from boards.esp32 import Board

    return Board(BOARD)
