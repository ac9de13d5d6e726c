"""Test PKI for the TLS tests (security profiles 2 and 3), made with `cryptography`.

make_pki(directory) writes PEM files and returns a Pki with their paths:

- ca: the CSMS root CA, the one the station trusts (csms_ca_file), key in ca_key (the
  development CSMS's CA signs the station's own certificates with it: A02);
- server: CSMS server certificate from `ca` for localhost and 127.0.0.1 (SAN dNSName and
  iPAddress), key in server_key;
- wrong_ca: the same names, issued by another root (other_ca) the station does not trust;
- wrong_host: from `ca`, valid, but only for csms.example.com;
- cn_only: from `ca`, CN 127.0.0.1 and no SAN (the CN is the name then);
- cn_not_san: from `ca`, CN 127.0.0.1 but SAN csms.example.com (the SAN is the name then);
- expired: from `ca`, for localhost and 127.0.0.1, expired yesterday;
- station_ca: the root the CSMS trusts for station (client) certificates, profile 3;
- station: the station's client certificate from station_ca (CN = the station id), key in
  station_key;
- stranger_ca: a root trusting nothing the station has (a CSMS requiring client
  certificates from it refuses the station's).

Every certificate and key is its own PEM file; keys are unencrypted PKCS #8, EC P-256 (the
station's mbedTLS and CPython's OpenSSL both take them), except server_rsa / server_rsa_key,
an RSA-2048 server certificate for the RSA cipher suites.
"""

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DAY = datetime.timedelta(days=1)
LOCAL_NAMES = (x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")))


@dataclass
class Pki:
    dir: Path
    ca: str
    other_ca: str
    station_ca: str
    stranger_ca: str
    ca_key: str
    server: str
    server_key: str
    server_rsa: str
    server_rsa_key: str
    wrong_ca: str
    wrong_ca_key: str
    wrong_host: str
    wrong_host_key: str
    cn_only: str
    cn_only_key: str
    cn_not_san: str
    cn_not_san_key: str
    expired: str
    expired_key: str
    station: str
    station_key: str


def _name(cn):
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mpwallbox test"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _usage(**on):
    names = (
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    )
    return x509.KeyUsage(**{n: on.get(n, False) for n in names})


def _ec_key():
    return ec.generate_private_key(ec.SECP256R1())


def make_root(cn, key):
    """A self-signed root CA (basicConstraints cA, keyCertSign), valid a year around now."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - DAY)
        .not_valid_after(now + 365 * DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )


def make_leaf(cn, key, issuer, issuer_key, *, names=(), client=False, expired=False):
    """An end-entity certificate from `issuer`: a TLS server's (SAN `names`) or, with
    client=True, a TLS client's. expired=True: it ended yesterday, after a year."""
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = (now - 366 * DAY, now - DAY) if expired else (now - DAY, now + 90 * DAY)
    eku = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    rsa_key = isinstance(key, rsa.RSAPrivateKey)
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(digital_signature=True, key_encipherment=rsa_key), critical=True)
        .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
        )
    )
    if names:
        b = b.add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _save(d, name, cert, key=None):
    path = d / (name + ".pem")
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is None:
        return str(path)
    kpath = d / (name + ".key")
    kpath.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(path), str(kpath)


def make_pki(directory, station_id="CS1"):
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    keys = {n: _ec_key() for n in ("ca", "other", "station_ca", "stranger")}
    ca = make_root("CSMS Test Root", keys["ca"])
    other = make_root("Other Test Root", keys["other"])
    station_ca = make_root("Station Test Root", keys["station_ca"])
    stranger = make_root("Stranger Test Root", keys["stranger"])
    out = {
        "dir": d,
        "other_ca": _save(d, "other_ca", other),
        "station_ca": _save(d, "station_ca", station_ca),
        "stranger_ca": _save(d, "stranger_ca", stranger),
    }
    out["ca"], out["ca_key"] = _save(d, "ca", ca, keys["ca"])
    leaves = (
        ("server", _ec_key(), "localhost", ca, keys["ca"], LOCAL_NAMES, {}),
        ("server_rsa", rsa.generate_private_key(65537, 2048), "localhost", ca, keys["ca"],
         LOCAL_NAMES, {}),
        ("wrong_ca", _ec_key(), "localhost", other, keys["other"], LOCAL_NAMES, {}),
        ("wrong_host", _ec_key(), "csms.example.com", ca, keys["ca"],
         (x509.DNSName("csms.example.com"),), {}),
        ("cn_only", _ec_key(), "127.0.0.1", ca, keys["ca"], (), {}),
        ("cn_not_san", _ec_key(), "127.0.0.1", ca, keys["ca"],
         (x509.DNSName("csms.example.com"),), {}),
        ("expired", _ec_key(), "localhost", ca, keys["ca"], LOCAL_NAMES, {"expired": True}),
        ("station", _ec_key(), station_id, station_ca, keys["station_ca"], (),
         {"client": True}),
    )  # fmt: skip
    for name, key, cn, issuer, issuer_key, names, kw in leaves:
        cert = make_leaf(cn, key, issuer, issuer_key, names=names, **kw)
        out[name], out[name + "_key"] = _save(d, name, cert, key)
    return Pki(**out)
