"""`kitledger reader-ca`: the agency certifies a reader's TLS key from its enrollment record.

Hostile and mistaken requests are refused before anything is signed (an altered request, a
request for another reader, a weak key, a request asking to be a CA, oversized or garbage
input), a CA key others may read is refused, and an issued certificate is a client
certificate for the reader id only, chaining to the CA."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ledger.reader_ca import (
    CA_KEY_NAME,
    ISSUED_LOG_NAME,
    MAX_REQUEST_BYTES,
    ReaderCaError,
    init_ca,
    issue,
    read_request,
)

KITLEDGER = str(Path(sys.executable).parent / "kitledger")
NOW = datetime.datetime(2026, 3, 1, tzinfo=datetime.UTC)


def _request(key: object, reader: str = "desk-1", *, ca: bool = False,
             names: tuple[tuple[x509.ObjectIdentifier, str], ...] = ()) -> bytes:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, reader)]
    attributes += [x509.NameAttribute(oid, value) for oid, value in names]
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attributes))
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None),
                                        critical=True)
    signed = builder.sign(key, hashes.SHA256())  # type: ignore[arg-type]
    return signed.public_bytes(serialization.Encoding.PEM)


def _enrollment(pem: bytes, reader: str = "desk-1") -> bytes:
    return json.dumps({"reader_id": reader, "agency": "north", "site": "stores",
                       "tls_csr_pem": pem.decode()}).encode()


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "ca"
    init_ca(directory, "North readers CA", NOW)
    return directory


def test_an_issued_certificate_is_a_client_certificate_for_the_reader(ca_dir: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = _request(key, names=((NameOID.ORGANIZATION_NAME, "north"),
                               (NameOID.ORGANIZATIONAL_UNIT_NAME, "stores")))
    certificate = issue(ca_dir, read_request(_enrollment(pem)), NOW)
    ca = x509.load_pem_x509_certificate((ca_dir / "ca.pem").read_bytes())
    certificate.verify_directly_issued_by(ca)
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "desk-1"
    assert certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca \
        is False
    assert certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == \
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])
    assert certificate.public_key() == key.public_key()
    [line] = (ca_dir / ISSUED_LOG_NAME).read_text().splitlines()
    assert json.loads(line)["serial"] == format(certificate.serial_number, "x")
    assert os.stat(ca_dir / CA_KEY_NAME).st_mode & 0o777 == 0o600


def test_a_request_asking_to_be_a_ca_gets_a_leaf_certificate(ca_dir: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = issue(ca_dir, read_request(_request(key, ca=True), "desk-1"), NOW)
    assert certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca \
        is False


def _tampered(pem: bytes) -> bytes:
    request = x509.load_pem_x509_csr(pem)
    der = bytearray(request.public_bytes(serialization.Encoding.DER))
    position = der.find(b"desk-1")
    der[position:position + 6] = b"desk-9"
    body = __import__("base64").encodebytes(bytes(der)).replace(b"\n", b"")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return (b"-----BEGIN CERTIFICATE REQUEST-----\n" + b"\n".join(lines)
            + b"\n-----END CERTIFICATE REQUEST-----\n")


@pytest.mark.parametrize(("make", "message"), [
    (lambda k: _tampered(_request(k)), "signature does not verify"),
    (lambda k: _enrollment(_request(k), reader="desk-2"), "differs from the enrollment"),
    (lambda k: _request(k, reader="desk/#"), "not a reader id"),
    (lambda k: _request(k, reader="kitledger-api"), "the API's broker user"),
    (lambda k: _request(k, names=((NameOID.COMMON_NAME, "desk-2"),)), "more than one"),
    (lambda k: _request(rsa.generate_private_key(65537, 1024)), "1024 bits"),
    (lambda k: _request(ec.generate_private_key(ec.SECP256K1())), "curve secp256k1"),
    (lambda k: b"not a request", "no PEM certificate signing request"),
    (lambda k: b"{\"reader_id\": \"desk-1\"}", "lacks"),
    (lambda k: b"{" * 50_000, "larger than"),
    (lambda k: b"{[" + b"\xff" * 100, "not UTF-8 JSON"),
    (lambda k: b"[1]", "no PEM"),
    (lambda k: _request(k), "a bare request names no reader"),
])
def test_bad_requests_are_refused_before_signing(
        ca_dir: Path, make: object, message: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    data = make(key)  # type: ignore[operator]
    expected = None if message == "a bare request names no reader" else (
        "desk-1" if not data.startswith(b"{") else None)
    with pytest.raises(ReaderCaError, match=message):
        read_request(data, expected)
    assert not (ca_dir / ISSUED_LOG_NAME).exists()
    assert len(b"{" * 50_000) > MAX_REQUEST_BYTES


def test_a_request_for_another_reader_than_expected_is_refused(ca_dir: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(ReaderCaError, match="not 'desk-2'"):
        read_request(_request(key), "desk-2")
    with pytest.raises(ReaderCaError, match="agency None differs"):  # the record says north
        read_request(_enrollment(_request(key)), "desk-1")


def test_a_ca_key_others_may_read_or_a_second_init_is_refused(ca_dir: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    request = read_request(_request(key), "desk-1")
    with pytest.raises(ReaderCaError, match="already holds a CA"):
        init_ca(ca_dir, "again", NOW)
    os.chmod(ca_dir / CA_KEY_NAME, 0o640)
    with pytest.raises(ReaderCaError, match="mode 0640"):
        issue(ca_dir, request, NOW)
    os.chmod(ca_dir / CA_KEY_NAME, 0o600)
    with pytest.raises(ReaderCaError, match="--days must be"):
        issue(ca_dir, request, NOW, days=0)
    with pytest.raises(ReaderCaError, match="outlive the CA"):
        issue(ca_dir, request, NOW + datetime.timedelta(days=3600))
    with pytest.raises(ReaderCaError, match="no CA in"):
        issue(ca_dir.parent / "elsewhere", request, NOW)


def test_the_command_issues_and_refuses_in_one_line(tmp_path: Path) -> None:
    ca = tmp_path / "ca"
    made = subprocess.run([KITLEDGER, "reader-ca", "init", "--dir", str(ca), "--name", "CA"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert made.returncode == 0 and json.loads(made.stdout)["verdict"] == "ok", made.stderr
    key = ec.generate_private_key(ec.SECP256R1())
    record = tmp_path / "enrollment.json"
    record.write_bytes(_enrollment(_request(key, names=(
        (NameOID.ORGANIZATION_NAME, "north"), (NameOID.ORGANIZATIONAL_UNIT_NAME, "stores")))))
    out = tmp_path / "desk-1.crt"
    done = subprocess.run([KITLEDGER, "reader-ca", "issue", "--dir", str(ca), str(record),
                           "--out", str(out)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert x509.load_pem_x509_certificate(out.read_bytes()).public_key() == key.public_key()
    refused = subprocess.run([KITLEDGER, "reader-ca", "issue", "--dir", str(ca), str(record),
                              "--out", str(out), "--reader", "desk-2"], capture_output=True,
                             text=True, timeout=60, check=False)
    assert refused.returncode == 2 and json.loads(refused.stdout)["verdict"] == "unusable"
    [line] = refused.stderr.splitlines()
    assert line.startswith("kitledger reader-ca issue: the request is for reader 'desk-1'")
