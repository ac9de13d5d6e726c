"""End to end: what the station takes off the wire and what it puts on it, on the MicroPython
unix port against the development CSMS. Frames a fuzzer sends (not JSON, not UTF-8, nested
25,000 deep, a 60,000-digit message type, 60 KB) get the OCPP-J error table's answer, exact on
the wire, and the link lives on; strings with characters outside the BMP go in and come back
whole, also after a power loss; BytesPerMessage counts bytes; meter values carry the decimals
meant; a small heap costs an answer at worst, never the connection."""

import json
import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tools.harness import FAST, variables

pytestmark = pytest.mark.e2e

HB_VAR = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
ORG = {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "OrganizationName"}}
GRIN = "\U0001f600"


def config(extra=None):
    values = dict(FAST)
    values.update(extra or {})
    return {"variables": variables(values)}


def compact(x):
    return json.dumps(x, separators=(",", ":"), ensure_ascii=False)


def accepted(csms, sim):
    st = csms.station(timeout=15)
    csms.wait_call(st, "BootNotification")
    sim.wait_status(lambda s: s["registration"] == "Accepted" and s["connected"])
    return st


def answer(csms, st, raw, uid, timeout=15):
    """Send `raw` (str, or bytes for a text frame that may not be UTF-8); the station's answer
    with id `uid`, as the frame it was on the wire."""
    start = len(st.frames)
    if isinstance(raw, bytes):
        csms.run(st.send_text_bytes(raw))
    else:
        csms.run(st.send_raw(raw))
    return csms.wait_frame(
        st,
        lambda f: f.direction == "in" and f.kind in ("result", "error") and f.unique_id == uid,
        timeout,
        start,
    )


def alive(csms, st):
    got = csms.call(st, "GetVariables", {"getVariableData": [HB_VAR]})
    assert got["getVariableResult"][0]["attributeStatus"] == "Accepted"


TRAILING = '[2,"r11","TriggerMessage",{"requestedMessage":"Heartbeat",},]'

FUZZ = [
    # (frame, id of the answer, the answer exactly as on the wire)
    (
        TRAILING,
        "r11",
        '[4,"r11","FormatViolation","not JSON: a string key expected at byte 58",{}]',
    ),
    (
        '[2,"m2","Heartbeat",{}]\x00',
        "m2",
        '[4,"m2","FormatViolation","not JSON: text after the value at byte 23",{}]',
    ),
    (
        '[2,"m3","DataTransfer",{"vendorId":"a\tb"}]',
        "m3",
        '[4,"m3","FormatViolation","not JSON: control character in a string at byte 37",{}]',
    ),
    (
        '[2,"m4","DataTransfer",{"vendorId":"x","data":02}]',
        "m4",
        '[4,"m4","FormatViolation","not JSON: \',\' or a closing bracket expected at byte 47",{}]',
    ),
    (
        b'[2,"u1","DataTransfer",{"vendorId":"\xc0\xaf"}]',
        "u1",
        '[4,"u1","FormatViolation","not UTF-8 at byte 36",{}]',
    ),
    (
        b'[2,"u2","DataTransfer",{"vendorId":"\xed\xa0\x80"}]',
        "u2",
        '[4,"u2","FormatViolation","not UTF-8 at byte 36",{}]',
    ),
    (
        b'[2,"\xc0\xaf","DataTransfer",{"vendorId":"x"}]',
        "-1",
        '[4,"-1","RpcFrameworkError","not UTF-8 at byte 4",{}]',
    ),
    (
        '[2,"s1","DataTransfer",{"vendorId":"\\ud800"}]',
        "s1",
        '[4,"s1","FormatViolation","lone surrogate escape at byte 36",{}]',
    ),
    (
        "[" * 25000 + "]" * 25000,
        "-1",
        '[4,"-1","RpcFrameworkError","nested deeper than 32 at byte 32",{}]',
    ),
    (
        '[2,"d1","DataTransfer",{"vendorId":"x","data":' + "[" * 25000 + "]" * 25000 + "}]",
        "d1",
        '[4,"d1","FormatViolation","nested deeper than 32 at byte 76",{}]',
    ),
    (
        "[" + "7" * 60000 + ',"t1","Heartbeat",{}]',
        "t1",
        '[4,"t1","MessageTypeNotSupported","type of over 9 digits",{}]',
    ),
    (
        '[2,"n1","DataTransfer",{"vendorId":"x","data":1' + "0" * 60000 + "}]",
        "n1",
        '[4,"n1","FormatViolation","number longer than 64 characters at byte 46",{}]',
    ),
    (
        '[2,"a1","\\ud83d\\ude00",{}]',
        "a1",
        '[4,"a1","NotImplemented","unknown action %s",{}]' % GRIN,
    ),
    (
        '[2,"\\ud83d\\ude00x","DataTransfer",{"vendorId":"x"}]',
        GRIN + "x",
        '[3,"%sx",{"status":"UnknownVendorId"}]' % GRIN,
    ),
    (
        json.dumps([2, "big", "DataTransfer", {"vendorId": "x", "data": "y" * 60000}]),
        "big",
        '[3,"big",{"status":"UnknownVendorId"}]',
    ),
]


