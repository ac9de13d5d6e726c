"""The station's own key pair and certificate (A02/A03, firmware/blocks/station_certificate.py)
under CPython, against `cryptography`: the CSR parses and verifies, the development CSMS's CA
(tools/csms.CertificateAuthority) signs it and the chain is installed as the profile 3 client
certificate; bad chains are Rejected with InvalidChargingStationCertificate and change nothing;
the SignCertificate retries on a scripted clock; the triggers (TriggerMessage, SetNetworkProfile
for profile 3) and the TLS context on the unix port."""

import asyncio
import datetime
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography import x509 as cx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from test_board_station import devkit as devkit  # the fixture
from test_certificates import CSMS, DAY, call, delete, install, make_root, ocsp_hash_data, pem
from tls_certs import make_pki

import ocppj
from clock import Clock
from firmware.blocks import station_certificate as sc_mod
from firmware.blocks.certificates import Certificates
from firmware.blocks.network_profile import NetworkProfile
from firmware.blocks.remote_control import RemoteControl
from firmware.device_model import DeviceModel
from firmware.network import NetworkProfiles
from firmware.variables import declarations
from store import Store
from tools.csms import CertificateAuthority

ROOT = Path(__file__).resolve().parent.parent
CA_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = ec.generate_private_key(ec.SECP256R1())
KIND = "ChargingStationCertificate"
EVENT = "InvalidChargingStationCertificate"


class Session:
    """The OCPP session: `answer(action, payload)` (async) gives each CALL's answer."""

    def __init__(self, answer):
        self.answer = answer
        self.calls = []

    async def call(self, action, payload):
        self.calls.append((action, payload))
        return await self.answer(action, payload)


