"""Reports (GetBaseReport, GetReport -> NotifyReport) and the declared device model, CPython.

Every NotifyReport payload generated here is validated against the official OCPP 2.0.1 schema.
"""

import asyncio
import json
from types import SimpleNamespace

import pytest

import ocppj
from clock import Clock
from firmware.blocks import reports as rp
from firmware.device_model import DeviceModel
from firmware.variables import VARIABLES, declarations
from ocpp_oracle import validator
from store import Store

NOW = 1795285000  # 2026-11-21T18:16:40Z


NOTIFY_REPORT = validator("NotifyReportRequest")


def hw(phases=3, max_a=32, cable_a=None, switch=None):
    return SimpleNamespace(phases=phases, max_a=max_a, cable_a=cable_a, phase_switch=switch)


class FakeSession:
    """Records the CALLs; `fail` maps a seqNo to the exception its NotifyReport raises."""

    def __init__(self, fail=None):
        self.sent = []
        self.in_len = 100
        self.fail = fail or {}

    async def call(self, action, payload):
        wire = json.loads(json.dumps(payload, separators=(",", ":")))
        if action == "NotifyReport":
            NOTIFY_REPORT.validate(wire)  # every payload generated in this file
        self.sent.append((action, wire))
        await asyncio.sleep(0)
        e = self.fail.get(payload.get("seqNo"))
        if e:
            raise e
        return {}


def station(tmp_path, evses=(hw(),), decls=None, fail=None):
    dm = DeviceModel(Store(str(tmp_path)), decls or declarations(list(evses)))
    st = SimpleNamespace(
        dm=dm,
        session=FakeSession(fail),
        clock=Clock(lambda: NOW),
        router=ocppj.Router(),
    )
    st.reports = rp.Reports(st.router, st.session, st.dm, st.clock)
    return st


def request(st, action, req):
    """Run the handler, then its after-hook and the report task; (response, NotifyReports)."""

    async def go():
        handler, after = st.router.handlers[action]
        resp = handler(req)
        start = len(st.session.sent)
        after(req, resp)
        if st.reports._task is not None:
            await st.reports._task
        return resp, [p for a, p in st.session.sent[start:] if a == "NotifyReport"]

    return asyncio.run(go())


def check_parts(parts, request_id):
    """Schema, seqNo, tbc and size of a whole report; its reportData items in order."""
    assert parts
    items = []
    for i, p in enumerate(parts):
        NOTIFY_REPORT.validate(p)
        assert p["requestId"] == request_id and p["seqNo"] == i
        assert p["generatedAt"] == "2026-11-21T18:16:40Z"
        assert p["tbc"] is (i < len(parts) - 1)
        assert 1 <= len(p["reportData"]) <= 10
        if len(p["reportData"]) > 1:
            assert len(json.dumps(p["reportData"], separators=(",", ":"))) <= 3930 + 1
            assert len(json.dumps([2, "x" * 36, "NotifyReport", p], separators=(",", ":"))) <= 4096
        items += p["reportData"]
    return items


def keys_of(items):
    out = []
    for it in items:
        c, v = it["component"], it["variable"]
        k = c["name"]
        if "evse" in c:
            k += ".%d" % c["evse"]["id"]
            if "connectorId" in c["evse"]:
                k += ".%d" % c["evse"]["connectorId"]
        if "instance" in c:
            k += ":" + c["instance"]
        k += "/" + v["name"]
        if "instance" in v:
            k += ":" + v["instance"]
        out.append(k)
    return out


# -- declarations ---------------------------------------------------------------------------