RX_LIMIT = 16384  # boards/sim's rx_limit on the esp32 target (boards.Board.rx_limit)


def read_past(raw, uid):
    """The answer to a frame over the board's receive limit: read past, never buffered (its id
    when the first 64 bytes hold it)."""
    if '"%s"' % uid in raw[:64]:
        return '[4,"%s","InternalError","out of memory to read it (%d bytes)",{}]' % (
            uid,
            len(raw.encode()),
        )
    return '[4,"-1","RpcFrameworkError","out of memory to read it (%d bytes)",{}]' % len(
        raw.encode()
    )


def test_fuzz_frames_get_the_error_table_exactly_and_the_link_lives_on(csms, sims, target):
    sim = sims(csms.url, config=config())
    st = accepted(csms, sim)
    for raw, uid, want in FUZZ:
        size = len(raw if isinstance(raw, bytes) else raw.encode())
        if target == "esp32" and size > RX_LIMIT:
            want = read_past(raw, uid)
            uid = json.loads(want)[1]
        got = answer(csms, st, raw, uid)
        assert got.raw == want, raw[:80]
        alive(csms, st)
    # Nothing was acted on: the TriggerMessage with trailing commas sent no Heartbeat.
    assert [f for f in st.frames if f.action == "Heartbeat" and f.kind == "call"] == []
    # The same connection throughout, and no frame held the loop for long.
    assert st.connected and len(csms.csms.attempts) == 1
    assert sim.cmd("status")["max_stall_ms"] < 500


def test_bytes_per_message_counts_bytes(csms, sims):
    sim = sims(csms.url, config=config())
    st = accepted(csms, sim)
    # 20 items (ItemsPerMessage) of 2-byte characters: 2,600 characters, 4,600 bytes.
    item = {"component": {"name": "é" * 50}, "variable": {"name": "é" * 50}}
    raw = compact([2, "g1", "GetVariables", {"getVariableData": [item] * 20}])
    assert len(raw) < 4096 < len(raw.encode())
    assert answer(csms, st, raw, "g1").raw == '[4,"g1","FormatViolation","BytesPerMessage",{}]'
    values = [dict(ORG, attributeValue=GRIN * 64)] * 20  # 3,080 characters, 6,920 bytes
    raw = compact([2, "s1", "SetVariables", {"setVariableData": values}])
    assert len(raw) < 4096 < len(raw.encode())
    assert answer(csms, st, raw, "s1").raw == '[4,"s1","FormatViolation","BytesPerMessage",{}]'
    # Under the limit in bytes: answered, the names echoed whole.
    raw = compact([2, "g2", "GetVariables", {"getVariableData": [item] * 10}])
    got = answer(csms, st, raw, "g2")
    assert got.kind == "result" and len(raw.encode()) <= 4096
    assert got.msg[2]["getVariableResult"][0]["component"] == {"name": "é" * 50}


