"""End to end: network connection profiles. SetNetworkProfile answers (TC_B_43, downgrade),
migration to a second CSMS through NetworkConfigurationPriority and Reset (B10, TC_B_45/50),
and the fall back to slot 1 when the preferred slot does not answer (TC_B_46/47/49)."""

import socket
import time

import pytest

from tools.harness import FAST, CsmsThread, variables

pytestmark = pytest.mark.e2e

COMM = "OCPPCommCtrlr"
PRIORITY = {"component": {"name": COMM}, "variable": {"name": "NetworkConfigurationPriority"}}
ACTIVE = {"component": {"name": COMM}, "variable": {"name": "ActiveNetworkProfile"}}
SECURITY = {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "SecurityProfile"}}


def config(extra=None, **settings):
    values = dict(FAST)
    values.update(extra or {})
    settings["variables"] = variables(values)
    return settings


def connection_data(url, sp=1):
    return {
        "ocppVersion": "OCPP20",
        "ocppTransport": "JSON",
        "ocppCsmsUrl": url,
        "messageTimeout": 30,
        "securityProfile": sp,
        "ocppInterface": "Wired0",
    }


def accepted(csms, sim, start=0):
    st = csms.station("CS1", timeout=20)
    boot = csms.wait_call(st, "BootNotification", timeout=20, start=start)
    sim.wait_status(lambda s: s["registration"] == "Accepted" and s["connected"], timeout=20)
    return st, boot


def get(csms, st, *items):
    got = csms.call(st, "GetVariables", {"getVariableData": list(items)})
    return [r.get("attributeValue") for r in got["getVariableResult"]]


def closed_port():
    """A local TCP port nobody listens on: connections to it are refused at once."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def prefer_slot_2_and_reset(csms, st, url):
    """Slot 2 := url, priority "2,1" (RebootRequired), Reset: the B10 migration steps."""
    req = {"configurationSlot": 2, "connectionData": connection_data(url)}
    assert csms.call(st, "SetNetworkProfile", req) == {"status": "Accepted"}
    got = csms.call(
        st, "SetVariables", {"setVariableData": [dict(PRIORITY, attributeValue="2,1")]}
    )
    assert got == {"setVariableResult": [dict(PRIORITY, attributeStatus="RebootRequired")]}
    assert get(csms, st, PRIORITY) == ["2,1"]  # stored, in use after the reboot
    assert csms.call(st, "Reset", {"type": "Immediate"}) == {"status": "Accepted"}
    csms.run(st.wait_closed(10), 15)


def test_tc_b_43_a_slot_outside_the_values_list_is_rejected(csms, sims):
    sim = sims(csms.url, config=config())
    st, _ = accepted(csms, sim)
    req = {"configurationSlot": 999, "connectionData": connection_data(csms.url)}
    assert csms.call(st, "SetNetworkProfile", req) == {
        "status": "Rejected",
        "statusInfo": {"reasonCode": "InvalidConfSlot"},
    }
    # The slot in use is not overwritten either.
    req["configurationSlot"] = 1
    assert csms.call(st, "SetNetworkProfile", req) == {
        "status": "Rejected",
        "statusInfo": {"reasonCode": "ActiveConfSlot"},
    }
    assert "ReconfigurationOfSecurityParameters" not in sim.log()


def test_migrate_to_a_second_csms_after_reset(csms, sims):
    second = CsmsThread()
    try:
        sim = sims(csms.url, config=config())
        st, _ = accepted(csms, sim)
        assert get(csms, st, ACTIVE) == ["1"]
        prefer_slot_2_and_reset(csms, st, second.url)
        st2, boot = accepted(second, sim)
        assert boot.msg[3]["reason"] == "RemoteReset"
        assert get(second, st2, ACTIVE, PRIORITY) == ["2", "2,1"]
        assert "event ReconfigurationOfSecurityParameters (slot 2" in sim.log()
        # No reconnect to the first CSMS after the reset.
        assert [a for a in csms.csms.attempts if a.t > st.closed_at] == []
    finally:
        second.stop()


def test_fall_back_to_slot_1_when_slot_2_does_not_answer(csms, sims):
    attempts = {(COMM, "NetworkProfileConnectionAttempts"): "2"}
    sim = sims(csms.url, config=config(attempts))
    st, _ = accepted(csms, sim)
    dead = "ws://127.0.0.1:%d/ocpp" % closed_port()
    prefer_slot_2_and_reset(csms, st, dead)
    t0 = time.monotonic()
    st2, boot = accepted(csms, sim, start=0)
    assert st2 is not st
    assert boot.msg[3]["reason"] == "RemoteReset"
    # Two refused attempts on slot 2 (back-off 1 s between them), 2 s more, then slot 1.
    log = sim.log()
    tries = log[log.rindex("reason RemoteReset") :]
    assert tries.count("connecting to %s/CS1 (slot 2" % dead) == 2
    assert "slot 2 failed 2 times: trying slot 1" in tries
    assert tries.count("connecting to %s/CS1 (slot 1" % csms.url) == 1
    assert time.monotonic() - t0 < 10
    assert get(csms, st2, ACTIVE) == ["1"]


def test_a_lower_security_profile_is_rejected(csms, sims):
    # Security profile 2 as the factory setting (the link itself stays ws:// in this test):
    # a profile 1 connection may not be configured any more.
    sim = sims(csms.url, config=config(security_profile=2))
    st, _ = accepted(csms, sim)
    assert get(csms, st, SECURITY) == ["2"]
    req = {"configurationSlot": 2, "connectionData": connection_data(csms.url, sp=1)}
    assert csms.call(st, "SetNetworkProfile", req) == {
        "status": "Rejected",
        "statusInfo": {"reasonCode": "NoSecurityDowngrade"},
    }
    # Profile 2 without a CSMS root certificate cannot be configured either.
    req["connectionData"] = connection_data("wss://127.0.0.1:1/ocpp", sp=2)
    assert csms.call(st, "SetNetworkProfile", req) == {
        "status": "Rejected",
        "statusInfo": {"reasonCode": "MissingCertificate"},
    }
