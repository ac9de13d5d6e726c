"""Network connection profiles under CPython: slots and their order, never lowering the security
profile, persistence, the B10 rotation through the slots (also inside Connection.run, with a
fake connect and a fake clock), and every answer of SetNetworkProfile."""

import asyncio
import datetime
from types import SimpleNamespace

import pytest
from cryptography import x509 as cx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from ocpp.messages import CallResult, _validate_payload

import ocppj
import schema
from boards import Board
from clock import Clock
from firmware import connection as connection_mod
from firmware import network
from firmware.blocks.certificates import Certificates
from firmware.blocks.network_profile import NetworkProfile
from firmware.blocks.security import Security
from firmware.connection import Connection
from firmware.device_model import DeviceModel
from firmware.network import NetworkProfiles, Rotation
from firmware.variables import VARIABLES
from store import Store

PRIORITY = "OCPPCommCtrlr/NetworkConfigurationPriority"
ACTIVE = "OCPPCommCtrlr/ActiveNetworkProfile"
ATTEMPTS = "OCPPCommCtrlr/NetworkProfileConnectionAttempts"
SP = "SecurityCtrlr/SecurityProfile"
URL1 = "ws://csms-one.example/ocpp"
URL2 = "ws://csms-two.example/ocpp/"


def decls():
    """VARIABLES with the two OCPPCommCtrlr variables this feature needs, as variables.py is
    to declare them (slots 1..3, ActiveNetworkProfile read-only) should it not do so yet."""
    out = []
    for d in VARIABLES:
        if d[0] == PRIORITY:
            d = (PRIORITY, "qw!", "1", (None, None, None, "1,2,3"))
        out.append(d)
    if not any(d[0] == ACTIVE for d in out):
        out.append((ACTIVE, "ir", "1", None))
    return tuple(out)


def cv(comp, var, value):
    return {"component": {"name": comp}, "variable": {"name": var}, "attributeValue": value}


def make_dm(state, security_profile=1, config=()):
    factory = [("SecurityCtrlr/Identity", "CS1"), (SP, str(security_profile))]
    return DeviceModel(Store(str(state)), decls(), factory, config)


def settings(**kw):
    s = {"csms_url": URL1}
    s.update(kw)
    return s


def profile(url=URL2, sp=1, **kw):
    p = {
        "ocppVersion": "OCPP20",
        "ocppTransport": "JSON",
        "ocppCsmsUrl": url,
        "messageTimeout": 20,
        "securityProfile": sp,
        "ocppInterface": "Wired0",
    }
    p.update(kw)
    return p


# -- slots and order --------------------------------------------------------------------------


def test_slot_1_is_the_factory_profile_from_the_board_settings(tmp_path):
    dm = make_dm(tmp_path)
    nets = NetworkProfiles(Store(str(tmp_path)), dm, settings(security_profile=1))
    assert nets.profile(1) == {
        "ocppVersion": "OCPP20",
        "ocppTransport": "JSON",
        "ocppCsmsUrl": URL1,
        "messageTimeout": 30,
        "securityProfile": 1,
        "ocppInterface": "Wired0",
    }
    assert nets.profile(2) is None and nets.profile(3) is None
    assert nets.order() == [1]
    assert NetworkProfiles(Store(str(tmp_path)), dm, {}).order() == []  # no URL: no slot 1


def test_order_follows_the_priority_read_at_boot_and_skips_empty_slots(tmp_path):
    dm = make_dm(tmp_path)
    dm.set(PRIORITY, "3,2,1")
    nets = NetworkProfiles(Store(str(tmp_path)), dm, settings())
    assert nets.order() == [1]
    nets.put(2, profile())
    assert nets.order() == [2, 1]
    dm.set(PRIORITY, "1,2")  # RebootRequired: this boot keeps its order
    assert nets.order() == [2, 1]
    assert NetworkProfiles(Store(str(tmp_path)), dm, settings()).order() == [1, 2]


def test_a_csms_written_slot_1_replaces_the_factory_profile(tmp_path):
    dm = make_dm(tmp_path)
    nets = NetworkProfiles(Store(str(tmp_path)), dm, settings())
    nets.put(1, profile(url=URL2))
    again = NetworkProfiles(Store(str(tmp_path)), dm, settings())
    assert again.profile(1)["ocppCsmsUrl"] == URL2


