"""The connection's TLS side under CPython (with a fake ws.connect and a fake clock) and on the
MicroPython unix port: which file of CSMS roots it trusts, PEM read into DER, the security
events of a refused TLS connection (once per burst of failures, again after a success, none
for other failures), the back-off unchanged by them."""

import asyncio
import io
import os
import subprocess
from pathlib import Path

import pytest
from test_network import FakeStation, fast, link, settings
from tls_certs import make_pki

import log
import ws
from firmware import connection as connection_mod
from firmware.connection import _ders

ROOT = Path(__file__).resolve().parent.parent
WSS = "wss://127.0.0.1:8443/ocpp"


class Security:
    def __init__(self):
        self.events = []

    def event(self, kind, info=None):
        self.events.append((kind, info))


def station(tmp_path, **kw):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    s = settings(csms_url=WSS, security_profile=2, csms_ca_file=str(ca), **kw)
    st = FakeStation(tmp_path, s, fast(3, "1"))
    st.security = Security()
    return st


def drive(monkeypatch, st, outcomes):
    """Run Connection.run through `outcomes`, one per connection attempt: an exception for
    ws.connect to raise, or None to connect (the connection then drops at once). Returns the
    connection and the seconds slept before each attempt."""
    conn = link(st)
    outcomes = list(outcomes)
    sleeps, contexts = [], []
    slept = [0]

    async def connect(url, basic_auth=None, ssl_ctx=None, timeout_ms=0, urandom=None, keep=None):
        sleeps.append(slept[0])
        slept[0] = 0
        contexts.append(ssl_ctx)
        if not outcomes:
            conn.stopping = True
            raise OSError("no more")
        e = outcomes.pop(0)
        if e is not None:
            raise e
        return object()

    async def serve(sock):
        pass

    async def sleep_ms(ms):
        slept[0] += ms / 1000
        await asyncio.sleep(0)

    monkeypatch.setattr(connection_mod.ws, "connect", connect)
    monkeypatch.setattr(connection_mod.asyncio, "sleep_ms", sleep_ms)
    monkeypatch.setattr(connection_mod, "_tls_context", lambda ca, s, p, c=None: ("ctx", ca, p))
    conn._serve = serve
    asyncio.run(asyncio.wait_for(conn.run(), 5))
    return conn, sleeps, contexts


def bad_cert(why="The certificate validity has expired"):
    return ws.CertificateError(why)


def test_a_bad_certificate_is_reported_once_per_burst_and_again_after_a_success(
    tmp_path, monkeypatch
):
    st = station(tmp_path)
    outcomes = [bad_cert(), bad_cert(), OSError("refused"), bad_cert("other"), None, bad_cert()]
    conn, sleeps, _ = drive(monkeypatch, st, outcomes)
    info = "The certificate validity has expired (127.0.0.1:8443)"
    assert st.security.events == [
        ("InvalidCsmsCertificate", info),  # the first of the burst
        ("InvalidCsmsCertificate", info),  # the first after the success
    ]
    # The back-off is the same as for any failure: 1, 2, 4, 4; the success restarts it.
    assert sleeps == [0, 1, 2, 4, 4, 1, 2]


def test_each_kind_once_per_burst_and_other_failures_are_no_security_events(tmp_path, monkeypatch):
    st = station(tmp_path)
    old = ws.TlsVersionError("the server offers no TLS version >= 1.2")
    outcomes = [old, OSError(32, "EPIPE"), bad_cert(), old, ws.WsError("HTTP status 401", 401)]
    drive(monkeypatch, st, outcomes)
    assert st.security.events == [
        ("InvalidTLSVersion", "the server offers no TLS version >= 1.2 (127.0.0.1:8443)"),
        ("InvalidCsmsCertificate", "The certificate validity has expired (127.0.0.1:8443)"),
    ]


