"""firmware/blocks/firmware_update.py under CPython with a fake station: the answers to
UpdateFirmware (L01 before answering), and a full image update into a fake esp32.Partition
(download straight into the next OTA partition, set_boot, the report after the reboot, and the
rollback when the new image never confirms itself), plus resumption after power loss."""

import asyncio
import base64
import contextlib
import datetime
import sys
import time
from types import SimpleNamespace

import fake_esp32
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

import ocppj
import x509
from boards import Board
from clock import Clock
from firmware.blocks import firmware_update as fwu
from store import Store
from tools import ota
from tools.csms import FileServer

NOW = datetime.datetime.now(datetime.timezone.utc)


class Conn:
    def __init__(self):
        self.on_accepted = []
        self.on_online = []
        self.ready = asyncio.Event()
        self.registration = "Accepted"
        self.tls = False  # the link is wss://
        self.log = []  # away / back, as firmware/connection.py's

    async def away(self):
        self.log.append("away")
        self.ready.clear()

    def back(self):
        self.log.append("back")
        asyncio.get_event_loop().call_later(0.2, self.ready.set)  # reconnected soon after

    async def close(self):
        pass

    def accept(self):
        for fn in self.on_accepted:
            fn()
        self.ready.set()
        for fn in self.on_online:
            fn(None)


class Session:
    def __init__(self):
        self.calls = []

    async def call(self, action, payload, timeout_s=None):
        self.calls.append((action, payload))
        return {}


class Station:
    def __init__(self, state, board, roots):
        self.store = Store(str(state))
        self.clock = Clock(time.time)
        self.router = ocppj.Router()
        self.connection = Conn()
        self.session = Session()
        self.events = []
        self.security = SimpleNamespace(event=lambda k, info=None: self.events.append(k))
        self.holds = []
        self.availability = SimpleNamespace(hold=self.holds.append)
        self.evses = [SimpleNamespace(id=1)]
        self.tx = False
        self.allow = {"ChargingStation/AllowNewSessionsPendingFirmwareUpdate": False}
        self.certificates = SimpleNamespace(
            roots=lambda kind: roots,
            installed=lambda kind: len(roots),
            issuers=lambda kind, cert: iter(
                [r for r in roots if r.subject_der == cert.issuer_der]
            ),
        )
        self.board = board
        self.reboots = []
        self.tasks = []

    def idle(self):  # the transactions block's
        return not self.tx

    def spawn(self, coro):
        self.tasks.append(asyncio.ensure_future(coro))

    async def reboot(self, reason):
        self.reboots.append(reason)

    def block(self):
        """The update block, as firmware/main.py builds it."""
        return fwu.FirmwareUpdate(
            self.router,
            self.session,
            self.connection,
            self.store,
            self.clock,
            self.board,
            self.spawn,
            self.reboot,
            self.security,
            self.certificates,
            self.availability,
            self,  # transactions: idle()
            SimpleNamespace(get_bool=lambda key: self.allow[key]),  # the device model
        )

    def statuses(self):
        return [p["status"] for a, p in self.session.calls if a == "FirmwareStatusNotification"]


@pytest.fixture(scope="module")
def pki():
    root, root_key = ota.make_root()
    signer, signer_key = ota.make_signer(root, root_key)
    other, other_key = ota.make_root(cn="someone else")
    foreign, _ = ota.make_signer(other, other_key)
    old = NOW - datetime.timedelta(days=30)
    expired, _ = ota.make_signer(root, root_key, days=2, not_before=old)
    future, _ = ota.make_signer(root, root_key, not_before=NOW + datetime.timedelta(days=2))
    return SimpleNamespace(
        roots=x509.load_pem(ota.pem(root)),
        signer=ota.pem(signer),
        key=signer_key,
        foreign=ota.pem(foreign),
        expired=ota.pem(expired),
        future=ota.pem(future),
    )


