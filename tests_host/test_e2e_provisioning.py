"""End to end: the device model and its reports on the MicroPython unix port.

GetBaseReport / GetReport answered, then NotifyReport parts (the development CSMS validates
every frame strictly, and so does this file against the official schema); Get/SetVariables over
every declared variable; values surviving a Reset and a power loss.
"""

import json
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import ocpp
import pytest

from boards.sim import MAX_A, PHASES
from firmware.variables import declarations
from tools.csms import CallErrorReply
from tools.harness import FAST, variables

pytestmark = pytest.mark.e2e

SCHEMA = json.loads(
    (Path(ocpp.__file__).parent / "v201" / "schemas" / "NotifyReportRequest.json").read_text()
)
NOTIFY_REPORT = jsonschema.validators.validator_for(SCHEMA)(
    SCHEMA, format_checker=jsonschema.FormatChecker()
)
# The sim's device model: one EVSE with a socket and a phase switch, as boards/sim builds it.
SIM_HW = SimpleNamespace(phases=PHASES, max_a=MAX_A, cable_a=None, phase_switch=object())
DECLS = declarations([SIM_HW])
KEYS = [d[0] for d in DECLS]
WRITE_ONLY = {d[0] for d in DECLS if d[1][1] == "x"}


def config(extra=None):
    values = dict(FAST)
    values.update(extra or {})
    return {"variables": variables(values)}


def accepted(csms, sim, sid="CS1"):
    """Wait until the station is connected, has booted and knows it is Accepted."""
    st = csms.station(sid, timeout=15)
    csms.wait_call(st, "BootNotification")
    sim.wait_status(lambda s: s["registration"] == "Accepted" and s["connected"])
    return st


def answer_to(csms, st, frame):
    uid = frame.unique_id
    return csms.wait_frame(st, lambda f: f.direction == "out" and f.unique_id == uid)


def report(csms, st, action, payload):
    """(response, [NotifyReport frames]) of a report request; checks what every report must."""
    start = len(st.frames)
    resp = csms.call(st, action, payload)
    frames = []
    i = start
    while resp["status"] == "Accepted":
        f = csms.wait_call(st, "NotifyReport", start=i, timeout=20)
        i = f.index + 1
        frames.append(f)
        if not f.msg[3]["tbc"]:
            break
    if frames:
        # The response went out before the first part (§1.4).
        res = csms.wait_frame(
            st, lambda f: f.direction == "in" and f.kind == "result", start=start
        )
        assert res.index < frames[0].index
    for n, f in enumerate(frames):
        p = f.msg[3]
        NOTIFY_REPORT.validate(p)
        assert p["requestId"] == payload["requestId"] and p["seqNo"] == n
        assert p["tbc"] is (n < len(frames) - 1)
        assert 1 <= len(p["reportData"]) <= 10 and len(f.raw) <= 4096
        assert answer_to(csms, st, f).kind == "result"  # the CSMS found it valid
    return resp, frames


def key_of(it):
    c, v = it["component"], it["variable"]
    k = c["name"]
    if "evse" in c:
        k += ".%d" % c["evse"]["id"]
        if "connectorId" in c["evse"]:
            k += ".%d" % c["evse"]["connectorId"]
    if "instance" in c:
        k += ":" + c["instance"]
    k += "/" + v["name"]
    return k + (":" + v["instance"] if "instance" in v else "")


def items_of(frames):
    return [it for f in frames for it in f.msg[3]["reportData"]]


def cv(comp, var=None, **kw):
    c = {"name": comp}
    c.update(kw)
    out = {"component": c}
    if var is not None:
        name, _, inst = var.partition(":")
        out["variable"] = {"name": name, "instance": inst} if inst else {"name": name}
    return out


def ocpp_pair(key):
    """(component, variable) of a declaration key, as the wire spells them."""
    comp, var = key.split("/")
    name, *ids = comp.split(".")
    c = {"name": name}
    if ids:
        c["evse"] = {"id": int(ids[0])}
        if len(ids) > 1:
            c["evse"]["connectorId"] = int(ids[1])
    out = cv("x", var)
    out["component"] = c
    return out


