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
# limits: None, or (unit, minLimit, maxLimit, valuesList); for strings the limits bound the
#         length; valuesList is the comma-separated list for the list types.
#
# Everything here is a constant: no object per variable is built at run time, and on a board
# the tuples stay in flash with the frozen code (the shared parts are const(), so that the
# tables that use them fold into constants too, and they take no global name). Only the EVSE
# and Connector components, which depend on the hardware, are made at boot by `declarations()`
# (9 tuples per EVSE).

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
_CERTIFICATES = const(
    8
)  # certificate slots (CSMS and manufacturer roots): CertificateEntries maxLimit
_LOCAL_LIST = const(100)  # local authorization list capacity: LocalAuthListCtrlr.Entries maxLimit
_AUTH_CACHE_BYTES = const(4096)  # authorization cache capacity: AuthCacheCtrlr.Storage maxLimit
_VOLTS = const(230)  # nominal phase voltage, for the rated power of an EVSE

# The station-wide part: every controller of the Core set (ocpp201-station.md §2.2, §3.1).
VARIABLES = (
    ("OCPPCommCtrlr/HeartbeatInterval", "iw", "300", (_S, 1, 86400, None)),
    ("OCPPCommCtrlr/OfflineThreshold", "iw", "120", _SEC_DAY),
    ("OCPPCommCtrlr/MessageTimeout:Default", "ir=", "30", (_S, 1, 600, None)),
    ("OCPPCommCtrlr/MessageAttempts:TransactionEvent", "iw", "3", (None, 1, 10, None)),
    ("OCPPCommCtrlr/MessageAttemptInterval:TransactionEvent", "iw", "60", _SEC_HOUR),
    ("OCPPCommCtrlr/NetworkConfigurationPriority", "qw!", "1", (None, None, None, "1,2,3")),
    ("OCPPCommCtrlr/NetworkProfileConnectionAttempts", "iw", "3", _COUNT_100),
    ("OCPPCommCtrlr/ResetRetries", "iw", "2", _COUNT_10),
    ("OCPPCommCtrlr/ActiveNetworkProfile", "ir", "1", (None, 1, 3, None)),
    ("OCPPCommCtrlr/FileTransferProtocols", "mr=", "HTTPS,HTTP", (None, None, None, "HTTPS,HTTP")),
    ("OCPPCommCtrlr/UnlockOnEVSideDisconnect", "bw", "true", None),
    ("OCPPCommCtrlr/RetryBackOffWaitMinimum", "iw", "10", _SEC_HOUR),
    ("OCPPCommCtrlr/RetryBackOffRandomRange", "iw", "10", _SEC_HOUR),
    ("OCPPCommCtrlr/RetryBackOffRepeatTimes", "iw", "5", (None, 0, 20, None)),
    ("OCPPCommCtrlr/WebSocketPingInterval", "iw", "60", _SEC_HOUR),
    ("OCPPCommCtrlr/QueueAllMessages", "bw", "false", None),
    ("OCPPCommCtrlr/MinimumStatusDuration", "iw", "0", _SEC_HOUR),
    ("TxCtrlr/TxStartPoint", "mw", "PowerPathClosed", _TX_POINTS),
    ("TxCtrlr/TxStopPoint", "mw", "EVConnected,Authorized", _TX_POINTS),
    ("TxCtrlr/EVConnectionTimeOut", "iw", "120", (_S, 10, 3600, None)),
    ("TxCtrlr/StopTxOnEVSideDisconnect", "br=", "true", None),
    ("TxCtrlr/StopTxOnInvalidId", "bw", "true", None),
    ("TxCtrlr/MaxEnergyOnInvalidId", "iw", "0", ("Wh", 0, 1000000, None)),
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
    ("AuthCacheCtrlr/LifeTime", "iw", "604800", (_S, 0, 31536000, None)),
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
    ("SampledDataCtrlr/TxUpdatedInterval", "iw", "60", _SEC_DAY),
    ("SampledDataCtrlr/TxEndedMeasurands", "mw", _ENERGY, _MEASURANDS),
    ("SampledDataCtrlr/TxEndedInterval", "iw", "300", _SEC_DAY),
    ("AlignedDataCtrlr/Measurands", "mw", _ENERGY, _MEASURANDS),
    ("AlignedDataCtrlr/Interval", "iw", "900", _SEC_DAY),
    ("AlignedDataCtrlr/TxEndedMeasurands", "mw", _ENERGY, _MEASURANDS),
    ("AlignedDataCtrlr/TxEndedInterval", "iw", "900", _SEC_DAY),
    ("AlignedDataCtrlr/SendDuringIdle", "bw", "false", None),
    ("SecurityCtrlr/SecurityProfile", "ir", "1", (None, 1, 3, None)),
    ("SecurityCtrlr/BasicAuthPassword", "sx", "", (None, 16, 40, None)),
    ("SecurityCtrlr/Identity", "sr=", "", (None, 1, 48, None)),
    ("SecurityCtrlr/OrganizationName", "sw", "", (None, 0, 64, None)),
    ("SecurityCtrlr/CertificateEntries", "ir", "0", (None, 0, _CERTIFICATES, None)),
    ("SecurityCtrlr/AdditionalRootCertificateCheck", "br=", "false", None),
    ("SecurityCtrlr/CertSigningWaitMinimum", "iw", "30", (_S, 1, 86400, None)),
    ("SecurityCtrlr/CertSigningRepeatTimes", "iw", "3", (None, 0, 100, None)),
    ("DeviceDataCtrlr/ItemsPerMessage:GetVariables", "ir=", "20", _ITEMS),
    ("DeviceDataCtrlr/ItemsPerMessage:SetVariables", "ir=", "20", _ITEMS),
    ("DeviceDataCtrlr/ItemsPerMessage:GetReport", "ir=", "20", _ITEMS),
    ("DeviceDataCtrlr/BytesPerMessage:GetVariables", "ir=", "4096", _BYTES),
    ("DeviceDataCtrlr/BytesPerMessage:SetVariables", "ir=", "4096", _BYTES),
    ("DeviceDataCtrlr/BytesPerMessage:GetReport", "ir=", "4096", _BYTES),
    ("ClockCtrlr/DateTime", "tr", "1970-01-01T00:00:00Z", None),
    ("ClockCtrlr/TimeSource", "qw", "Heartbeat", (None, None, None, "Heartbeat")),
    ("ClockCtrlr/TimeAdjustmentReportingThreshold", "iw", "20", _SEC_DAY),
    ("ClockCtrlr/TimeOffset", "sw", "", (None, 0, 6, None)),
    ("ClockCtrlr/TimeZone", "sw", "", (None, 0, 64, None)),
    ("ClockCtrlr/NextTimeOffsetTransitionDateTime", "tw", "1970-01-01T00:00:00Z", None),
    ("ChargingStation/AvailabilityState", "or", "Available", _STATES),
    ("ChargingStation/Available", "br", "true", None),
    ("ChargingStation/AllowNewSessionsPendingFirmwareUpdate", "bw", "false", None),
)

