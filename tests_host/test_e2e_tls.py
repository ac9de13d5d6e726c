"""End to end: security profiles 2 and 3 (TLS) with the firmware on the MicroPython unix port
against the development CSMS serving wss://, certificates from tls_certs.py.

Profile 2 (TC_A_04): the server certificate checked against the CSMS root from the config
file, Basic auth inside TLS 1.2. A bad server certificate (TC_A_05: another CA, another host
name, expired) and a server offering only TLS < 1.2 (TC_A_06) are refused, the back-off goes
on, and the station queues InvalidCsmsCertificate / InvalidTLSVersion once per burst; the CSMS
gets it once it serves a valid certificate. A CSMS taking only CBC suites, none of OCPP's:
InvalidTLSCipherSuite. Profile 3: the station's client certificate, and
a CSMS that wants another one refuses it (no security event: the CSMS is not at fault). A
CSMS root added by InstallCertificate is trusted from the next connection on."""

import base64
import re
import ssl
import time

import pytest
from tls_certs import make_pki

from tools.harness import FAST, CsmsThread, variables

pytestmark = pytest.mark.e2e

PASSWORD = "0123456789abcdef0123"
SECURITY = {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "SecurityProfile"}}
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
# mbedTLS's reasons (mbedtls_x509_crt_verify_info), as the station reports them.
NOT_TRUSTED = "The certificate is not correctly signed by the trusted CA"
WRONG_NAME = "The certificate Common Name (CN) does not match with the expected CN"
EXPIRED = "The certificate validity has expired"
OLD_TLS = "the server offers no TLS version >= 1.2"
NO_SUITE = "the server offers none of the OCPP 2.0.1 TLS 1.2 cipher suites"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def tls_csms(pki, name="server", **kw):
    """A CSMS serving wss:// with the certificate `name` of the PKI and Basic auth for CS1."""
    cert, key = getattr(pki, name), getattr(pki, name + "_key")
    return CsmsThread(certfile=cert, keyfile=key, passwords={"CS1": PASSWORD}, **kw)


def profile2(pki):
    values = dict(FAST)
    values[("SecurityCtrlr", "BasicAuthPassword")] = PASSWORD
    return {"variables": variables(values), "security_profile": 2, "csms_ca_file": pki.ca}


def profile3(pki):
    return {
        "variables": variables(FAST),
        "security_profile": 3,
        "csms_ca_file": pki.ca,
        "client_cert_file": pki.station,
        "client_key_file": pki.station_key,
    }


def accepted(csms, sim):
    st = csms.station("CS1", timeout=20)
    csms.wait_call(st, "BootNotification", timeout=20)
    sim.wait_status(lambda s: s["registration"] == "Accepted" and s["connected"], timeout=20)
    return st


def security_profile(csms, st):
    got = csms.call(st, "GetVariables", {"getVariableData": [SECURITY]})
    return got["getVariableResult"][0]["attributeValue"]


def refused_handshakes(csms, sim, n=3, timeout=20):
    """Wait until the station has begun n TLS handshakes and logged n failed connections;
    none may have reached HTTP. Returns the station's log."""
    deadline = time.monotonic() + timeout
    while csms.csms.tls_hellos < n or sim.log().count("connect failed: ") < n:
        assert time.monotonic() < deadline, "%d TLS hellos, log:\n%s" % (
            csms.csms.tls_hellos,
            sim.log(),
        )
        time.sleep(0.05)
    assert csms.csms.attempts == [] and csms.csms.stations == {}
    status = sim.cmd("status")
    assert (status["connected"], status["registration"]) == (False, "None")
    return sim.log()


def security_events(csms, st, n):
    """The first n SecurityEventNotification payloads of this connection, in order."""
    got = []
    start = 0
    for _ in range(n):
        frame = csms.wait_call(st, "SecurityEventNotification", timeout=20, start=start)
        got.append(frame.payload)
        start = frame.index + 1
    return got


def test_profile_2_basic_auth_inside_tls_1_2(pki, sims):
    csms = tls_csms(pki)
    try:
        assert csms.url.startswith("wss://127.0.0.1:")
        sim = sims(csms.url, config=profile2(pki))
        st = accepted(csms, sim)
        # The CSMS checked the header before the upgrade (it refuses a wrong one with 401).
        credentials = base64.b64encode(b"CS1:" + PASSWORD.encode()).decode()
        assert st.headers["Authorization"] == "Basic " + credentials
        assert st.tls_version == "TLSv1.2"  # the station's mbedTLS speaks 1.2 only
        assert st.tls_cipher in ("ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-GCM-SHA256")
        assert st.peer_cert is None
        assert security_profile(csms, st) == "2"
        events = security_events(csms, st, 1)
        assert [e["type"] for e in events] == ["StartupOfTheDevice"]
        assert csms.csms.tls_hellos == 1
        assert "Invalid" not in sim.log() and PASSWORD not in sim.log()
    finally:
        csms.stop()