def station(tmp_path, answer=None, wait_min="30", repeat="3", settings=None):
    """The station certificate block on a station whose flash is tmp_path/state, with the CSMS
    root of CA_KEY installed and the host's clock (the CA signs with it)."""
    store = Store(str(tmp_path / "state"))
    decls = tuple(
        declarations([SimpleNamespace(phases=3, max_a=32, cable_a=None, phase_switch=None)])
    )
    factory = [("SecurityCtrlr/Identity", "CS1")]
    dm = DeviceModel(store, decls, factory)
    dm.set("SecurityCtrlr/OrganizationName", "mpwallbox test")
    dm.set("SecurityCtrlr/CertSigningWaitMinimum", wait_min)
    dm.set("SecurityCtrlr/CertSigningRepeatTimes", repeat)
    clock = Clock(time.time)
    router = ocppj.Router()
    settings = dict(settings or {})
    certs = Certificates(router, dm, store, clock, settings)
    st = SimpleNamespace(store=store, dm=dm, clock=clock, router=router, certificates=certs)
    st.events = []
    st.spawned = []
    st.session = Session(answer or accept)
    ready = SimpleNamespace(wait=_ready)
    st.connection = SimpleNamespace(ready=ready, profiles=NetworkProfiles(store, dm, settings))
    security = SimpleNamespace(event=lambda kind, info=None: st.events.append((kind, info)))
    st.block = sc_mod.StationCertificate(
        router,
        st.session,
        dm,
        store,
        clock,
        st.connection,
        certs,
        security,
        st.spawned.append,
        os.urandom,
    )
    st.root = make_root("CSMS Test Root", CA_KEY, not_before=int(time.time()) - DAY)
    assert install(st, CSMS, pem(st.root)) == {"status": "Accepted"}
    st.root_file, st.key_file = tmp_path / "ca.pem", tmp_path / "ca.key"
    st.root_file.write_text(pem(st.root))
    st.key_file.write_bytes(
        CA_KEY.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return st


async def _ready():
    return True


async def accept(action, payload):
    return {"status": "Accepted"}


def run_spawned(st):
    async def main():
        while st.spawned:
            await st.spawned.pop(0)

    asyncio.run(main())


def own_file(st):
    return Path(st.store.root) / "station_cert.pem"


def pending_key(st):
    """The key of the request in flight, as cryptography reads it from flash."""
    path = Path(st.store.root) / "station_csr.key"
    return serialization.load_pem_private_key(path.read_bytes(), None)


def signed(st, chain, kind=None):
    req = {"certificateChain": chain}
    if kind:
        req["certificateType"] = kind
    return call(st, "CertificateSigned", req)


# -- the whole request --------------------------------------------------------------------------


def test_the_csr_verifies_and_the_signed_chain_becomes_the_client_certificate(tmp_path):
    got = {}

    async def csms(action, payload):
        assert action == "SignCertificate" and payload["certificateType"] == KIND
        csr = cx.load_pem_x509_csr(payload["csr"].encode())
        assert csr.is_signature_valid
        assert csr.subject == cx.Name(
            [
                cx.NameAttribute(NameOID.ORGANIZATION_NAME, "mpwallbox test"),
                cx.NameAttribute(NameOID.COMMON_NAME, "CS1"),
            ]
        )
        assert isinstance(csr.public_key().curve, ec.SECP256R1)
        assert csr.public_key() == pending_key(st).public_key()  # the key on flash
        chain = CertificateAuthority(st.root_file, st.key_file).sign(payload["csr"])
        got["answer"] = await st.block.on_certificate_signed({"certificateChain": chain})
        return {"status": "Accepted"}

    st = station(tmp_path, csms)
    assert st.block.request("test") is True
    assert st.block.request("again") is False  # one at a time
    run_spawned(st)
    assert got["answer"] == {"status": "Accepted"}
    assert [a for a, _ in st.session.calls] == ["SignCertificate"]  # no retry once signed
    assert st.events == []
    # One file: the chain (leaf, CA), then the key, which is the leaf's.
    text = own_file(st).read_bytes()
    leaf, ca = cx.load_pem_x509_certificates(text)
    assert ca == st.root and leaf.subject.rfc4514_string() == "CN=CS1,O=mpwallbox test"
    key = serialization.load_pem_private_key(text[text.index(b"-----BEGIN EC PRIVATE") :], None)
    assert key.public_key() == leaf.public_key()
    assert not (Path(st.store.root) / "station_csr.key").exists()
    # Renewal 30 days before its end (a year from the CA); the connection's profile 3 uses it.
    end = int(leaf.not_valid_after_utc.timestamp())
    assert st.store.load("station_cert") == {"v": 1, "renew": end - 30 * DAY}
    assert st.connection.profiles.client_certificate() == (str(own_file(st)),) * 2
    # DeleteCertificate of it: Failed (M04.FR.06).
    assert delete(st, ocsp_hash_data(leaf, st.root))["status"] == "Failed"
    # A renewal keeps it in use until the next one is accepted.
    st.session.answer = accept
    st.block._wait = lambda s: _false()
    st.block.request("renewal")
    run_spawned(st)
    assert own_file(st).read_bytes() == text
    assert (Path(st.store.root) / "station_csr.key").exists()


async def _false():
    return False


def _leaf(key, cn="CS1", issuer=None, signer=CA_KEY, start=-DAY, end=90 * DAY):
    now = datetime.datetime.now(datetime.timezone.utc)
    issuer = issuer or cx.Name(
        [
            cx.NameAttribute(NameOID.ORGANIZATION_NAME, "mpwallbox test"),
            cx.NameAttribute(NameOID.COMMON_NAME, "CSMS Test Root"),
        ]
    )
    return (
        cx.CertificateBuilder()
        .subject_name(cx.Name([cx.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(cx.random_serial_number())
        .not_valid_before(now + datetime.timedelta(seconds=start))
        .not_valid_after(now + datetime.timedelta(seconds=end))
        .add_extension(cx.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(signer, hashes.SHA256())
    )


def _bad_chains(st):
    mine = pending_key(st)
    other_root = make_root("Other Root", OTHER_KEY, not_before=int(time.time()) - DAY)
    return {
        "another key": (pem(_leaf(OTHER_KEY)), "WrongKey"),
        "another name": (pem(_leaf(mine, cn="CS2")), "WrongName"),
        "expired": (pem(_leaf(mine, start=-10 * DAY, end=-DAY)), "NotValidNow"),
        "not yet valid": (pem(_leaf(mine, start=DAY, end=10 * DAY)), "NotValidNow"),
        "untrusted": (
            pem(_leaf(mine, issuer=other_root.subject, signer=OTHER_KEY), other_root),
            "NotTrusted",
        ),
        "bad signature": (pem(_leaf(mine, signer=OTHER_KEY)), "NotTrusted"),
        "not PEM": ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", None),
    }


@pytest.mark.parametrize(
    "what",
    ["another key", "another name", "expired", "not yet valid", "untrusted", "bad signature",
     "not PEM"],
)  # fmt: skip
def test_a_bad_chain_is_rejected_with_its_event_and_changes_nothing(tmp_path, what):
    st = station(tmp_path)
    asyncio.run(st.block._make())
    chain, reason = _bad_chains(st)[what]
    got = signed(st, chain)
    assert got["status"] == "Rejected"
    assert got["statusInfo"]["reasonCode"] == (reason or "InvalidFormat")
    assert st.events == [(EVENT, got["statusInfo"]["additionalInfo"])]
    assert not own_file(st).exists() and st.store.load("station_cert") is None
    # The request's key stays for the right chain.
    good = CertificateAuthority(st.root_file, st.key_file)
    csr = cx.CertificateSigningRequestBuilder().subject_name(
        cx.Name([cx.NameAttribute(NameOID.COMMON_NAME, "CS1")])
    )
    csr = csr.sign(pending_key(st), hashes.SHA256())
    text = csr.public_bytes(serialization.Encoding.PEM).decode()
    assert signed(st, good.sign(text)) == {"status": "Accepted"}
    assert own_file(st).exists()


def test_without_a_request_or_for_iso_15118_it_is_rejected(tmp_path):
    st = station(tmp_path)
    chain = pem(_leaf(OTHER_KEY))
    got = signed(st, chain)
    assert (got["status"], got["statusInfo"]["reasonCode"]) == ("Rejected", "NoRequest")
    assert st.events == [(EVENT, "no certificate request pending")]
    got = signed(st, chain, "V2GCertificate")
    assert (got["status"], got["statusInfo"]["reasonCode"]) == ("Rejected", "NotSupported")
    assert len(st.events) == 1  # no event: nothing wrong with the certificate


# -- SignCertificate: retries and refusals (a scripted clock) ----------------------------------


def scripted(st):
    """The block's waits for a CertificateSigned, recorded and never answered."""
    waits = []

    async def wait(seconds):
        waits.append(seconds)
        return False

    st.block._wait = wait
    return waits


def test_no_certificate_signed_resends_the_same_csr_with_doubling_waits(tmp_path, logged):
    st = station(tmp_path, wait_min="5", repeat="3")
    waits = scripted(st)
    st.block.request("test")
    run_spawned(st)
    csrs = [p["csr"] for a, p in st.session.calls]
    assert len(csrs) == 4 and len(set(csrs)) == 1
    assert waits == [5, 10, 20, 40]
    assert "no certificate after 4 SignCertificate requests: given up" in logged.getvalue()
    assert st.block.running is False


def test_unanswered_or_failed_requests_count_as_tries(tmp_path):
    answers = [asyncio.TimeoutError(), ocppj.NotConnected(), ocppj.CallError("InternalError")]

    async def csms(action, payload):
        raise answers.pop(0)

    st = station(tmp_path, csms, wait_min="1", repeat="2")
    waits = scripted(st)
    st.block.request("test")
    run_spawned(st)
    assert len(st.session.calls) == 3 and waits == [1, 2, 4]


def test_a_rejected_sign_certificate_ends_the_request(tmp_path, logged):
    async def csms(action, payload):
        return {"status": "Rejected"}

    st = station(tmp_path, csms)
    waits = scripted(st)
    st.block.request("test")
    run_spawned(st)
    assert len(st.session.calls) == 1 and waits == []
    assert "SignCertificate Rejected: no new certificate" in logged.getvalue()
    assert st.block.request("again") is True  # a later trigger asks again
    st.spawned.pop().close()


def test_a_failing_key_source_is_logged_not_a_crash(tmp_path, logged):
    st = station(tmp_path)
    st.block.urandom = lambda n: bytes(n)  # a stuck source: all zeros
    st.block.request("test")
    run_spawned(st)
    assert st.session.calls == [] and st.block.running is False
    assert "certificate request failed: ValueError('random source gives no key'" in (
        logged.getvalue()
    )


def test_renew_asks_and_looks_again_a_day_later(tmp_path):
    st = station(tmp_path)
    scripted(st)
    st.block.renew()
    assert st.store.load("station_cert")["renew"] >= int(time.time()) + DAY - 5
    run_spawned(st)
    assert [a for a, _ in st.session.calls] == ["SignCertificate"] * 4


# -- the triggers -------------------------------------------------------------------------------


def test_trigger_message_sign_charging_station_certificate(tmp_path):
    asked = []
    router = ocppj.Router()
    conn = SimpleNamespace(registration="Accepted")
    RemoteControl(router, None, None, None, conn, [], None, None, None, None, None, asked.append)
    req = {"requestedMessage": "SignChargingStationCertificate"}
    handler, after = router.handlers["TriggerMessage"]
    assert handler(req) == {"status": "Accepted"}
    after(req, {"status": "Accepted"})
    assert asked == ["TriggerMessage"]
    # Without the block (a build without it): NotImplemented, as before.
    router = ocppj.Router()
    RemoteControl(router, None, None, None, conn, [], None, None, None, None, None)
    assert router.handlers["TriggerMessage"][0](req) == {"status": "NotImplemented"}


def test_profile_3_without_a_client_certificate_asks_for_one(tmp_path, logged):
    st = station(tmp_path, settings={"csms_url": "wss://127.0.0.1/ocpp", "security_profile": 2})
    asked = []
    security = SimpleNamespace(event=lambda kind, info=None: None)
    profiles = st.connection.profiles
    NetworkProfile(st.router, st.dm, st.connection, st.certificates, security, {}, asked.append)
    data = {
        "ocppVersion": "OCPP20",
        "ocppTransport": "JSON",
        "ocppCsmsUrl": "wss://127.0.0.1:1/ocpp",
        "messageTimeout": 30,
        "securityProfile": 3,
        "ocppInterface": "Wired0",
    }
    bad = {"configurationSlot": 2, "connectionData": dict(data, ocppCsmsUrl="ws://x/ocpp")}
    got = call(st, "SetNetworkProfile", bad)
    assert got["statusInfo"]["reasonCode"] == "InvalidNetworkConf" and asked == []
    req = {"configurationSlot": 2, "connectionData": data}
    assert call(st, "SetNetworkProfile", req) == {
        "status": "Rejected",
        "statusInfo": {"reasonCode": "MissingCertificate"},
    }
    assert asked == ["security profile 3 without a client certificate"]
    # A profile 3 slot without a certificate (here from the flash) is skipped, logged once.
    profiles.put(2, data)
    profiles.priority = [2, 1]
    assert profiles.order() == [1] and profiles.order() == [1]
    assert logged.getvalue().count("slot 2 skipped: security profile 3 without a client") == 1
    # Once the station has its own: the profile is Accepted, and the slot tried first.
    own_file(st).write_text("chain and key")
    assert call(st, "SetNetworkProfile", req) == {"status": "Accepted"}
    assert profiles.order() == [2, 1] and asked == asked[:1]


# -- the TLS context on the unix port -----------------------------------------------------------

_MP_CONTEXT = """
import sys
from firmware.connection import _tls_context
ca, own, alone = sys.argv[1:4]
for name, client in (("own", (own, own)), ("certificate without key", (alone, alone))):
    try:
        _tls_context(ca, {}, 3, client)
        print(name, "ok")
    except Exception as e:
        print(name, repr(e))
"""


def test_the_own_file_makes_a_tls_context_on_micropython(tmp_path):
    """The file as the block writes it (chain, then the SEC 1 key) is the client certificate
    and key of the unix port's mbedTLS."""
    pki = make_pki(tmp_path / "pki")
    st = station(tmp_path)
    asyncio.run(st.block._make())
    csr = cx.CertificateSigningRequestBuilder().subject_name(
        cx.Name([cx.NameAttribute(NameOID.COMMON_NAME, "CS1")])
    )
    text = csr.sign(pending_key(st), hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    chain = CertificateAuthority(st.root_file, st.key_file).sign(text.decode())
    assert signed(st, chain) == {"status": "Accepted"}
    alone = tmp_path / "alone.pem"
    alone.write_text(chain)
    script = tmp_path / "ctx.py"
    script.write_text(_MP_CONTEXT)
    env = dict(os.environ, MICROPYPATH=".frozen:%s:%s" % (ROOT / "lib", ROOT))
    out = subprocess.run(
        [str(ROOT / ".venv/bin/micropython"), str(script), pki.ca, str(own_file(st)), str(alone)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.stdout.splitlines() == [
        "own ok",
        "certificate without key ValueError('invalid key',)",
    ], out.stdout + out.stderr


# -- the station: the block loads on first use, the renewal date is looked at every minute ------


def test_main_loads_the_block_on_first_use_and_renews_near_the_end(devkit, monkeypatch):
    from firmware import connection, main, network
    from firmware.blocks import certificates

    # The file and document names the modules that do not import the block repeat.
    assert main._OWN_CERT == sc_mod._STORE
    assert network._OWN_CERT == certificates._OWN_CERT == "/" + sc_mod._CERT_FILE
    assert connection  # (it gets the file from network.NetworkProfiles.client_certificate)

    station = main.Station(devkit)
    assert "CertificateSigned" not in station.router.handlers
    station.certify("test")
    block = sys.modules["firmware.blocks.station_certificate"].block  # (tests reload modules)
    assert block.running and "CertificateSigned" in station.router.handlers
    for coro in station._waiting:
        coro.close()

    def minutes(renew):
        """What a station asks within a few "minutes" of two turns each (certify's why)."""
        station = main.Station(devkit)
        for coro in station._waiting:
            coro.close()
        station._waiting = []
        asked = []
        monkeypatch.setattr(station, "certify", asked.append)
        monkeypatch.setattr(main, "_CACHE_TURNS", 2)
        monkeypatch.setattr(station.connection, "run", _idle)
        station.connection.ready.set()
        station.store.save("station_cert", {"v": 1, "renew": renew})

        async def go():
            task = asyncio.create_task(station.run())
            await asyncio.sleep(0.35)
            station._stopped.set()
            await task

        asyncio.run(go())
        return asked[:1], station.clock.now()

    got, now = minutes(2**40)
    assert got == []
    assert minutes(now - 1)[0] == [None]  # renew()
    assert minutes("junk")[0] == []


async def _idle():
    await asyncio.sleep(3600)