def test_an_astral_organization_name_round_trips_also_after_a_power_loss(csms, sims):
    sim = sims(csms.url, config=config())
    st = accepted(csms, sim)
    name = (GRIN + "é") * 32  # 64 characters, the maximum: 192 bytes, 96 UTF-16 units
    # The CSMS's JSON escapes characters outside the BMP as surrogate pairs.
    got = csms.call(st, "SetVariables", {"setVariableData": [dict(ORG, attributeValue=name)]})
    assert got == {"setVariableResult": [dict(ORG, attributeStatus="Accepted")]}
    want = {"getVariableResult": [dict(ORG, attributeStatus="Accepted", attributeValue=name)]}
    assert csms.call(st, "GetVariables", {"getVariableData": [ORG]}) == want
    # A report holding it goes out whole too (invalid UTF-8 would make the CSMS drop us).
    assert csms.call(st, "GetBaseReport", {"requestId": 7, "reportBase": "FullInventory"}) == {
        "status": "Accepted"
    }
    deadline = time.monotonic() + 20
    seen = None
    while seen is None and time.monotonic() < deadline:
        for f in st.frames:
            if f.action == "NotifyReport" and f.kind == "call":
                for rd in f.payload.get("reportData", []):
                    if rd["component"]["name"] == "SecurityCtrlr" and (
                        rd["variable"]["name"] == "OrganizationName"
                    ):
                        seen = rd["variableAttribute"][0]["value"]
        time.sleep(0.1)
    assert seen == name
    sim.kill()
    csms.run(st.wait_closed(10), 15)
    sim2 = sims(csms.url, config=config(), state_dir=sim.state_dir)
    st2 = accepted(csms, sim2)
    assert csms.call(st2, "GetVariables", {"getVariableData": [ORG]}) == want
    assert st.close_code != 1007 and st2.connected


def test_meter_values_go_out_with_the_decimals_meant(csms, sims):
    cfg = config(
        {
            ("SampledDataCtrlr", "TxUpdatedInterval"): "1",
            ("SampledDataCtrlr", "TxEndedInterval"): "1",
            (
                "SampledDataCtrlr",
                "TxUpdatedMeasurands",
            ): "Energy.Active.Import.Register,Power.Active.Import,Current.Import,Voltage",
            ("AlignedDataCtrlr", "Interval"): "1",
            ("AlignedDataCtrlr", "Measurands"): "Energy.Active.Import.Register,Voltage",
        }
    )
    sim = sims(csms.url, config=cfg)
    st = accepted(csms, sim)
    assert sim.cmd("plug_in", evse=1) == {"ok": True}
    # 8.03 A: MicroPython's repr() of round(8.03, 2) is 8.029999999999999.
    assert sim.cmd("ev_current", evse=1, a=8.03, phases=3) == {"ok": True}
    assert sim.cmd("ev_state", evse=1, state="C") == {"ok": True}
    assert sim.cmd("swipe", token="GOOD") == {"ok": True}
    sim.wait_status(lambda s: s["evse"][0]["power_w"] > 0)
    time.sleep(4)
    assert sim.cmd("swipe", token="GOOD") == {"ok": True}
    csms.wait_frame(st, lambda f: f.kind == "call" and f.payload.get("eventType") == "Ended")
    numbers = []
    for f in st.frames:
        if f.kind == "call" and f.action in ("TransactionEvent", "MeterValues"):
            numbers += re.findall(r'"value":([-+0-9.eE]+)', f.raw)
    assert len(numbers) > 40 and "8.03" in numbers
    bad = [n for n in numbers if not re.fullmatch(r"-?\d+(\.\d{1,2})?", n)]
    assert bad == []