def test_declarations_cover_the_core_controllers_and_each_evse(tmp_path):
    decls = declarations([hw(), hw(phases=1, max_a=16, cable_a=32)])
    keys = [d[0] for d in decls]
    assert len(keys) == len(set(k.lower() for k in keys))
    comps = {k.split("/")[0] for k in keys}
    assert comps == {
        "OCPPCommCtrlr",
        "TxCtrlr",
        "AuthCtrlr",
        "AuthCacheCtrlr",
        "LocalAuthListCtrlr",
        "SampledDataCtrlr",
        "AlignedDataCtrlr",
        "SecurityCtrlr",
        "DeviceDataCtrlr",
        "ClockCtrlr",
        "DiagnosticsCtrlr",
        "SmartChargingCtrlr",
        "LoadManagement",  # ours: local load management
        "ReservationCtrlr",
        "TariffCostCtrlr",
        "DisplayMessageCtrlr",
        "MonitoringCtrlr",
        "LocalButton",
        "ChargingStation",
        "EVSE.1",
        "EVSE.2",
        "Connector.1.1",
        "Connector.2.1",
        # each EVSE's parts (standardized physical components) with their fault flags
        "RCD.1",
        "RCD.2",
        "PowerContactor.1",
        "PowerContactor.2",
        "FiscalMetering.1",
        "FiscalMetering.2",
        "CPPWMController.1",
        "CPPWMController.2",
    }
    assert len(decls) == len(VARIABLES) + 5 + 2 * 14  # SupplyPhases, switching, display x 3
    by = {d[0]: d for d in decls}
    assert by["EVSE.1/Power"][3] == ("W", 0, 22080, None)
    assert by["EVSE.2/Power"][3] == ("W", 0, 3680, None)
    assert by["EVSE.2/SupplyPhases"][2] == "1"
    assert by["ChargingStation/SupplyPhases"][2] == "3"
    assert by["Connector.1.1/ConnectorType"][2] == "sType2"
    assert by["Connector.2.1/ConnectorType"][2] == "cType2"
    assert by["OCPPCommCtrlr/UnlockOnEVSideDisconnect"][1] == "bw"  # EVSE 1 has a socket
    for k in (
        "OCPPCommCtrlr/HeartbeatInterval",
        "DeviceDataCtrlr/ItemsPerMessage:GetVariables",
        "DeviceDataCtrlr/BytesPerMessage:GetReport",
        "OCPPCommCtrlr/ActiveNetworkProfile",
        "SecurityCtrlr/CertificateEntries",
    ):
        assert k in by


STATES = "Available,Occupied,Reserved,Unavailable,Faulted"


def test_declarations_make_the_evse_rows_when_asked_and_find_them_in_any_case():
    decls = declarations([hw(), hw(phases=1, max_a=16, cable_a=32)])
    rows = [decls[i] for i in range(len(decls))]
    assert list(decls) == rows
    with pytest.raises(IndexError):
        decls[len(decls)]
    assert rows[len(VARIABLES) + 5 : len(VARIABLES) + 8] == [
        ("EVSE.1/AvailabilityState", "or~", "Available", (None, None, None, STATES)),
        ("EVSE.1/Available", "br", "true", None),
        ("EVSE.1/AllowReset", "br=", "false", None),
    ]
    assert rows[-7:] == [
        ("Connector.2.1/SupplyPhases", "ir=", "1", (None, 1, 3, None)),
        ("Connector.2.1/ConnectorType", "sr=", "cType2", None),
        # the fault flags of the EVSE and its parts (hard-wired and pre-configured monitors)
        ("EVSE.2/Problem", "br~", "false", None),
        ("RCD.2/Tripped", "br~", "false", None),
        ("PowerContactor.2/Problem", "br~", "false", None),
        ("FiscalMetering.2/Problem", "br~", "false", None),
        ("CPPWMController.2/Problem", "br~", "false", None),
    ]
    for d in rows:
        assert decls.find(d[0]) == d
        assert decls.find(d[0].upper()) == d
        assert decls.find(d[0].upper(), False) is None
    for key in (
        "EVSE.01/Power",
        "EVSE.3/Power",
        "EVSE.0/Power",
        "EVSE/Power",
        "EVSE.x/Power",
        "EVSE.1.1/Power",
        "Connector.1.2/ConnectorType",
        "Connector.1/ConnectorType",
        "EVSE.1/ConnectorType",
        "EVSE.1/Nope",
        "EVSE.1",
        "RCD.1.1/Tripped",
        "RCD/Tripped",
        "RCD.3/Tripped",
        "Connector.1/Problem",
        "",
    ):
        assert decls.find(key) is None, key


