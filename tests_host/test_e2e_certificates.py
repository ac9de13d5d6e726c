"""End to end: root certificate management (TC_M_01/02/07/12/19/20/22) on the MicroPython unix
port against the development CSMS: InstallCertificate, GetInstalledCertificateIds with the
exact hash data, DeleteCertificate, the CSMS CA file for the TLS context, factory roots from
the config file, and all of it after a power loss. Certificates made by `cryptography` in the
test (test_certificates.py)."""

import pytest
from cryptography import x509 as cx
from test_certificates import DAY, EC_KEY, P384_KEY, RSA_KEY, ocsp_hash_data, pem
from test_certificates import make_root as _make_root

from tools.harness import FAST, variables

pytestmark = pytest.mark.e2e

CSMS = "CSMSRootCertificate"
MFR = "ManufacturerRootCertificate"
ENTRIES = {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "CertificateEntries"}}


def config(**settings):
    settings["variables"] = variables(dict(FAST))
    return settings


def accepted(csms, sim):
    st = csms.station(timeout=20)
    csms.wait_call(st, "BootNotification", timeout=20)
    sim.wait_status(lambda s: s["registration"] == "Accepted" and s["connected"], timeout=20)
    return st


def make_root(cn, key=EC_KEY, **kw):
    # The sim runs on the host's clock: validity around the real now.
    import time

    now = int(time.time())
    kw.setdefault("not_before", now - DAY)
    kw.setdefault("not_after", now + 365 * DAY)
    return _make_root(cn, key, **kw)


def install(csms, st, kind, cert_pem):
    return csms.call(st, "InstallCertificate", {"certificateType": kind, "certificate": cert_pem})


def item(kind, cert):
    return {"certificateType": kind, "certificateHashData": ocsp_hash_data(cert)}


def entries(csms, st):
    got = csms.call(st, "GetVariables", {"getVariableData": [ENTRIES]})
    return got["getVariableResult"][0]["attributeValue"]


def ca_file(sim):
    path = sim.state_dir / "csms_ca.pem"
    if not path.exists():
        return None
    return list(cx.load_pem_x509_certificates(path.read_bytes()))