def test_profiles_persist_in_one_versioned_document(tmp_path):
    store = Store(str(tmp_path))
    dm = make_dm(tmp_path)
    nets = NetworkProfiles(store, dm, settings())
    nets.put(3, dict(profile(), customData={"vendorId": "acme"}))
    assert store.load("network") == {"v": 1, "slots": {"3": profile()}, "level": 0}
    again = NetworkProfiles(Store(str(tmp_path)), make_dm(tmp_path), settings())
    assert again.profile(3) == profile()


@pytest.mark.parametrize(
    "doc",
    [{"v": 2, "slots": {}, "level": 3}, {"v": 1}, [1], {"v": 1, "slots": {"x": {}}, "level": 1}],
)
def test_an_unusable_document_is_ignored_and_logged(tmp_path, logged, doc):
    store = Store(str(tmp_path))
    store.save("network", doc)
    nets = NetworkProfiles(store, make_dm(tmp_path), settings())
    assert nets.slots == {} and nets.level == 0 and nets.order() == [1]
    assert "stored profiles unusable" in logged.getvalue()


# -- the security profile is never lowered -------------------------------------------------


def test_a_profile_below_the_current_security_profile_is_skipped_and_logged(tmp_path, logged):
    dm = make_dm(tmp_path, security_profile=2)
    dm.set(PRIORITY, "2,1")
    nets = NetworkProfiles(Store(str(tmp_path)), dm, settings(security_profile=2))
    nets.put(2, profile(sp=1))
    nets.put(3, profile(url="wss://three.example/ocpp", sp=2))
    assert nets.order() == [1]
    assert nets.order() == [1]
    assert (
        logged.getvalue().count("slot 2 skipped: security profile 1 is below the current 2") == 1
    )


def test_connecting_raises_the_security_profile_and_it_stays_raised_after_a_reboot(tmp_path):
    store = Store(str(tmp_path))
    dm = make_dm(tmp_path)
    dm.set(PRIORITY, "2,1")
    nets = NetworkProfiles(store, dm, settings())
    nets.put(2, profile(url="wss://two.example/ocpp", sp=2))
    nets.connected(1)
    assert (nets.active, dm.get(SP), dm.get(ACTIVE)) == (1, "1", "1")
    nets.connected(2)
    assert (nets.active, dm.get(SP), dm.get(ACTIVE), nets.level) == (2, "2", "2", 2)
    # Reboot: SecurityProfile is read-only, the board says 1 again; the stored level wins.
    dm2 = make_dm(tmp_path)
    assert dm2.get(SP) == "1"
    nets2 = NetworkProfiles(store, dm2, settings())
    assert dm2.get(SP) == "2"
    assert nets2.order() == [2]  # the factory slot 1 (profile 1) is left out


# -- rotation through the slots (B10) -------------------------------------------------------


def rotation(tmp_path, priority="2,1", attempts=3, slots=(2,)):
    dm = make_dm(tmp_path)
    dm.set(PRIORITY, priority)
    dm.set(ATTEMPTS, str(attempts))
    nets = NetworkProfiles(Store(str(tmp_path)), dm, settings())
    for s in slots:
        nets.put(s, profile(url="ws://slot%d.example/ocpp" % s))
    return nets, Rotation(nets)


def tries(rot, n):
    """The slots of n failed attempts in a row."""
    out = []
    for _ in range(n):
        out.append(rot.next())
        rot.failed()
    return out


def test_each_slot_gets_its_attempts_then_the_next_then_around(tmp_path):
    nets, rot = rotation(tmp_path, priority="3,2,1", attempts=2, slots=(2, 3))
    assert tries(rot, 8) == [3, 3, 2, 2, 1, 1, 3, 3]


def test_a_success_starts_the_count_again_on_the_same_slot(tmp_path):
    nets, rot = rotation(tmp_path, attempts=3)
    assert tries(rot, 2) == [2, 2]
    assert rot.next() == 2
    rot.succeeded()
    assert nets.active == 2
    assert tries(rot, 4) == [2, 2, 2, 1]


