"""End to end: signed firmware updates of the virtual wallbox (block L, L01).

The development CSMS serves signed updates over HTTP (application bundles on the host, full
images on the virtual ESP32, which writes them into its emulated OTA partitions); each test sends
UpdateFirmware and checks the exact FirmwareStatusNotification sequence on the wire, the
BootNotification after the reboot and the version that runs afterwards: the next one after a
good update, the old one after every failure (bad signature, bad or expired certificate,
truncated or unreachable download, a new version that crashes at start), and after power losses
during the download and during the install.
"""

import json
import shutil
import time
from datetime import datetime, timedelta, timezone

import pytest

from tools import ota
from tools.harness import FAST, CsmsThread, variables

pytestmark = pytest.mark.e2e

OLD = ota.current_version()
NEW = ota.next_version(OLD)
HAPPY = ["Downloading", "Downloaded", "SignatureVerified", "Installing", "InstallRebooting"]


@pytest.fixture(scope="module")
def files(tmp_path_factory, target):
    """The served folder: good, tampered, foreign-signed, expired-signed and crashing updates,
    each of the target's kind: an application bundle on the host, a full image (the program
    with the firmware frozen in) on the virtual ESP32."""
    d = tmp_path_factory.mktemp("ota")
    www = d / "www"
    www.mkdir()
    certs = ota.write_certs(d / "certs")
    other = ota.write_certs(d / "other")  # another manufacturer: its root is not installed
    expired = ota.write_certs(d / "expired", days=1, expired=True)
    build = ota.build_image if target == "esp32" else ota.build_bundle
    good = www / "good.fw"
    build(good, NEW)
    ota.sign_file(good, certs["signer.key"], certs["signer.pem"])
    # One byte of the data changed, the good signature kept.
    data = bytearray(good.read_bytes())
    data[len(data) // 2] ^= 0x01
    (www / "tampered.fw").write_bytes(bytes(data))
    shutil.copy(str(good) + ".sig", www / "tampered.fw.sig")
    shutil.copy(str(good) + ".pem", www / "tampered.fw.pem")
    # A good certificate, but the signature made by another key.
    shutil.copy(good, www / "wrongkey.fw")
    ota.sign_file(www / "wrongkey.fw", other["signer.key"])
    shutil.copy(certs["signer.pem"], www / "wrongkey.fw.pem")
    # Signed by a manufacturer the station does not know.
    shutil.copy(good, www / "foreign.fw")
    ota.sign_file(www / "foreign.fw", other["signer.key"], other["signer.pem"])
    # Signed with a signing certificate that expired yesterday (under its own root).
    shutil.copy(good, www / "expired.fw")
    ota.sign_file(www / "expired.fw", expired["signer.key"], expired["signer.pem"])
    # A version whose firmware raises at import: it never gets to its BootNotification.
    crash = www / "crash.fw"
    broken = {"firmware/main.py": "raise RuntimeError('broken build')\n"}
    build(crash, ota.next_version(NEW), overrides=broken)
    ota.sign_file(crash, certs["signer.key"], certs["signer.pem"])
    return {"www": www, "root": certs["root.pem"], "expired_root": expired["root.pem"]}


@pytest.fixture
def csms(files):
    c = CsmsThread(serve=str(files["www"]))
    yield c
    c.stop()


def config(files, roots=("root",), **extra):
    cfg = {"variables": variables(dict(FAST)), "manufacturer_root_file": str(files[roots[0]])}
    cfg.update(extra)
    return cfg


def accepted(csms, sim):
    st = csms.station("CS1", timeout=20)
    csms.wait_call(st, "BootNotification")
    sim.wait_status(lambda s: s["registration"] == "Accepted" and s["connected"])
    return st


def update(csms, st, name, request_id=7, **kw):
    """UpdateFirmware's answer; st.mark: the station's frames before it (ota.watch's start:
    the first status may come before the answer is read)."""
    st.mark = len(st.frames)
    return csms.run(csms.csms.send_update(st, name, request_id=request_id, **kw))


def boots(seen):
    return [(p["reason"], ota._version(p)) for a, p in seen if a == "BootNotification"]


def events(seen):
    return [p["type"] for a, p in seen if a == "SecurityEventNotification"]


def all_carry(seen, request_id):
    return all(
        p.get("requestId") == request_id for a, p in seen if a == "FirmwareStatusNotification"
    )


def later(seconds):
    t = datetime.now(timezone.utc) + timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def restart(csms, files, sims, sim, st):
    """Power back after a power loss: the old connection seen closed, the same flash."""
    sim.proc.wait(10)
    csms.run(st.wait_closed())
    return sims(csms.url, config=config(files), state_dir=sim.state_dir)


def running(sim, version):
    sim.wait_status(lambda s: s["registration"] == "Accepted" and s["connected"])
    assert sim.cmd("status")["firmware_version"] == version


def otadata(sim):
    """The virtual ESP32's emulated otadata (boards/sim/ota.py): which partition boots."""
    doc = json.loads((sim.state_dir / "otadata.json").read_text())
    return {k: doc[k] for k in ("boot", "running", "trial", "failed") if k in doc}


def wait_event(csms, kind, timeout=15):
    st = csms.station("CS1", timeout=timeout)
    return csms.wait_frame(
        st,
        lambda f: (
            f.kind == "call"
            and f.action == "SecurityEventNotification"
            and f.payload["type"] == kind
        ),
        timeout=timeout,
    )


# -- the good update ------------------------------------------------------------------------


def test_signed_update_installs_the_next_version(csms, sims, files, target):
    sim = sims(csms.url, config=config(files))
    st = accepted(csms, sim)
    assert ota._version(st.calls_from_station("BootNotification")[0][2]) == OLD
    assert update(csms, st, "good.fw")["status"] == "Accepted"
    seen = ota.watch(csms, "CS1", start=st.mark, timeout=60)
    assert ota.statuses(seen) == HAPPY + ["Installed"]
    assert all_carry(seen, 7)
    assert boots(seen) == [("FirmwareUpdate", NEW)]
    # The BootNotification came between InstallRebooting and Installed.
    order = [p.get("status", a) for a, p in seen if a != "SecurityEventNotification"]
    assert order.index("BootNotification") == order.index("InstallRebooting") + 1
    wait_event(csms, "FirmwareUpdated")
    running(sim, NEW)
    # Idle once installed: no requestId.
    st = csms.station("CS1")
    n = len(st.frames)
    trig = {"requestedMessage": "FirmwareStatusNotification"}
    assert csms.call(st, "TriggerMessage", trig) == {"status": "Accepted"}
    f = csms.wait_call(st, "FirmwareStatusNotification", start=n)
    assert f.payload == {"status": "Idle"}
    if target == "esp32":  # the image in ota_0 runs, confirmed: no longer on trial
        assert otadata(sim) == {"boot": "ota_0", "running": "ota_0", "trial": False}
    # Confirmed: a power loss now boots the new version again.
    st = csms.station("CS1")
    sim.kill()
    sim = restart(csms, files, sims, sim, st)
    st = csms.station("CS1", timeout=20)
    boot = csms.wait_call(st, "BootNotification", timeout=20)
    assert (boot.payload["reason"], ota._version(boot.payload)) == ("PowerUp", NEW)


def test_scheduled_download_and_install(csms, sims, files):
    sim = sims(csms.url, config=config(files))
    st = accepted(csms, sim)
    resp = update(
        csms, st, "good.fw", request_id=3, retrieveDateTime=later(2), installDateTime=later(4)
    )
    assert resp["status"] == "Accepted"
    seen = ota.watch(csms, "CS1", start=st.mark, timeout=60)
    assert ota.statuses(seen) == [
        "DownloadScheduled",
        "Downloading",
        "Downloaded",
        "SignatureVerified",
        "InstallScheduled",
        "Installing",
        "InstallRebooting",
        "Installed",
    ]
    assert all_carry(seen, 3)
    running(sim, NEW)


# -- refused before anything starts -----------------------------------------------------------


@pytest.mark.parametrize(
    "name, status, event",
    [
        ("foreign.fw", "InvalidCertificate", "InvalidFirmwareSigningCertificate"),
        ("expired.fw", "InvalidCertificate", "InvalidFirmwareSigningCertificate"),
    ],
)
def test_a_bad_signing_certificate_is_refused(csms, sims, files, name, status, event):
    # The expired signer's own root is installed, so only its validity makes it bad.
    cfg = config(files, roots=("expired_root",) if name == "expired.fw" else ("root",))
    sim = sims(csms.url, config=cfg)
    st = accepted(csms, sim)
    assert update(csms, st, name)["status"] == status
    f = wait_event(csms, event)
    assert f.payload["type"] == event
    assert st.calls_from_station("FirmwareStatusNotification") == []
    running(sim, OLD)


def test_an_unsigned_request_is_rejected(csms, sims, files):
    sim = sims(csms.url, config=config(files))
    st = accepted(csms, sim)
    resp = update(csms, st, "good.fw", signature=None)
    assert resp["status"] == "Rejected"
    resp = update(csms, st, "good.fw", signingCertificate=None)
    assert resp["status"] == "Rejected"
    assert st.calls_from_station("FirmwareStatusNotification") == []


# -- failures after Accepted: the old version keeps running -----------------------------------


@pytest.mark.parametrize("name", ["tampered.fw", "wrongkey.fw"])
def test_a_bad_signature_stops_the_update(csms, sims, files, name):
    sim = sims(csms.url, config=config(files))
    st = accepted(csms, sim)
    assert update(csms, st, name)["status"] == "Accepted"
    seen = ota.watch(csms, "CS1", start=st.mark, timeout=30)
    assert ota.statuses(seen) == ["Downloading", "Downloaded", "InvalidSignature"]
    wait_event(csms, "InvalidFirmwareSignature")
    running(sim, OLD)


def test_a_truncated_download_is_retried_then_fails(csms, sims, files):
    sim = sims(csms.url, config=config(files))
    st = accepted(csms, sim)
    csms.csms.files.truncate["good.fw"] = 5000
    assert update(csms, st, "good.fw", retries=1, retry_interval=1)["status"] == "Accepted"
    seen = ota.watch(csms, "CS1", start=st.mark, timeout=30)
    assert ota.statuses(seen) == ["Downloading", "Downloading", "DownloadFailed"]
    assert csms.csms.files.requests == ["/good.fw", "/good.fw"]
    running(sim, OLD)


def test_an_unreachable_location_fails(csms, sims, files):
    sim = sims(csms.url, config=config(files))
    st = accepted(csms, sim)
    url = "http://127.0.0.1:9/good.fw"  # discard port: nothing listens
    assert update(csms, st, "good.fw", location=url)["status"] == "Accepted"
    seen = ota.watch(csms, "CS1", start=st.mark, timeout=30)
    assert ota.statuses(seen) == ["Downloading", "DownloadFailed"]
    running(sim, OLD)


def test_a_new_version_that_crashes_is_rolled_back(csms, sims, files, target):
    sim = sims(csms.url, config=config(files))
    st = accepted(csms, sim)
    assert update(csms, st, "crash.fw")["status"] == "Accepted"
    seen = ota.watch(csms, "CS1", start=st.mark, timeout=60)
    assert ota.statuses(seen) == HAPPY + ["InstallVerificationFailed"]
    assert boots(seen) == [("FirmwareUpdate", OLD)]
    assert "broken build" in sim.log()
    if target == "esp32":  # two boots of the image on trial, then back to the factory program
        assert sim.log().count("broken build") == 2
        assert "ota_0 not confirmed after 2 boots: rolling back" in sim.log()
        assert otadata(sim) == {
            "boot": "factory",
            "running": "factory",
            "trial": False,
            "failed": "ota_0",
        }
    wait_event(csms, "FirmwareUpdated")
    running(sim, OLD)


def test_a_new_request_cancels_a_waiting_one(csms, sims, files):
    sim = sims(csms.url, config=config(files))
    st = accepted(csms, sim)
    resp = update(csms, st, "good.fw", request_id=1, retrieveDateTime=later(60))
    assert resp["status"] == "Accepted"
    assert update(csms, st, "tampered.fw", request_id=2)["status"] == "AcceptedCanceled"
    seen = ota.watch(csms, "CS1", start=st.mark, timeout=30)
    got = [(p["status"], p["requestId"]) for a, p in seen if a == "FirmwareStatusNotification"]
    # The first may have reported DownloadScheduled before the second came.
    assert got[-3:] == [("Downloading", 2), ("Downloaded", 2), ("InvalidSignature", 2)]
    assert got[:-3] in ([], [("DownloadScheduled", 1)])
    running(sim, OLD)


# -- power loss -------------------------------------------------------------------------------


def _kill_on(csms, sim, status):
    """The CSMS pulls the station's plug when it hears `status` (before answering it)."""
    handlers = csms.csms.handlers
    plain = handlers["FirmwareStatusNotification"]

    def handler(station, payload):
        if payload["status"] == status and not handler.done:
            handler.done = True
            sim.kill()
        return plain(station, payload)

    handler.done = False
    handlers["FirmwareStatusNotification"] = handler


def test_power_loss_during_the_download_restarts_it(csms, sims, files):
    sim = sims(csms.url, config=config(files))
    st = accepted(csms, sim)
    csms.csms.files.pace["good.fw"] = 4  # the first download takes 4 s
    assert update(csms, st, "good.fw", retries=1)["status"] == "Accepted"
    csms.wait_frame(
        st,
        lambda f: (
            f.action == "FirmwareStatusNotification"
            and f.kind == "call"
            and f.payload["status"] == "Downloading"
        ),
    )
    time.sleep(1.5)  # part of the file is on flash
    sim.kill()
    sim = restart(csms, files, sims, sim, st)
    seen = ota.watch(csms, "CS1", timeout=60, fresh=True)
    assert ota.statuses(seen) == ["Downloading", "Downloaded", "SignatureVerified"] + HAPPY[3:] + [
        "Installed"
    ]
    assert boots(seen) == [("PowerUp", OLD), ("FirmwareUpdate", NEW)]
    assert len(csms.csms.files.requests) == 2
    running(sim, NEW)


def test_power_loss_during_the_install_retries_it(csms, sims, files):
    sim = sims(csms.url, config=config(files))
    st = accepted(csms, sim)
    _kill_on(csms, sim, "Installing")
    assert update(csms, st, "good.fw")["status"] == "Accepted"
    ota.watch(csms, "CS1", start=st.mark, until=("Installing",), timeout=30)
    sim = restart(csms, files, sims, sim, st)
    seen = ota.watch(csms, "CS1", timeout=60, fresh=True)
    # Installing again (the first one was never answered), then as usual.
    assert ota.statuses(seen) == ["Installing", "InstallRebooting", "Installed"]
    assert boots(seen) == [("PowerUp", OLD), ("FirmwareUpdate", NEW)]
    running(sim, NEW)


def test_power_loss_while_rebooting_into_the_new_version(csms, sims, files):
    sim = sims(csms.url, config=config(files))
    st = accepted(csms, sim)
    _kill_on(csms, sim, "InstallRebooting")
    assert update(csms, st, "good.fw")["status"] == "Accepted"
    ota.watch(csms, "CS1", start=st.mark, until=("InstallRebooting",), timeout=30)
    sim = restart(csms, files, sims, sim, st)
    seen = ota.watch(csms, "CS1", timeout=60, fresh=True)
    # InstallRebooting never got its answer; only the latest status is kept: Installed.
    assert ota.statuses(seen) == ["Installed"]
    assert boots(seen) == [("PowerUp", NEW)]
    running(sim, NEW)


# -- transactions -----------------------------------------------------------------------------


def test_the_install_waits_for_the_session_to_end(csms, sims, files):
    sim = sims(csms.url, config=config(files), evses=2)
    st = accepted(csms, sim)
    assert sim.cmd("plug_in", evse=1)["ok"]
    assert sim.cmd("swipe", token="GOOD")["ok"]
    sim.wait_status(lambda s: s["evse"][0]["tx_id"] is not None)
    assert update(csms, st, "good.fw", request_id=5)["status"] == "Accepted"
    seen = ota.watch(csms, "CS1", start=st.mark, until=("InstallScheduled",), timeout=30)
    assert ota.statuses(seen) == ["Downloading", "Downloaded", "SignatureVerified"] + [
        "InstallScheduled"
    ]
    # The idle EVSE is held Unavailable, the busy one charges on.
    unavailable = csms.wait_frame(
        st,
        lambda f: (
            f.action == "StatusNotification"
            and f.kind == "call"
            and f.payload["evseId"] == 2
            and f.payload["connectorStatus"] == "Unavailable"
        ),
    )
    assert unavailable
    assert sim.cmd("status")["evse"][0]["tx_id"] is not None
    n = len(st.frames)
    assert sim.cmd("swipe", token="GOOD")["ok"]  # the same card ends the session
    seen = ota.watch(csms, "CS1", start=n, timeout=60)
    assert ota.statuses(seen) == ["Installing", "InstallRebooting", "Installed"]
    assert all_carry(seen, 5)
    running(sim, NEW)
