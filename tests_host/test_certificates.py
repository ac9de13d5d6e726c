"""Certificate management (block A, M03-M05) under CPython: InstallCertificate,
GetInstalledCertificateIds, DeleteCertificate with certificates made by `cryptography`; the
hash data against cryptography's OCSP CertID; persistence across new block instances; bad
files on flash; factory roots from the board settings; the SetNetworkProfile prerequisite.

Every request is validated against the official OCPP 2.0.1 schema before it reaches the
handler (as the router does), and every answer after. make_root() and pem() are also used by
test_e2e_certificates.py."""

import asyncio
import datetime
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography import x509 as cx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import rsa as crsa
from cryptography.x509.ocsp import OCSPRequestBuilder
from cryptography.x509.oid import NameOID

import ocppj
import x509
from clock import Clock
from firmware.blocks import certificates as certs_mod
from firmware.blocks.certificates import Certificates
from firmware.blocks.network_profile import NetworkProfile
from firmware.device_model import DeviceModel
from firmware.network import NetworkProfiles
from firmware.variables import declarations
from ocpp_oracle import valid
from store import Store

NOW = 1795285000  # 2026-11-21T18:16:40Z
DAY = 86400
CSMS = "CSMSRootCertificate"
MFR = "ManufacturerRootCertificate"
ENTRIES = "SecurityCtrlr/CertificateEntries"
SP = "SecurityCtrlr/SecurityProfile"
HASHES = {"SHA256": hashes.SHA256(), "SHA384": hashes.SHA384(), "SHA512": hashes.SHA512()}

