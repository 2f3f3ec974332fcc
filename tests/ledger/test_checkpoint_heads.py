"""Checkpoint records with and without a head map root: version 1 stays byte for byte, version 2
carries `heads` and its note extension line (in the C2SP note the log signs and witnesses
cosign), and neither parses as the other."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.core import note
from ledger.core.checkpoint import Checkpoint, sign_checkpoint, verify_checkpoint
from ledger.core.envelope import key_id
from ledger.core.errors import SchemaError

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
LOG = key_id(KEY.public_key())
TIME = "2026-03-01T10:00:00.000Z"


def test_a_checkpoint_without_heads_is_version_1_unchanged() -> None:
    point = Checkpoint(LOG, 5, bytes(32), TIME)
    assert point.to_record() == {"log": LOG, "root": "00" * 32, "size": 5, "time": TIME,
                                 "type": "checkpoint", "v": 1}
    assert point.note_extensions() == ()
    assert verify_checkpoint(sign_checkpoint(point, KEY), KEY.public_key()) == point


def test_a_checkpoint_with_heads_is_version_2_and_round_trips() -> None:
    point = Checkpoint(LOG, 5, bytes(32), TIME, heads=b"\x11" * 32)
    record = point.to_record()
    assert record["v"] == 2 and record["heads"] == "11" * 32
    assert point.note_extensions() == ("heads " + "11" * 32,)
    assert verify_checkpoint(sign_checkpoint(point, KEY), KEY.public_key()) == point


def test_the_note_witnesses_cosign_ends_with_the_heads_line() -> None:
    with_heads = Checkpoint(LOG, 5, bytes(32), TIME, heads=b"\x11" * 32)
    without = Checkpoint(LOG, 5, bytes(32), TIME)
    body = f"kitledger/{LOG}\n5\n{'A' * 43}=\n"
    assert without.note_text() == body
    assert with_heads.note_text() == body + "heads " + "11" * 32 + "\n"
    parsed = note.parse_checkpoint_text(with_heads.note_text())
    assert (parsed.size, parsed.root, parsed.extensions) == (5, bytes(32), ("heads " + "11" * 32,))


@pytest.mark.parametrize("change", [
    {"v": 1},                     # a heads field in a version 1 record
    {"heads": None},              # version 2 without a root
    {"heads": "11" * 31},         # a short root
    {"v": 3},
])
def test_malformed_versions_are_refused(change: dict[str, object]) -> None:
    record = {**Checkpoint(LOG, 5, bytes(32), TIME, heads=b"\x11" * 32).to_record(), **change}
    with pytest.raises(SchemaError):
        Checkpoint.from_record(record)


def test_version_2_without_the_field_is_refused() -> None:
    record = Checkpoint(LOG, 5, bytes(32), TIME).to_record() | {"v": 2}
    with pytest.raises(SchemaError):
        Checkpoint.from_record(record)