def test_base_reports_carry_the_whole_device_model(csms, sims):
    sim = sims(csms.url, config=config())
    st = accepted(csms, sim)
    resp, frames = report(
        csms, st, "GetBaseReport", {"requestId": 1, "reportBase": "FullInventory"}
    )
    assert resp == {"status": "Accepted"} and len(frames) >= 8
    items = items_of(frames)
    assert sorted(key_of(it) for it in items) == sorted(KEYS)  # each exactly once
    for it in items:
        attr = it["variableAttribute"][0]
        assert ("value" in attr) is (key_of(it) not in WRITE_ONLY)
        if it["variableCharacteristics"]["dataType"] in ("OptionList", "MemberList"):
            assert it["variableCharacteristics"]["valuesList"]
    by = {key_of(it): it for it in items}
    assert by["SecurityCtrlr/Identity"]["variableAttribute"][0]["value"] == "CS1"
    assert by["ClockCtrlr/DateTime"]["variableAttribute"][0]["value"].endswith("Z")
    assert by["EVSE.1/Power"]["variableCharacteristics"]["maxLimit"] == MAX_A * PHASES * 230

    resp, frames = report(
        csms, st, "GetBaseReport", {"requestId": 2, "reportBase": "ConfigurationInventory"}
    )
    assert resp == {"status": "Accepted"}
    want = [d[0] for d in DECLS if d[1][1] in "wx"]
    assert sorted(key_of(it) for it in items_of(frames)) == sorted(want)

    resp, frames = report(
        csms, st, "GetBaseReport", {"requestId": 3, "reportBase": "SummaryInventory"}
    )
    assert resp == {"status": "NotSupported"} and frames == []
    assert not [f for f in st.frames if f.kind == "error"]


def test_get_report_filters_criteria_and_limits(csms, sims):
    sim = sims(csms.url, config=config())
    st = accepted(csms, sim)
    req = {
        "requestId": 10,
        "componentVariable": [
            cv("OCPPCommCtrlr", "HeartbeatInterval"),
            cv("connector", "connectortype", evse={"id": 1}),
        ],
    }
    resp, frames = report(csms, st, "GetReport", req)
    assert resp == {"status": "Accepted"} and len(frames) == 1
    assert frames[0].msg[3]["reportData"] == [
        {
            "component": {"name": "OCPPCommCtrlr"},
            "variable": {"name": "HeartbeatInterval"},
            "variableAttribute": [
                {
                    "type": "Actual",
                    "value": "300",
                    "mutability": "ReadWrite",
                    "persistent": True,
                    "constant": False,
                }
            ],
            "variableCharacteristics": {
                "dataType": "integer",
                "supportsMonitoring": True,
                "unit": "s",
                "minLimit": 1,
                "maxLimit": 86400,
            },
        },
        {
            "component": {"name": "Connector", "evse": {"id": 1, "connectorId": 1}},
            "variable": {"name": "ConnectorType"},
            "variableAttribute": [
                {
                    "type": "Actual",
                    "value": "sType2",
                    "mutability": "ReadOnly",
                    "persistent": True,
                    "constant": True,
                }
            ],
            "variableCharacteristics": {"dataType": "string", "supportsMonitoring": False},
        },
    ]
    # Every instance of a variable when the filter names none.
    resp, frames = report(
        csms, st, "GetReport", {"requestId": 11, "componentVariable": [cv("DeviceDataCtrlr")]}
    )
    assert [key_of(it) for it in items_of(frames)] == [
        k for k in KEYS if k.startswith("DeviceDataCtrlr/")
    ]
    # Criteria: every component is enabled; nothing has a problem.
    resp, frames = report(
        csms, st, "GetReport", {"requestId": 12, "componentCriteria": ["Enabled"]}
    )
    assert resp == {"status": "Accepted"}
    assert sorted(key_of(it) for it in items_of(frames)) == sorted(KEYS)
    for req in (
        {"requestId": 13, "componentCriteria": ["Problem"]},
        {"requestId": 14, "componentVariable": [cv("NoSuchCtrlr")]},
        {"requestId": 15, "componentVariable": [cv("EVSE", "Power", evse={"id": 2})]},
        {
            "requestId": 16,
            "componentVariable": [cv("AuthCtrlr", "Enabled")],
            "componentCriteria": ["Problem"],
        },
    ):
        assert report(csms, st, "GetReport", req) == ({"status": "EmptyResultSet"}, [])
    with pytest.raises(CallErrorReply) as e:
        csms.call(st, "GetReport", {"requestId": 17, "componentVariable": [cv("X")] * 21})
    assert e.value.code == "OccurrenceConstraintViolation"
    big = {"requestId": 18, "customData": {"vendorId": "acme", "pad": "x" * 4100}}
    with pytest.raises(CallErrorReply) as e:
        csms.call(st, "GetReport", big)
    assert e.value.code == "FormatViolation"
    assert csms.call(st, "GetReport", {"requestId": 19, "componentCriteria": ["Problem"]}) == {
        "status": "EmptyResultSet"
    }