# 576K: the 64-bit host runs sources, compiled into this heap (444 KiB just to boot); at 512K a
# 4.5 KB answer found no block about one run in four under a full `make test`. The board's
# case is test_on_the_virtual_esp32_no_frame_costs_the_link.
@pytest.mark.targets("host")
@pytest.mark.parametrize("heap", ["576K"])
def test_a_small_heap_costs_an_answer_at_worst_never_the_link(csms, sims, heap):
    sim = sims(csms.url, config=config(), heap=heap)
    st = accepted(csms, sim)
    # Up to BytesPerMessage (4096 bytes) a GetVariables is answered in full.
    item = {"component": {"name": "C" * 50}, "variable": {"name": "V" * 50}}
    raw = json.dumps([2, "g20", "GetVariables", {"getVariableData": [item] * 20}])
    assert len(raw) < 4096
    got = answer(csms, st, raw, "g20")
    assert got.kind == "result" and len(got.msg[2]["getVariableResult"]) == 20, got.raw
    # Larger frames, up to the WebSocket limit: an answer with their id, whatever memory
    # allows (the result, or InternalError when no buffer could be had), and the same link.
    for n in (5000, 16000, 30000, 60000):
        uid = "b%d" % n
        raw = json.dumps([2, uid, "DataTransfer", {"vendorId": "x", "data": "y" * n}])
        got = answer(csms, st, raw, uid)
        ok = got.raw == '[3,"%s",{"status":"UnknownVendorId"}]' % uid
        no_room = got.msg[:3] == [4, uid, "InternalError"] and "out of memory" in got.msg[3]
        assert ok or no_room, got.raw
        alive(csms, st)
    assert st.connected and len(csms.csms.attempts) == 1
    assert "MemoryError" not in sim.log()


# -- property: strings of every kind into every action -------------------------------------------