def request(pki, url="http://127.0.0.1:9/x", data=b"x", **fw):
    firmware = {
        "location": url,
        "retrieveDateTime": NOW.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "signingCertificate": pki.signer,
        "signature": ota.sign_bytes(data, pki.key),
    }
    firmware.update(fw)
    return {"requestId": 42, "firmware": {k: v for k, v in firmware.items() if v is not None}}


async def until(pred, timeout=10):
    t = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > t:
            raise AssertionError("timed out")
        await asyncio.sleep(0.01)


# -- before answering ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, status, event",
    [
        ({"signature": None}, "Rejected", None),
        ({"signingCertificate": None}, "Rejected", None),
        ({"signingCertificate": "not a certificate"}, "InvalidCertificate", True),
        ({"signingCertificate": "foreign"}, "InvalidCertificate", True),
        ({"signingCertificate": "expired"}, "InvalidCertificate", True),
        ({"signingCertificate": "future"}, "InvalidCertificate", True),
        ({}, "Accepted", None),
    ],
)
def test_answers_before_anything_starts(tmp_path, pki, change, status, event):
    change = {k: getattr(pki, v, v) if isinstance(v, str) else v for k, v in change.items()}

    async def go():
        st = Station(tmp_path, Board(), pki.roots)
        fu = st.block()
        resp = await fu.on_update(request(pki, **change))
        assert resp["status"] == status
        assert st.events == (["InvalidFirmwareSigningCertificate"] if event else [])
        assert fu.status() == ("Idle", None)

    asyncio.run(go())


def test_a_signing_certificate_issued_by_a_v1_manufacturer_root_verifies(tmp_path, pki):
    from cryptography import x509 as cx
    from cryptography.hazmat.primitives.asymmetric import rsa
    from test_crypto_x509 import v1

    key = rsa.generate_private_key(65537, 2048)
    now = int(NOW.timestamp())
    root_der, root = v1("v1 manufacturer root", key, not_before=now - 60, not_after=now + 86400)
    assert root.version == 1
    signer, signer_key = ota.make_signer(cx.load_der_x509_certificate(root_der), key)
    v1_pki = SimpleNamespace(signer=ota.pem(signer), key=signer_key)

    async def go():
        st = Station(tmp_path, Board(), [root])
        fu = st.block()
        assert (await fu.on_update(request(v1_pki, url="http://127.0.0.1:9/x")))[
            "status"
        ] == "Accepted"
        assert st.events == []

    asyncio.run(go())


def test_the_signer_s_root_is_found_among_roots_of_the_same_name(tmp_path, pki, logged):
    # A renewed root (same name, another key) installed before the one that signed: each
    # candidate is checked in turn; only candidates of the issuer's name are asked for. The
    # signer's checks name the failures of every candidate when none fits.
    renewed, _ = ota.make_root()  # "mpwallbox manufacturer root", another key
    asked = []

    async def go(roots, want):
        st = Station(tmp_path, Board(), roots)
        issuers = st.certificates.issuers
        st.certificates.issuers = lambda kind, cert: asked.append(kind) or issuers(kind, cert)
        fu = st.block()
        resp = await fu.on_update(request(pki, url="http://127.0.0.1:9/x"))
        assert resp["status"] == want

    renewed = x509.load_pem(ota.pem(renewed))
    asyncio.run(go(renewed + pki.roots, "Accepted"))
    assert asked == ["ManufacturerRootCertificate"]
    asyncio.run(go(renewed + renewed, "InvalidCertificate"))
    assert "no trusted root: bad signature; bad signature" in logged.getvalue()


def test_without_an_installed_root_every_certificate_is_invalid(tmp_path, pki):
    async def go():
        fu = Station(tmp_path, Board(), []).block()
        assert (await fu.on_update(request(pki)))["status"] == "InvalidCertificate"

    asyncio.run(go())


