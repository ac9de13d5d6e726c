# boards: what the firmware asks of a board, declared once: Board, which every board subclasses
# (boards/esp32.py, boards/sim). MIT licence.


class Board:
    """A board as the firmware sees it (firmware/main.py and its blocks).

    A board sets MODEL, VENDOR, serial, identity, state_dir, settings (the installation's
    /config.json: a dict) and evses (how many), and gives unix_time(), urandom(n),
    evse_hw(evse_id) (boards.drivers.EvseHw) and wdt(timeout_ms) (machine.WDT's feed()).

    The rest has a default here; a board overrides what it has. The optional capabilities
    (firmware images: app_partition, running_app, confirm_app) default to none, so the firmware
    calls them without asking first whether they exist.
    """

    MODEL = "unknown"
    VENDOR = "unknown"
    serial = ""
    identity = ""
    state_dir = "/state"
    settings = {}  # replaced by each board's own dict; never changed here
    evses = 0

    def unix_time(self):
        """Seconds since 1970, an int or a float (the clock's source)."""
        raise NotImplementedError

    def urandom(self, n):
        """`n` random bytes (message and transaction ids, back-off jitter, WebSocket keys)."""
        raise NotImplementedError

    def evse_hw(self, evse_id):
        """The boards.drivers.EvseHw of EVSE `evse_id` (1-based), built once."""
        raise NotImplementedError

    def wdt(self, timeout_ms):
        """The watchdog, started: feed() at least every `timeout_ms`."""
        raise NotImplementedError

    def factory_variables(self):
        """Device model values a fresh station starts with: its identity and the security
        profile of the installation (config "security_profile", 1 by default)."""
        return (
            ("SecurityCtrlr/Identity", self.identity),
            ("SecurityCtrlr/SecurityProfile", str(self.settings.get("security_profile", 1))),
        )

    def network_up(self):
        """The station's own network link is up (a failed attempt then counts against the
        CSMS's slot)."""
        return True

    def boot_reason(self):
        """A reason the hardware knows for this boot ("Watchdog"), else None."""
        return None

    def tasks(self, station):
        """Coroutines of the board's own (Wi-Fi, the sim's control channel) to run."""
        return []

    def reboot(self):
        """Restart the program (never returns on a device); firmware/main.Station.reboot
        prepares it."""
        raise NotImplementedError

    def safe(self):
        """Contactors open, CP in F: for a crash handler before it resets."""

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
