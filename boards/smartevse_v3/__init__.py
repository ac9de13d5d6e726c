# smartevse_v3: the SmartEVSE v3.0 controller (ESP32-WROOM), pinout of hardware.md section 8.
# Data only; boards/esp32.py builds it. MIT licence.
#
# Pins: CP PWM GPIO19; CP disconnect GPIO15 (active high: held low, CP connected); CP sense
# GPIO39 (ADC1 CH3, 11 dB); PP sense GPIO34 (ADC1 CH6, 6 dB); contactors GPIO32 (C1) and
# GPIO27 (C2), SSR-driven (hardware.md 8, "Contactor 1 / 2"); C2 is the phase switch (the
# contactor that connects L2/L3: open, the car charges on L1 only), as the vendor uses it for
# 1 <-> 3 phase switching (that use is not in hardware.md: check the wiring; a C2 meant to
# switch with C1 needs board data "contactor": (32, 27) without phase_switch); RCD fault in
# GPIO13 (pull-up, active high, as hardware.md 4 describes the vendor's input); lock A/B
# GPIO17/18, lock feedback GPIO35 (input-only, no internal pull: the board must bias it);
# RS-485 RX23 / TX21 / DE22; RGB status LED red GPIO2, green GPIO4, blue GPIO12 (active high:
# unconfirmed); ST7567 128 x 64 LCD on SPI (boards/drivers/st7567.py): SCK GPIO26, MOSI GPIO33,
# A0 GPIO25, RST GPIO5, backlight GPIO14, no CS. Not used yet: temperature GPIO36 (MCP9700A,
# 500 mV at 0 C, 10 mV/C), ext switch GPIO16, buttons 0/25/33.
# Strapping pins among them: GPIO12 (MTDI, the blue LED) selects the flash voltage at reset and
# must then be low (the module's pull-down, the LED circuit must not pull it up): the firmware
# drives it only after boot, low (off) first. GPIO2 and GPIO5 are straps too (download mode,
# SDIO timing); GPIO14 pulses at boot (the backlight may flicker). The buttons on GPIO25 (A0)
# and GPIO33 (MOSI) share the LCD's lines: reading them needs the LCD idle and those pins
# switched to inputs for the read (not done here).
# v3.1 moved RCD to GPIO38, lock to 10/9 and RS-485 RX to GPIO37: not this table.
#
# Missing on this board, and what follows:
# - no contactor mirror input: feedback() is None and welds go unseen. For weld detection wire
#   an auxiliary contact to the ext switch input (GPIO16) and set "mirror": 16 with the right
#   polarity (unconfirmed: check the input stage first).
# - no RCD test output: has_test is False, the controller cannot self-test the RCD.
#
# CP front end: hardware.md gives no resistor values, only the vendor's thresholds in mV at the
# pin (11 dB, eFuse-calibrated): A/B 3055, B/C 2735, C/D 2400, D/E 2000, short band
# 1600..2000, diode OK for a low level of 100..300. Their centres put 0 V near 1800 mV and
# -12 V near 200 mV: pin mV ~= 1800 + 133 x CP volts (derived, unconfirmed), so +12 V lands
# near 3.4 V, above the ESP32's linear range (2450 mV at 11 dB), where raw counts compress and
# saturate. Hence:
# - A/B .. D/E: the vendor's numbers (measured on this front end). The line above gives 3200 /
#   2787 / 2387 / 1973 for hardware.md's splits 10.5 / 7.4 / 4.4 / 1.3 V; C/D and D/E agree
#   within 30 mV, A/B and B/C sit in the compressed range where only a measurement helps.
# - E/F: -6 V (halfway from 0 V to -12 V) on the line: 1000 mV.
# - diode: -10.5 V on the line: 400 mV (the vendor accepts up to 300; a shorted diode in B
#   sits at -8.8 V, ~630 mV, so either catches it).
# No boot calibration: the x1 level is outside the linear range. cp_mv_full 3300 is nominal:
# before trusting A/B and B/C, log pilot.high_mv with a tester in A, B, C, D and adjust
# (unconfirmed).
#
# PP front end: not described in hardware.md for this board; assumed to be the 1 kOhm pull-up
# to 3.3 V of hardware.md 2 (1980 / 1336 / 595 / 300 mV for 13 / 20 / 32 / 63 A), so the
# DevKit's resistor windows apply (unconfirmed). At 6 dB the ADC's full scale is ~2200 mV
# (ESP32 datasheet, nominal), so 13 A sits near the top and an open PP (3.3 V) saturates: 13 A
# is accepted up to 2100 mV, anything above is open (measure 13 A and open on the board). An
# open PP is a fault and 680 Ohm is 20 A, whatever the vendor firmware does (hardware.md 2).

PP_BANDS = (
    (420, 63),
    (450, None),
    (800, 32),
    (1050, None),
    (1620, 20),
    (1700, None),
    (2100, 13),
)

BOARD = {
    "model": "SmartEVSE v3.0",
    "vendor": "mpwallbox",
    "hold_low": (15,),  # CP disconnect, active high
    "evses": (
        {
            "cp_out": 19,
            "cp_in": 39,
            "cp_atten": "ATTN_11DB",
            "cp_mv_full": 3300,
            "cp_cal_mv": None,
            "cp_th": (3055, 2735, 2400, 2000, 1000, 400),
            "pp_in": 34,
            "pp_atten": "ATTN_6DB",
            "pp_mv_full": 2200,
            "pp_bands": PP_BANDS,
            "contactor": (32,),  # C1
            "mirror": None,
            "phase_switch": (27,),  # C2, L2/L3 (hardware.md 8: GPIO27); no mirror input
            "rcd_fault": 13,
            "rcd_pull": "up",
            "rcd_active": 1,
            "rcd_test": None,
            "lock": (17, 18, 35),
            "lock_locked": 1,  # unconfirmed: depends on the actuator's switch
            "lock_pulse_ms": 300,
            # Three-phase Eastron SDM630 as the EV meter: 9600 8N1, address 1 (hardware.md 5.2;
            # even parity is also reported). /config.json "meter" overrides.
            "meter": {
                "kind": "sdm630",
                "uart": 1,
                "rx": 23,
                "tx": 21,
                "de": 22,
                "baudrate": 9600,
                "parity": None,
                "addr": 1,
            },
            "max_a": 32,  # the board's contactor outputs; the installation may set less
            "phases": 3,
            "ventilation": False,
            "cable_a": None,  # a socket; /config.json "cable_a" for a tethered cable
        },
    ),
    # No mains meter on the board; /config.json "mains_meter" adds one on the RS-485 bus.
    "mains_meter": None,
    # The LCD: contrast 32 (the controller's reset value of 0..63) at regulation ratio 5.0 and
    # SEG normal, COM reversed (flip False) are datasheet values, not measured on a SmartEVSE:
    # a pale or dark screen wants another contrast, a mirrored one flip True (unconfirmed).
    # SPI mode 0 at 4 MHz (the ST7567 takes up to 20 MHz).
    "display": {
        "kind": "st7567",
        "spi": 1,
        "sck": 26,
        "mosi": 33,
        "a0": 25,
        "rst": 5,
        "baudrate": 4000000,
        "backlight": 14,
        "backlight_on": 1,  # unconfirmed
        "contrast": 32,
        "flip": False,
    },
    "led": {"kind": "rgb", "red": 2, "green": 4, "blue": 12, "active": 1},
}


def create():
    from boards.esp32 import Board

    return Board(BOARD)
