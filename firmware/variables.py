# variables: the station's OCPP device model, declared once as data.
# MIT licence.
#
# One tuple per variable: (key, spec, default, limits).
# key:    "<Component>[.<evseId>[.<connectorId>]][:<instance>]/<Variable>[:<instance>]"
# spec:   data type, then mutability, then optional flags:
#           type   s string, d decimal, i integer, t dateTime, b boolean,
#                  o OptionList, q SequenceList, m MemberList
#           mut.   r ReadOnly, w ReadWrite, x WriteOnly (never reported, never logged)
#           flags  ! a change takes effect after a reboot (SetVariables answers RebootRequired)
#                  = ReadOnly and constant: fixed by firmware, board and config, never changed
#                    while running (reported constant and persistent). A ReadOnly variable
#                    without it is a live value (clock, states, counts), served by the block
#                    that owns it through DeviceModel.provide; its default stands in until then.
#                  ~ it can be monitored (SetVariableMonitoring; supportsMonitoring in the
#                    reports): threshold monitors on numbers, Delta and the periodic ones on any
# limits: None, or (unit, minLimit, maxLimit, valuesList); for strings the limits bound the
#         length; valuesList is the comma-separated list for the list types.
#
# Everything here is a constant: no object per variable is built at run time, and on a board
# the tuples stay in flash with the frozen code (the shared parts are const(), so that the
# tables that use them fold into constants too, and they take no global name). Only the EVSE
# and Connector components depend on the hardware: `Declarations` makes their rows when they
# are asked for, from a template and the EVSE's figures.

from micropython import const

_S = const("s")  # unit: seconds
_SEC_DAY = const((_S, 0, 86400, None))
_SEC_HOUR = const((_S, 0, 3600, None))
_COUNT_10 = const((None, 0, 10, None))
_COUNT_100 = const((None, 1, 100, None))
_ITEMS = const((None, 1, 100, None))
_BYTES = const(("B", 512, 65536, None))
_TX_POINTS = const((None, None, None, "EVConnected,Authorized,PowerPathClosed,EnergyTransfer"))
_MEASURANDS = const(
    (
        None,
        None,
        None,
        "Energy.Active.Import.Register,Power.Active.Import,Current.Import,Voltage,Current.Offered",
    )
)
_ENERGY = const("Energy.Active.Import.Register")
_TOKEN_TYPES = const("NoAuthorization,Local,KeyCode,ISO14443,ISO15693,eMAID,MacAddress")
_STATES = const((None, None, None, "Available,Occupied,Reserved,Unavailable,Faulted"))
_SEVERITY = const((None, 0, 9, None))  # monitoring severities: 0 Danger .. 9 Debug
_BASES = const((None, None, None, "All,FactoryDefault,HardWiredOnly"))
_FORMATS = const((None, None, None, "ASCII,UTF8,URI"))  # display message formats (no HTML)
_CERTIFICATES = const(
    8
)  # certificate slots (CSMS and manufacturer roots): CertificateEntries maxLimit
_LOCAL_LIST = const(100)  # local authorization list capacity: LocalAuthListCtrlr.Entries maxLimit
_AUTH_CACHE_BYTES = const(4096)  # authorization cache capacity: AuthCacheCtrlr.Storage maxLimit
_VOLTS = const(230)  # nominal phase voltage, for the rated power of an EVSE
_PROFILES = const(24)  # charging profiles stored: SmartChargingCtrlr.Entries maxLimit
_MESSAGES = const(8)  # display messages stored: DisplayMessageCtrlr.DisplayMessages maxLimit