@pytest.mark.parametrize(
    "evses, want",
    [
        ((), "false"),
        ((dict(),), "false"),
        ((dict(switch=object()),), "true"),
        ((dict(), dict(switch=object())), "true"),  # any EVSE that can switch
        ((dict(phases=1, switch=object()),), "false"),  # one phase has nothing to switch
    ],
)
def test_ac_phase_switching_is_supported_when_an_evse_has_a_phase_switch(evses, want):
    decls = declarations([hw(**kw) for kw in evses])
    d = decls.find("SmartChargingCtrlr/ACPhaseSwitchingSupported", False)
    assert d == ("SmartChargingCtrlr/ACPhaseSwitchingSupported", "br=", want, None)
    assert [r[0] for r in decls].count(d[0]) == 1


def test_only_tethered_cables_make_unlock_on_ev_side_disconnect_read_only_false():
    by = {d[0]: d for d in declarations([hw(cable_a=32)])}
    assert by["OCPPCommCtrlr/UnlockOnEVSideDisconnect"][1:3] == ("br=", "false")
    assert len(by) == len(VARIABLES) + 5 + 14


def test_every_default_passes_its_own_check_and_list_types_carry_a_values_list(tmp_path):
    dm = DeviceModel(Store(str(tmp_path)), declarations([hw()]))
    for d in dm.declared:
        # No password set yet; the identity comes from the board.
        if d[0] not in ("SecurityCtrlr/BasicAuthPassword", "SecurityCtrlr/Identity"):
            assert dm.check(d, d[2]) is None, d
        if d[1][0] in "oqm":
            assert d[3] and d[3][3], d
        assert d[1][0] in "sditboqm" and d[1][1] in "rwx", d
        assert "=" not in d[1] or d[1][1] == "r", d


def test_declaration_list_values_are_what_the_brief_names():
    by = {d[0]: d for d in VARIABLES}
    assert by["OCPPCommCtrlr/NetworkConfigurationPriority"][2:] == (
        "1",
        (None, None, None, "1,2,3"),
    )
    assert by["TxCtrlr/TxStartPoint"][3][3] == (
        "EVConnected,Authorized,PowerPathClosed,EnergyTransfer"
    )
    assert by["SampledDataCtrlr/TxUpdatedMeasurands"][3][3].split(",") == [
        "Energy.Active.Import.Register",
        "Power.Active.Import",
        "Current.Import",
        "Voltage",
        "Current.Offered",
    ]
    assert by["AuthCacheCtrlr/Policy"][2] == "LRU"
    assert by["ClockCtrlr/TimeSource"][2] == "Heartbeat"
    assert by["SecurityCtrlr/CertificateEntries"][3][2] == 8


def test_lookup_without_lowercase_copies_still_ignores_case(tmp_path):
    dm = DeviceModel(Store(str(tmp_path)), declarations([hw()]))
    assert dm.find({"name": "evse", "evse": {"id": 1}}, {"name": "POWER"})[0] == "Accepted"
    assert dm.find({"name": "EVSE", "evse": {"id": 2}}, {"name": "Power"})[0] == (
        "UnknownComponent"
    )
    assert dm.find({"name": "connector", "evse": {"id": 1, "connectorId": 1}}, {"name": "X"}) == (
        "UnknownVariable",
        None,
    )
    assert dm.decl("devicedatactrlr/itemspermessage:getreport")[2] == "20"
    with pytest.raises(KeyError):
        dm.decl("EVSE.1/Nope")


# -- GetBaseReport --------------------------------------------------------------------------


