"""An agency's own certificate authority for its readers' TLS client certificates.

The reader makes its TLS key on the Pi (`kitledger-agent enroll`) and hands over only a
certificate signing request, inside its enrollment record. The agency's administrator turns it
into a client certificate here, on the machine that holds the CA key: the broker (Mosquitto
with `require_certificate` and `use_identity_as_username`) then knows the reader by the
certificate's common name, its reader id. No private key travels.

The request is checked before anything is signed: its own signature (the requester holds the
key), a key type and size worth certifying, a common name that is a reader id, and, when the
enrollment record is given, the same reader, agency and site as the record. Nothing is copied
from the request but the subject's names and the public key: its extensions (a request could
ask to be a CA) are ignored, and the certificate's are ours.

CA directory: `ca.key` (EC P-256, mode 0600, never overwritten), `ca.pem` (the certificate the
broker's `cafile` names) and `issued.jsonl` (one line per certificate issued: serial, reader,
validity, key fingerprint), the record a later revocation list starts from.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_KEY_NAME: Final = "ca.key"
CA_CERT_NAME: Final = "ca.pem"
ISSUED_LOG_NAME: Final = "issued.jsonl"

CA_DAYS: Final = 3650
"""The CA certificate's life: ten years, renewed with the broker's cafile, not per reader."""

READER_DAYS: Final = 397
"""A reader certificate's default life: a year and a month, so a yearly renewal overlaps."""

MAX_READER_DAYS: Final = 1825
"""Five years at most: a reader unaccounted for must not stay trusted longer than that."""

MAX_REQUEST_BYTES: Final = 16 * 1024
"""An enrollment record with its request is about 1.5 KB; more is not one."""

MIN_RSA_BITS: Final = 2048
"""Smaller RSA keys are not worth certifying (the reader's own requests are P-256)."""

EC_CURVES: Final = frozenset({"secp256r1", "secp384r1"})
"""Curves every broker's TLS library verifies."""

READER_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""A reader id as agent.toml allows it: the broker's username for the reader, and MQTT-safe."""

API_BROKER_USER: Final = "kitledger-api"
"""The API's username at the broker (its certificate's common name), which the broker's ACL
lets read every reader's observations and answer any reader
(`hardware/pi/mosquitto-kitledger.acl.example`): never a reader's name."""

CLOCK_SKEW: Final = datetime.timedelta(minutes=5)
"""A certificate is valid from a little before it was issued: a Pi's clock may lag the CA's."""


class ReaderCaError(ValueError):
    """A CA directory, request or enrollment record that cannot be used: one line why."""


@dataclass(frozen=True, slots=True)
class Request:
    """A checked signing request and who it claims to be."""

    csr: x509.CertificateSigningRequest
    reader_id: str
    agency: str | None
    site: str | None


def _name(csr_or_cert: Any, oid: x509.ObjectIdentifier) -> str | None:
    values = csr_or_cert.subject.get_attributes_for_oid(oid)
    if len(values) > 1:
        raise ReaderCaError(f"the request names more than one {oid._name}")
    return str(values[0].value) if values else None


def key_fingerprint(public_key: Any) -> str:
    """SHA-256 of the SubjectPublicKeyInfo, hex (as `kitledger-agent enroll` prints it)."""
    digest = hashes.Hash(hashes.SHA256())
    digest.update(public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))
    return digest.finalize().hex()


def _check_key(public_key: Any) -> None:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if public_key.curve.name not in EC_CURVES:
            raise ReaderCaError(f"the request's key is on curve {public_key.curve.name}; "
                                f"use one of {sorted(EC_CURVES)}")
    elif isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < MIN_RSA_BITS:
            raise ReaderCaError(f"the request's RSA key has {public_key.key_size} bits; at "
                                f"least {MIN_RSA_BITS} are needed")
    elif not isinstance(public_key, ed25519.Ed25519PublicKey):
        raise ReaderCaError(f"the request's key type {type(public_key).__name__} is not "
                            "certified here")


def _from_enrollment(data: bytes) -> tuple[bytes, dict[str, str]]:
    try:
        record = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ReaderCaError("the enrollment record is not UTF-8 JSON") from None
    if not isinstance(record, dict):
        raise ReaderCaError("the enrollment record is not a JSON object")
    fields = {name: record.get(name) for name in ("reader_id", "agency", "site", "tls_csr_pem")}
    if not all(isinstance(value, str) for value in fields.values()):
        missing = [name for name, value in fields.items() if not isinstance(value, str)]
        raise ReaderCaError(f"the enrollment record lacks {missing} (was it made with [mqtt] "
                            "tls_key set in agent.toml?)")
    csr = str(fields.pop("tls_csr_pem")).encode("ascii", "replace")
    return csr, {name: str(value) for name, value in fields.items()}