# The station-wide part: every controller of the Core set (ocpp201-station.md §2.2, §3.1).
VARIABLES = (
    ("OCPPCommCtrlr/HeartbeatInterval", "iw~", "300", (_S, 1, 86400, None)),
    ("OCPPCommCtrlr/OfflineThreshold", "iw~", "120", _SEC_DAY),
    ("OCPPCommCtrlr/MessageTimeout:Default", "ir=", "30", (_S, 1, 600, None)),
    ("OCPPCommCtrlr/MessageAttempts:TransactionEvent", "iw~", "3", (None, 1, 10, None)),
    ("OCPPCommCtrlr/MessageAttemptInterval:TransactionEvent", "iw~", "60", _SEC_HOUR),
    ("OCPPCommCtrlr/NetworkConfigurationPriority", "qw!", "1", (None, None, None, "1,2,3")),
    ("OCPPCommCtrlr/NetworkProfileConnectionAttempts", "iw~", "3", _COUNT_100),
    ("OCPPCommCtrlr/ResetRetries", "iw~", "2", _COUNT_10),
    ("OCPPCommCtrlr/ActiveNetworkProfile", "ir", "1", (None, 1, 3, None)),
    ("OCPPCommCtrlr/FileTransferProtocols", "mr=", "HTTPS,HTTP", (None, None, None, "HTTPS,HTTP")),
    ("OCPPCommCtrlr/UnlockOnEVSideDisconnect", "bw", "true", None),
    ("OCPPCommCtrlr/RetryBackOffWaitMinimum", "iw~", "10", _SEC_HOUR),
    ("OCPPCommCtrlr/RetryBackOffRandomRange", "iw~", "10", _SEC_HOUR),
    ("OCPPCommCtrlr/RetryBackOffRepeatTimes", "iw~", "5", (None, 0, 20, None)),
    ("OCPPCommCtrlr/WebSocketPingInterval", "iw~", "60", _SEC_HOUR),
    ("OCPPCommCtrlr/QueueAllMessages", "bw", "false", None),
    ("OCPPCommCtrlr/MinimumStatusDuration", "iw~", "0", _SEC_HOUR),
    ("TxCtrlr/TxStartPoint", "mw", "PowerPathClosed", _TX_POINTS),
    ("TxCtrlr/TxStopPoint", "mw", "EVConnected,Authorized", _TX_POINTS),
    ("TxCtrlr/EVConnectionTimeOut", "iw~", "120", (_S, 10, 3600, None)),
    ("TxCtrlr/StopTxOnEVSideDisconnect", "br=", "true", None),
    ("TxCtrlr/StopTxOnInvalidId", "bw", "true", None),
    ("TxCtrlr/MaxEnergyOnInvalidId", "iw~", "0", ("Wh", 0, 1000000, None)),
    ("TxCtrlr/TxBeforeAcceptedEnabled", "bw", "false", None),
    ("AuthCtrlr/Enabled", "bw", "true", None),
    ("AuthCtrlr/AuthorizeRemoteStart", "bw", "false", None),
    ("AuthCtrlr/LocalAuthorizeOffline", "bw", "true", None),
    ("AuthCtrlr/LocalPreAuthorize", "bw", "false", None),
    ("AuthCtrlr/OfflineTxForUnknownIdEnabled", "bw", "false", None),
    ("AuthCtrlr/DisableRemoteAuthorization", "bw", "false", None),
    ("AuthCtrlr/MasterPassGroupId", "sw", "", (None, 0, 36, None)),
    # Vendor component: the idToken the local start/stop button presents (NoAuthorization:
    # charging needs no authorization; another type is authorized like a card).
    ("LocalButton/IdToken", "sw", "", (None, 0, 36, None)),
    ("LocalButton/IdTokenType", "ow", "NoAuthorization", (None, None, None, _TOKEN_TYPES)),
    ("AuthCacheCtrlr/Enabled", "bw", "true", None),
    ("AuthCacheCtrlr/Available", "br=", "true", None),
    ("AuthCacheCtrlr/LifeTime", "iw~", "604800", (_S, 0, 31536000, None)),
    ("AuthCacheCtrlr/Policy", "ow", "LRU", (None, None, None, "LRU,LFU")),
    # Bytes of the cache as compact JSON (about 50 tokens fit); maxLimit = capacity.
    ("AuthCacheCtrlr/Storage", "ir", "0", ("B", 0, _AUTH_CACHE_BYTES, None)),
    ("AuthCacheCtrlr/DisablePostAuthorize", "bw", "false", None),
    ("LocalAuthListCtrlr/Enabled", "bw", "true", None),
    ("LocalAuthListCtrlr/Available", "br=", "true", None),
    ("LocalAuthListCtrlr/Entries", "ir", "0", (None, 0, _LOCAL_LIST, None)),
    ("LocalAuthListCtrlr/ItemsPerMessage", "ir=", "20", _ITEMS),
    ("LocalAuthListCtrlr/BytesPerMessage", "ir=", "4096", _BYTES),
    ("LocalAuthListCtrlr/DisablePostAuthorize", "bw", "false", None),
    ("SampledDataCtrlr/TxStartedMeasurands", "mw", _ENERGY, _MEASURANDS),
    (
        "SampledDataCtrlr/TxUpdatedMeasurands",
        "mw",
        # spelled out: a const str + str is not folded, and it would make VARIABLES a tuple
        # built in RAM at import instead of one frozen in flash
        "Energy.Active.Import.Register,Power.Active.Import,Current.Import",
        _MEASURANDS,
    ),
    ("SampledDataCtrlr/TxUpdatedInterval", "iw~", "60", _SEC_DAY),
    ("SampledDataCtrlr/TxEndedMeasurands", "mw", _ENERGY, _MEASURANDS),
    ("SampledDataCtrlr/TxEndedInterval", "iw~", "300", _SEC_DAY),
    ("AlignedDataCtrlr/Measurands", "mw", _ENERGY, _MEASURANDS),
    ("AlignedDataCtrlr/Interval", "iw~", "900", _SEC_DAY),
    ("AlignedDataCtrlr/TxEndedMeasurands", "mw", _ENERGY, _MEASURANDS),
    ("AlignedDataCtrlr/TxEndedInterval", "iw~", "900", _SEC_DAY),
    ("AlignedDataCtrlr/SendDuringIdle", "bw", "false", None),
    ("SecurityCtrlr/SecurityProfile", "ir", "1", (None, 1, 3, None)),
    ("SecurityCtrlr/BasicAuthPassword", "sx", "", (None, 16, 40, None)),
    ("SecurityCtrlr/Identity", "sr=", "", (None, 1, 48, None)),
    ("SecurityCtrlr/OrganizationName", "sw", "", (None, 0, 64, None)),
    ("SecurityCtrlr/CertificateEntries", "ir", "0", (None, 0, _CERTIFICATES, None)),
    ("SecurityCtrlr/AdditionalRootCertificateCheck", "br=", "false", None),
    ("SecurityCtrlr/CertSigningWaitMinimum", "iw~", "30", (_S, 1, 86400, None)),
    ("SecurityCtrlr/CertSigningRepeatTimes", "iw~", "3", (None, 0, 100, None)),
    ("DeviceDataCtrlr/ItemsPerMessage:GetVariables", "ir=", "20", _ITEMS),
    ("DeviceDataCtrlr/ItemsPerMessage:SetVariables", "ir=", "20", _ITEMS),
    ("DeviceDataCtrlr/ItemsPerMessage:GetReport", "ir=", "20", _ITEMS),
    ("DeviceDataCtrlr/BytesPerMessage:GetVariables", "ir=", "4096", _BYTES),
    ("DeviceDataCtrlr/BytesPerMessage:SetVariables", "ir=", "4096", _BYTES),
    ("DeviceDataCtrlr/BytesPerMessage:GetReport", "ir=", "4096", _BYTES),
    ("ClockCtrlr/DateTime", "tr", "1970-01-01T00:00:00Z", None),
    ("ClockCtrlr/TimeSource", "qw", "Heartbeat", (None, None, None, "Heartbeat,NTP")),
    # NTP (firmware/timesync.py): the servers by priority, instance "1" first; "ntp://host[:port]",
    # "host" or "host:port". No NTP server from DHCP: NtpSource has only "manual".
    ("ClockCtrlr/NtpSource", "ow", "manual", (None, None, None, "manual")),
    ("ClockCtrlr/NtpServerUri:1", "sw", "", (None, 0, 255, None)),
    ("ClockCtrlr/NtpServerUri:2", "sw", "", (None, 0, 255, None)),
    ("ClockCtrlr/TimeAdjustmentReportingThreshold", "iw~", "20", _SEC_DAY),
    ("ClockCtrlr/TimeOffset", "sw", "", (None, 0, 6, None)),
    ("ClockCtrlr/TimeZone", "sw", "", (None, 0, 64, None)),
    ("ClockCtrlr/NextTimeOffsetTransitionDateTime", "tw", "1970-01-01T00:00:00Z", None),
    # No standard variable sets what the diagnostics log on flash keeps (lib/log.py
    # file_level): the lowest level written there.
    ("DiagnosticsCtrlr/LogLevel", "ow", "Info", (None, None, None, "Debug,Info,Warning,Error")),
    # How GetLog uploads to http(s):// (ours, as LogLevel): PUT the file, or POST it as
    # multipart/form-data.
    ("DiagnosticsCtrlr/LogUploadMethod", "ow", "PUT", (None, None, None, "PUT,POST")),
    ("SmartChargingCtrlr/Enabled", "bw", "true", None),
    ("SmartChargingCtrlr/Available", "br", "true", None),
    ("SmartChargingCtrlr/Entries", "ir", "0", (None, 0, _PROFILES, None)),
    ("SmartChargingCtrlr/LimitChangeSignificance", "iw~", "10", ("Percent", 0, 100, None)),
    ("SmartChargingCtrlr/PeriodsPerSchedule", "ir=", "24", (None, 1, 1024, None)),
    ("SmartChargingCtrlr/ProfileStackLevel", "ir=", "8", (None, 0, 100, None)),
    ("SmartChargingCtrlr/RateUnit", "mr=", "A,W", (None, None, None, "A,W")),
    # SmartChargingCtrlr/ACPhaseSwitchingSupported comes from the hardware: declarations().
    # OCPP 2.0.1 has no standard variable for the nominal voltage that converts W to A (2.1's
    # SupplyVoltage comes later): ours, on the controller that uses it.
    ("SmartChargingCtrlr/NominalVoltage", "iw~", "230", ("V", 100, 500, None)),
    # A charging station may switch phases no more often than this (ours: hardware.md 1.5,
    # switching often wears the contactors and upsets some EVs).
    ("SmartChargingCtrlr/PhaseSwitchMinInterval", "iw~", "300", _SEC_DAY),
    # Local load management from the mains meter (firmware/load_management.py), a vendor
    # component: Capacity keeps the grid connection under MainsFuse (A per phase), Solar
    # charges from exported power only and pauses after SolarStopDelay below 6 A.
    ("LoadManagement/Mode", "ow", "Off", (None, None, None, "Off,Capacity,Solar")),
    ("LoadManagement/MainsFuse", "iw~", "25", ("A", 6, 2000, None)),
    ("LoadManagement/SolarStopDelay", "iw~", "60", _SEC_HOUR),
    # Reservations (firmware/blocks/reservation.py); NonEvseSpecific: ReserveNow without an
    # evseId is accepted.
    ("ReservationCtrlr/Available", "br=", "true", None),
    ("ReservationCtrlr/Enabled", "bw", "true", None),
    ("ReservationCtrlr/NonEvseSpecific", "bw", "true", None),
    # Tariff and cost (firmware/blocks/tariff_cost.py): shown on the display. Available:
    # whether the board has one (declarations() picks the row).
    ("TariffCostCtrlr/Enabled:Tariff", "bw", "true", None),
    ("TariffCostCtrlr/Enabled:Cost", "bw", "true", None),
    ("TariffCostCtrlr/Currency", "sw", "EUR", (None, 0, 3, None)),
    ("TariffCostCtrlr/TariffFallbackMessage", "sw", "", (None, 0, 255, None)),
    ("TariffCostCtrlr/TotalCostFallbackMessage", "sw", "", (None, 0, 255, None)),
    # Display messages (firmware/blocks/display_messages.py). Available: whether the board
    # has a display (declarations() picks the row); DisplayMessages: how many are set,
    # maxLimit the capacity. Language is ours (OCPP 2.1 adds one of that name): the language
    # tag of the messages shown, empty for all of them.
    ("DisplayMessageCtrlr/Enabled", "bw", "true", None),
    ("DisplayMessageCtrlr/DisplayMessages", "ir", "0", (None, 0, _MESSAGES, None)),
    ("DisplayMessageCtrlr/SupportedFormats", "mr=", "ASCII,UTF8,URI", _FORMATS),
    (
        "DisplayMessageCtrlr/SupportedPriorities",
        "mr=",
        "AlwaysFront,InFront,NormalCycle",
        (None, None, None, "AlwaysFront,InFront,NormalCycle"),
    ),
    ("DisplayMessageCtrlr/PersonalMessageSize", "ir=", "512", (None, 0, 512, None)),
    ("DisplayMessageCtrlr/Language", "sw", "", (None, 0, 8, None)),
    # Monitoring (firmware/blocks/monitoring.py). ActiveMonitoringLevel and -Base are set by
    # SetMonitoringLevel and SetMonitoringBase (the block keeps them); events with a severity
    # at or below OfflineQueuingSeverity are queued while offline, the rest dropped.
    ("MonitoringCtrlr/Available", "br=", "true", None),
    ("MonitoringCtrlr/Enabled", "bw", "true", None),
    ("MonitoringCtrlr/ActiveMonitoringBase", "or", "All", _BASES),
    ("MonitoringCtrlr/ActiveMonitoringLevel", "ir", "9", _SEVERITY),
    ("MonitoringCtrlr/OfflineQueuingSeverity", "iw", "3", _SEVERITY),
    ("MonitoringCtrlr/ItemsPerMessage:SetVariableMonitoring", "ir=", "20", _ITEMS),
    ("MonitoringCtrlr/ItemsPerMessage:ClearVariableMonitoring", "ir=", "20", _ITEMS),
    ("MonitoringCtrlr/BytesPerMessage:SetVariableMonitoring", "ir=", "4096", _BYTES),
    ("MonitoringCtrlr/BytesPerMessage:ClearVariableMonitoring", "ir=", "4096", _BYTES),
    ("ChargingStation/AvailabilityState", "or~", "Available", _STATES),
    ("ChargingStation/Available", "br", "true", None),
    ("ChargingStation/AllowNewSessionsPendingFirmwareUpdate", "bw", "false", None),
)