def test_the_attempt_count_is_read_at_each_failure(tmp_path):
    nets, rot = rotation(tmp_path, attempts=5)
    assert tries(rot, 2) == [2, 2]
    nets.dm.set(ATTEMPTS, "1")
    assert tries(rot, 3) == [2, 1, 2]


def test_one_slot_alone_is_tried_forever_and_none_usable_gives_none(tmp_path):
    nets, rot = rotation(tmp_path, priority="1", attempts=1, slots=())
    assert tries(rot, 3) == [1, 1, 1]
    dm = make_dm(tmp_path / "other")
    rot2 = Rotation(NetworkProfiles(Store(str(tmp_path / "other")), dm, {}))
    assert tries(rot2, 2) == [None, None]


def test_a_slot_left_out_after_a_raise_is_no_longer_tried(tmp_path):
    nets, rot = rotation(tmp_path, priority="1,2", attempts=1)
    nets.put(2, profile(url="wss://two.example/ocpp", sp=2))
    assert rot.next() == 1
    rot.failed()
    assert rot.next() == 2
    rot.succeeded()  # security profile 2 from now on: slot 1 (profile 1) is out
    assert tries(rot, 3) == [2, 2, 2]


# -- Connection.run with a fake connect and a fake clock -------------------------------------


class FakeBoard(Board):
    def __init__(self, s):
        self.settings = s
        self.up = True

    def network_up(self):
        return self.up

    def urandom(self, n):
        return bytes(n)


class FakeStation:
    def __init__(self, tmp_path, s, config):
        self.store = Store(str(tmp_path))
        self.dm = DeviceModel(self.store, decls(), [("SecurityCtrlr/Identity", "CS 1")], config)
        self.router = ocppj.Router()
        self.session = ocppj.Session(self.router, lambda: "x", 30)
        self.board = FakeBoard(s)
        self.clock = Clock(lambda: 1795285000)
        self.spawned = []
        self.certificates = None  # a test may give it a certificates block
        self.security = None  # ... and a security block


def link(st):
    """The connection of station `st`, as firmware/main.py builds it: its TLS trusts the CSMS
    roots of the certificates block, if it has one, and it reports to the security block."""
    return Connection(
        st.board,
        st.dm,
        st.session,
        st.store,
        st.clock,
        st.spawned.append,
        "PowerUp",
        st.certificates.csms_ca_path if st.certificates is not None else None,
        st.security.event if st.security is not None else None,
    )


def fast(attempts, priority):
    return [
        cv("OCPPCommCtrlr", "RetryBackOffWaitMinimum", "1"),
        cv("OCPPCommCtrlr", "RetryBackOffRandomRange", "0"),
        cv("OCPPCommCtrlr", "RetryBackOffRepeatTimes", "2"),
        cv("OCPPCommCtrlr", "NetworkProfileConnectionAttempts", str(attempts)),
        cv("OCPPCommCtrlr", "NetworkConfigurationPriority", priority),
    ]


def drive(monkeypatch, station, ok, connections=1):
    """Run Connection.run until `connections` connections were served; attempt n (from 1) to
    `url` connects when ok(n, url). Sleeping is instant and only recorded. Returns the
    attempts as [(url, seconds slept before it, handshake timeout ms)], the connection and the
    active slot of each connection served."""
    events = []  # ("sleep", s) and ("connect", url, timeout_ms), in order
    conn = link(station)
    served = []

    async def connect(url, basic_auth=None, ssl_ctx=None, timeout_ms=0, urandom=None, keep=None):
        events.append(("connect", url, timeout_ms))
        if ok(len([e for e in events if e[0] == "connect"]), url):
            return object()
        raise OSError("refused")

    async def serve(sock):
        served.append(conn.profiles.active)
        if len(served) >= connections:
            conn.stopping = True

    async def sleep_ms(ms):
        events.append(("sleep", ms / 1000))
        await asyncio.sleep(0)

    monkeypatch.setattr(connection_mod.ws, "connect", connect)
    monkeypatch.setattr(connection_mod.asyncio, "sleep_ms", sleep_ms)
    conn._serve = serve
    asyncio.run(asyncio.wait_for(conn.run(), 5))
    attempts, delay = [], 0
    for e in events:
        if e[0] == "sleep":
            delay = e[1]
        else:
            attempts.append((e[1], delay, e[2]))
            delay = 0
    return attempts, conn, served