def test_full_inventory_is_every_declaration_once_in_parts(tmp_path):
    st = station(tmp_path, evses=(hw(), hw()))
    resp, parts = request(st, "GetBaseReport", {"requestId": 7, "reportBase": "FullInventory"})
    assert resp == {"status": "Accepted"}
    items = check_parts(parts, 7)
    assert keys_of(items) == [d[0] for d in st.dm.declared]
    assert len(parts) == -(-len(items) // 10) and len(parts) >= 9
    for it in items:
        attr = it["variableAttribute"]
        assert len(attr) == 1 and attr[0]["type"] == "Actual"
        assert ("value" in attr[0]) is (attr[0]["mutability"] != "WriteOnly")
    assert not st.reports._task and st.reports.peak_heap == 0  # CPython: no heap figure


def test_exact_report_data(tmp_path):
    st = station(tmp_path)
    st.dm.set("SecurityCtrlr/BasicAuthPassword", "0123456789abcdef")
    _, parts = request(st, "GetBaseReport", {"requestId": 1, "reportBase": "FullInventory"})
    items = dict(zip(keys_of(check_parts(parts, 1)), check_parts(parts, 1), strict=True))
    assert items["OCPPCommCtrlr/HeartbeatInterval"] == {
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
            "supportsMonitoring": True,  # "~": a number one can monitor
            "unit": "s",
            "minLimit": 1,
            "maxLimit": 86400,
        },
    }
    assert items["SecurityCtrlr/BasicAuthPassword"] == {
        "component": {"name": "SecurityCtrlr"},
        "variable": {"name": "BasicAuthPassword"},
        "variableAttribute": [
            {"type": "Actual", "mutability": "WriteOnly", "persistent": True, "constant": False}
        ],
        "variableCharacteristics": {
            "dataType": "string",
            "supportsMonitoring": False,
            "maxLimit": 40,
        },
    }
    assert "0123456789abcdef" not in json.dumps(parts)
    assert items["DeviceDataCtrlr/ItemsPerMessage:GetReport"]["variable"] == {
        "name": "ItemsPerMessage",
        "instance": "GetReport",
    }
    assert items["EVSE.1/Power"] == {
        "component": {"name": "EVSE", "evse": {"id": 1}},
        "variable": {"name": "Power"},
        "variableAttribute": [
            {
                "type": "Actual",
                "value": "0",
                "mutability": "ReadOnly",
                "persistent": False,
                "constant": False,
            }
        ],
        "variableCharacteristics": {
            "dataType": "decimal",
            "supportsMonitoring": True,
            "unit": "W",
            "minLimit": 0,
            "maxLimit": 22080,
        },
    }
    assert items["Connector.1.1/ConnectorType"] == {
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
    }
    assert items["TxCtrlr/TxStopPoint"]["variableCharacteristics"] == {
        "dataType": "MemberList",
        "supportsMonitoring": False,
        "valuesList": "EVConnected,Authorized,PowerPathClosed,EnergyTransfer",
    }
    assert items["TxCtrlr/TxStopPoint"]["variableAttribute"][0]["value"] == (
        "EVConnected,Authorized"
    )


def test_live_values_come_from_their_providers(tmp_path):
    st = station(tmp_path)
    st.dm.provide("ClockCtrlr/DateTime", st.clock.iso)
    st.dm.provide("EVSE.1/AvailabilityState", lambda: "Occupied")
    req = {
        "requestId": 3,
        "componentVariable": [
            {"component": {"name": "ClockCtrlr"}, "variable": {"name": "DateTime"}},
            {"component": {"name": "EVSE"}, "variable": {"name": "AvailabilityState"}},
        ],
    }
    _, parts = request(st, "GetReport", req)
    values = [it["variableAttribute"][0]["value"] for it in check_parts(parts, 3)]
    assert values == ["2026-11-21T18:16:40Z", "Occupied"]


def test_configuration_inventory_is_exactly_the_writable_variables(tmp_path):
    st = station(tmp_path)
    resp, parts = request(
        st, "GetBaseReport", {"requestId": 2, "reportBase": "ConfigurationInventory"}
    )
    assert resp == {"status": "Accepted"}
    items = check_parts(parts, 2)
    assert keys_of(items) == [d[0] for d in st.dm.declared if d[1][1] in "wx"]
    assert {it["variableAttribute"][0]["mutability"] for it in items} == {
        "ReadWrite",
        "WriteOnly",
    }


def test_summary_inventory_is_not_supported(tmp_path):
    st = station(tmp_path)
    resp, parts = request(st, "GetBaseReport", {"requestId": 2, "reportBase": "SummaryInventory"})
    assert resp == {"status": "NotSupported"} and parts == []