# Per EVSE n and its connector n.1, in this order: (component, variable, spec, default,
# limits); a default or limits of None that the hardware gives is filled in by _evse_row.
_PHASES = const((None, 1, 3, None))
_PER_EVSE = const(
    (
        ("EVSE", "AvailabilityState", "or~", "Available", _STATES),
        ("EVSE", "Available", "br", "true", None),
        ("EVSE", "AllowReset", "br=", "false", None),
        ("EVSE", "SupplyPhases", "ir=", None, _PHASES),
        ("EVSE", "Power", "dr~", "0", None),
        ("Connector", "AvailabilityState", "or~", "Available", _STATES),
        ("Connector", "Available", "br", "true", None),
        ("Connector", "SupplyPhases", "ir=", None, _PHASES),
        ("Connector", "ConnectorType", "sr=", None, None),
        # The fault flags of the EVSE's parts (firmware/monitors.py: the hard-wired and
        # pre-configured monitors on them), "true" while the fault lasts: standardized
        # physical components, with the EVSE's id.
        ("EVSE", "Problem", "br~", "false", None),
        ("RCD", "Tripped", "br~", "false", None),
        ("PowerContactor", "Problem", "br~", "false", None),
        ("FiscalMetering", "Problem", "br~", "false", None),
        ("CPPWMController", "Problem", "br~", "false", None),
    )
)
_ROWS = const(14)  # len(_PER_EVSE)
_UNLOCK = const("OCPPCommCtrlr/UnlockOnEVSideDisconnect")
# SmartChargingCtrlr.ACPhaseSwitchingSupported without and with a phase switch: constants, so
# that they stay in flash.
_SWITCHING = const(
    (
        ("SmartChargingCtrlr/ACPhaseSwitchingSupported", "br=", "false", None),
        ("SmartChargingCtrlr/ACPhaseSwitchingSupported", "br=", "true", None),
    )
)


