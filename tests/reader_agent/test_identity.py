"""The device key: made once with mode 0600, reloaded, refused when exposed or malformed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from reader_agent.errors import IdentityError
from reader_agent.identity import enrollment, load_key, load_or_create_key

from ledger.core.envelope import key_id, raw_public_key


def test_key_made_on_first_start_with_mode_0600_and_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "state" / "reader.key"
    first = load_or_create_key(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    again = load_or_create_key(path)
    assert raw_public_key(again.public_key()) == raw_public_key(first.public_key())
    assert [p.name for p in path.parent.iterdir()] == ["reader.key"]  # no temporary left


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_key_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "reader.key"
    load_or_create_key(path)
    path.chmod(mode)
    with pytest.raises(IdentityError, match="must not be readable") as caught:
        load_or_create_key(path)
    assert "PRIVATE" not in str(caught.value)


@pytest.mark.parametrize("content", [
    b"", b"garbage", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    b"\x00" * 5000,
])
def test_malformed_key_files_are_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "reader.key"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(IdentityError):
        load_key(path)


def test_a_key_of_another_type_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "reader.key"
    other = generate_private_key(SECP256R1())
    path.write_bytes(other.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    path.chmod(0o600)
    with pytest.raises(IdentityError, match="not an Ed25519 key"):
        load_key(path)


def test_a_symlinked_key_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real.key"
    load_or_create_key(real)
    (tmp_path / "link.key").symlink_to(real)
    with pytest.raises(IdentityError):
        load_key(tmp_path / "link.key")


def test_enrollment_holds_public_values_only(tmp_path: Path) -> None:
    key = load_or_create_key(tmp_path / "reader.key")
    record = enrollment(key, "desk-1", "force", "stores")
    assert record["fingerprint"] == key_id(key.public_key())
    assert bytes.fromhex(record["public_key_hex"]) == raw_public_key(key.public_key())
    private = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    assert private.hex() not in json.dumps(record)


def test_enroll_command_prints_the_record(write_config: Callable[..., Path]) -> None:
    config = write_config()
    result = subprocess.run(
        [sys.executable, "-m", "reader_agent", "enroll", "--config", str(config)],
        capture_output=True, timeout=60, check=True)
    record = json.loads(result.stdout)
    key = load_key(config.parent / "keys" / "reader.key")
    assert record["fingerprint"] == key_id(key.public_key())
    assert record["reader_id"] == "desk-1"
    assert b"PRIVATE" not in result.stdout + result.stderr