def test_parts_respect_the_byte_budget_and_a_huge_item_goes_alone(tmp_path):
    long = tuple(
        ("Big/V%d" % i, "sr", ("%d" % i) * 1500, (None, 0, 2500, None)) for i in range(1, 6)
    )
    small = tuple(("Small/V%d" % i, "ir", "1", None) for i in range(25))
    huge = (("Huge/V", "sr", "x" * 3000, None),)
    st = station(tmp_path, decls=small[:3] + long + huge + small[3:])
    _, parts = request(st, "GetBaseReport", {"requestId": 9, "reportBase": "FullInventory"})
    items = check_parts(parts, 9)
    assert len(items) == 3 + 5 + 1 + 22
    assert [len(p["reportData"]) for p in parts] == [4, 2, 2, 5, 10, 8]

    def size(it):
        return len(json.dumps(it, separators=(",", ":"))) + 1

    # Greedy: each part is full, by count or because the next item would break the budget.
    for p, q in zip(parts, parts[1:]):  # noqa: B905
        total = sum(size(it) for it in p["reportData"])
        assert total <= 3930
        assert len(p["reportData"]) == 10 or total + size(q["reportData"][0]) > 3930
    huge_item = parts[3]["reportData"][0]
    assert keys_of([huge_item]) == ["Huge/V"]
    assert len(huge_item["variableAttribute"][0]["value"]) == 2500  # the schema's maximum
    # An item over the whole budget on its own still goes, alone.
    st = station(tmp_path / "2", decls=small[:2] + (("Huge/V", "sr", "\\" * 2500, None),))
    _, parts = request(st, "GetBaseReport", {"requestId": 9, "reportBase": "FullInventory"})
    check_parts(parts, 9)
    assert [len(p["reportData"]) for p in parts] == [2, 1]
    assert len(json.dumps(parts[1], separators=(",", ":"))) > 5000


def test_a_failed_part_ends_the_report_and_the_next_one_is_accepted(tmp_path):
    for exc in (asyncio.TimeoutError(), ocppj.CallError("GenericError"), ocppj.NotConnected()):
        st = station(tmp_path, fail={1: exc})
        resp, parts = request(st, "GetBaseReport", {"requestId": 4, "reportBase": "FullInventory"})
        assert resp == {"status": "Accepted"}
        assert [p["seqNo"] for p in parts] == [0, 1]
        assert st.reports._task is None
        st.session.fail = {}
        resp, parts = request(st, "GetBaseReport", {"requestId": 5, "reportBase": "FullInventory"})
        assert resp == {"status": "Accepted"} and parts[-1]["tbc"] is False


def test_out_of_memory_for_a_part_is_tried_once_more_then_ends_the_report(tmp_path, logged):
    class Once(FakeSession):
        def __init__(self, times):
            super().__init__()
            self.times = times

        async def call(self, action, payload):
            if payload.get("seqNo") == 1 and self.times:
                self.times -= 1
                self.sent.append(("MemoryError", payload["seqNo"]))
                raise MemoryError("allocating 3472 bytes")
            return await super().call(action, payload)

    st = station(tmp_path)
    st.session = Once(1)
    st.reports = rp.Reports(st.router, st.session, st.dm, st.clock)
    resp, parts = request(st, "GetBaseReport", {"requestId": 6, "reportBase": "FullInventory"})
    assert [p["seqNo"] for p in parts] == list(range(len(parts))) and parts[-1]["tbc"] is False
    assert ("MemoryError", 1) in st.session.sent
    st = station(tmp_path)
    st.session = Once(2)
    st.reports = rp.Reports(st.router, st.session, st.dm, st.clock)
    resp, parts = request(st, "GetBaseReport", {"requestId": 7, "reportBase": "FullInventory"})
    assert [p["seqNo"] for p in parts] == [0] and st.reports._task is None
    assert "report 7 stopped at part 1: MemoryError" in logged.getvalue()


def test_a_second_request_while_one_is_sent_is_rejected(tmp_path):
    st = station(tmp_path)

    async def go():
        h, after = st.router.handlers["GetBaseReport"]
        req = {"requestId": 1, "reportBase": "FullInventory"}
        after(req, h(req))
        await asyncio.sleep(0)
        second = st.router.handlers["GetReport"][0]({"requestId": 2})
        third = h({"requestId": 3, "reportBase": "ConfigurationInventory"})
        summary = h({"requestId": 4, "reportBase": "SummaryInventory"})
        await st.reports._task
        return second, third, summary

    second, third, summary = asyncio.run(go())
    busy = {"status": "Rejected", "statusInfo": {"reasonCode": "ReportInProgress"}}
    assert second == busy and third == busy and summary == {"status": "NotSupported"}
    assert {p["requestId"] for a, p in st.session.sent} == {1}