# What needs a display to be shown on, without and with one: constants, as _SWITCHING.
_DISPLAYED = const(
    (
        (
            ("DisplayMessageCtrlr/Available", "br=", "false", None),
            ("TariffCostCtrlr/Available:Tariff", "br=", "false", None),
            ("TariffCostCtrlr/Available:Cost", "br=", "false", None),
        ),
        (
            ("DisplayMessageCtrlr/Available", "br=", "true", None),
            ("TariffCostCtrlr/Available:Tariff", "br=", "true", None),
            ("TariffCostCtrlr/Available:Cost", "br=", "true", None),
        ),
    )
)


def _evse_row(n, hw, t):
    """The declaration of template `t` (of _PER_EVSE) for EVSE n with hw (phases, max_a,
    cable_a)."""
    comp, name, spec, default, lim = t
    key = ("Connector.%d.1/%s" if comp == "Connector" else comp + ".%d/%s") % (n, name)
    if name == "SupplyPhases":
        default = str(hw[0])
    elif name == "Power":
        lim = ("W", 0, hw[1] * hw[0] * _VOLTS, None)
    elif name == "ConnectorType":
        default = "cType2" if hw[2] else "sType2"
    return (key, spec, default, lim)


class Declarations:
    """Every declaration of a station, a read-only sequence of rows: `rows` (VARIABLES, in
    flash on a board), the station's own `extra` rows, then the 14 rows of each EVSE and its
    connector, made when asked for from _PER_EVSE and the EVSE's (phases, max_a, cable_a).
    Kept, they would cost some 1.7 KB of heap per EVSE (a key string and a tuple each) for
    rows that only messages read."""

    def __init__(self, rows, extra=(), evses=()):
        self.rows = rows
        self.extra = extra
        self.evses = evses  # ((phases, max_a, cable_a), ...) in EVSE order
        self._fixed = len(rows) + len(extra)

    def __len__(self):
        return self._fixed + _ROWS * len(self.evses)

    def __getitem__(self, i):
        """Row i (iteration goes through here: IndexError past the last)."""
        n = len(self.rows)
        if 0 <= i < n:
            return self.rows[i]
        if n <= i < self._fixed:
            return self.extra[i - n]
        e, j = divmod(i - self._fixed, _ROWS)
        if i < 0 or e >= len(self.evses):
            raise IndexError(i)
        return _evse_row(e + 1, self.evses[e], _PER_EVSE[j])

    def find(self, key, fold=True):
        """The row of `key`, else (fold) one whose key differs from it in case only; None
        when there is none."""
        for part in (self.rows, self.extra):
            for d in part:
                if d[0] == key:
                    return d
        evse = self._evse_candidate(key)
        if evse is not None and evse[0] == key:
            return evse
        if not fold:
            return None
        n = len(key)
        low = key.lower()
        for part in (self.rows, self.extra):
            for d in part:
                if len(d[0]) == n and d[0].lower() == low:  # lower() only on same-length keys
                    return d
        if evse is not None and evse[0].lower() == low:
            return evse
        return None

    def _evse_candidate(self, key):
        """The EVSE or connector row that `key` names in any case, if any: the caller compares
        its key ("EVSE.01/Power" reads as EVSE 1 here, and is not its key)."""
        head, slash, var = key.partition("/")
        parts = head.lower().split(".")
        if not slash or not parts[-1].isdigit():
            return None
        comp = parts[0]
        if (comp == "connector") != (len(parts) == 3) or len(parts) not in (2, 3):
            return None
        e = int(parts[1]) if parts[1].isdigit() else 0
        if not 1 <= e <= len(self.evses):
            return None
        var = var.lower()
        for t in _PER_EVSE:
            if t[0].lower() == comp and t[1].lower() == var:
                return _evse_row(e, self.evses[e - 1], t)
        return None