RSA_KEY = crsa.generate_private_key(65537, 2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
P384_KEY = ec.generate_private_key(ec.SECP384R1())


# -- certificates ------------------------------------------------------------------------------


def dt(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc)


def make_name(cn):
    return cx.Name(
        [
            cx.NameAttribute(NameOID.ORGANIZATION_NAME, "mpwallbox test"),
            cx.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def make_root(
    cn,
    key=None,
    *,
    issuer=None,
    signer=None,
    ca=True,
    usage=("key_cert_sign", "crl_sign"),
    serial=None,
    not_before=NOW - DAY,
    not_after=NOW + 365 * DAY,
    critical=None,
):
    """A cryptography certificate, self-signed CA by default. ca None: no basicConstraints;
    usage None: no keyUsage; critical: an extra critical extension of an unknown kind."""
    key = key or EC_KEY
    b = (
        cx.CertificateBuilder()
        .subject_name(make_name(cn))
        .issuer_name(make_name(issuer or cn))
        .public_key(key.public_key())
        .serial_number(serial or cx.random_serial_number())
        .not_valid_before(dt(not_before))
        .not_valid_after(dt(not_after))
    )
    if ca is not None:
        b = b.add_extension(cx.BasicConstraints(ca=ca, path_length=None), critical=True)
    if usage is not None:
        names = (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
        )
        flags = {u: u in usage for u in names}
        b = b.add_extension(cx.KeyUsage(**flags, encipher_only=False, decipher_only=False), True)
    if critical:
        ext = cx.UnrecognizedExtension(cx.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00")
        b = b.add_extension(ext, critical=True)
    return b.sign(signer or key, hashes.SHA256())


def pem(*certs):
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)


def der(cert):
    return cert.public_bytes(serialization.Encoding.DER)


def ocsp_hash_data(cert, issuer=None, alg="SHA256"):
    """certificateHashData as cryptography's OCSP CertID computes it."""
    req = OCSPRequestBuilder().add_certificate(cert, issuer or cert, HASHES[alg]).build()
    return {
        "hashAlgorithm": alg,
        "issuerNameHash": req.issuer_name_hash.hex(),
        "issuerKeyHash": req.issuer_key_hash.hex(),
        "serialNumber": "%x" % req.serial_number,
    }


def chain_item(kind, cert):
    return {"certificateType": kind, "certificateHashData": ocsp_hash_data(cert)}


# -- a station with the real store, device model and router --------------------------------------


class Time:
    def __init__(self):
        self.t = NOW

    def __call__(self):
        return self.t


def decls(capacity=None):
    out = []
    for d in declarations([SimpleNamespace(phases=3, max_a=32, cable_a=None, phase_switch=None)]):
        if d[0] == ENTRIES and capacity is not None:
            d = (ENTRIES, "ir", "0", (None, 0, capacity, None))
        out.append(d)
    return tuple(out)


def station(tmp_path, settings=None, sp=1, capacity=None, time=None):
    """A new boot of the station whose flash is tmp_path/state."""
    store = Store(str(tmp_path / "state"))
    dm = DeviceModel(store, decls(capacity), [(SP, str(sp))])
    st = SimpleNamespace(
        store=store,
        dm=dm,
        clock=Clock(time or Time()),
        router=ocppj.Router(),
        board=SimpleNamespace(settings=dict(settings or {})),
    )
    st.certificates = Certificates(st.router, dm, store, st.clock, st.board.settings)
    return st


def call(st, action, req):
    valid(action + "Request", req)
    resp = st.router.handlers[action][0](req)
    if hasattr(resp, "send"):
        resp = asyncio.run(resp)
    return valid(action + "Response", resp)


def install(st, kind, text):
    return call(st, "InstallCertificate", {"certificateType": kind, "certificate": text})


def listed(st, kinds=None):
    req = {} if kinds is None else {"certificateType": kinds}
    return call(st, "GetInstalledCertificateIds", req)


def delete(st, hd):
    return call(st, "DeleteCertificate", {"certificateHashData": hd})


def entries(st):
    return st.dm.get(ENTRIES)


def files(tmp_path):
    return sorted(os.listdir(tmp_path / "state" / "certs"))


def ca_file_certs(st):
    path = st.certificates.csms_ca_path()
    if path is None:
        return None
    return [der(c) for c in cx.load_pem_x509_certificates(Path(path).read_bytes())]


def rejected(code):
    return {"status": "Rejected", "statusInfo": {"reasonCode": code}}


def status_of(resp):
    """The answer without the free-text additionalInfo."""
    out = dict(resp)
    if "statusInfo" in out:
        out["statusInfo"] = {"reasonCode": out["statusInfo"]["reasonCode"]}
    return out


# -- InstallCertificate and GetInstalledCertificateIds -----------------------------------------


def test_rsa_and_ec_roots_are_installed_listed_and_given_to_other_blocks(tmp_path):
    st = station(tmp_path)
    assert listed(st) == {"status": "NotFound"}
    assert entries(st) == "0" and st.certificates.csms_ca_path() is None
    rsa_root = make_root("CSMS Root RSA", RSA_KEY)
    ec_root = make_root("Manufacturer Root P-256", EC_KEY)
    p384_root = make_root("CSMS Root P-384", P384_KEY)
    assert install(st, CSMS, pem(rsa_root)) == {"status": "Accepted"}
    assert install(st, MFR, pem(ec_root)) == {"status": "Accepted"}
    assert install(st, CSMS, pem(p384_root)) == {"status": "Accepted"}
    assert entries(st) == "3"
    # In install order, each with the hash data OCSP computes for a self-signed root.
    assert listed(st) == {
        "status": "Accepted",
        "certificateHashDataChain": [
            chain_item(CSMS, rsa_root),
            chain_item(MFR, ec_root),
            chain_item(CSMS, p384_root),
        ],
    }
    assert listed(st, [MFR]) == {
        "status": "Accepted",
        "certificateHashDataChain": [chain_item(MFR, ec_root)],
    }
    assert listed(st, [CSMS, "V2GCertificateChain"])["certificateHashDataChain"] == [
        chain_item(CSMS, rsa_root),
        chain_item(CSMS, p384_root),
    ]
    # The API for the TLS context and the firmware-update block.
    block = st.certificates
    assert [c.der for c in block.roots(CSMS)] == [der(rsa_root), der(p384_root)]
    assert [c.der for c in block.roots(MFR)] == [der(ec_root)]
    assert all(isinstance(c, x509.Cert) for c in block.roots(CSMS))
    assert ca_file_certs(st) == [der(rsa_root), der(p384_root)]
    assert block.csms_ca_path() == str(tmp_path / "state" / "csms_ca.pem")
    assert files(tmp_path) == ["csms-1.pem", "csms-3.pem", "mfr-2.pem"]
    # Written line by line, each file is the canonical PEM of its certificate.
    for name, cert in (("csms-1.pem", rsa_root), ("mfr-2.pem", ec_root)):
        text = (tmp_path / "state" / "certs" / name).read_bytes()
        assert text == cert.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize("kinds", [["V2GRootCertificate"], ["MORootCertificate"]])
def test_types_not_held_are_not_found_without_a_chain(tmp_path, kinds):
    st = station(tmp_path)
    assert install(st, CSMS, pem(make_root("CSMS Root"))) == {"status": "Accepted"}
    assert listed(st, kinds) == {"status": "NotFound"}
    assert listed(st, ["V2GCertificateChain"]) == {"status": "NotFound"}


@pytest.mark.parametrize("kind", ["V2GRootCertificate", "MORootCertificate"])
def test_iso_15118_roots_are_rejected(tmp_path, kind):
    st = station(tmp_path)
    resp = install(st, kind, pem(make_root("V2G Root")))
    assert status_of(resp) == rejected("NotSupported")
    assert entries(st) == "0" and files(tmp_path) == []


@pytest.mark.parametrize(
    "serial",
    [1, 0x0ABC, 0x00FF00, 2**64 + 5, 2**159 - 1, 0x1000000000000000000000000000000000000000 - 1],
)
def test_hash_data_is_the_ocsp_cert_id(tmp_path, serial):
    st = station(tmp_path)
    root = make_root("Serial Root", EC_KEY, serial=serial)
    assert install(st, MFR, pem(root)) == {"status": "Accepted"}
    want = ocsp_hash_data(root)
    assert want["serialNumber"] == format(serial, "x")  # lower case, no leading zeros
    assert listed(st)["certificateHashDataChain"] == [
        {"certificateType": MFR, "certificateHashData": want}
    ]
    got = st.certificates.hash_data(x509.Cert.from_der(der(root)))
    assert got == want
    for alg in ("SHA384", "SHA512"):
        assert st.certificates.hash_data(x509.Cert.from_der(der(root)), alg) == (
            ocsp_hash_data(root, alg=alg)
        )


def test_hash_data_of_a_certificate_issued_by_an_installed_root(tmp_path):
    st = station(tmp_path)
    root = make_root("Manufacturer Root", RSA_KEY)
    assert install(st, MFR, pem(root)) == {"status": "Accepted"}
    leaf = make_root(
        "Firmware Signer", EC_KEY, issuer="Manufacturer Root", signer=RSA_KEY, ca=False
    )
    got = st.certificates.hash_data(x509.Cert.from_der(der(leaf)))
    assert got == ocsp_hash_data(leaf, root)
    stranger = make_root("Other Signer", EC_KEY, issuer="Unknown Root", signer=P384_KEY, ca=False)
    with pytest.raises(x509.CertError):
        st.certificates.hash_data(x509.Cert.from_der(der(stranger)))
    # Same issuer name, but the installed root's key did not sign it.
    forged = make_root("Forged", EC_KEY, issuer="Manufacturer Root", signer=P384_KEY, ca=False)
    with pytest.raises(x509.CertError):
        st.certificates.hash_data(x509.Cert.from_der(der(forged)))


def test_issuers_are_the_roots_of_the_issuer_name_one_at_a_time(tmp_path, logged, monkeypatch):
    # Three manufacturer roots named alike (keys renewed) and one named otherwise: the index's
    # issuerNameHash picks the alike ones, parsed one by one; a file that no longer reads is
    # skipped with a log; the signer's root is found among them.
    st = station(tmp_path)
    old = make_root("Manufacturer Root", P384_KEY)
    lost = make_root("Manufacturer Root", EC_KEY, serial=77)
    new = make_root("Manufacturer Root", RSA_KEY)
    other = make_root("Other Root", RSA_KEY, serial=78)
    for r in (old, lost, other, new):
        assert install(st, MFR, pem(r)) == {"status": "Accepted"}
    assert install(st, CSMS, pem(make_root("Manufacturer Root", EC_KEY, serial=79)))["status"]
    (tmp_path / "state" / "certs" / "mfr-2.pem").write_text("garbage")  # lost's file
    read = []
    read_file = certs_mod.store.read_file
    monkeypatch.setattr(
        certs_mod.store, "read_file", lambda p: read.append(os.path.basename(p)) or read_file(p)
    )
    leaf = make_root(
        "Firmware Signer", EC_KEY, issuer="Manufacturer Root", signer=RSA_KEY, ca=False
    )
    found = st.certificates.issuers(MFR, x509.Cert.from_der(der(leaf)))
    assert read == []  # a generator: nothing read before it is asked
    assert next(found).der == der(old)
    assert read == ["mfr-1.pem"]
    assert [c.der for c in found] == [der(new)]
    # lost's file (unreadable) is skipped; never the other name, never the CSMS root
    assert read == ["mfr-1.pem", "mfr-2.pem", "mfr-4.pem"]
    assert "mfr-2.pem unreadable" in logged.getvalue()
    assert st.certificates.installed(MFR) == 4 and st.certificates.installed(CSMS) == 1
    x509.verify_chain([x509.Cert.from_der(der(leaf))], [x509.Cert.from_der(der(new))], NOW)
    assert st.certificates.hash_data(x509.Cert.from_der(der(leaf))) == ocsp_hash_data(leaf, new)


def test_a_parse_short_of_heap_gives_the_room_back_and_parses_again(tmp_path, monkeypatch):
    # The room held for the signature check is given back when the parse finds no heap
    # without it; a second shortage is the handler's failure (a CALLERROR).
    st = station(tmp_path)
    one = certs_mod._one
    fails = [1]

    def short(text):
        if fails:
            fails.pop()
            raise MemoryError
        return one(text)

    monkeypatch.setattr(certs_mod, "_one", short)
    assert install(st, MFR, pem(make_root("Tight Root"))) == {"status": "Accepted"}
    fails[:] = [1, 1]
    with pytest.raises(MemoryError):
        install(st, MFR, pem(make_root("Tighter Root")))
    assert entries(st) == "1"


def _broken_signature(cert):
    d = bytearray(der(cert))
    d[-1] ^= 0x01  # the last byte of the signature BIT STRING
    return cx.load_der_x509_certificate(bytes(d))


def _bad_pems():
    root = pem(make_root("Root"))
    body = root.split("\n")
    return {
        "garbage": "hello, this is no certificate",
        "empty": "",
        "bad base64": "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        "no END": "\n".join(body[:-2]),
        "truncated DER": "\n".join(body[:3] + body[-2:]),
        "non-ASCII": "-----BEGIN CERTIFICATE-----\nÄÖÜ\n-----END CERTIFICATE-----\n",
        "two certificates": root + pem(make_root("Second Root")),
        "private key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    }


@pytest.mark.parametrize("what", sorted(_bad_pems()))
def test_invalid_pem_is_rejected(tmp_path, what):
    st = station(tmp_path)
    resp = install(st, CSMS, _bad_pems()[what])
    assert status_of(resp) == rejected("InvalidFormat")
    assert resp["statusInfo"]["additionalInfo"]
    assert entries(st) == "0" and files(tmp_path) == [] and listed(st) == {"status": "NotFound"}


def _bad_roots():
    import cryptography.hazmat.primitives.asymmetric.rsa as r

    return {
        "not a CA": (make_root("Leaf", ca=False), "NotCA"),
        "no basicConstraints": (make_root("Plain", ca=None), "NotCA"),
        "CA without keyCertSign": (make_root("Signer", usage=("digital_signature",)), "NotCA"),
        "issued by another root": (
            make_root("Sub CA", EC_KEY, issuer="CSMS Root", signer=P384_KEY),
            "NotSelfSigned",
        ),
        "expired": (make_root("Old", not_before=NOW - 400 * DAY, not_after=NOW - 1), "Expired"),
        "not yet valid": (make_root("Young", not_before=NOW + 60), "NotYetValid"),
        "broken RSA self-signature": (
            _broken_signature(make_root("R", RSA_KEY)),
            "InvalidSignature",
        ),
        "broken EC self-signature": (
            _broken_signature(make_root("E", EC_KEY)),
            "InvalidSignature",
        ),
        "signed by another key": (make_root("Liar", EC_KEY, signer=P384_KEY), "InvalidSignature"),
        "RSA 1024": (
            make_root("Weak", r.generate_private_key(65537, 1024)),
            "UnsupportedKey",
        ),
        "unknown critical extension": (make_root("Odd", critical=True), "InvalidCertificate"),
    }


@pytest.mark.parametrize("what", sorted(_bad_roots()))
@pytest.mark.parametrize("kind", [CSMS, MFR])
def test_certificates_that_cannot_be_roots_are_rejected(tmp_path, what, kind):
    st = station(tmp_path)
    cert, code = _bad_roots()[what]
    resp = install(st, kind, pem(cert))
    assert status_of(resp) == rejected(code)
    assert resp["statusInfo"]["additionalInfo"]
    assert entries(st) == "0" and files(tmp_path) == [] and listed(st) == {"status": "NotFound"}
    assert st.certificates.csms_ca_path() is None


def v1_root(cn, key, issuer=None, signer=None):
    """A version 1 certificate (no extensions), self-signed unless issuer and signer say."""
    from test_crypto_x509 import v1

    d, _ = v1(
        make_name(cn),
        key,
        make_name(issuer) if issuer else None,
        signer,
        not_before=NOW - DAY,
        not_after=NOW + 365 * DAY,
    )
    return cx.load_der_x509_certificate(d)


@pytest.mark.parametrize("kind", [CSMS, MFR])
def test_a_self_signed_v1_root_is_installed_as_openssl_would_trust_it(tmp_path, kind):
    st = station(tmp_path)
    rsa_root, ec_root = v1_root("Old RSA Root", RSA_KEY), v1_root("Old EC Root", EC_KEY)
    assert rsa_root.version == cx.Version.v1
    assert install(st, kind, pem(rsa_root)) == {"status": "Accepted"}
    assert install(st, kind, pem(ec_root)) == {"status": "Accepted"}
    assert listed(st)["certificateHashDataChain"] == [
        chain_item(kind, rsa_root),
        chain_item(kind, ec_root),
    ]
    # What it issued has its hash data, and it stays trusted after a reboot.
    leaf = make_root("Signer", P384_KEY, issuer="Old RSA Root", signer=RSA_KEY, ca=False)
    leaf_cert = x509.Cert.from_der(der(leaf))
    assert st.certificates.hash_data(leaf_cert) == ocsp_hash_data(leaf, rsa_root)
    st2 = station(tmp_path)
    assert [c.der for c in st2.certificates.roots(kind)] == [der(rsa_root), der(ec_root)]
    x509.verify_chain([leaf_cert], st2.certificates.roots(kind), NOW)
    # Still refused: a v1 certificate that another CA issued (no root), or whose
    # self-signature does not verify.
    sub = v1_root("Sub", EC_KEY, issuer="Old RSA Root", signer=RSA_KEY)
    assert status_of(install(st2, kind, pem(sub))) == rejected("NotCA")
    liar = v1_root("Liar", EC_KEY, signer=P384_KEY)
    assert status_of(install(st2, kind, pem(liar))) == rejected("InvalidSignature")
    assert entries(st2) == "2"


def test_validity_is_judged_by_the_station_clock(tmp_path):
    time = Time()
    st = station(tmp_path, time=time)
    root = make_root("Root", not_before=NOW + DAY, not_after=NOW + 2 * DAY)
    assert status_of(install(st, CSMS, pem(root))) == rejected("NotYetValid")
    st.clock.set(NOW + DAY)  # the CSMS tells the time (clock offset)
    assert install(st, CSMS, pem(root)) == {"status": "Accepted"}
    time.t = NOW + 3 * DAY
    assert status_of(install(st, MFR, pem(root))) == rejected("Expired")
    # An installed root that expires stays installed and listed (the CSMS may delete it).
    assert listed(st)["certificateHashDataChain"] == [chain_item(CSMS, root)]


def test_the_same_certificate_twice_is_stored_once(tmp_path):
    st = station(tmp_path)
    root = make_root("Root", RSA_KEY)
    for _ in range(3):
        assert install(st, CSMS, pem(root)) == {"status": "Accepted"}
    # The same text with other text around it and different line breaks: still the same.
    assert install(st, CSMS, "comment\n" + pem(root).replace("\n", "\r\n")) == {
        "status": "Accepted"
    }
    assert entries(st) == "1" and files(tmp_path) == ["csms-1.pem"]
    assert ca_file_certs(st) == [der(root)]
    # As the other kind it is another installation.
    assert install(st, MFR, pem(root)) == {"status": "Accepted"}
    assert entries(st) == "2"
    assert listed(st)["certificateHashDataChain"] == [
        chain_item(CSMS, root),
        chain_item(MFR, root),
    ]
    # Renewed: the same name, key and serial (so the same hash data), another validity.
    renewed = make_root("Root", RSA_KEY, serial=root.serial_number, not_after=NOW + 900 * DAY)
    assert install(st, CSMS, pem(renewed)) == {"status": "Accepted"}
    assert install(station(tmp_path), CSMS, pem(renewed)) == {"status": "Accepted"}
    assert files(tmp_path) == ["csms-1.pem", "csms-3.pem", "mfr-2.pem"]
    assert ca_file_certs(st) == [der(root), der(renewed)]


def test_storage_full_fails(tmp_path):
    st = station(tmp_path, capacity=2)
    a, b, c = make_root("A"), make_root("B"), make_root("C")
    assert install(st, CSMS, pem(a)) == {"status": "Accepted"}
    assert install(st, MFR, pem(b)) == {"status": "Accepted"}
    assert status_of(install(st, CSMS, pem(c))) == {
        "status": "Failed",
        "statusInfo": {"reasonCode": "StorageFull"},
    }
    assert install(st, CSMS, pem(a)) == {"status": "Accepted"}  # installed already: fits
    assert entries(st) == "2" and files(tmp_path) == ["csms-1.pem", "mfr-2.pem"]
    # The default device model: CertificateEntries' maxLimit of 8.
    st2 = station(tmp_path / "other")
    roots = [make_root("Root %d" % i) for i in range(9)]
    got = [install(st2, MFR, pem(r))["status"] for r in roots]
    assert got == ["Accepted"] * 8 + ["Failed"]
    assert st2.dm.decl(ENTRIES)[3][2] == 8 and entries(st2) == "8"


def test_a_flash_write_failure_fails_and_changes_nothing(tmp_path, monkeypatch, logged):
    st = station(tmp_path)
    first = make_root("First")
    assert install(st, CSMS, pem(first)) == {"status": "Accepted"}

    def refuse(path, parts):
        raise OSError(28, "no space")

    monkeypatch.setattr(certs_mod.store, "write_file", refuse)
    resp = install(st, CSMS, pem(make_root("Second")))
    assert status_of(resp) == {"status": "Failed", "statusInfo": {"reasonCode": "WriteFailed"}}
    assert entries(st) == "1" and files(tmp_path) == ["csms-1.pem"]
    assert ca_file_certs(st) == [der(first)]
    assert "no space" in logged.getvalue()


def test_a_ca_file_write_failure_takes_the_new_root_back(tmp_path, monkeypatch):
    st = station(tmp_path)
    first = make_root("First")
    assert install(st, CSMS, pem(first)) == {"status": "Accepted"}
    real = certs_mod.store.write_file

    def refuse_ca(path, parts):
        if path.endswith("csms_ca.pem"):
            raise OSError(28, "no space")
        real(path, parts)

    monkeypatch.setattr(certs_mod.store, "write_file", refuse_ca)
    resp = install(st, CSMS, pem(make_root("Second")))
    assert resp["status"] == "Failed"
    assert entries(st) == "1" and files(tmp_path) == ["csms-1.pem"]
    assert ca_file_certs(st) == [der(first)]


# -- persistence and flash -------------------------------------------------------------------


def test_installed_roots_survive_a_reboot(tmp_path):
    st = station(tmp_path)
    a, b = make_root("A", RSA_KEY), make_root("B", EC_KEY)
    assert install(st, MFR, pem(a)) == {"status": "Accepted"}
    assert install(st, CSMS, pem(b)) == {"status": "Accepted"}
    before = listed(st)
    st2 = station(tmp_path)
    assert listed(st2) == before
    assert entries(st2) == "2"
    assert [c.der for c in st2.certificates.roots(MFR)] == [der(a)]
    assert ca_file_certs(st2) == [der(b)]
    c = make_root("C")
    assert install(st2, CSMS, pem(c)) == {"status": "Accepted"}
    assert files(tmp_path) == ["csms-2.pem", "csms-3.pem", "mfr-1.pem"]
    assert ca_file_certs(st2) == [der(b), der(c)]
    assert install(st2, MFR, pem(a)) == {"status": "Accepted"}  # known after the reboot too
    assert entries(st2) == "3"


def test_bad_files_on_flash_are_logged_and_ignored(tmp_path, logged):
    st = station(tmp_path)
    good = make_root("Good")
    assert install(st, CSMS, pem(good)) == {"status": "Accepted"}
    d = tmp_path / "state" / "certs"
    (d / "csms-7.pem").write_text("garbage")
    (d / "mfr-8.pem").write_text(pem(make_root("Leaf", ca=False)))
    (d / "mfr-4.pem").write_bytes(b"\xff\xfe\x00 not text")
    (d / "csms-5.pem").write_text(pem(good))  # the same root again
    (d / "notes.txt").write_text("hello")
    (d / "csms-x.pem").write_text(pem(make_root("Misnamed")))
    (d / "csms-9.pem.tmp").write_text(pem(make_root("Half")))  # an interrupted write
    os.mkdir(d / "mfr-10.pem")  # not even a file
    st2 = station(tmp_path)
    assert listed(st2) == {
        "status": "Accepted",
        "certificateHashDataChain": [chain_item(CSMS, good)],
    }
    assert entries(st2) == "1"
    assert [c.der for c in st2.certificates.roots(CSMS)] == [der(good)]
    assert st2.certificates.roots(MFR) == []
    assert ca_file_certs(st2) == [der(good)]
    out = logged.getvalue()
    for name in (
        "csms-7.pem",
        "mfr-8.pem",
        "mfr-4.pem",
        "csms-5.pem",
        "notes.txt",
        "mfr-10.pem",
        "csms-x.pem",
    ):
        assert name in out
    assert not (d / "csms-9.pem.tmp").exists()
    # New files are numbered above every file seen, good or bad.
    assert install(st2, MFR, pem(make_root("New"))) == {"status": "Accepted"}
    assert (d / "mfr-11.pem").exists()


def test_a_root_file_gone_after_boot_is_logged_not_a_crash(tmp_path, logged):
    st = station(tmp_path)
    root = make_root("Root")
    assert install(st, MFR, pem(root)) == {"status": "Accepted"}
    os.remove(tmp_path / "state" / "certs" / "mfr-1.pem")
    assert st.certificates.roots(MFR) == []
    assert "mfr-1.pem unreadable" in logged.getvalue()
    hd = ocsp_hash_data(root, alg="SHA384")  # needs the file: not found
    assert delete(st, hd) == {"status": "NotFound"}


def test_the_ca_file_follows_the_installed_csms_roots_at_boot(tmp_path):
    st = station(tmp_path)
    root = make_root("Root")
    assert install(st, CSMS, pem(root)) == {"status": "Accepted"}
    ca = tmp_path / "state" / "csms_ca.pem"
    ca.write_text("stale")
    st2 = station(tmp_path)
    assert ca_file_certs(st2) == [der(root)]
    os.remove(tmp_path / "state" / "certs" / "csms-1.pem")
    st3 = station(tmp_path)
    assert st3.certificates.csms_ca_path() is None and not ca.exists()


# -- DeleteCertificate --------------------------------------------------------------------------


def test_delete_by_hash_data(tmp_path):
    st = station(tmp_path)
    a, b, c = (
        make_root("A", RSA_KEY),
        make_root("B", EC_KEY),
        make_root("C", P384_KEY, serial=0xABCDEF),
    )
    for kind, cert in ((CSMS, a), (CSMS, b), (MFR, c)):
        assert install(st, kind, pem(cert)) == {"status": "Accepted"}
    assert delete(st, ocsp_hash_data(a)) == {"status": "Accepted"}
    assert listed(st)["certificateHashDataChain"] == [chain_item(CSMS, b), chain_item(MFR, c)]
    assert entries(st) == "2" and files(tmp_path) == ["csms-2.pem", "mfr-3.pem"]
    assert ca_file_certs(st) == [der(b)]
    assert delete(st, ocsp_hash_data(a)) == {"status": "NotFound"}
    # Hashes compared case-insensitively (M04.FR.07), serials also with leading zeros.
    hd = ocsp_hash_data(c)
    hd = dict(
        hd,
        issuerNameHash=hd["issuerNameHash"].upper(),
        serialNumber="00" + hd["serialNumber"].upper(),
    )
    assert delete(st, hd) == {"status": "Accepted"}
    assert listed(st)["certificateHashDataChain"] == [chain_item(CSMS, b)]
    assert station(tmp_path).certificates.roots(MFR) == []  # gone from flash


@pytest.mark.parametrize("alg", ["SHA384", "SHA512"])
def test_delete_by_other_hash_algorithms(tmp_path, alg):
    st = station(tmp_path)
    root = make_root("Root", RSA_KEY)
    assert install(st, MFR, pem(root)) == {"status": "Accepted"}
    assert delete(st, ocsp_hash_data(root, alg="SHA256") | {"hashAlgorithm": alg}) == {
        "status": "NotFound"
    }
    assert delete(st, ocsp_hash_data(root, alg=alg)) == {"status": "Accepted"}
    assert entries(st) == "0"


def test_unknown_certificates_are_not_found(tmp_path):
    st = station(tmp_path)
    root = make_root("Root")
    assert delete(st, ocsp_hash_data(root)) == {"status": "NotFound"}
    assert install(st, CSMS, pem(root)) == {"status": "Accepted"}
    hd = ocsp_hash_data(root)
    for field, value in (
        ("serialNumber", "1"),
        ("issuerKeyHash", "00" * 32),
        ("issuerNameHash", "ab"),
    ):
        assert delete(st, dict(hd, **{field: value})) == {"status": "NotFound"}
    assert entries(st) == "1"


def test_the_last_csms_root_stays_while_tls_needs_it(tmp_path):
    st = station(tmp_path, sp=2)
    a, b, m = make_root("A"), make_root("B"), make_root("M")
    for kind, cert in ((CSMS, a), (CSMS, b), (MFR, m)):
        assert install(st, kind, pem(cert)) == {"status": "Accepted"}
    assert delete(st, ocsp_hash_data(a)) == {"status": "Accepted"}
    resp = delete(st, ocsp_hash_data(b))
    assert status_of(resp) == {"status": "Failed", "statusInfo": {"reasonCode": "LastCsmsRoot"}}
    assert ca_file_certs(st) == [der(b)] and entries(st) == "2"
    assert delete(st, ocsp_hash_data(m)) == {"status": "Accepted"}  # manufacturer: no such rule
    # The same root installed as both kinds: deleting it would leave no CSMS root either.
    assert install(st, MFR, pem(b)) == {"status": "Accepted"}
    assert delete(st, ocsp_hash_data(b))["status"] == "Failed"
    assert entries(st) == "2"
    # At profile 1 the last one may go.
    st1 = station(tmp_path, sp=1)
    assert delete(st1, ocsp_hash_data(b)) == {"status": "Accepted"}
    assert entries(st1) == "0" and listed(st1) == {"status": "NotFound"}
    assert st1.certificates.csms_ca_path() is None
    assert not (tmp_path / "state" / "csms_ca.pem").exists()


def test_the_station_certificate_cannot_be_deleted(tmp_path):
    ca = make_root("Station CA", RSA_KEY)
    leaf = make_root("CS1", EC_KEY, issuer="Station CA", signer=RSA_KEY, ca=False)
    path = tmp_path / "station.pem"
    path.write_text(pem(leaf, ca))
    st = station(tmp_path, settings={"client_cert_file": str(path)})
    assert status_of(delete(st, ocsp_hash_data(leaf, ca))) == {
        "status": "Failed",
        "statusInfo": {"reasonCode": "OwnCertificate"},
    }
    # Without its issuer in the file, the issuer's name and the serial recognise it.
    path.write_text(pem(leaf))
    assert delete(st, ocsp_hash_data(leaf, ca))["status"] == "Failed"
    assert delete(st, ocsp_hash_data(ca)) == {"status": "NotFound"}
    path.write_text("broken")
    assert delete(st, ocsp_hash_data(leaf, ca)) == {"status": "NotFound"}


def test_a_failed_removal_keeps_the_root_everywhere(tmp_path, monkeypatch, logged):
    st = station(tmp_path)
    a, b = make_root("A"), make_root("B")
    assert install(st, CSMS, pem(a)) == {"status": "Accepted"}
    assert install(st, CSMS, pem(b)) == {"status": "Accepted"}

    def stuck(path):
        raise OSError(5, "EIO")

    monkeypatch.setattr(certs_mod.os, "remove", stuck)
    resp = delete(st, ocsp_hash_data(a))
    assert status_of(resp) == {"status": "Failed", "statusInfo": {"reasonCode": "WriteFailed"}}
    monkeypatch.undo()
    assert entries(st) == "2" and ca_file_certs(st) == [der(a), der(b)]
    assert "EIO" in logged.getvalue()


# -- factory roots ---------------------------------------------------------------------------


def factory(tmp_path, csms=None, mfr=None):
    s = {}
    for key, certs in (("csms_ca_file", csms), ("manufacturer_root_file", mfr)):
        if certs is not None:
            p = tmp_path / (key + ".pem")
            p.write_text(certs if isinstance(certs, str) else pem(*certs))
            s[key] = str(p)
    return s


def test_factory_roots_are_installed_at_the_first_boot(tmp_path):
    csms_root = make_root("Factory CSMS Root", RSA_KEY)
    m1, m2 = make_root("Factory Mfr 1", EC_KEY), make_root("Factory Mfr 2", P384_KEY)
    leaf = make_root("Not a CA", ca=False)
    s = factory(tmp_path, [csms_root], [m1, leaf, m2])  # a bundle with a bad one in it
    st = station(tmp_path, s)
    assert listed(st)["certificateHashDataChain"] == [
        chain_item(CSMS, csms_root),
        chain_item(MFR, m1),
        chain_item(MFR, m2),
    ]
    assert ca_file_certs(st) == [der(csms_root)]
    # Boot again: nothing twice.
    st2 = station(tmp_path, s)
    assert entries(st2) == "3" and len(files(tmp_path)) == 3
    # What the CSMS deletes stays deleted, even with the setting still there.
    assert delete(st2, ocsp_hash_data(csms_root)) == {"status": "Accepted"}
    st3 = station(tmp_path, s)
    assert st3.certificates.roots(CSMS) == [] and entries(st3) == "2"


def test_a_missing_or_invalid_factory_file_is_skipped_until_it_is_there(tmp_path, logged):
    s = {"csms_ca_file": str(tmp_path / "missing.pem")}
    s.update(factory(tmp_path, mfr="not a PEM"))
    st = station(tmp_path, s)
    assert entries(st) == "0" and st.certificates.csms_ca_path() is None
    out = logged.getvalue()
    assert "missing.pem" in out and "manufacturer_root_file.pem" in out
    root = make_root("Late CSMS Root")
    s = factory(tmp_path, [root], [make_root("Bad", ca=False)])
    st2 = station(tmp_path, s)
    assert listed(st2)["certificateHashDataChain"] == [chain_item(CSMS, root)]


def test_factory_roots_are_installed_whatever_the_clock_says(tmp_path, logged):
    # A board without RTC boots in 1970 (or 2000): validity is checked in use, not here.
    old = make_root("Expired Factory Root", not_before=NOW - 400 * DAY, not_after=NOW - DAY)
    broken = _broken_signature(make_root("Broken Factory Root", RSA_KEY))
    st = station(tmp_path, factory(tmp_path, [old, broken]))
    assert listed(st)["certificateHashDataChain"] == [chain_item(CSMS, old)]
    assert "not valid at the clock" in logged.getvalue()
    assert "Broken Factory Root" in logged.getvalue()


def test_an_unreadable_factory_record_installs_again_without_duplicates(tmp_path, logged):
    root = make_root("Factory Root")
    s = factory(tmp_path, [root])
    station(tmp_path, s)
    (tmp_path / "state" / "certificates.json").write_text('{"v": 99}')
    st = station(tmp_path, s)
    assert entries(st) == "1"
    assert "stored state unusable" in logged.getvalue()


# -- SetNetworkProfile needs an installed CSMS root (A05) ---------------------------------------


def test_profile_2_needs_an_installed_csms_root(tmp_path):
    st = station(tmp_path, {"csms_url": "ws://csms.example/ocpp"})
    conn = SimpleNamespace(profiles=NetworkProfiles(st.store, st.dm, st.board.settings))
    security = SimpleNamespace(event=lambda kind, info=None: None)
    NetworkProfile(st.router, st.dm, conn, st.certificates, security, st.board.settings)
    req = {
        "configurationSlot": 2,
        "connectionData": {
            "ocppVersion": "OCPP20",
            "ocppTransport": "JSON",
            "ocppCsmsUrl": "wss://csms.example/ocpp",
            "messageTimeout": 30,
            "securityProfile": 2,
            "ocppInterface": "Wired0",
        },
    }
    missing = {"status": "Rejected", "statusInfo": {"reasonCode": "MissingCertificate"}}
    assert call(st, "SetNetworkProfile", req) == missing
    root = make_root("CSMS Root")
    assert install(st, MFR, pem(root)) == {"status": "Accepted"}  # the wrong kind
    assert call(st, "SetNetworkProfile", req) == missing
    assert install(st, CSMS, pem(root)) == {"status": "Accepted"}
    assert call(st, "SetNetworkProfile", req) == {"status": "Accepted"}


# -- the index: the boot parses no certificate -------------------------------------------------


class PowerLoss(BaseException):
    """The power goes: nothing after it runs (not an Exception, so nothing catches it)."""


def no_parsing(monkeypatch):
    """Make any certificate parsing fail the test."""

    def refuse(*args):
        raise AssertionError("a certificate was parsed")

    monkeypatch.setattr(x509, "load_pem", refuse)
    monkeypatch.setattr(x509.Cert, "from_der", refuse)


def index(tmp_path):
    import json

    return json.loads((tmp_path / "state" / "certificates.json").read_text())


def lose_power_at_the_index(st):
    """The next index write never happens: the power goes just before it."""
    real = st.store.save

    def save(name, doc):
        if name == "certificates":
            raise PowerLoss()
        real(name, doc)

    st.store.save = save


def test_the_boot_reads_the_index_and_parses_nothing(tmp_path, monkeypatch):
    st = station(tmp_path)
    a, b, c = make_root("A", RSA_KEY), make_root("B", EC_KEY), make_root("C", P384_KEY)
    for kind, cert in ((CSMS, a), (MFR, b), (CSMS, c)):
        assert install(st, kind, pem(cert)) == {"status": "Accepted"}
    before = listed(st)
    assert index(tmp_path)["certs"][1][:2] == [MFR, 2]
    no_parsing(monkeypatch)
    st2 = station(tmp_path)
    assert listed(st2) == before and entries(st2) == "3"
    assert ca_file_certs(st2) == [der(a), der(c)]
    assert delete(st2, ocsp_hash_data(b)) == {"status": "Accepted"}  # SHA256: from the index
    st3 = station(tmp_path)
    assert listed(st3)["certificateHashDataChain"] == [chain_item(CSMS, a), chain_item(CSMS, c)]
    monkeypatch.undo()
    assert [r.der for r in st3.certificates.roots(CSMS)] == [der(a), der(c)]  # parsed when asked


def test_a_power_loss_before_the_index_is_written_is_recovered(tmp_path, monkeypatch, logged):
    st = station(tmp_path)
    a, b = make_root("A"), make_root("B", RSA_KEY)
    assert install(st, CSMS, pem(a)) == {"status": "Accepted"}
    # Install: the PEM and CA files are written, the index is not.
    lose_power_at_the_index(st)
    with pytest.raises(PowerLoss):
        install(st, CSMS, pem(b))
    assert files(tmp_path) == ["csms-1.pem", "csms-2.pem"]
    assert [e[1] for e in index(tmp_path)["certs"]] == [1]
    st2 = station(tmp_path)  # the index misses a file: rebuilt from the files
    assert "index not usable" in logged.getvalue()
    assert listed(st2)["certificateHashDataChain"] == [chain_item(CSMS, a), chain_item(CSMS, b)]
    assert ca_file_certs(st2) == [der(a), der(b)]
    assert [e[1] for e in index(tmp_path)["certs"]] == [1, 2]
    # Delete: the files are removed, the index is not written.
    lose_power_at_the_index(st2)
    with pytest.raises(PowerLoss):
        delete(st2, ocsp_hash_data(a))
    assert files(tmp_path) == ["csms-2.pem"]
    st3 = station(tmp_path)  # the index names a file that is gone: rebuilt
    assert listed(st3)["certificateHashDataChain"] == [chain_item(CSMS, b)]
    assert ca_file_certs(st3) == [der(b)]
    no_parsing(monkeypatch)
    st4 = station(tmp_path)  # the index is good again
    assert listed(st4) == listed(st3)
    monkeypatch.undo()
    assert install(st4, CSMS, pem(a)) == {"status": "Accepted"}
    assert files(tmp_path) == ["csms-2.pem", "csms-3.pem"]  # numbers are never used twice


@pytest.mark.parametrize(
    "doc",
    [
        '{"v": 1, "factory": []}',  # the firmware before the index
        '{"v": 1, "factory": [], "seq": 1, "certs": [["CSMSRootCertificate", 1, 5]], "skip": []}',
        '{"v": 1, "factory": [], "seq": 1, "certs": [["V2GRootCertificate", 1, "", "", "", ""]]'
        ', "skip": []}',
        '{"v": 1, "factory": [], "seq": 1, "certs": 7, "skip": []}',
        "not JSON",
    ],
)
def test_a_missing_or_unusable_index_is_rebuilt(tmp_path, doc):
    st = station(tmp_path)
    root = make_root("Root")
    assert install(st, CSMS, pem(root)) == {"status": "Accepted"}
    (tmp_path / "state" / "certificates.json").write_text(doc)
    st2 = station(tmp_path)
    assert listed(st2)["certificateHashDataChain"] == [chain_item(CSMS, root)]
    assert [e[:2] for e in index(tmp_path)["certs"]] == [[CSMS, 1]]


def test_bad_files_are_recorded_in_the_index(tmp_path, monkeypatch, logged):
    st = station(tmp_path)
    good = make_root("Good")
    assert install(st, CSMS, pem(good)) == {"status": "Accepted"}
    d = tmp_path / "state" / "certs"
    (d / "csms-7.pem").write_text("garbage")
    (d / "mfr-8.pem").write_text(pem(good))
    (d / "mfr-9.pem").write_text(pem(good))  # the same root again
    station(tmp_path)
    assert index(tmp_path)["skip"] == ["csms-7.pem", "mfr-9.pem"]
    no_parsing(monkeypatch)
    logged.truncate(0)
    st3 = station(tmp_path)
    assert entries(st3) == "2" and "index not usable" not in logged.getvalue()
    monkeypatch.undo()
    assert install(st3, MFR, pem(make_root("New"))) == {"status": "Accepted"}
    assert (d / "mfr-10.pem").exists()


def test_a_factory_file_is_not_read_once_a_root_of_its_kind_is_installed(tmp_path, monkeypatch):
    s = {"csms_ca_file": str(tmp_path / "late.pem")}
    st = station(tmp_path, s)  # the factory file is missing
    root = make_root("From the CSMS")
    assert install(st, CSMS, pem(root)) == {"status": "Accepted"}
    (tmp_path / "late.pem").write_text(pem(make_root("Factory")))
    no_parsing(monkeypatch)
    st2 = station(tmp_path, s)
    assert listed(st2)["certificateHashDataChain"] == [chain_item(CSMS, root)]
    assert index(tmp_path)["factory"] == [CSMS]
    assert delete(st2, ocsp_hash_data(root)) == {"status": "Accepted"}
    assert entries(station(tmp_path, s)) == "0"  # nor once the CSMS deleted it


# -- on MicroPython: the real station boots without the certificate and update code ----------

MICROPYTHON = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "micropython"
HEAVY = [
    "x509",
    "asn1",
    "rsa",
    "ecdsa",
    "sha2",
    "steps",
    "httpc",
    "bundle",
    "csr",
    "firmware.blocks.station_certificate",
]

# Boots firmware.main.Station on the sim board (not run: no CSMS needed), then reports the
# heavy modules loaded, after the boot and after what the boot hands other blocks (the TLS CA
# file, GetInstalledCertificateIds, the report of a firmware update once Accepted). Then the
# installs asked for; "die": one more install, the power lost just before its index write.
MP_BOOT = """
import asyncio
import json
import sys

import bootsel

V = json.load(open(sys.argv[1]))
bootsel.running = V["slot"]  # the slot a firmware update installed runs now


def heavy():
    return [m for m in V["heavy"] if m in sys.modules]


from boards.sim import Board
from firmware.main import Station

st = Station(Board(["--state-dir", V["state"], "--config", V["config"], "--id", "CS1"]))
out = {"boot": heavy()}
certs = st.certificates
out["ca"] = st.connection._ca_file()
out["ids"] = certs.on_get_installed_certificate_ids({})
n = len(st._waiting)
fw = getattr(st, "firmware", None)  # loaded at boot only while an update is under way
if fw is not None:
    fw._accepted()  # the CSMS accepted the boot: the update's report
for coro in st._waiting[n:]:
    asyncio.run(coro)
out["fw"] = ((fw and fw.doc) or {}).get("status")
out["after"] = heavy()


def install(kind, text):
    req = {"certificateType": kind, "certificate": text}
    return asyncio.run(certs.on_install_certificate(req))


out["installed"] = [install(kind, text) for kind, text in V["install"]]
out["left"] = heavy()
print(json.dumps(out))
if V["die"]:
    save = st.store.save

    def power_loss(name, doc):
        if name == "certificates":
            sys.exit(9)
        save(name, doc)

    st.store.save = power_loss
    install(*V["die"])
"""


def mp_boot(tmp_path, settings, install=(), die=None, slot=None, rc=0):
    import json
    import subprocess

    v = {
        "state": str(tmp_path / "state"),
        "config": str(tmp_path / "config.json"),
        "slot": slot,
        "heavy": HEAVY,
        "install": list(install),
        "die": die,
    }
    (tmp_path / "config.json").write_text(json.dumps(settings))
    (tmp_path / "v.json").write_text(json.dumps(v))
    (tmp_path / "mp_boot.py").write_text(MP_BOOT)
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, MICROPYPATH=".frozen:%s:%s" % (root / "lib", root))
    out = subprocess.run(
        [str(MICROPYTHON), str(tmp_path / "mp_boot.py"), str(tmp_path / "v.json")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert out.returncode == rc, out.stdout + out.stderr
    return json.loads(out.stdout)


def test_micropython_boots_without_the_certificate_and_update_code(tmp_path):
    import time

    now = int(time.time())  # the sim's clock is the host's
    roots = [
        make_root(cn, key, not_before=now - DAY, not_after=now + 365 * DAY)
        for cn, key in (("Factory CSMS", EC_KEY), ("Factory Mfr", EC_KEY), ("C", RSA_KEY))
    ]
    roots.append(make_root("M", EC_KEY, not_before=now - DAY, not_after=now + 365 * DAY))
    roots.append(make_root("N", EC_KEY, not_before=now - DAY, not_after=now + 365 * DAY))
    f_csms, f_mfr, c, m, n = roots
    (tmp_path / "csms.pem").write_text(pem(f_csms))
    (tmp_path / "mfr.pem").write_text(pem(f_mfr))
    s = {
        "csms_ca_file": str(tmp_path / "csms.pem"),
        "manufacturer_root_file": str(tmp_path / "mfr.pem"),
    }
    four = [
        chain_item(CSMS, f_csms),
        chain_item(MFR, f_mfr),
        chain_item(CSMS, c),
        chain_item(MFR, m),
    ]

    # First boot: the factory roots are parsed and installed; then two from the CSMS.
    out = mp_boot(tmp_path, s, install=[(CSMS, pem(c)), (MFR, pem(m))])
    assert out["ids"]["certificateHashDataChain"] == four[:2]
    assert out["boot"] == []  # parsed, then dropped again (certificates._unload): 5 KB
    assert out["installed"] == [{"status": "Accepted"}] * 2
    assert out["left"] == []  # InstallCertificate dropped them too

    # An update rebooted into its new slot, to be reported once Accepted.
    Store(str(tmp_path / "state")).save(
        "firmware",
        {
            "v": 1,
            "id": 7,
            "step": "reboot",
            "status": "InstallRebooting",
            "sent": True,
            "req": {},
            "tries": 1,
            "installs": 1,
            "kind": "bundle",
            "slot": "b",
            "reboots": 1,
        },
    )
    out = mp_boot(tmp_path, s, slot="b", die=(CSMS, pem(n)), rc=9)
    assert out["boot"] == [] and out["after"] == []
    assert out["ids"] == {"status": "Accepted", "certificateHashDataChain": four}
    assert out["fw"] == "Installed"
    assert out["ca"] == str(tmp_path / "state" / "csms_ca.pem")
    assert files(tmp_path) == ["csms-1.pem", "csms-3.pem", "csms-5.pem", "mfr-2.pem", "mfr-4.pem"]

    # The power went between N's file and the index: this boot parses the files again.
    out = mp_boot(tmp_path, s)
    five = four + [chain_item(CSMS, n)]
    assert out["ids"] == {"status": "Accepted", "certificateHashDataChain": five}
    ca = [der(x) for x in cx.load_pem_x509_certificates(Path(out["ca"]).read_bytes())]
    assert ca == [der(f_csms), der(c), der(n)]
    out = mp_boot(tmp_path, s)  # ... and the next one parses nothing
    assert out["boot"] == [] and out["after"] == []
    assert out["ids"] == {"status": "Accepted", "certificateHashDataChain": five}
