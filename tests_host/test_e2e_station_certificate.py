"""End to end: the station's own key pair and certificate (A02/A03) with the firmware on the
MicroPython unix port (and the virtual ESP32 at 112 KiB) against the development CSMS, whose
CA (tools/csms.CertificateAuthority) signs with the CSMS root of tls_certs.py.

Profile 2 -> 3 (TC_A_19 with A02): SetNetworkProfile for profile 3 without a client certificate
is Rejected and starts a request; the CSMS signs the CSR; the profile is then Accepted, and
after the Reset the station connects with security profile 3 and the certificate it made.
Renewal on TriggerMessage SignChargingStationCertificate (TC_A_11): the next connection uses
the new one. A chain that does not lead to an installed CSMS root is Rejected with
InvalidChargingStationCertificate (TC_A_14); no CertificateSigned: SignCertificate again after
CertSigningWaitMinimum, doubling, CertSigningRepeatTimes times (TC_A_23); SignCertificate
Rejected ends the request (TC_A_15)."""

import time

import pytest
from cryptography import x509 as cx
from test_e2e_tls import PASSWORD, STAMP, accepted, security_profile, tls_csms
from test_e2e_tls import pki as pki  # noqa: F401  (the module's fixture)

from tools.csms import CertificateAuthority
from tools.harness import FAST, CsmsThread, variables

pytestmark = pytest.mark.e2e

KIND = "ChargingStationCertificate"
TRIGGER = {"requestedMessage": "SignChargingStationCertificate"}
PRIORITY = {
    "component": {"name": "OCPPCommCtrlr"},
    "variable": {"name": "NetworkConfigurationPriority"},
}


def config(pki, profile=1, extra=()):
    values = dict(FAST)
    values[("SecurityCtrlr", "OrganizationName")] = "mpwallbox test"
    values.update(dict(extra))
    out = {"variables": None, "csms_ca_file": pki.ca}
    if profile == 2:
        values[("SecurityCtrlr", "BasicAuthPassword")] = PASSWORD
        out["security_profile"] = 2
    out["variables"] = variables(values)
    return out


def profile_3(url):
    return {
        "ocppVersion": "OCPP20",
        "ocppTransport": "JSON",
        "ocppCsmsUrl": url,
        "messageTimeout": 30,
        "securityProfile": 3,
        "ocppInterface": "Wired0",
    }


def answer(csms, st, action, start=0, timeout=30):
    """The station's answer frame to the CSMS's next `action` CALL from frame `start` on."""
    return csms.wait_frame(
        st,
        lambda f: f.direction == "in" and f.kind == "result" and f.action == action,
        timeout,
        start,
    )


def signed(csms, st, start=0):
    """Wait for a SignCertificate and the station's answer to the CertificateSigned that
    follows: (the CSR, that answer's payload, the index after it)."""
    req = csms.wait_call(st, "SignCertificate", timeout=30, start=start)
    assert set(req.payload) == {"csr", "certificateType"}
    assert req.payload["certificateType"] == KIND
    csr = cx.load_pem_x509_csr(req.payload["csr"].encode())
    assert csr.is_signature_valid
    assert csr.subject.rfc4514_string() == "CN=CS1,O=mpwallbox test"
    res = answer(csms, st, "CertificateSigned", req.index)
    return csr, res.payload, res.index + 1


def cert_serial(st):
    return int(st.peer_cert["serialNumber"], 16)