def test_a_response_that_never_left_starts_no_report(tmp_path):
    st = station(tmp_path)
    h, after = st.router.handlers["GetBaseReport"]
    assert h({"requestId": 1, "reportBase": "FullInventory"})["status"] == "Accepted"
    # The connection dropped before the response was sent: no after-hook, nothing started.
    resp, parts = request(st, "GetBaseReport", {"requestId": 2, "reportBase": "FullInventory"})
    assert resp["status"] == "Accepted" and {p["requestId"] for p in parts} == {2}


# -- GetReport ------------------------------------------------------------------------------


def get_report(st, cvs=None, criteria=None, request_id=11):
    req = {"requestId": request_id}
    if cvs is not None:
        req["componentVariable"] = cvs
    if criteria is not None:
        req["componentCriteria"] = criteria
    resp, parts = request(st, "GetReport", req)
    return resp, (keys_of(check_parts(parts, request_id)) if parts else [])


def cv(name, var=None, evse=None, instance=None, var_instance=None):
    c = {"name": name}
    if evse is not None:
        c["evse"] = evse
    if instance is not None:
        c["instance"] = instance
    out = {"component": c}
    if var is not None:
        out["variable"] = {"name": var}
        if var_instance is not None:
            out["variable"]["instance"] = var_instance
    return out


def test_get_report_component_variable_filters(tmp_path):
    st = station(tmp_path, evses=(hw(), hw()))
    resp, keys = get_report(st, [cv("OCPPCommCtrlr", "HeartbeatInterval")])
    assert resp == {"status": "Accepted"} and keys == ["OCPPCommCtrlr/HeartbeatInterval"]
    # No variable instance: every instance; names in any case.
    _, keys = get_report(st, [cv("devicedatactrlr", "ITEMSPERMESSAGE")])
    assert keys == [
        "DeviceDataCtrlr/ItemsPerMessage:GetVariables",
        "DeviceDataCtrlr/ItemsPerMessage:SetVariables",
        "DeviceDataCtrlr/ItemsPerMessage:GetReport",
    ]
    _, keys = get_report(st, [cv("DeviceDataCtrlr", "BytesPerMessage", var_instance="GetReport")])
    assert keys == ["DeviceDataCtrlr/BytesPerMessage:GetReport"]
    # No evse: all EVSEs; evse without connectorId: all its connectors; no variable: all.
    _, keys = get_report(st, [cv("EVSE", "Power")])
    assert keys == ["EVSE.1/Power", "EVSE.2/Power"]
    _, keys = get_report(st, [cv("Connector", "ConnectorType", evse={"id": 2})])
    assert keys == ["Connector.2.1/ConnectorType"]
    _, keys = get_report(st, [cv("Connector", evse={"id": 1, "connectorId": 1})])
    assert keys == [
        "Connector.1.1/AvailabilityState",
        "Connector.1.1/Available",
        "Connector.1.1/SupplyPhases",
        "Connector.1.1/ConnectorType",
    ]
    _, keys = get_report(st, [cv("ClockCtrlr"), cv("EVSE", "AllowReset", evse={"id": 2})])
    assert keys == [d[0] for d in st.dm.declared if d[0].startswith("ClockCtrlr/")] + [
        "EVSE.2/AllowReset"
    ]
    # A component instance we do not have, an EVSE filter on a controller: nothing.
    for bad in (
        [cv("OCPPCommCtrlr", "HeartbeatInterval", instance="x")],
        [cv("OCPPCommCtrlr", "HeartbeatInterval", evse={"id": 1})],
        [cv("EVSE", "Power", evse={"id": 3})],
        [cv("Nope")],
        [cv("OCPPCommCtrlr", "Nope")],
        [cv("OCPPCommCtrlr", "MessageTimeout", var_instance="Other")],
    ):
        assert get_report(st, bad) == ({"status": "EmptyResultSet"}, []), bad
    assert st.session.sent == [(a, p) for a, p in st.session.sent if a == "NotifyReport"]