def test_install_list_delete_and_keep_roots_across_a_power_loss(csms, sims):
    sim = sims(csms.url, config=config())
    st = accepted(csms, sim)
    assert csms.call(st, "GetInstalledCertificateIds", {}) == {"status": "NotFound"}
    csms_root = make_root("E2E CSMS Root", RSA_KEY, serial=0x0123456789ABCDEF)
    mfr_root = make_root("E2E Manufacturer Root", P384_KEY, serial=2**158 + 7)
    assert install(csms, st, CSMS, pem(csms_root)) == {"status": "Accepted"}
    assert install(csms, st, MFR, pem(mfr_root)) == {"status": "Accepted"}
    assert install(csms, st, MFR, pem(mfr_root)) == {"status": "Accepted"}  # stored once
    assert entries(csms, st) == "2"
    both = {
        "status": "Accepted",
        "certificateHashDataChain": [item(CSMS, csms_root), item(MFR, mfr_root)],
    }
    assert csms.call(st, "GetInstalledCertificateIds", {}) == both
    assert csms.call(st, "GetInstalledCertificateIds", {"certificateType": [MFR]}) == {
        "status": "Accepted",
        "certificateHashDataChain": [item(MFR, mfr_root)],
    }
    req = {"certificateType": ["V2GCertificateChain", "MORootCertificate"]}
    assert csms.call(st, "GetInstalledCertificateIds", req) == {"status": "NotFound"}
    assert ca_file(sim) == [csms_root]

    # Refused: expired (TC_M_07), not a CA, not a PEM, an ISO 15118 root.
    expired = make_root("Old Root", not_before=1600000000, not_after=1700000000)
    got = install(csms, st, CSMS, pem(expired))
    assert got["status"] == "Rejected" and got["statusInfo"]["reasonCode"] == "Expired"
    assert got["statusInfo"]["additionalInfo"].startswith("valid until 1700000000, now ")
    got = install(csms, st, MFR, pem(make_root("Leaf", ca=False)))
    assert got["statusInfo"] == {
        "reasonCode": "NotCA",
        "additionalInfo": "basicConstraints cA is not true",
    }
    got = install(csms, st, CSMS, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----")
    assert got["status"] == "Rejected" and got["statusInfo"]["reasonCode"] == "InvalidFormat"
    got = install(csms, st, "V2GRootCertificate", pem(make_root("V2G Root")))
    assert got["status"] == "Rejected" and got["statusInfo"]["reasonCode"] == "NotSupported"
    assert entries(csms, st) == "2"

    # Power loss: all of it is still there.
    sim.kill()
    csms.run(st.wait_closed(10), 15)
    sim2 = sims(csms.url, config=config(), state_dir=sim.state_dir)
    st2 = accepted(csms, sim2)
    assert csms.call(st2, "GetInstalledCertificateIds", {}) == both

    # Delete (TC_M_20), upper-case hashes accepted; unknown (TC_M_22).
    hd = ocsp_hash_data(mfr_root)
    hd["issuerKeyHash"] = hd["issuerKeyHash"].upper()
    req = {"certificateHashData": hd}
    assert csms.call(st2, "DeleteCertificate", req) == {"status": "Accepted"}
    assert csms.call(st2, "DeleteCertificate", req) == {"status": "NotFound"}
    assert csms.call(st2, "GetInstalledCertificateIds", {}) == {
        "status": "Accepted",
        "certificateHashDataChain": [item(CSMS, csms_root)],
    }
    assert entries(csms, st2) == "1"
    # The last CSMS root may go at security profile 1; the CA file goes with it.
    req = {"certificateHashData": ocsp_hash_data(csms_root)}
    assert csms.call(st2, "DeleteCertificate", req) == {"status": "Accepted"}
    assert csms.call(st2, "GetInstalledCertificateIds", {}) == {"status": "NotFound"}
    assert ca_file(sim2) is None
    sim2.kill()
    csms.run(st2.wait_closed(10), 15)

    # Bad files on flash: logged and ignored at boot, never trusted, never a crash.
    certs = sim.state_dir / "certs"
    (certs / "csms-50.pem").write_bytes(b"\xff\xfe not text")
    (certs / "mfr-51.pem").write_text(pem(make_root("Flash Leaf", ca=False)))
    (certs / "csms-52.pem.tmp").write_text(pem(csms_root))  # an interrupted write
    (certs / "notes.txt").write_text("hello")
    sim3 = sims(csms.url, config=config(), state_dir=sim.state_dir)
    st3 = accepted(csms, sim3)
    assert csms.call(st3, "GetInstalledCertificateIds", {}) == {"status": "NotFound"}
    assert entries(csms, st3) == "0" and ca_file(sim3) is None
    log = sim3.log()
    assert "csms-50.pem unreadable, ignored" in log
    assert "mfr-51.pem ignored: basicConstraints cA is not true" in log
    assert "notes.txt: not a certificate file, ignored" in log
    assert not (certs / "csms-52.pem.tmp").exists()
    assert install(csms, st3, CSMS, pem(csms_root)) == {"status": "Accepted"}
    assert (certs / "csms-52.pem").exists()
    assert ca_file(sim3) == [csms_root]


def test_factory_roots_from_the_config_file(csms, sims, tmp_path):
    csms_root = make_root("Factory CSMS Root", RSA_KEY)
    mfr_root = make_root("Factory Manufacturer Root", EC_KEY)
    (tmp_path / "csms.pem").write_text(pem(csms_root))
    (tmp_path / "mfr.pem").write_text(pem(make_root("Not a CA", ca=False), mfr_root))
    cfg = config(
        csms_ca_file=str(tmp_path / "csms.pem"), manufacturer_root_file=str(tmp_path / "mfr.pem")
    )
    sim = sims(csms.url, config=cfg)
    st = accepted(csms, sim)
    assert csms.call(st, "GetInstalledCertificateIds", {}) == {
        "status": "Accepted",
        "certificateHashDataChain": [item(CSMS, csms_root), item(MFR, mfr_root)],
    }
    assert ca_file(sim) == [csms_root]
    assert "Not a CA" in sim.log()  # the bad one in the bundle: logged, skipped
    # A deleted factory root stays deleted after a reboot.
    req = {"certificateHashData": ocsp_hash_data(mfr_root)}
    assert csms.call(st, "DeleteCertificate", req) == {"status": "Accepted"}
    assert csms.call(st, "Reset", {"type": "Immediate"}) == {"status": "Accepted"}
    sim.wait_status(lambda s: s["boot_count"] == 2 and s["registration"] == "Accepted", 30)
    st2 = csms.station(timeout=20)
    assert csms.call(st2, "GetInstalledCertificateIds", {}) == {
        "status": "Accepted",
        "certificateHashDataChain": [item(CSMS, csms_root)],
    }