def test_run_tries_each_slot_its_attempts_with_the_backoff_running_on(tmp_path, monkeypatch):
    st = FakeStation(tmp_path, settings(), fast(2, "2,1"))
    nets = NetworkProfiles(st.store, st.dm, st.board.settings)
    nets.put(2, profile(url="ws://127.0.0.1:9/dead", messageTimeout=7))
    attempts, conn, served = drive(monkeypatch, st, lambda n, url: url.startswith(URL1))
    assert attempts == [
        ("ws://127.0.0.1:9/dead/CS%201", 0, 7000),  # each profile's own messageTimeout
        ("ws://127.0.0.1:9/dead/CS%201", 1, 7000),
        (URL1 + "/CS%201", 2, 30000),
    ]
    assert served == [1] and st.dm.get(ACTIVE) == "1" and conn.registration is None


def test_run_wraps_around_and_a_success_restarts_backoff_and_count(tmp_path, monkeypatch):
    st = FakeStation(tmp_path, settings(csms_url="ws://10.0.0.1/a"), fast(1, "1,2"))
    NetworkProfiles(st.store, st.dm, st.board.settings).put(2, profile(url="ws://10.0.0.2/b"))
    # Attempts 1-4 fail, the fifth and sixth connect.
    attempts, conn, served = drive(monkeypatch, st, lambda n, url: n >= 5, connections=2)
    assert [(a[0].rsplit("/", 1)[0], a[1]) for a in attempts] == [
        ("ws://10.0.0.1/a", 0),
        ("ws://10.0.0.2/b", 1),
        ("ws://10.0.0.1/a", 2),
        ("ws://10.0.0.2/b", 4),
        ("ws://10.0.0.1/a", 4),  # W=1, R=0, N=2: 1, 2, 4, then 4 across the slot changes
        ("ws://10.0.0.1/a", 1),  # the connection dropped: delay(1), the same slot first
    ]
    assert served == [1, 1]


def test_run_keeps_the_slot_while_our_own_network_is_down(tmp_path, monkeypatch):
    st = FakeStation(tmp_path, settings(), fast(1, "2,1"))
    NetworkProfiles(st.store, st.dm, st.board.settings).put(2, profile(url="ws://10.0.0.2/b"))
    st.board.up = False
    conn = link(st)
    seen = []
    real_open = conn._open

    async def open_(slot):
        seen.append(slot)
        if len(seen) == 4:
            st.board.up = True
        if len(seen) == 5:
            conn.stopping = True
        return await real_open(slot)

    async def sleep_ms(ms):
        await asyncio.sleep(0)

    async def connect(url, **kw):
        raise OSError("refused")

    monkeypatch.setattr(connection_mod.ws, "connect", connect)
    monkeypatch.setattr(connection_mod.asyncio, "sleep_ms", sleep_ms)
    conn._open = open_
    asyncio.run(asyncio.wait_for(conn.run(), 5))
    # Three failures with the network down count nothing; the fourth, up, is slot 2's first
    # (and, with one attempt per slot, its last).
    assert seen == [2, 2, 2, 2, 1]


def test_run_registers_again_after_moving_to_another_slot(tmp_path, monkeypatch):
    st = FakeStation(tmp_path, settings(), fast(1, "1,2"))
    NetworkProfiles(st.store, st.dm, st.board.settings).put(2, profile(url="ws://10.0.0.2/b"))
    conn = link(st)
    results = iter([True, False, True])  # slot 1 connects, then fails, slot 2 connects
    regs = []

    async def connect(url, **kw):
        if next(results):
            return object()
        raise OSError("refused")

    async def serve(sock):
        regs.append((conn.profiles.active, conn.registration))
        conn.registration = "Accepted"
        if len(regs) == 2:
            conn.stopping = True

    async def sleep_ms(ms):
        await asyncio.sleep(0)

    monkeypatch.setattr(connection_mod.ws, "connect", connect)
    monkeypatch.setattr(connection_mod.asyncio, "sleep_ms", sleep_ms)
    conn._serve = serve
    asyncio.run(asyncio.wait_for(conn.run(), 5))
    assert regs == [(1, None), (2, None)]  # a BootNotification goes to the new slot's CSMS


