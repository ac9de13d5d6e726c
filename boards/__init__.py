# boards: what the firmware asks of a board, declared once: Board, which every board subclasses
# (boards/esp32.py, boards/sim). MIT licence.


class Board:
    """A board as the firmware sees it (firmware/main.py and its blocks).

    Every board gives: MODEL, VENDOR, serial, identity, state_dir, settings (the
    installation's /config.json: a dict), evses (how many); unix_time() (seconds since 1970),
    urandom(n), evse_hw(evse_id) (boards.drivers.EvseHw, 1-based, built once), wdt(timeout_ms)
    (started; feed() it), network_up(), boot_reason() ("Watchdog" or None), tasks(station)
    (coroutines of its own: Wi-Fi, the sim's control channel) and reboot() (restarts the
    program; firmware/main.Station.reboot prepares it).

    What not every board has is here, with a default a board overrides: the firmware calls it
    without asking first whether it exists. (Kept small: each method costs heap on a device.)
    """

    def factory_variables(self):
        """Device model values a fresh station starts with: its identity and the security
        profile of the installation (settings "security_profile", 1 by default)."""
        return (
            ("SecurityCtrlr/Identity", self.identity),
            ("SecurityCtrlr/SecurityProfile", str(self.settings.get("security_profile", 1))),
        )

    # set_time(unix_s): set the board's own clock, the one its TLS library checks certificate
    # dates against (an ESP32's RTC), when the station learns the time; None: nothing to set.
    set_time = None
    # How many TLS connections fit beside the GC heap at once (mbedTLS lives outside it);
    # None: no limit known. An ESP32 without PSRAM holds one: firmware_update then closes a
    # wss:// CSMS link for the length of an https:// download.
    tls_links = None
    # The logs on flash (lib/logfile.py), in the state directory's logs/ folder: the
    # diagnostics log in log_count files of log_size bytes each (2 x 16 KiB: some 400 lines),
    # the security log (a few events a day) in log_count files of security_log_size bytes.
    log_size = 16384
    log_count = 2
    security_log_size = 8192
    # The largest message the board buffers (ws.connect's keep); a larger one is read past and
    # answered with its id, the link kept. None: up to the WebSocket's max_size (64 KiB).
    rx_limit = None

    # The mains meter at the grid connection for local load management
    # (firmware/load_management.py): an object with the meter interface (async read() -> lib
    # meter.Reading, raises meter.MeterError) whose currents are signed, negative when the site
    # exports; None: the board has none.
    mains_meter = None

    # The display and the status LED (firmware/display.py has their interfaces); None: the
    # board has none.
    display = None
    led = None

    def safe(self):
        """Contactors open, CP in F: for a crash handler before it resets. None here."""

    # -- firmware images (block L, lib/ota_image.py): none by default -------------------------

    def app_partition(self):
        """The OTA app partition the next firmware image goes to, None when the board takes no
        images (then only bundles: lib/bootsel.py)."""
        return None

    def running_app(self):
        """The label of the app partition running now, None without OTA partitions."""
        return None

    def confirm_app(self):
        """The running image works (its boot was Accepted): cancel a pending rollback."""
