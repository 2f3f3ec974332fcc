"""The reader's device identity: its Ed25519 signing key and its TLS key, made on the device
and never shown.

The signing key signs every observation; the TLS key (EC P-256, which every broker's TLS
library takes) proves the reader to the broker. For the TLS key `tls_request()` makes a
certificate signing request that the agency turns into a certificate with its own CA
(`kitledger reader-ca issue`): only the request and public values leave the Pi.

Each key file holds the private key as unencrypted PKCS#8 PEM (the Pi has no one to type a
passphrase at boot; file permissions are the protection, as for an SSH host key). It is created
with mode 0600 under a temporary name, fsynced, and linked into place, so a crash leaves either
no key or a whole one, and two starts racing never overwrite each other's key. A key file that
group or others can read is refused: it may have leaked, and the administrator must decide.
`enrollment()` is what an administrator registers with the API; it holds only public values.
"""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)
from cryptography.x509.oid import NameOID

from ledger.core.envelope import key_id, raw_public_key
from reader_agent.errors import IdentityError

MAX_KEY_FILE_BYTES: Final = 4096
"""An Ed25519 PKCS#8 PEM is 119 bytes, a P-256 one 241; anything much larger is not our key
file."""

TLS_CURVE: Final = ec.SECP256R1()
"""The TLS key's curve: P-256 is what OpenSSL, Mosquitto and every MQTT broker accept."""

KEY_FILE_MODE: Final = 0o600


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_private_file(path: Path, pem: bytes) -> None:
    """Write `pem` as a new file of mode 0600 at `path`; never replaces an existing file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, KEY_FILE_MODE)
    try:
        os.fchmod(fd, KEY_FILE_MODE)  # the umask may have narrowed it; never widened
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(temporary, path)  # unlike rename, fails if a key appeared meanwhile
    except FileExistsError:
        raise IdentityError(f"key file {path} appeared meanwhile; not replacing it") from None
    finally:
        temporary.unlink()
    _fsync_dir(path.parent)


def create_key(path: Path) -> Ed25519PrivateKey:
    """Make a new signing key at `path`; refuses to replace an existing file."""
    key = Ed25519PrivateKey.generate()
    _create_private_file(path, key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8,
                                                 NoEncryption()))
    return key


def _read_private_file(path: Path) -> bytes:
    """The bytes of the key file at `path`, refusing one that group or others may read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise IdentityError(f"cannot open key file {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise IdentityError(f"key file {path} is not a regular file")
        if info.st_mode & 0o077:
            raise IdentityError(
                f"key file {path} has mode {stat.S_IMODE(info.st_mode):04o}; it must not be "
                "readable by group or others (chmod 600 it if it has not leaked, else re-enroll)"
            )
        data = os.read(fd, MAX_KEY_FILE_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_KEY_FILE_BYTES:
        raise IdentityError(f"key file {path} is larger than {MAX_KEY_FILE_BYTES} bytes")
    return data


def _parse_private_key(path: Path, data: bytes) -> object:
    try:
        return load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        # The parser's message could quote key material; say only what is wrong.
        raise IdentityError(f"key file {path} is not an unencrypted PKCS#8 PEM key") from None


def load_key(path: Path) -> Ed25519PrivateKey:
    """Load the signing key at `path`, refusing one that group or others may read."""
    key = _parse_private_key(path, _read_private_file(path))
    if not isinstance(key, Ed25519PrivateKey):
        raise IdentityError(f"key file {path} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The device key: loaded if it exists, made on first start otherwise."""
    try:
        return load_key(path)
    except FileNotFoundError:
        try:
            return create_key(path)
        except OSError as exc:
            raise IdentityError(f"cannot create key file {path}: {exc.strerror}") from None


def enrollment(key: Ed25519PrivateKey, reader_id: str, agency: str, site: str) -> dict[str, str]:
    """What an administrator registers for this reader: public values only."""
    raw = raw_public_key(key.public_key())
    return {
        "reader_id": reader_id,
        "agency": agency,
        "site": site,
        "algorithm": "Ed25519",
        "public_key_base64": base64.b64encode(raw).decode("ascii"),
        "public_key_hex": raw.hex(),
        "fingerprint": key_id(key.public_key()),
    }


def load_or_create_tls_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The reader's TLS key (P-256): loaded if it exists, made (mode 0600) otherwise."""
    try:
        key = _parse_private_key(path, _read_private_file(path))
    except FileNotFoundError:
        key = ec.generate_private_key(TLS_CURVE)
        try:
            _create_private_file(path, key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8,
                                                         NoEncryption()))
        except OSError as exc:
            raise IdentityError(f"cannot create TLS key file {path}: {exc.strerror}") from None
        return key
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != TLS_CURVE.name:
        raise IdentityError(f"TLS key file {path} is not a P-256 key")
    return key


def tls_request(key: ec.EllipticCurvePrivateKey, reader_id: str, agency: str,
                site: str) -> str:
    """A PEM certificate signing request for `key`: common name the reader id (the broker's
    username for it), organisation the agency, unit the site. Signed by the key itself, so the
    CA knows the requester holds it."""
    subject = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, reader_id),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, agency),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, site),
    ])
    request = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(
        key, hashes.SHA256())
    return request.public_bytes(Encoding.PEM).decode("ascii")


def tls_fingerprint(key: ec.EllipticCurvePrivateKey) -> str:
    """SHA-256 of the TLS key's SubjectPublicKeyInfo, hex: what the CA's issue step prints
    too, so the administrator can match the certificate to the device by ear."""
    digest = hashes.Hash(hashes.SHA256())
    digest.update(key.public_key().public_bytes(Encoding.DER,
                                                PublicFormat.SubjectPublicKeyInfo))
    return digest.finalize().hex()