# -- SetNetworkProfile (B09) ------------------------------------------------------------------


class BlockStation:
    def __init__(self, tmp_path, sp=1, s=None):
        self.store = Store(str(tmp_path / "state"))
        self.dm = DeviceModel(self.store, decls(), [(SP, str(sp))])
        self.router = ocppj.Router()
        self.board = FakeBoard(s if s is not None else settings(security_profile=sp))
        self.connection = type("C", (), {})()
        self.connection.profiles = NetworkProfiles(self.store, self.dm, self.board.settings)
        self.clock = Clock(lambda: 1795285000)
        # Installs the board's csms_ca_file as the CSMS root, if valid.
        self.certificates = Certificates(
            self.router, self.dm, self.store, self.clock, self.board.settings
        )
        queue = SimpleNamespace(post=lambda *a, **kw: True)  # log-only events never post
        self.security = Security(
            self.dm, self.clock, queue, SimpleNamespace(on_accepted=[]), "PowerUp"
        )


def block(st):
    """The SetNetworkProfile block of station `st`, as firmware/main.py builds it."""
    return NetworkProfile(
        st.router, st.dm, st.connection, st.certificates, st.security, st.board.settings
    )


def answer(station, slot, data):
    req = {"configurationSlot": slot, "connectionData": data}
    schema.validate("SetNetworkProfileRequest", req)  # what the router lets through
    handler, after = station.router.handlers["SetNetworkProfile"]
    resp = handler(req)
    _validate_payload(CallResult("1", resp, "SetNetworkProfile"), "2.0.1")
    return resp


def rejected(code):
    return {"status": "Rejected", "statusInfo": {"reasonCode": code}}


@pytest.fixture
def pki(tmp_path):
    files = {}
    for name in ("ca", "cert", "key"):
        p = tmp_path / (name + ".pem")
        p.write_text(_ca_pem() if name == "ca" else "-----BEGIN X-----\n")
        files[name] = str(p)
    return files