def test_profile_2_to_3_with_a_station_made_certificate_and_its_renewal(pki, sims):
    csms = tls_csms(pki)
    csms.csms.ca = CertificateAuthority(pki.ca, pki.ca_key)
    second = CsmsThread(certfile=pki.server, keyfile=pki.server_key, client_ca=pki.ca)
    second.csms.ca = CertificateAuthority(pki.ca, pki.ca_key)
    try:
        sim = sims(csms.url, config=config(pki, 2))
        st = accepted(csms, sim)
        req = {"configurationSlot": 2, "connectionData": profile_3(second.url)}
        assert csms.call(st, "SetNetworkProfile", req) == {
            "status": "Rejected",
            "statusInfo": {"reasonCode": "MissingCertificate"},
        }
        csr, got, _ = signed(csms, st)
        assert got == {"status": "Accepted"}
        first = csms.csms.ca.issued[0]
        assert first.public_key() == csr.public_key()
        assert csms.call(st, "SetNetworkProfile", req) == {"status": "Accepted"}
        got = csms.call(
            st, "SetVariables", {"setVariableData": [dict(PRIORITY, attributeValue="2,1")]}
        )
        assert got["setVariableResult"][0]["attributeStatus"] == "RebootRequired"
        assert csms.call(st, "Reset", {"type": "Immediate"}) == {"status": "Accepted"}
        csms.run(st.wait_closed(10), 15)
        # Profile 3 with the certificate it made, no password.
        st2 = accepted(second, sim)
        assert st2.tls_version == "TLSv1.2" and "Authorization" not in st2.headers
        assert cert_serial(st2) == first.serial_number
        assert security_profile(second, st2) == "3"
        # Renewal on trigger: a new key and CSR, the certificate in use until the new one is
        # accepted; the next connection has the new one.
        assert second.call(st2, "TriggerMessage", TRIGGER) == {"status": "Accepted"}
        csr2, got, _ = signed(second, st2)
        assert got == {"status": "Accepted"}
        renewed = second.csms.ca.issued[0]
        assert csr2.public_key() != csr.public_key() and renewed.public_key() == csr2.public_key()
        second.run(st2.close(), 15)
        second.run(st2.wait_closed(10), 15)
        st3 = second.station("CS1", timeout=20)
        sim.wait_status(lambda s: s["connected"], timeout=20)
        assert cert_serial(st3) == renewed.serial_number
        log = sim.log()
        assert "Invalid" not in log and "BEGIN EC PRIVATE KEY" not in log
    finally:
        second.stop()
        csms.stop()


def test_a_wrong_chain_retries_without_an_answer_and_a_rejected_request(pki, sims, csms):
    extra = {
        ("SecurityCtrlr", "CertSigningWaitMinimum"): "1",
        ("SecurityCtrlr", "CertSigningRepeatTimes"): "2",
    }
    ca = csms.csms.ca = CertificateAuthority(pki.ca, pki.ca_key, mode="wrong_chain")
    sim = sims(csms.url, config=config(pki, extra=extra))
    st = accepted(csms, sim)
    start = len(st.frames)
    assert csms.call(st, "TriggerMessage", TRIGGER) == {"status": "Accepted"}
    # A chain from a CA the station does not trust: Rejected, and the critical event.
    csr, got, after = signed(csms, st, start)
    ca.mode = "silent"  # from now on: Accepted, and no CertificateSigned
    info = "no trusted root: issuer unknown"
    assert got == {
        "status": "Rejected",
        "statusInfo": {"reasonCode": "NotTrusted", "additionalInfo": info},
    }
    event = csms.wait_call(st, "SecurityEventNotification", start=start).payload
    assert set(event) == {"type", "timestamp", "techInfo"} and STAMP.match(event["timestamp"])
    assert (event["type"], event["techInfo"]) == ("InvalidChargingStationCertificate", info)
    # No CertificateSigned: the same CSR after 1 s, then after 2 s more, then no more.
    deadline = time.monotonic() + 15
    while "given up" not in sim.log():
        assert time.monotonic() < deadline, sim.log()
        time.sleep(0.1)
    sent = [f for f in st.frames[start:] if f.direction == "in" and f.action == "SignCertificate"]
    sent = [f for f in sent if f.kind == "call"]
    assert [f.payload for f in sent] == [sent[0].payload] * 3
    gaps = [b.t - a.t for a, b in zip(sent, sent[1:], strict=False)]
    assert 0.9 < gaps[0] < 1.9 and 1.9 < gaps[1] < 2.9, gaps
    assert "no certificate after 3 SignCertificate requests: given up" in sim.log()
    # SignCertificate Rejected: the request ends at once (TC_A_15).
    ca.mode = "reject"
    start = len(st.frames)
    assert csms.call(st, "TriggerMessage", TRIGGER) == {"status": "Accepted"}
    req = csms.wait_call(st, "SignCertificate", start=start)
    time.sleep(1.5)  # a retry would have come after 1 s
    again = [
        f for f in st.frames[req.index + 1 :] if f.kind == "call" and f.action == "SignCertificate"
    ]
    assert again == []
    assert "SignCertificate Rejected: no new certificate" in sim.log()