# Per EVSE n and its connector n.1: (variable, spec, default) of the hardware-independent ones.
_EVSE = const(
    (
        ("AvailabilityState", "or", "Available", _STATES),
        ("Available", "br", "true", None),
        ("AllowReset", "br=", "false", None),
    )
)
_CONNECTOR = const(
    (
        ("AvailabilityState", "or", "Available", _STATES),
        ("Available", "br", "true", None),
    )
)


def declarations(evses):
    """All declarations: VARIABLES plus ChargingStation.SupplyPhases and the EVSE and
    Connector components of `evses`, a sequence of boards.drivers.EvseHw (phases, max_a,
    cable_a) in EVSE order, one connector each."""
    out = []
    phases = 0
    sockets = 0  # EVSEs with a socket (no tethered cable)
    n = 0
    for hw in evses:
        n += 1
        phases = max(phases, hw.phases)
        if hw.cable_a is None:
            sockets += 1
        evse = "EVSE.%d/" % n
        conn = "Connector.%d.1/" % n
        for name, spec, default, lim in _EVSE:
            out.append((evse + name, spec, default, lim))
        out.append((evse + "SupplyPhases", "ir=", str(hw.phases), (None, 1, 3, None)))
        rated = hw.max_a * hw.phases * _VOLTS
        out.append((evse + "Power", "dr", "0", ("W", 0, rated, None)))
        for name, spec, default, lim in _CONNECTOR:
            out.append((conn + name, spec, default, lim))
        out.append((conn + "SupplyPhases", "ir=", str(hw.phases), (None, 1, 3, None)))
        out.append((conn + "ConnectorType", "sr=", "cType2" if hw.cable_a else "sType2", None))
    station = [("ChargingStation/SupplyPhases", "ir=", str(phases or 3), (None, 0, 3, None))]
    if n and not sockets:
        # A tethered cable cannot be unlocked: the setting is read-only false (§2.2).
        station.append(("OCPPCommCtrlr/UnlockOnEVSideDisconnect", "br=", "false", None))
        return tuple(d for d in VARIABLES if d[0] != station[1][0]) + tuple(station + out)
    return VARIABLES + tuple(station + out)