@pytest.mark.parametrize("bad", ["wrong_ca", "wrong_host", "expired"])
def test_bad_server_certificate_is_refused_and_reported_once_connected(pki, sims, bad):
    reason = {"wrong_ca": NOT_TRUSTED, "wrong_host": WRONG_NAME, "expired": EXPIRED}[bad]
    csms = tls_csms(pki, bad)
    try:
        sim = sims(csms.url, config=profile2(pki))
        log = refused_handshakes(csms, sim)
        # Refused at every attempt, with the back-off between them (W 1 s, doubling), but
        # reported once for the burst.
        failed = log.count("connect failed: ")
        assert (
            failed >= 3 and log.count("connect failed: CertificateError('%s',)" % reason) == failed
        )
        assert "reconnecting in 1.0 s" in log and "reconnecting in 2.0 s" in log
        info = "%s (127.0.0.1:%d)" % (reason, csms.csms.port)
        assert log.count("event InvalidCsmsCertificate") == 1
        assert "event InvalidCsmsCertificate (%s)" % info in log
        # The CSMS gets a valid certificate: the next attempt connects, and the queued event
        # goes out first.
        csms.set_tls(pki.server, pki.server_key)
        st = accepted(csms, sim)
        events = security_events(csms, st, 2)
        assert [e["type"] for e in events] == ["InvalidCsmsCertificate", "StartupOfTheDevice"]
        assert set(events[0]) == {"type", "timestamp", "techInfo"}
        assert events[0]["techInfo"] == info and STAMP.match(events[0]["timestamp"])
        assert security_profile(csms, st) == "2"
    finally:
        csms.stop()


def test_tls_older_than_1_2_is_refused_and_reported(pki, sims):
    csms = tls_csms(pki, tls_max_version=ssl.TLSVersion.TLSv1_1)
    try:
        sim = sims(csms.url, config=profile2(pki))
        log = refused_handshakes(csms, sim)
        failed = log.count("connect failed: ")
        assert (
            failed >= 3 and log.count("connect failed: TlsVersionError('%s',)" % OLD_TLS) == failed
        )
        info = "%s (127.0.0.1:%d)" % (OLD_TLS, csms.csms.port)
        assert log.count("event InvalidTLSVersion") == 1
        assert "event InvalidTLSVersion (%s)" % info in log
        assert "InvalidCsmsCertificate" not in log
        csms.set_tls(pki.server, pki.server_key)
        st = accepted(csms, sim)
        events = security_events(csms, st, 2)
        assert [e["type"] for e in events] == ["InvalidTLSVersion", "StartupOfTheDevice"]
        assert events[0]["techInfo"] == info
    finally:
        csms.stop()


def test_a_csms_with_only_cbc_suites_is_refused_and_reported(pki, sims):
    """The station offers only OCPP 2.0.1's TLS 1.2 suites (AES-GCM); a CSMS that takes only
    a CBC suite ends the handshake. A second handshake with the TLS library's own suites (which
    gets through) tells that it was the suites: InvalidTLSCipherSuite, once per burst."""
    csms = tls_csms(pki, tls_ciphers="ECDHE-ECDSA-AES128-SHA")
    try:
        sim = sims(csms.url, config=profile2(pki))
        log = refused_handshakes(csms, sim)
        failed = log.count("connect failed: ")
        assert failed >= 3 and log.count("connect failed: OSError('%s',)" % NO_SUITE) == failed
        info = "%s (127.0.0.1:%d)" % (NO_SUITE, csms.csms.port)
        assert log.count("event InvalidTLSCipherSuite") == 1
        assert "event InvalidTLSCipherSuite (%s)" % info in log
        assert "InvalidTLSVersion" not in log and "InvalidCsmsCertificate" not in log
        csms.set_tls(pki.server, pki.server_key)
        st = accepted(csms, sim)
        assert st.tls_cipher in ("ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-GCM-SHA256")
        events = security_events(csms, st, 2)
        assert [e["type"] for e in events] == ["InvalidTLSCipherSuite", "StartupOfTheDevice"]
        assert set(events[0]) == {"type", "timestamp", "techInfo"}
        assert events[0]["techInfo"] == info and STAMP.match(events[0]["timestamp"])
    finally:
        csms.stop()


