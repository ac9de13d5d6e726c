"""End to end: display messages (block O) on the MicroPython unix port, against the
development CSMS, on a board without a display: the block loads with the first of its CALLs,
refuses every message, knows none, and the device model says so, with the exact messages on
the wire. (With a display: tests_host/test_display_messages.py.)"""

import pytest
from test_e2e_availability import accepted

from tools.harness import FAST, variables

pytestmark = pytest.mark.e2e


def get_variables(csms, st, *names):
    req = [{"component": {"name": "DisplayMessageCtrlr"}, "variable": {"name": n}} for n in names]
    got = csms.call(st, "GetVariables", {"getVariableData": req})
    return [r["attributeValue"] for r in got["getVariableResult"]]


def test_without_a_display_every_message_is_refused(csms, sims):
    sim = sims(csms.url, config={"variables": variables(FAST)})
    st, _ = accepted(csms, sim)
    assert get_variables(csms, st, "Available", "DisplayMessages", "SupportedFormats") == [
        "false",
        "0",
        "ASCII,UTF8,URI",
    ]
    assert "display_messages" not in sim.log()  # not loaded yet
    msg = {"id": 1, "priority": "NormalCycle", "message": {"format": "UTF8", "content": "Hi"}}
    assert csms.call(st, "SetDisplayMessage", {"message": msg}) == {
        "status": "Rejected",
        "statusInfo": {"reasonCode": "UnsupportedRequest"},
    }
    assert csms.call(st, "GetDisplayMessages", {"requestId": 1}) == {"status": "Unknown"}
    assert csms.call(st, "ClearDisplayMessage", {"id": 1}) == {"status": "Unknown"}
    assert get_variables(csms, st, "DisplayMessages") == ["0"]
    assert sim.log().count("loading firmware.blocks.display_messages") == 1
    assert not [f for f in st.frames if f.kind == "error"]