def declarations(evses, display=False):
    """All declarations (a Declarations): VARIABLES plus ChargingStation.SupplyPhases,
    SmartChargingCtrlr.ACPhaseSwitchingSupported, what needs a display (`display`: the board
    has one) and the EVSE and Connector components of `evses`, a sequence of
    boards.drivers.EvseHw (phases, max_a, cable_a, phase_switch) in EVSE order, one connector
    each."""
    hws = tuple((hw.phases, hw.max_a, hw.cable_a) for hw in evses)
    phases = max([hw[0] for hw in hws] or [0]) or 3
    # Supported when an EVSE can switch between 1 and 3 phases (a 3-phase one with a switch).
    switch = 0
    for hw in evses:
        if hw.phase_switch is not None and hw.phases == 3:
            switch = 1
    extra = (
        ("ChargingStation/SupplyPhases", "ir=", str(phases), (None, 0, 3, None)),
        _SWITCHING[switch],
    ) + _DISPLAYED[1 if display else 0]
    rows = VARIABLES
    if hws and all(hw[2] is not None for hw in hws):
        # A tethered cable cannot be unlocked: the setting is read-only false (§2.2). Only
        # such stations pay for a copy of VARIABLES without it.
        rows = tuple(d for d in VARIABLES if d[0] != _UNLOCK)
        extra += ((_UNLOCK, "br=", "false", None),)
    return Declarations(rows, extra, hws)