# A valid, harmless request for each action the firmware implements, with the paths of its
# free-text strings (every request may also carry customData.vendorId).
NAME = {"component": {"name": "X"}, "variable": {"name": "Y"}}
BASES = {
    "CancelReservation": ({"reservationId": 99}, []),  # Rejected: unknown
    "ChangeAvailability": ({"operationalStatus": "Operative"}, []),
    # Rejected at once (no ISO 15118 here); the chain (up to 10000 characters) not drawn.
    "CertificateSigned": ({"certificateChain": "C", "certificateType": "V2GCertificate"}, []),
    "ClearDisplayMessage": ({"id": 99}, []),  # Unknown
    "CostUpdated": ({"totalCost": 1.5, "transactionId": "T"}, [("transactionId",)]),  # ignored
    "ClearCache": ({}, []),
    "ClearVariableMonitoring": ({"id": [99]}, []),  # NotFound
    "ClearChargingProfile": ({"chargingProfileId": 99}, []),  # Unknown
    "CustomerInformation": (
        {"requestId": 1, "report": False, "clear": False, "customerIdentifier": "C"},
        [("customerIdentifier",)],
    ),
    "DataTransfer": (
        {"vendorId": "V", "messageId": "M", "data": "D"},
        [("vendorId",), ("messageId",), ("data",)],
    ),
    "DeleteCertificate": (
        {
            "certificateHashData": {
                "hashAlgorithm": "SHA256",
                "issuerNameHash": "a",
                "issuerKeyHash": "b",
                "serialNumber": "c",
            }
        },
        [("certificateHashData", k) for k in ("issuerNameHash", "issuerKeyHash", "serialNumber")],
    ),
    "GetBaseReport": ({"requestId": 1, "reportBase": "SummaryInventory"}, []),
    "GetChargingProfiles": ({"requestId": 1, "chargingProfile": {"stackLevel": 9}}, []),
    "GetCompositeSchedule": ({"evseId": 1, "duration": 60}, []),
    "GetDisplayMessages": ({"requestId": 1, "id": [99]}, []),  # Unknown
    "GetInstalledCertificateIds": ({}, []),
    "GetLog": (
        {"logType": "DiagnosticsLog", "requestId": 1, "log": {"remoteLocation": "x"}},
        [("log", "remoteLocation")],
    ),
    "GetLocalListVersion": ({}, []),
    "GetMonitoringReport": (  # EmptyResultSet: no monitor there
        {"requestId": 3, "componentVariable": [NAME]},
        [
            ("componentVariable", 0, "component", "name"),
            ("componentVariable", 0, "variable", "name"),
        ],
    ),
    "GetReport": (
        {"requestId": 2, "componentVariable": [NAME]},
        [
            ("componentVariable", 0, "component", "name"),
            ("componentVariable", 0, "variable", "name"),
        ],
    ),
    "GetTransactionStatus": ({"transactionId": "T"}, [("transactionId",)]),
    "GetVariables": (
        {"getVariableData": [NAME]},
        [("getVariableData", 0, "component", "name"), ("getVariableData", 0, "variable", "name")],
    ),
    "InstallCertificate": (
        {"certificateType": "V2GRootCertificate", "certificate": "C"},
        [("certificate",)],
    ),
    "RequestStartTransaction": (
        {"idToken": {"idToken": "T", "type": "Central"}, "remoteStartId": 1, "evseId": 1},
        [("idToken", "idToken")],
    ),
    "RequestStopTransaction": ({"transactionId": "T"}, [("transactionId",)]),
    "ReserveNow": (  # expired already: Rejected, nothing kept
        {
            "id": 1,
            "expiryDateTime": "2000-01-01T00:00:00Z",
            "idToken": {"idToken": "T", "type": "Central"},
            "evseId": 1,
        },
        [("idToken", "idToken")],
    ),
    "Reset": ({"type": "OnIdle", "evseId": 1}, []),
    "SendLocalList": (
        {
            "versionNumber": 5,
            "updateType": "Differential",
            "localAuthorizationList": [
                {
                    "idToken": {"idToken": "T", "type": "ISO14443"},
                    "idTokenInfo": {"status": "Accepted"},
                }
            ],
        },
        [("localAuthorizationList", 0, "idToken", "idToken")],
    ),
    "SetChargingProfile": (  # an unknown EVSE: Rejected, nothing stored
        {
            "evseId": 9,
            "chargingProfile": {
                "id": 1,
                "stackLevel": 0,
                "chargingProfilePurpose": "TxDefaultProfile",
                "chargingProfileKind": "Relative",
                "chargingSchedule": [
                    {
                        "id": 1,
                        "chargingRateUnit": "A",
                        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 6}],
                    }
                ],
            },
        },
        [],
    ),
    "SetDisplayMessage": (  # ended already: Rejected, nothing kept
        {
            "message": {
                "id": 1,
                "priority": "NormalCycle",
                "endDateTime": "2000-01-01T00:00:00Z",
                "message": {"format": "UTF8", "content": "C"},
            }
        },
        [("message", "message", "content")],
    ),
    "SetMonitoringBase": ({"monitoringBase": "All"}, []),  # the default: nothing changes
    "SetMonitoringLevel": ({"severity": 9}, []),  # the default
    "SetVariableMonitoring": (  # UnknownComponent: nothing kept
        {
            "setMonitoringData": [
                {
                    "value": 1,
                    "type": "Delta",
                    "severity": 1,
                    "component": {"name": "NoSuchCtrlr"},
                    "variable": {"name": "X"},
                }
            ]
        },
        [
            ("setMonitoringData", 0, "component", "name"),
            ("setMonitoringData", 0, "variable", "name"),
        ],
    ),
    "SetNetworkProfile": (
        {
            "configurationSlot": 999,
            "connectionData": {
                "ocppVersion": "OCPP20",
                "ocppTransport": "JSON",
                "ocppCsmsUrl": "ws://x",
                "messageTimeout": 30,
                "securityProfile": 1,
                "ocppInterface": "Wired0",
            },
        },
        [("connectionData", "ocppCsmsUrl")],
    ),
    "SetVariables": (
        {"setVariableData": [dict(ORG, attributeValue="O")]},
        [("setVariableData", 0, "attributeValue"), ("setVariableData", 0, "variable", "name")],
    ),
    "TriggerMessage": ({"requestedMessage": "Heartbeat"}, []),
    "UnlockConnector": ({"evseId": 1, "connectorId": 1}, []),
    "UpdateFirmware": (
        {
            "requestId": 1,
            "firmware": {"location": "L", "retrieveDateTime": "2030-01-01T00:00:00Z"},
        },
        [("firmware", "location")],
    ),
}


