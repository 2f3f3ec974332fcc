"""Test-time PKI for the TLS tests: a CA, a broker certificate for 127.0.0.1 and a reader's
client certificate, made with `cryptography` (EC P-256: quick to generate) and written as PEM
files with mode 0600. Nothing here is ever stored in the repository."""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    @property
    def ca_key(self) -> Path:
        return self.ca.with_name("ca.key")


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    os.chmod(path, 0o600)


def _certificate(subject: str, key: ec.EllipticCurvePrivateKey, issuer: str,
                 issuer_key: ec.EllipticCurvePrivateKey, *, ca: bool = False,
                 server: bool = False) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
    elif server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False).add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_pki(directory: Path, ca_name: str = "kitledger test CA") -> Pki:
    """A CA and the certificates signed by it, as files in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, server_key, client_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    pki = Pki(ca=directory / "ca.pem", server_cert=directory / "server.pem",
              server_key=directory / "server.key", client_cert=directory / "reader.pem",
              client_key=directory / "reader.key.pem")
    pki.ca.write_bytes(_pem(_certificate(ca_name, ca_key, ca_name, ca_key, ca=True)))
    pki.server_cert.write_bytes(_pem(_certificate("127.0.0.1", server_key, ca_name, ca_key,
                                                  server=True)))
    pki.client_cert.write_bytes(_pem(_certificate("desk-1", client_key, ca_name, ca_key)))
    _write_key(pki.server_key, server_key)
    _write_key(pki.client_key, client_key)
    _write_key(pki.ca_key, ca_key)
    return pki


def issue_client(pki: Pki, common_name: str) -> tuple[Path, Path]:
    """Another client certificate from `pki`'s CA, for `common_name` (a broker that takes the
    certificate as the username sees this name): (certificate, key) files beside the CA's."""
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca_name = x509.load_pem_x509_certificate(pki.ca.read_bytes()).subject.rfc4514_string()
    key = ec.generate_private_key(ec.SECP256R1())
    cert_path = pki.ca.with_name(f"{common_name}.pem")
    key_path = pki.ca.with_name(f"{common_name}.key.pem")
    cert_path.write_bytes(_pem(_certificate(common_name, key, ca_name.removeprefix("CN="),
                                            ca_key)))
    _write_key(key_path, key)
    return cert_path, key_path