def test_reports_go_out_while_pending(csms, sims):
    def pending(station, payload):
        return {"status": "Pending", "interval": 300, "currentTime": "2026-11-21T10:00:00Z"}

    csms.csms.boot_policy = pending
    sim = sims(csms.url, config=config())
    st = csms.station()
    csms.wait_call(st, "BootNotification")
    sim.wait_status(lambda s: s["registration"] == "Pending")
    resp, frames = report(
        csms, st, "GetBaseReport", {"requestId": 5, "reportBase": "ConfigurationInventory"}
    )
    assert resp == {"status": "Accepted"} and len(items_of(frames)) == len(
        [d for d in DECLS if d[1][1] != "r"]
    )


def set_results(csms, st, items):
    got = csms.call(st, "SetVariables", {"setVariableData": items})["setVariableResult"]
    return [
        (r["attributeStatus"], r.get("attributeStatusInfo", {}).get("reasonCode")) for r in got
    ]


def sv(key, value, **kw):
    out = ocpp_pair(key)
    out["attributeValue"] = value
    out.update(kw)
    return out


def test_set_variables_rejects_bad_values_read_only_and_unknowns(csms, sims):
    sim = sims(csms.url, config=config())
    st = accepted(csms, sim)
    hb = "OCPPCommCtrlr/HeartbeatInterval"
    # TC_B_11: N + 0.1, a boolean, a dateTime and text for an integer.
    bad = [sv(hb, v) for v in ("300.1", "true", "2026-11-21T10:00:00Z", "abc")]
    bad += [
        sv("AuthCtrlr/LocalPreAuthorize", "1"),
        sv("TxCtrlr/TxStartPoint", "Sometime"),
        sv("AuthCacheCtrlr/Policy", "LRU,LFU"),
        sv("OCPPCommCtrlr/NetworkConfigurationPriority", "4"),
        sv("SampledDataCtrlr/TxUpdatedInterval", "-1"),
    ]
    assert set_results(csms, st, bad) == [("Rejected", "InvalidValue")] * len(bad)
    ro = [
        sv("OCPPCommCtrlr/MessageTimeout:Default", "10"),
        sv("DeviceDataCtrlr/ItemsPerMessage:GetReport", "5"),
        sv("EVSE.1/Power", "10"),
        sv("Connector.1.1/ConnectorType", "cType2"),
        sv("ClockCtrlr/DateTime", "2026-11-21T10:00:00Z"),
    ]
    assert set_results(csms, st, ro) == [("Rejected", "ReadOnly")] * len(ro)
    unknown = [
        dict(sv(hb, "30"), component={"name": "NoSuchCtrlr"}),
        dict(sv(hb, "30"), variable={"name": "NoSuchVariable"}),
        dict(sv(hb, "30"), component={"name": "EVSE", "evse": {"id": 2}}),
        sv(hb, "30", attributeType="Target"),
    ]
    assert set_results(csms, st, unknown) == [
        ("UnknownComponent", None),
        ("UnknownVariable", None),
        ("UnknownComponent", None),
        ("NotSupportedAttributeType", None),
    ]
    got = csms.call(st, "GetVariables", {"getVariableData": [ocpp_pair(hb)]})
    assert got["getVariableResult"][0]["attributeValue"] == "300"  # nothing changed