def test_profile_3_client_certificate(pki, sims):
    csms = CsmsThread(certfile=pki.server, keyfile=pki.server_key, client_ca=pki.station_ca)
    try:
        sim = sims(csms.url, config=profile3(pki))
        st = accepted(csms, sim)
        assert st.tls_version == "TLSv1.2"
        subject = dict(x[0] for x in st.peer_cert["subject"])
        issuer = dict(x[0] for x in st.peer_cert["issuer"])
        assert (subject["commonName"], issuer["commonName"]) == ("CS1", "Station Test Root")
        assert "Authorization" not in st.headers  # profile 3: the certificate is the login
        assert security_profile(csms, st) == "3"
    finally:
        csms.stop()


@pytest.mark.parametrize("station", ["profile 3, certificate from another CA", "no certificate"])
def test_a_csms_wanting_another_client_certificate_refuses_the_station(pki, sims, station):
    csms = CsmsThread(
        certfile=pki.server,
        keyfile=pki.server_key,
        client_ca=pki.stranger_ca,
        passwords={"CS1": PASSWORD},
    )
    try:
        config = profile3(pki) if station.startswith("profile 3") else profile2(pki)
        sim = sims(csms.url, config=config)
        log = refused_handshakes(csms, sim)
        # The CSMS ends the handshake with an alert: a plain connection failure to the
        # station, retried with the back-off; its certificate was fine, so no security event.
        failed = log.count("connect failed: ")
        assert failed >= 3 and log.count("connect failed: OSError(") == failed
        assert "reconnecting in 2.0 s" in log
        assert "CertificateError" not in log and "event Invalid" not in log
    finally:
        csms.stop()


def test_a_csms_root_installed_by_the_csms_is_trusted_from_the_next_connection(pki, sims):
    csms = tls_csms(pki)
    try:
        sim = sims(csms.url, config=profile2(pki))
        st = accepted(csms, sim)
        with open(pki.other_ca) as f:
            other = f.read()
        req = {"certificateType": "CSMSRootCertificate", "certificate": other}
        assert csms.call(st, "InstallCertificate", req) == {"status": "Accepted"}
        # The CSMS moves to a certificate from that root; open connections are closed.
        csms.set_tls(pki.wrong_ca, pki.wrong_ca_key)
        csms.run(st.wait_closed(10), 15)
        st2 = csms.station("CS1", timeout=20)
        assert st2 is not st and st2.tls_version == "TLSv1.2"
        sim.wait_status(lambda s: s["connected"], timeout=20)
        assert csms.call(st2, "GetVariables", {"getVariableData": [SECURITY]})
        assert "Invalid" not in sim.log()
    finally:
        csms.stop()


def test_a_v1_csms_root_is_installed_and_trusted_by_tls(pki, sims, tmp_path):
    """A self-signed version 1 root (no extensions) given by the CSMS: Accepted, and the
    station's TLS library trusts it as an anchor, as OpenSSL-based stations do."""
    from cryptography import x509 as cx
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from test_crypto_x509 import v1
    from tls_certs import LOCAL_NAMES, _name, _save, make_leaf

    now = int(time.time())
    root_key, server_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    der, _ = v1(_name("v1 CSMS Root"), root_key, not_before=now - 86400, not_after=now + 86400)
    root = cx.load_der_x509_certificate(der)
    assert root.version == cx.Version.v1
    leaf = make_leaf("localhost", server_key, root, root_key, names=LOCAL_NAMES)
    cert, key = _save(tmp_path, "v1_server", leaf, server_key)
    csms = tls_csms(pki)
    try:
        sim = sims(csms.url, config=profile2(pki))
        st = accepted(csms, sim)
        pem = root.public_bytes(serialization.Encoding.PEM).decode()
        req = {"certificateType": "CSMSRootCertificate", "certificate": pem}
        assert csms.call(st, "InstallCertificate", req) == {"status": "Accepted"}
        csms.set_tls(cert, key)  # a server certificate from the v1 root from now on
        csms.run(st.wait_closed(10), 15)
        st2 = csms.station("CS1", timeout=20)
        assert st2 is not st and st2.tls_version == "TLSv1.2"
        sim.wait_status(lambda s: s["connected"], timeout=20)
        assert csms.call(st2, "GetVariables", {"getVariableData": [SECURITY]})
        assert "Invalid" not in sim.log()
    finally:
        csms.stop()