def test_without_the_security_block_the_event_is_logged(tmp_path, monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(log, "stream", out)
    st = station(tmp_path)
    st.security = None
    drive(monkeypatch, st, [bad_cert()])
    assert (
        " W security: event InvalidCsmsCertificate (The certificate validity has expired"
        " (127.0.0.1:8443))\n" in out.getvalue()
    )


def test_the_roots_come_from_the_certificates_block_when_there_is_one(tmp_path, monkeypatch):
    st = station(tmp_path)
    _, _, contexts = drive(monkeypatch, st, [OSError("refused")])
    assert contexts[0] == ("ctx", st.board.settings["csms_ca_file"], 2)

    class Certificates:
        path = str(tmp_path / "state-ca.pem")

        def csms_ca_path(self):
            return self.path

    st.certificates = Certificates()
    _, _, contexts = drive(monkeypatch, st, [OSError("refused")])
    assert contexts[0] == ("ctx", Certificates.path, 2)
    # A block without any CSMS root: no fallback to the board setting.
    st.certificates.path = None
    _, _, contexts = drive(monkeypatch, st, [OSError("refused")])
    assert contexts[0] == ("ctx", None, 2)


def test_uploads_get_a_context_checking_the_csms_roots_without_a_client_certificate(
    tmp_path, monkeypatch
):
    st = station(tmp_path, client_cert_file="c.pem", client_key_file="k.pem")
    monkeypatch.setattr(connection_mod, "_tls_context", lambda ca, s, p, c=None: ("ctx", ca, p))
    assert link(st).tls_context() == ("ctx", st.board.settings["csms_ca_file"], 2)


def test_ders_reads_every_pem_block_and_passes_der_through(tmp_path):
    pki = make_pki(tmp_path / "pki")
    bundle = tmp_path / "bundle.pem"
    texts = [Path(pki.ca).read_text(), Path(pki.other_ca).read_text()]
    bundle.write_text("roots\n" + texts[0] + "between\n" + texts[1])
    from cryptography import x509 as cx

    ders = _ders(str(bundle))
    assert [cx.load_der_x509_certificate(d).subject for d in ders] == [
        cx.load_pem_x509_certificate(t.encode()).subject for t in texts
    ]
    key = _ders(pki.station_key)
    assert len(key) == 1 and key[0][:1] == b"\x30"  # a DER SEQUENCE (PKCS #8)
    der = tmp_path / "ca.der"
    der.write_bytes(ders[0])
    assert _ders(str(der)) == [ders[0]]
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n")
    with pytest.raises(OSError, match="without END"):
        _ders(str(bad))
    bad.write_text("")
    with pytest.raises(OSError, match="empty"):
        _ders(str(bad))
    with pytest.raises(OSError):
        _ders(str(tmp_path / "missing.pem"))


_MP_CONTEXT = """
import sys
from firmware.connection import _tls_context
ca, cert, key = sys.argv[1:4]
for name, ca_file, s, profile in (
    ("profile 2", ca, {}, 2),
    ("profile 3", ca, {"client_cert_file": cert, "client_key_file": key}, 3),
    ("no roots", None, {}, 2),
    ("profile 3 without a certificate", ca, {}, 3),
    ("a key that is no key", ca, {"client_cert_file": cert, "client_key_file": cert}, 3),
):
    try:
        _tls_context(ca_file, s, profile)
        print(name, "ok")
    except Exception as e:
        print(name, repr(e))
"""


def test_tls_context_on_micropython(tmp_path):
    """PEM files (two roots in one) make a context on the unix port, whose mbedTLS reads no
    PEM itself; missing roots or client certificate are OSErrors, as a failed connect is."""
    pki = make_pki(tmp_path / "pki")
    bundle = tmp_path / "roots.pem"
    bundle.write_text(Path(pki.other_ca).read_text() + Path(pki.ca).read_text())
    script = tmp_path / "ctx.py"
    script.write_text(_MP_CONTEXT)
    env = dict(os.environ, MICROPYPATH=".frozen:%s:%s" % (ROOT / "lib", ROOT))
    out = subprocess.run(
        [
            str(ROOT / ".venv/bin/micropython"),
            str(script),
            str(bundle),
            pki.station,
            pki.station_key,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.stdout.splitlines() == [
        "profile 2 ok",
        "profile 3 ok",
        "no roots OSError('wss:// without a CSMS root certificate',)",
        "profile 3 without a certificate OSError('security profile 3 without client_cert_file"
        " and client_key_file',)",
        "a key that is no key ValueError('invalid key',)",
    ], out.stdout + out.stderr