def get_all(csms, st):
    """{key: (status, value)} of every declared variable, asked in chunks of ItemsPerMessage."""
    out = {}
    for i in range(0, len(KEYS), 20):
        chunk = KEYS[i : i + 20]
        got = csms.call(st, "GetVariables", {"getVariableData": [ocpp_pair(k) for k in chunk]})
        results = got["getVariableResult"]
        assert len(results) == len(chunk)
        for key, r in zip(chunk, results, strict=True):
            assert key_of(r) == key
            out[key] = (r["attributeStatus"], r.get("attributeValue"))
    return out


CHANGES = {
    "SampledDataCtrlr/TxUpdatedMeasurands": "Energy.Active.Import.Register,Voltage",
    "AuthCtrlr/LocalPreAuthorize": "true",
    "TxCtrlr/TxStopPoint": "EVConnected",
    "SecurityCtrlr/OrganizationName": "Example Energy",
}


def test_every_variable_answers_and_settings_survive_reset_and_power_loss(csms, sims):
    sim = sims(csms.url, config=config())
    st = accepted(csms, sim)
    values = get_all(csms, st)
    assert sorted(values) == sorted(KEYS)
    for key, (status, value) in values.items():
        if key in WRITE_ONLY:
            assert (status, value) == ("Rejected", None), key
        else:
            assert status == "Accepted" and value is not None, key
    assert values["SecurityCtrlr/Identity"] == ("Accepted", "CS1")
    items = [sv(k, v) for k, v in CHANGES.items()]
    assert set_results(csms, st, items) == [("Accepted", None)] * len(items)

    assert csms.call(st, "Reset", {"type": "Immediate"}) == {"status": "Accepted"}
    csms.run(st.wait_closed(10), 15)
    st = accepted(csms, sim)
    assert sim.cmd("status")["boot_count"] == 2
    after_reset = get_all(csms, st)
    for k, v in CHANGES.items():
        assert after_reset[k] == ("Accepted", v), k

    sim.kill()
    csms.run(st.wait_closed(10), 15)
    sim2 = sims(csms.url, config=config(), state_dir=sim.state_dir)
    st = accepted(csms, sim2)
    assert sim2.cmd("status")["boot_count"] == 3
    after_power_loss = get_all(csms, st)
    for k, v in CHANGES.items():
        assert after_power_loss[k] == ("Accepted", v), k
    # And the reports say the same.
    _, frames = report(
        csms, st, "GetBaseReport", {"requestId": 8, "reportBase": "ConfigurationInventory"}
    )
    by = {key_of(it): it["variableAttribute"][0].get("value") for it in items_of(frames)}
    for k, v in CHANGES.items():
        assert by[k] == v, k


def test_blocks_that_only_answer_calls_load_on_their_first_call(csms, sims):
    """Reports, RemoteControl, DataTransfer and NetworkProfile are not imported at boot
    (firmware/main.py LAZY): each loads on the first CALL of one of its actions, once."""
    sim = sims(csms.url, config=config())
    st = accepted(csms, sim)
    assert "loading firmware.blocks" not in sim.log()
    req = {"requestedMessage": "Heartbeat"}
    assert csms.call(st, "TriggerMessage", req) == {"status": "Accepted"}
    assert csms.call(st, "TriggerMessage", req) == {"status": "Accepted"}
    assert csms.call(st, "DataTransfer", {"vendorId": "x"}) == {"status": "UnknownVendorId"}
    log = sim.log()
    assert log.count("loading firmware.blocks.remote_control") == 1
    assert log.count("loading firmware.blocks.data_transfer") == 1
    assert "loading firmware.blocks.reports" not in log
