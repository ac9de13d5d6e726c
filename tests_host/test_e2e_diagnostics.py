"""End to end: GetLog (N01) on the MicroPython unix port against the development CSMS and its
log sink (tools/logsink.py): the diagnostics log uploaded by PUT, POST and FTP with the
session's lines in time order within the window asked for; the security log with the security
events and no password; an unreachable location (1 + retries tries, retryInterval apart, then
UploadFailure); a 401 (PermissionDenied); a second GetLog cancelling the first; a power loss in
the middle of an upload leaving nothing behind."""

import asyncio
import datetime
import re
import time
from pathlib import Path

import pytest

from tools.harness import FAST, CsmsThread, variables

pytestmark = pytest.mark.e2e

STATUS = "LogStatusNotification"
NAME = re.compile(r"CS1-(diagnostics|security)-\d{8}T\d{6}Z\.log")
LINE = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) ([DIWE]) (\S+): (.*)")
PASSWORD = "s3cret-Passw0rd-xyz"


@pytest.fixture
def csms(tmp_path):
    c = CsmsThread(log_sink=tmp_path / "logs")
    yield c
    c.stop()


def config(extra=None):
    values = dict(FAST)
    values.update(extra or {})
    return {"variables": variables(values)}


def accepted(csms, sim):
    st = csms.station(timeout=20)
    csms.wait_call(st, "BootNotification")
    sim.wait_status(lambda s: s["registration"] == "Accepted" and s["connected"], timeout=20)
    return st


def reconnected(csms, old, timeout=30):
    """The station's next connection after `old`."""
    deadline = time.monotonic() + timeout
    while True:
        st = csms.csms.stations.get("CS1")
        if st is not None and st is not old and st.connected:
            return st
        assert time.monotonic() < deadline, "no new connection"
        time.sleep(0.05)


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def seconds(stamp):
    return (
        datetime.datetime.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")
        .replace(tzinfo=datetime.timezone.utc)
        .timestamp()
    )


def statuses(st, request_id=None, start=0):
    return [
        f.payload["status"]
        for f in st.frames[start:]
        if f.direction == "in"
        and f.kind == "call"
        and f.action == STATUS
        and (request_id is None or f.payload.get("requestId") == request_id)
    ]


def wait_status(csms, st, status, request_id, timeout=30):
    csms.wait_frame(
        st,
        lambda f: (
            f.kind == "call"
            and f.action == STATUS
            and f.payload == {"status": status, "requestId": request_id}
        ),
        timeout=timeout,
    )


def get_log(csms, st, url, request_id=1, log_type="DiagnosticsLog", **kw):
    where = {"remoteLocation": url}
    for k in ("oldestTimestamp", "latestTimestamp"):
        if k in kw:
            where[k] = kw.pop(k)
    return csms.call(st, "GetLog", dict(logType=log_type, requestId=request_id, log=where, **kw))


def sink(csms):
    return csms.csms.sink


def session(sim):
    """A charging session: plug in, the card starts it, the same card ends it, unplug."""
    assert sim.cmd("plug_in", evse=1) == {"ok": True}
    assert sim.cmd("ev_state", evse=1, state="C") == {"ok": True}
    assert sim.cmd("swipe", token="LOGCARD") == {"ok": True}
    sim.wait_status(lambda s: s["evse"][0]["contactor"], timeout=20)
    assert sim.cmd("swipe", token="LOGCARD") == {"ok": True}
    sim.wait_status(lambda s: not s["evse"][0]["contactor"], timeout=20)
    assert sim.cmd("plug_out", evse=1) == {"ok": True}
    sim.wait_status(lambda s: s["evse"][0]["tx_id"] is None, timeout=20)


def lines_of(path):
    out = []
    for line in Path(path).read_text().splitlines():
        m = LINE.fullmatch(line)
        assert m, line
        out.append(m.groups())
    return out


@pytest.mark.parametrize("how", ["PUT", "POST", "FTP"])
def test_the_diagnostics_log_goes_up_with_the_sessions_lines_in_time_order(csms, sims, how):
    sim = sims(csms.url, config=config())
    st = accepted(csms, sim)
    if how == "POST":
        got = csms.call(
            st,
            "SetVariables",
            {
                "setVariableData": [
                    {
                        "component": {"name": "DiagnosticsCtrlr"},
                        "variable": {"name": "LogUploadMethod"},
                        "attributeValue": "POST",
                    }
                ]
            },
        )
        assert got["setVariableResult"][0]["attributeStatus"] == "Accepted"
    t0 = time.time() - 1
    session(sim)
    time.sleep(1.5)  # the log's buffer goes to flash once a second
    t1 = time.time() + 1
    url = sink(csms).ftp_url("ftp.log") if how == "FTP" else sink(csms).http_url("up.log")
    if how == "POST":
        url = sink(csms).http_url("")  # the part's file name names the file
    resp = get_log(csms, st, url, oldestTimestamp=iso(t0), latestTimestamp=iso(t1))
    assert resp["status"] == "Accepted" and NAME.fullmatch(resp["filename"]), resp
    wait_status(csms, st, "Uploaded", 1)
    assert statuses(st, 1) == ["Uploading", "Uploaded"]
    saved = {"PUT": "up.log", "POST": resp["filename"], "FTP": "ftp.log"}[how]
    lines = lines_of(Path(sink(csms).directory) / saved)
    times = [seconds(x[0]) for x in lines]
    assert times == sorted(times)
    assert all(int(t0) <= t <= t1 for t in times)
    text = [x[3] for x in lines]
    assert any("transaction" in x and "started" in x for x in text), text
    assert any("transaction" in x and "ended" in x for x in text), text
    assert [a.method for a in sink(csms).attempts] == [{"FTP": "STOR"}.get(how, how)]