# Actions whose requests may have at most BytesPerMessage (4096) bytes.
LIMITED = (
    "GetVariables",
    "SetVariables",
    "GetReport",
    "SendLocalList",
    "SetVariableMonitoring",
    "ClearVariableMonitoring",
)


def max_length(action, path):
    """The schema's maxLength of the string at `path` in the request of `action`."""
    import ocpp_schema

    table = ocpp_schema.table(action + "Request")
    arg = None
    for seg in path:
        if isinstance(seg, int):
            continue
        names, codes, args = table
        i = names.index(seg)
        kind, arg = codes[i] >> 1, args[i]
        if kind == 8:  # array: its items
            kind, arg = arg[2], arg[3]
        if kind in (6, 7):
            table = arg
    return arg


def put(payload, path, value):
    payload = json.loads(json.dumps(payload))
    if path == ("customData", "vendorId"):
        payload["customData"] = {"vendorId": value}
        return payload
    node = payload
    for seg in path[:-1]:
        node = node[seg]
    node[path[-1]] = value
    return payload


CHARS = st.sampled_from(
    list('aZ09 "\\/\x00\x1f\x7f\u00e9\u00ff\u0100\u20ac\ufffd\uffff')
    + ["\U0001f600", "\U00010000", "\U0010ffff"]
) | st.characters(codec="utf-8", exclude_categories=["Cs"])
LONE_SURROGATES = st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff"])


@st.composite
def nasty(draw, limit):
    """A string near `limit` characters (if any) of 1- to 4-byte characters, perhaps with a
    lone surrogate in it."""
    sizes = st.integers(0, 6)
    sizes |= st.integers(max(0, limit - 2), limit + 1) if limit else st.integers(0, 300)
    s = draw(sizes.flatmap(lambda n: st.text(CHARS, min_size=n, max_size=n)))
    if draw(st.integers(0, 4)) == 0:
        at = draw(st.integers(0, len(s)))
        s = s[:at] + draw(LONE_SURROGATES) + s[at:]
    return s


