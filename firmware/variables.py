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
# limits: None, or (unit, minLimit, maxLimit, valuesList); for strings the limits bound the
#         length; valuesList is the comma-separated list for the list types.

_S = "s"  # unit: seconds

VARIABLES = (
    ("OCPPCommCtrlr/HeartbeatInterval", "iw", "300", (_S, 1, 86400, None)),
    ("OCPPCommCtrlr/OfflineThreshold", "iw", "120", (_S, 0, 86400, None)),
    ("OCPPCommCtrlr/MessageTimeout:Default", "ir", "30", (_S, 1, 600, None)),
    ("OCPPCommCtrlr/MessageAttempts:TransactionEvent", "iw", "3", (None, 1, 10, None)),
    ("OCPPCommCtrlr/MessageAttemptInterval:TransactionEvent", "iw", "60", (_S, 0, 3600, None)),
    ("OCPPCommCtrlr/NetworkConfigurationPriority", "qw!", "1", (None, None, None, "1")),
    ("OCPPCommCtrlr/NetworkProfileConnectionAttempts", "iw", "3", (None, 1, 100, None)),
    ("OCPPCommCtrlr/ResetRetries", "iw", "2", (None, 0, 10, None)),
    ("OCPPCommCtrlr/RetryBackOffWaitMinimum", "iw", "10", (_S, 0, 3600, None)),
    ("OCPPCommCtrlr/RetryBackOffRandomRange", "iw", "10", (_S, 0, 3600, None)),
    ("OCPPCommCtrlr/RetryBackOffRepeatTimes", "iw", "5", (None, 0, 20, None)),
    ("OCPPCommCtrlr/WebSocketPingInterval", "iw", "60", (_S, 0, 3600, None)),
    ("SecurityCtrlr/SecurityProfile", "ir", "1", (None, 1, 3, None)),
    ("SecurityCtrlr/BasicAuthPassword", "sx", "", (None, 16, 40, None)),
    ("SecurityCtrlr/Identity", "sr", "", (None, 1, 48, None)),
    ("SecurityCtrlr/OrganizationName", "sw", "", (None, 0, 64, None)),
    ("DeviceDataCtrlr/ItemsPerMessage:GetVariables", "ir", "20", None),
    ("DeviceDataCtrlr/ItemsPerMessage:SetVariables", "ir", "20", None),
    ("DeviceDataCtrlr/BytesPerMessage:GetVariables", "ir", "4096", None),
    ("DeviceDataCtrlr/BytesPerMessage:SetVariables", "ir", "4096", None),
    ("ClockCtrlr/DateTime", "tr", "", None),
    ("ClockCtrlr/TimeSource", "qw", "Heartbeat", (None, None, None, "Heartbeat")),
)