def test_the_security_log_holds_the_security_events_and_no_password(csms, sims):
    sim = sims(csms.url, config=config())
    st = accepted(csms, sim)
    got = csms.call(
        st,
        "SetVariables",
        {
            "setVariableData": [
                {
                    "component": {"name": "SecurityCtrlr"},
                    "variable": {"name": "BasicAuthPassword"},
                    "attributeValue": PASSWORD,
                }
            ]
        },
    )
    assert got["setVariableResult"][0]["attributeStatus"] in ("Accepted", "RebootRequired")
    st = reconnected(csms, st)  # the station reconnects with its new password
    resp = get_log(csms, st, sink(csms).http_url("sec.log"), 4, "SecurityLog")
    assert resp["status"] == "Accepted" and "-security-" in resp["filename"]
    wait_status(csms, st, "Uploaded", 4)
    text = (Path(sink(csms).directory) / "sec.log").read_text()
    assert "StartupOfTheDevice" in text or "ResetOrReboot" in text
    assert "ReconfigurationOfSecurityParameters" in text
    assert PASSWORD not in text


def test_an_unreachable_location_gets_one_plus_retries_tries_then_upload_failure(csms, sims):
    sim = sims(csms.url, config=config())
    st = accepted(csms, sim)
    start = len(st.frames)
    url = "http://127.0.0.1:9/x.log"  # discard: nobody listens
    resp = get_log(csms, st, url, 2, retries=2, retryInterval=2)
    assert resp["status"] == "Accepted"
    wait_status(csms, st, "UploadFailure", 2, timeout=60)
    assert statuses(st, 2) == ["Uploading"] * 3 + ["UploadFailure"]
    tries = [f.t for f in st.frames[start:] if f.action == STATUS and f.kind == "call"][:3]
    assert all(b - a >= 1.8 for a, b in zip(tries, tries[1:], strict=False)), tries


def test_a_refused_login_gives_permission_denied_at_once(csms, sims):
    sim = sims(csms.url, config=config())
    st = accepted(csms, sim)
    sink(csms).require_auth = True
    resp = get_log(csms, st, sink(csms).http_url("no.log"), 3, retries=3, retryInterval=1)
    assert resp["status"] == "Accepted"
    wait_status(csms, st, "PermissionDenied", 3)
    assert statuses(st, 3) == ["Uploading", "PermissionDenied"]
    assert [a.status for a in sink(csms).attempts] == [401]


def test_other_schemes_are_rejected(csms, sims):
    sim = sims(csms.url, config=config())
    st = accepted(csms, sim)
    resp = get_log(csms, st, "sftp://127.0.0.1/x.log", 5)
    assert resp == {
        "status": "Rejected",
        "statusInfo": {
            "reasonCode": "InvalidURL",
            "additionalInfo": "no http://, https:// or ftp:// file URL",
        },
    }
    time.sleep(0.5)
    assert statuses(st) == []


def hanging_server(csms):
    """A server that takes connections and never answers: an upload to it hangs."""

    async def hold(reader, writer):
        await asyncio.sleep(120)

    async def start():
        server = await asyncio.start_server(hold, "127.0.0.1", 0)
        return server, server.sockets[0].getsockname()[1]

    return csms.run(start())


def test_a_second_get_log_cancels_the_first(csms, sims):
    sim = sims(csms.url, config=config())
    st = accepted(csms, sim)
    server, port = hanging_server(csms)
    try:
        first = get_log(csms, st, "http://127.0.0.1:%d/slow.log" % port, 10)
        assert first["status"] == "Accepted"
        wait_status(csms, st, "Uploading", 10)
        second = get_log(csms, st, sink(csms).http_url("new.log"), 11)
        assert second["status"] == "AcceptedCanceled" and NAME.fullmatch(second["filename"])
        wait_status(csms, st, "Uploaded", 11)
    finally:
        csms.loop.call_soon_threadsafe(server.close)
    assert statuses(st) == ["Uploading", "AcceptedCanceled", "Uploading", "Uploaded"]
    assert (Path(sink(csms).directory) / "new.log").exists()


def test_a_power_loss_during_an_upload_leaves_nothing_behind(csms, sims, tmp_path):
    state = tmp_path / "state"
    sim = sims(csms.url, config=config(), state_dir=state)
    st = accepted(csms, sim)
    server, port = hanging_server(csms)
    try:
        assert get_log(csms, st, "http://127.0.0.1:%d/x.log" % port, 20)["status"] == "Accepted"
        wait_status(csms, st, "Uploading", 20)
        sim.kill()  # power loss in the middle of the upload
    finally:
        csms.loop.call_soon_threadsafe(server.close)
    sim = sims(csms.url, config=config(), state_dir=state)
    st2 = reconnected(csms, st)
    sim.wait_status(lambda s: s["registration"] == "Accepted" and s["connected"], timeout=20)
    # Not resumed, no state left: Idle on request, and the next GetLog runs.
    got = csms.call(st2, "TriggerMessage", {"requestedMessage": STATUS})
    assert got == {"status": "Accepted"}
    csms.wait_frame(
        st2, lambda f: f.kind == "call" and f.action == STATUS and f.payload == {"status": "Idle"}
    )
    assert get_log(csms, st2, sink(csms).http_url("after.log"), 21)["status"] == "Accepted"
    wait_status(csms, st2, "Uploaded", 21)
    assert statuses(st2, 20) == []