def lone(s):
    return any(0xD800 <= ord(c) < 0xE000 for c in s)


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_strings_of_every_kind_into_every_action(csms, sims, data):
    import ocpp_oracle
    import ocpp_schema

    if not hasattr(csms, "wire_st"):  # one station for all the examples
        csms.wire_sim = sims(csms.url, config=config())
        csms.wire_st = accepted(csms, csms.wire_sim)
        csms.wire_n = 0
    st_ = csms.wire_st
    csms.wire_n += 1
    uid = sent = "p%d" % csms.wire_n  # the id sent, and the one the answer has
    where = data.draw(st.sampled_from(["field", "field", "field", "key", "id", "action", "other"]))
    action = data.draw(st.sampled_from(sorted(BASES)))
    base, paths = BASES[action]
    payload = base
    expect = None  # a CALLRESULT, checked against the official schema
    if where == "field":
        path = data.draw(st.sampled_from(paths + [("customData", "vendorId")]))
        s = data.draw(nasty(max_length(action, path)))
        payload = put(base, path, s)
        if lone(s):
            expect = "FormatViolation"
        elif len(s) > max_length(action, path) if max_length(action, path) else False:
            expect = "TypeConstraintViolation"
    elif where == "key":  # an unknown property: its name is quoted in the description
        key = data.draw(nasty(0).filter(lambda k: k and k not in base and k != "customData"))
        payload = dict(base, **{key: 1})
        expect = "FormatViolation"
    elif where == "id":
        uid = sent = data.draw(nasty(36))
        if lone(uid) or not 0 < len(uid) <= 36:
            expect, uid = "RpcFrameworkError", "-1"
    elif where == "action":
        action = data.draw(nasty(20))
        expect = "FormatViolation" if lone(action) else "NotImplemented"
    else:
        action = data.draw(st.sampled_from(sorted(set(ocpp_schema.ACTIONS) - set(BASES))))
        expect = "NotSupported"
    text = json.dumps([2, sent, action, payload], ensure_ascii=data.draw(st.booleans()))
    if lone(text):
        text = json.dumps([2, sent, action, payload])  # a lone surrogate can only be escaped
    if expect is None and action in LIMITED and len(text.encode()) > 4096:
        expect = "FormatViolation"  # BytesPerMessage, in bytes
    got = answer(csms, st_, text, uid)
    # It got here: the station's frame was UTF-8 (else the CSMS fails the link with 1007).
    assert st_.connected, st_.close_code
    if expect is None:
        assert got.kind == "result", got.raw
        ocpp_oracle.valid(action + "Response", got.msg[2])
        if action == "GetVariables":  # the names come back as they went
            assert (
                got.msg[2]["getVariableResult"][0]["component"]
                == payload["getVariableData"][0]["component"]
            )
    else:
        assert got.kind == "error" and got.msg[2] == expect, got.raw
        assert len(got.msg[3]) <= 255 and got.msg[4] == {}
        if expect == "NotImplemented":
            assert got.msg[3] == ("unknown action " + action)[:255]
        if where == "key" and not lone(key):
            assert got.msg[3] == ("FormatViolation at %s: unknown property" % key)[:255]


def next_answer(csms, st, raw, timeout=15):
    """Send `raw`; the station's next CALLRESULT or CALLERROR, whatever its id."""
    start = len(st.frames)
    csms.run(st.send_text_bytes(raw) if isinstance(raw, bytes) else st.send_raw(raw))
    return csms.wait_frame(
        st, lambda f: f.direction == "in" and f.kind in ("result", "error"), timeout, start
    )


@pytest.mark.targets("esp32")
def test_on_the_virtual_esp32_no_frame_costs_the_link(csms, sims):
    """On the board's 112K heap: frames it has no room for get InternalError with their id
    (RpcFrameworkError "-1" when the id is not in their first 64 bytes) and the link lives on."""
    sim = sims(csms.url, config=config())
    st = accepted(csms, sim)
    assert sim.cmd("status")["target"] == "esp32"
    frames = [(raw, uid, want) for raw, uid, want in FUZZ]
    for n in (1000, 3000, 6000, 16000, 60000):
        raw = json.dumps([2, "b%d" % n, "DataTransfer", {"vendorId": "x", "data": "y" * n}])
        frames.append((raw, "b%d" % n, '[3,"b%d",{"status":"UnknownVendorId"}]' % n))
    for raw, uid, want in frames:
        got = next_answer(csms, st, raw)
        no_room = got.msg[:3] in ([4, uid, "InternalError"], [4, "-1", "RpcFrameworkError"])
        assert got.raw == want or (no_room and "out of memory" in got.msg[3]), got.raw
        alive(csms, st)
    # Over the board's receive limit (boards/sim rx_limit, 16 KiB) the answer is always the
    # same, whatever the heap's state: read past, never buffered.
    raw = json.dumps([2, "b50000", "DataTransfer", {"vendorId": "x", "data": "y" * 50000}])
    want = '[4,"b50000","InternalError","out of memory to read it (%d bytes)",{}]' % len(raw)
    assert next_answer(csms, st, raw).raw == want
    raw = "[2," + " " * 64 + raw[3:]  # its id not in the first 64 bytes
    want = '[4,"-1","RpcFrameworkError","out of memory to read it (%d bytes)",{}]' % len(raw)
    assert next_answer(csms, st, raw).raw == want
    alive(csms, st)
    assert st.connected and len(csms.csms.attempts) == 1
    assert "MemoryError" not in sim.log()