def test_get_report_without_filters_is_the_full_inventory(tmp_path):
    st = station(tmp_path)
    resp, keys = get_report(st)
    assert resp == {"status": "Accepted"} and keys == [d[0] for d in st.dm.declared]


def test_get_report_component_criteria(tmp_path):
    st = station(tmp_path)
    every = [d[0] for d in st.dm.declared]
    local = [k for k in every if k.startswith("LocalAuthListCtrlr/")]
    # Every component is available and enabled (those without Available/Enabled/Active count
    # as such), but the display messages of a station without a display; none has a Problem
    # variable.
    shown = [k for k in every if not k.startswith("DisplayMessageCtrlr/")]
    assert get_report(st, criteria=["Available"])[1] == shown
    assert get_report(st, criteria=["Enabled"])[1] == every
    assert get_report(st, criteria=["Active"])[1] == every
    assert get_report(st, criteria=["Problem"]) == ({"status": "EmptyResultSet"}, [])
    # A switched-off component drops out; any one criterion met is enough.
    st.dm.set("AuthCtrlr/Enabled", "false")
    keys = get_report(st, criteria=["Enabled"])[1]
    assert not [k for k in keys if k.startswith("AuthCtrlr/")]
    keys = get_report(st, criteria=["Enabled", "Active"])[1]
    assert keys == every
    st.dm.set("LocalAuthListCtrlr/Enabled", "false")
    keys = get_report(st, criteria=["Enabled"])[1]
    assert not [k for k in keys if k.startswith("LocalAuthListCtrlr/")]
    assert get_report(st, criteria=["Available"])[1] == shown  # still available
    st.dm.set("LocalAuthListCtrlr/Enabled", "true")
    keys = get_report(st, criteria=["Enabled"])[1]
    assert [k for k in keys if k.startswith("LocalAuthListCtrlr/")] == local
    # Criteria and variables together: both must hold.
    assert get_report(st, [cv("AuthCtrlr")], ["Enabled"]) == ({"status": "EmptyResultSet"}, [])
    st.dm.provide("EVSE.1/Available", lambda: "false")
    resp, keys = get_report(st, [cv("EVSE"), cv("Connector")], ["Available"])
    assert [k.split("/")[0] for k in keys] == ["Connector.1.1"] * 4


def test_get_report_limits_are_callerrors(tmp_path):
    st = station(tmp_path)
    h = st.router.handlers["GetReport"][0]
    many = [cv("OCPPCommCtrlr", "HeartbeatInterval")] * 21
    with pytest.raises(ocppj.CallError) as e:
        h({"requestId": 1, "componentVariable": many})
    assert e.value.code == "OccurrenceConstraintViolation"
    assert h({"requestId": 1, "componentVariable": many[:20]})["status"] == "Accepted"
    st.session.in_len = 4097
    with pytest.raises(ocppj.CallError) as e:
        h({"requestId": 1})
    assert e.value.code == "FormatViolation"


def test_split_key_and_matches():
    assert rp.split_key("Connector.2.1/ConnectorType") == (
        "Connector",
        2,
        1,
        None,
        "ConnectorType",
        None,
    )
    assert rp.split_key("Ctrl:a/V:b") == ("Ctrl", None, None, "a", "V", "b")
    parts = rp.split_key("EVSE.1/Power")
    assert rp.matches({"component": {"name": "evse"}}, parts)
    assert not rp.matches({"component": {"name": "EVSE", "evse": {"id": 2}}}, parts)
    assert not rp.matches({"component": {"name": "EVSEx"}}, parts)


def test_json_len_counts_what_json_dumps_writes(tmp_path):
    st = station(tmp_path, evses=(hw(), hw(cable_a=20)))
    st.dm.set("SecurityCtrlr/OrganizationName", 'say "hi" \\ bye')
    for d in st.dm.declared:
        item = rp.report_data(st.dm, d)
        assert rp.json_len(item) == len(json.dumps(item, separators=(",", ":"))), d
    for x in ({}, [], [[]], {"a": []}, 0, -1, -10, 12345, True, False, "", '"\\'):
        assert rp.json_len(x) == len(json.dumps(x, separators=(",", ":"))), x