def read_request(data: bytes, expected_reader: str | None = None) -> Request:
    """Parse and check a request: an enrollment record (JSON with `tls_csr_pem`) or a bare
    PEM request. `expected_reader`, when given, must be the request's common name."""
    if len(data) > MAX_REQUEST_BYTES:
        raise ReaderCaError(f"the request is larger than {MAX_REQUEST_BYTES} bytes")
    claimed: dict[str, str] = {}
    pem = data
    if data.lstrip().startswith(b"{"):
        pem, claimed = _from_enrollment(data)
    elif expected_reader is None:
        raise ReaderCaError("a bare request names no reader to check it against: give "
                            "--reader, or the whole enrollment record")
    try:
        csr = x509.load_pem_x509_csr(pem)
    except (ValueError, UnsupportedAlgorithm):
        raise ReaderCaError("no PEM certificate signing request found") from None
    try:
        signed = csr.is_signature_valid
        public_key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise ReaderCaError("the request's key or signature cannot be read") from None
    if not signed:
        raise ReaderCaError("the request's signature does not verify: it was altered, or its "
                            "maker does not hold the key")
    _check_key(public_key)
    reader_id = _name(csr, NameOID.COMMON_NAME)
    if reader_id is None or not READER_ID.fullmatch(reader_id):
        raise ReaderCaError("the request's common name is not a reader id (1-64 of "
                            "A-Z a-z 0-9 . _ -)")
    if reader_id.lower() == API_BROKER_USER:
        raise ReaderCaError(f"the request's common name {reader_id!r} is the API's broker user; "
                            "a reader may not have it")
    agency = _name(csr, NameOID.ORGANIZATION_NAME)
    site = _name(csr, NameOID.ORGANIZATIONAL_UNIT_NAME)
    seen = {"reader_id": reader_id, "agency": agency, "site": site}
    for field, value in claimed.items():
        if seen[field] != value:
            raise ReaderCaError(f"the request's {field} {seen[field]!r} differs from the "
                                f"enrollment record's {value!r}")
    if expected_reader is not None and reader_id != expected_reader:
        raise ReaderCaError(f"the request is for reader {reader_id!r}, not {expected_reader!r}")
    return Request(csr, reader_id, agency, site)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def init_ca(directory: Path, name: str, now: datetime.datetime,
            days: int = CA_DAYS) -> x509.Certificate:
    """Make the CA key and its self-signed certificate in `directory`; never replaces one."""
    if not name.strip() or len(name) > 64:
        raise ReaderCaError("the CA name must be 1-64 characters")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    if (directory / CA_KEY_NAME).exists() or (directory / CA_CERT_NAME).exists():
        raise ReaderCaError(f"{directory} already holds a CA; not replacing it")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    identifier = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    certificate = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW).not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(identifier, critical=False)
        .sign(key, hashes.SHA256()))
    _write_new(directory / CA_KEY_NAME,
               key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()), 0o600)
    _write_new(directory / CA_CERT_NAME, certificate.public_bytes(Encoding.PEM), 0o644)
    return certificate


def load_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The CA certificate and key of `directory`, refusing a key others may read."""
    key_path = directory / CA_KEY_NAME
    try:
        info = key_path.stat()
        key_data = key_path.read_bytes()
        certificate = x509.load_pem_x509_certificate((directory / CA_CERT_NAME).read_bytes())
    except FileNotFoundError as exc:
        raise ReaderCaError(f"no CA in {directory}: {Path(str(exc.filename)).name} is missing "
                            "(make one with `kitledger reader-ca init`)") from None
    except OSError as exc:
        raise ReaderCaError(f"cannot read the CA in {directory}: {exc.strerror}") from None
    except ValueError:
        raise ReaderCaError(f"{directory / CA_CERT_NAME} is not a PEM certificate") from None
    if info.st_mode & 0o077:
        raise ReaderCaError(f"{key_path} has mode {stat.S_IMODE(info.st_mode):04o}; the CA key "
                            "must be readable by its owner only (chmod 600)")
    try:
        key = load_pem_private_key(key_data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ReaderCaError(f"{key_path} is not an unencrypted PEM key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ReaderCaError(f"{key_path} is not an EC key")
    if key_fingerprint(key.public_key()) != key_fingerprint(certificate.public_key()):
        raise ReaderCaError(f"{key_path} is not the key of {directory / CA_CERT_NAME}")
    return certificate, key


def issue(directory: Path, request: Request, now: datetime.datetime,
          days: int = READER_DAYS) -> x509.Certificate:
    """A client certificate for `request`, signed by the CA in `directory`, and its line in
    the issued log."""
    if not 1 <= days <= MAX_READER_DAYS:
        raise ReaderCaError(f"--days must be 1 to {MAX_READER_DAYS}")
    ca_certificate, ca_key = load_ca(directory)
    not_after = now + datetime.timedelta(days=days)
    if not_after > ca_certificate.not_valid_after_utc:
        raise ReaderCaError("the certificate would outlive the CA; renew the CA or ask for "
                            "fewer --days")
    names = [x509.NameAttribute(NameOID.COMMON_NAME, request.reader_id)]
    names += [x509.NameAttribute(oid, value) for oid, value in (
        (NameOID.ORGANIZATION_NAME, request.agency),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, request.site)) if value]
    public_key = request.csr.public_key()
    is_ec = isinstance(public_key, ec.EllipticCurvePublicKey)
    certificate = (
        x509.CertificateBuilder().subject_name(x509.Name(names))
        .issuer_name(ca_certificate.subject).public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False,
            key_encipherment=isinstance(public_key, rsa.RSAPublicKey),
            data_encipherment=False, key_agreement=is_ec, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(
            public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256()))
    _log_issued(directory, certificate, request)
    return certificate


def issued_record(certificate: x509.Certificate, request: Request) -> dict[str, str]:
    """What the issued log and the command's answer say about a certificate."""
    return {
        "serial": format(certificate.serial_number, "x"),
        "reader_id": request.reader_id, "agency": request.agency or "",
        "site": request.site or "",
        "not_before": certificate.not_valid_before_utc.isoformat(),
        "not_after": certificate.not_valid_after_utc.isoformat(),
        "key_fingerprint": key_fingerprint(certificate.public_key()),
    }


def _log_issued(directory: Path, certificate: x509.Certificate, request: Request) -> None:
    line = json.dumps(issued_record(certificate, request), sort_keys=True) + "\n"
    fd = os.open(directory / ISSUED_LOG_NAME,
                 os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