def _ca_pem():
    """A self-signed CA certificate: what the certificates block installs as CSMS root."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = cx.Name([cx.NameAttribute(cx.oid.NameOID.COMMON_NAME, "CSMS Root")])
    day = datetime.timedelta(days=1)
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        cx.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - day)
        .not_valid_after(now + day)
        .add_extension(cx.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_accepted_profile_is_stored_and_the_security_event_logged(tmp_path, logged):
    st = BlockStation(tmp_path)
    block(st)
    st.connection.profiles.active = 1
    assert answer(st, 2, profile()) == {"status": "Accepted"}
    assert st.store.load("network")["slots"] == {"2": profile()}
    assert "event ReconfigurationOfSecurityParameters (slot 2, security profile 1)" in (
        logged.getvalue()
    )
    assert answer(st, 2, profile(url=URL1)) == {"status": "Accepted"}  # an idle slot again
    assert st.connection.profiles.profile(2)["ocppCsmsUrl"] == URL1


def test_the_security_block_gets_the_event(tmp_path):
    st = BlockStation(tmp_path)
    events = []
    st.security = type("S", (), {"event": lambda self, k, i=None: events.append((k, i))})()
    block(st)
    assert answer(st, 3, profile()) == {"status": "Accepted"}
    assert events == [("ReconfigurationOfSecurityParameters", "slot 3, security profile 1")]


@pytest.mark.parametrize("slot", [999, 0, 4, -1])
def test_a_slot_outside_the_values_list_is_rejected(tmp_path, slot):
    st = BlockStation(tmp_path)
    block(st)
    assert answer(st, slot, profile()) == rejected("InvalidConfSlot")
    assert st.store.load("network") is None


def test_the_active_slot_is_rejected(tmp_path):
    st = BlockStation(tmp_path)
    block(st)
    st.connection.profiles.connected(1)
    assert answer(st, 1, profile()) == rejected("ActiveConfSlot")
    assert answer(st, 2, profile()) == {"status": "Accepted"}


def test_a_lower_security_profile_is_rejected(tmp_path, pki):
    st = BlockStation(tmp_path, sp=2, s=settings(security_profile=2, csms_ca_file=pki["ca"]))
    block(st)
    assert answer(st, 2, profile(sp=1)) == rejected("NoSecurityDowngrade")
    assert answer(st, 2, profile(url="wss://x.example/ocpp", sp=2)) == {"status": "Accepted"}


@pytest.mark.parametrize(
    "sp, have, code",
    [
        (2, (), "MissingCertificate"),
        (2, ("cert", "key"), "MissingCertificate"),
        (3, ("ca",), "MissingCertificate"),
        (3, ("ca", "cert"), "MissingCertificate"),
        (3, ("cert", "key"), "MissingCertificate"),
        (2, ("ca",), None),
        (3, ("ca", "cert", "key"), None),
    ],
)
def test_a_higher_profile_needs_its_certificates(tmp_path, pki, sp, have, code):
    names = {"ca": "csms_ca_file", "cert": "client_cert_file", "key": "client_key_file"}
    s = settings()
    for k in ("ca", "cert", "key"):
        # A file that is named but missing counts as absent.
        s[names[k]] = pki[k] if k in have else str(tmp_path / "missing.pem")
    st = BlockStation(tmp_path, s=s)
    block(st)
    got = answer(st, 2, profile(url="wss://csms.example/ocpp", sp=sp))
    assert got == (rejected(code) if code else {"status": "Accepted"})


@pytest.mark.parametrize(
    "change",
    [
        {"ocppVersion": "OCPP16"},
        {"ocppTransport": "SOAP"},
        {"ocppCsmsUrl": "http://csms.example/ocpp"},
        {"ocppCsmsUrl": "wss://csms.example/ocpp"},  # profile 1 is ws://
        {"ocppCsmsUrl": "ws://user:pw@csms.example/ocpp"},
        {"ocppCsmsUrl": ""},
        {"messageTimeout": 0},
        {"securityProfile": 4},
        {"vpn": {"server": "v", "user": "u", "password": "p", "key": "k", "type": "IPSec"}},
    ],
)
def test_an_invalid_network_configuration_is_rejected(tmp_path, change):
    st = BlockStation(tmp_path)
    block(st)
    assert answer(st, 2, profile(**change)) == rejected("InvalidNetworkConf")


def test_profile_2_needs_wss(tmp_path, pki):
    st = BlockStation(tmp_path, s=settings(csms_ca_file=pki["ca"]))
    block(st)
    assert answer(st, 2, profile(url="ws://csms.example/ocpp", sp=2)) == rejected(
        "InvalidNetworkConf"
    )


def test_allowed_slots_come_from_the_values_list(tmp_path):
    assert network.allowed_slots(make_dm(tmp_path)) == [1, 2, 3]
    assert network.parse_slots("2, 1,x,,2") == [2, 1]


def test_away_closes_the_link_and_no_attempt_comes_until_back(tmp_path, monkeypatch):
    # firmware_update's https download on a board with one TLS connection (Board.tls_links)
    st = FakeStation(tmp_path, settings(), fast(2, "1"))
    conn = link(st)
    attempts = []
    closed = []

    class Sock:
        def __init__(self):
            self.done = asyncio.Event()

        async def close(self, code=1000, reason=""):
            closed.append((code, reason))
            self.done.set()

    async def connect(url, **kw):
        attempts.append(url)
        return Sock()

    async def serve(sock):
        conn.sock = sock
        await sock.done.wait()
        conn.sock = None

    async def go():
        task = asyncio.create_task(conn.run())
        await asyncio.sleep(0.05)
        assert len(attempts) == 1
        await conn.away()
        assert closed == [(1000, "back soon")]
        await asyncio.sleep(0.3)  # no attempt while away, whatever the back-off says
        assert len(attempts) == 1
        conn.back()
        await asyncio.sleep(0.05)  # at once, without back-off
        assert len(attempts) == 2
        await conn.close()
        await asyncio.wait_for(task, 1)

    monkeypatch.setattr(connection_mod.ws, "connect", connect)
    conn._serve = serve
    asyncio.run(go())