def test_a_waiting_update_is_cancelled_an_installing_one_is_not(tmp_path, pki):
    async def go():
        st = Station(tmp_path, Board(), pki.roots)
        fu = st.block()
        st.connection.ready.set()
        later = (NOW + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        req = request(pki, retrieveDateTime=later)
        resp = await fu.on_update(req)
        fu._after_update(req, resp)
        await until(lambda: st.statuses() == ["DownloadScheduled"])
        assert fu.status() == ("DownloadScheduled", 42)
        req2 = dict(req, requestId=43)
        resp = await fu.on_update(req2)
        assert resp == {"status": "AcceptedCanceled"}
        fu._after_update(req2, resp)
        await until(lambda: st.statuses()[-1] == "DownloadScheduled" and fu.doc["id"] == 43)
        fu.doc["step"] = "reboot"  # installed, rebooting: too late to cancel
        assert (await fu.on_update(request(pki)))["status"] == "Rejected"
        assert fu.doc["id"] == 43
        fu._task.cancel()

    asyncio.run(go())


# -- power loss -------------------------------------------------------------------------------


def _doc(**kw):
    d = {
        "v": 1,
        "id": 9,
        "step": "download",
        "status": "Downloading",
        "sent": True,
        "req": {
            "url": "http://127.0.0.1:9/x",
            "retrieve": 0,
            "install": None,
            "retries": 0,
            "interval": 0,
            "cert": "",
            "sig": "",
        },
        "tries": 1,
        "installs": 0,
        "reboots": 0,
    }
    d.update(kw)
    return d


@pytest.mark.parametrize(
    "doc, statuses",
    [
        (_doc(), ["DownloadFailed"]),  # the only attempt was cut by the power loss
        (_doc(step="install", installs=2, kind="bundle"), ["InstallationFailed"]),
        (_doc(step="done", status="InvalidSignature", sent=False), ["InvalidSignature"]),
        (_doc(step="done", status="Installed", sent=True), []),
    ],
)
def test_after_a_power_loss(tmp_path, pki, doc, statuses):
    async def go():
        Store(str(tmp_path)).save("firmware", doc)
        st = Station(tmp_path, Board(), pki.roots)
        fu = st.block()
        await asyncio.sleep(0.05)
        assert st.statuses() == []  # nothing before the CSMS accepted this boot
        st.connection.accept()
        if statuses:
            await until(lambda: st.statuses() == statuses)
        await asyncio.sleep(0.1)
        assert st.statuses() == statuses
        assert fu.status() == ("Idle", None)
        assert st.holds in ([], [True, False])

    asyncio.run(go())


# -- a full image into the next OTA partition (ESP32 boards with a frozen build) --------------


@pytest.fixture
def esp32_board(monkeypatch):
    import fake_machine

    for name in ("machine", "esp32", "boards.esp32"):
        monkeypatch.setitem(sys.modules, name, None)
        del sys.modules[name]
    fake_machine.install()
    flash = fake_esp32.install(monkeypatch=monkeypatch)
    from boards import esp32 as board_mod

    return board_mod.Board.__new__(board_mod.Board), flash


@contextlib.asynccontextmanager
async def served(tmp_path, data):
    """The URL of fw.bin holding `data`, served over HTTP while the block is tried."""
    (tmp_path / "www").mkdir(exist_ok=True)
    (tmp_path / "www" / "fw.bin").write_bytes(data)
    files = FileServer(tmp_path / "www")
    await files.start()
    try:
        yield files.url("fw.bin")
    finally:
        await files.stop()


def _image(n=20000):
    return bytes([0xE9]) + bytes((i * 13) & 0xFF for i in range(n - 1))


def _update_image(tmp_path, pki, board, data, signature=None):
    async def go():
        async with served(tmp_path, data) as url:
            st = Station(tmp_path / "state", board, pki.roots)
            fu = st.block()
            st.connection.ready.set()
            req = request(pki, url, data)
            if signature is not None:
                req["firmware"]["signature"] = signature
            resp = await fu.on_update(req)
            assert resp["status"] == "Accepted"
            fu._after_update(req, resp)
            await until(lambda: st.reboots or fu.doc["step"] == "done")
            return st

    return asyncio.run(go())


def _boot(tmp_path, pki, board):
    async def go():
        st = Station(tmp_path / "state", board, pki.roots)
        fu = st.block()
        st.connection.accept()
        await until(lambda: fu.doc["step"] == "done")
        await asyncio.sleep(0.05)
        return st

    return asyncio.run(go())


def test_an_image_goes_to_the_next_partition_and_is_confirmed_once_accepted(
    tmp_path, pki, esp32_board
):
    board, flash = esp32_board
    data = _image()
    st = _update_image(tmp_path, pki, board, data)
    assert st.statuses() == fwu_happy()
    assert st.reboots == ["FirmwareUpdate"]
    assert flash.boot == "ota_1" and flash.data["ota_1"][: len(data)] == data
    assert not (tmp_path / "state" / "fw.part").exists()  # never went through a file
    flash.reset()  # into the new image, pending verification
    st = _boot(tmp_path, pki, board)
    assert st.statuses() == ["Installed"]
    assert st.events == ["FirmwareUpdated"]
    assert not flash.pending  # rollback cancelled
    flash.reset()
    assert board.running_app() == "ota_1"


def test_an_image_that_never_confirms_is_rolled_back_and_reported(tmp_path, pki, esp32_board):
    board, flash = esp32_board
    _update_image(tmp_path, pki, board, _image())
    flash.reset()  # the new image starts ...
    flash.reset()  # ... and dies before its BootNotification was Accepted: rollback
    assert board.running_app() == "ota_0"
    st = _boot(tmp_path, pki, board)
    assert st.statuses() == ["InstallVerificationFailed"]
    assert st.events == ["FirmwareUpdated"]


def test_a_bad_image_signature_never_sets_the_boot_partition(tmp_path, pki, esp32_board):
    board, flash = esp32_board
    sig = base64.b64encode(pki.key.sign(b"other", padding.PKCS1v15(), hashes.SHA256())).decode()
    st = _update_image(tmp_path, pki, board, _image(), signature=sig)
    assert st.statuses() == ["Downloading", "Downloaded", "InvalidSignature"]
    assert st.events == ["InvalidFirmwareSignature"]
    assert flash.boot == "ota_0" and not st.reboots


def test_an_image_on_a_board_without_ota_partitions_fails_to_install(tmp_path, pki):
    st = _update_image(tmp_path, pki, Board(), _image(5000))
    assert st.statuses() == fwu_happy()[:4] + ["InstallationFailed"]
    assert st.holds == [True, False]  # the EVSEs were held during the install, then released
    assert not st.reboots


def fwu_happy():
    return ["Downloading", "Downloaded", "SignatureVerified", "Installing", "InstallRebooting"]


def test_an_unaccepted_trial_reboots_but_never_during_a_session(tmp_path, pki, monkeypatch):
    st = Station(tmp_path, Board(), pki.roots)
    st.connection.registration = "Pending"
    st.tx = True  # a charging session runs
    fw = st.block()
    monkeypatch.setattr(fwu.bootsel, "trial", True)

    async def go():
        task = asyncio.ensure_future(fw._trial_watch(trial_s=0, poll_ms=10))
        await asyncio.sleep(0.1)
        assert st.reboots == []  # waits for the session
        st.tx = False
        await asyncio.wait_for(task, 1)

    asyncio.run(go())
    assert st.reboots == ["FirmwareUpdate"]


def test_an_image_booted_on_trial_and_never_accepted_reboots_after_the_trial(
    tmp_path, pki, esp32_board
):
    board, flash = esp32_board
    _update_image(tmp_path, pki, board, _image())
    flash.reset()  # into the new image, pending verification
    st = Station(tmp_path / "state", board, pki.roots)
    st.connection.registration = "Pending"  # the CSMS never accepts this boot

    async def go():
        fw = st.block()  # spawns the watch with the real trial time: cancelled
        assert fw._on_trial() and not fwu.bootsel.trial and len(st.tasks) == 1
        st.tasks[0].cancel()
        await asyncio.wait_for(fw._trial_watch(trial_s=0, poll_ms=10), 1)

    asyncio.run(go())
    assert st.reboots == ["FirmwareUpdate"]
    flash.reset()  # the bootloader rolls the unconfirmed image back
    assert board.running_app() == "ota_0"


def test_the_kinds_known_without_bundle_are_bundles():
    # firmware_update names the kinds itself, so the boot need not import bundle.
    import bundle

    assert (fwu._BUNDLE, fwu._IMAGE) == (bundle.BUNDLE, bundle.IMAGE)


# -- one TLS connection: an https:// download beside a wss:// link ----------------------------


@pytest.mark.parametrize(
    "links, url, tls, alone",
    [
        (1, "https", True, True),  # a WROOM: the link closes for the download
        (1, "http", True, False),  # plain HTTP needs no second TLS connection
        (1, "https", False, False),  # a ws:// link holds none
        (None, "https", True, False),  # a board without the limit
    ],
)
def test_a_board_with_one_tls_link_closes_the_wss_link_for_an_https_download(
    tmp_path, pki, monkeypatch, links, url, tls, alone
):
    board = Board()
    board.tls_links = links
    seen = []
    fetch = fwu.FirmwareUpdate._fetch

    async def watched(self, location):
        seen.append((location[: len(url) + 1], list(self.connection.log)))
        # the local file server speaks http: the scheme only decides the pause
        return await fetch(self, "http:" + location.split(":", 1)[1])

    monkeypatch.setattr(fwu.FirmwareUpdate, "_fetch", watched)
    data = b"the bundle"

    async def go():
        async with served(tmp_path, data) as http:
            st = Station(tmp_path / "state", board, pki.roots)
            st.connection.tls = tls
            fu = st.block()
            st.connection.ready.set()
            location = url + ":" + http.split(":", 1)[1]
            req = request(pki, location, data)
            resp = await fu.on_update(req)
            assert resp["status"] == "Accepted"
            fu._after_update(req, resp)
            await until(lambda: "SignatureVerified" in st.statuses() or fu.doc is None)
            return st

    st = asyncio.run(go())
    assert seen == [(url + ":", ["away"] if alone else [])]
    assert st.connection.log == (["away", "back"] if alone else [])
    # Downloaded went out on the link that came back, none skipped
    assert st.statuses()[:3] == ["Downloading", "Downloaded", "SignatureVerified"]


@pytest.mark.parametrize("allow", [False, True])
def test_the_install_waits_for_the_sessions_and_holds_idle_evses_unless_allowed(
    tmp_path, pki, esp32_board, allow
):
    """AllowNewSessionsPendingFirmwareUpdate false: idle EVSEs go Unavailable as soon as the
    install waits; true: new sessions may start until all are idle, held only then."""
    board, flash = esp32_board
    data = _image()

    async def go():
        async with served(tmp_path, data) as url:
            st = Station(tmp_path / "state", board, pki.roots)
            st.allow["ChargingStation/AllowNewSessionsPendingFirmwareUpdate"] = allow
            st.tx = True  # a charging session runs
            fu = st.block()
            st.connection.ready.set()
            req = request(pki, url, data)
            resp = await fu.on_update(req)
            fu._after_update(req, resp)
            await until(lambda: st.statuses()[-1:] == ["InstallScheduled"])
            await asyncio.sleep(0.1)
            assert st.holds == ([] if allow else [True])
            st.tx = False  # the session ends
            await until(lambda: st.reboots)
            assert st.holds == [True]
            return st

    st = asyncio.run(go())
    assert st.statuses() == fwu_happy()[:3] + ["InstallScheduled"] + fwu_happy()[3:]
