"""Reveals: the openings of person commitments that let an entitled viewer see who they name.

The log names a person only by `commit(PERSON, person id, salt)`. A reveals file carries, per
commitment, the person id and the salt that open it, and the name the agency knows that person
by. Every reveal is checked with `commitments.opens` before any of it is used: a reveal that
does not open its commitment makes the whole file unusable, so a report never shows a person it
could not prove. The commitment binds the person id, not the name: the report shows the name
with the proven id beside it, so that the id can be checked against the agency's roster.

    {"format":"kitledger-reveals","v":1,"reveals":[
      {"commitment":"<64 hex>","person":"<person id>","salt":"<hex>","name":"<name>"}, ...]}
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

from ledger.core.bounds import HASH_HEX_PATTERN, MAX_ID_CHARS
from ledger.core.commitments import MAX_SALT_BYTES, MIN_SALT_BYTES, PERSON, opens
from ledger.core.errors import LedgerError

REVEALS_FORMAT: Final = "kitledger-reveals"
REVEALS_VERSION: Final = 1
MAX_REVEALS_BYTES: Final = 16 * 1024 * 1024
"""The reveals of a whole force's people are a few megabytes."""
MAX_REVEALS: Final = 100_000
MAX_NAME_CHARS: Final = 256


_HEX64: Final = re.compile(HASH_HEX_PATTERN)


class RevealError(LedgerError):
    """A reveals file that is malformed, or holds a reveal that does not open its commitment."""


def _field(item: dict[str, Any], name: str, where: str) -> str:
    value = item.get(name)
    if not isinstance(value, str) or not value:
        raise RevealError(f"{where}: field {name!r} must be a non-empty string")
    return value


def read_reveals(data: bytes) -> dict[str, str]:
    """Each commitment with what the report shows for it: `NAME, person id ID`. Refuses the whole
    file if any reveal does not open its commitment."""
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise RevealError(f"reveals file is not JSON: {exc}") from None
    if not isinstance(document, dict) or (document.get("format"), document.get("v")) != (
            REVEALS_FORMAT, REVEALS_VERSION) or set(document) != {"format", "v", "reveals"}:
        raise RevealError(f"expected a {REVEALS_FORMAT} version {REVEALS_VERSION} document "
                          "(format, v, reveals)")
    items = document["reveals"]
    if not isinstance(items, list) or len(items) > MAX_REVEALS:
        raise RevealError(f"reveals must be a list of at most {MAX_REVEALS} reveals")
    shown: dict[str, str] = {}
    for position, item in enumerate(items):
        where = f"reveal {position}"
        if not isinstance(item, dict) or set(item) != {"commitment", "person", "salt", "name"}:
            raise RevealError(f"{where}: expected commitment, person, salt and name")
        commitment = _field(item, "commitment", where)
        if not _HEX64.fullmatch(commitment):
            raise RevealError(f"{where}: commitment must be 64 lower-case hex digits")
        person, name = _field(item, "person", where), _field(item, "name", where)
        if len(person) > MAX_ID_CHARS or len(name) > MAX_NAME_CHARS or not name.isprintable():
            raise RevealError(f"{where}: person id or name too long or not printable")
        try:
            salt = bytes.fromhex(_field(item, "salt", where))
        except ValueError:
            raise RevealError(f"{where}: salt must be hex") from None
        if not MIN_SALT_BYTES <= len(salt) <= MAX_SALT_BYTES:
            raise RevealError(f"{where}: salt must be {MIN_SALT_BYTES}-{MAX_SALT_BYTES} bytes")
        if commitment in shown:
            raise RevealError(f"{where}: commitment {commitment[:16]}… revealed twice")
        if not opens(commitment, PERSON, person, salt):
            raise RevealError(f"{where}: person {person!r} and its salt do not open commitment "
                              f"{commitment[:16]}…")
        shown[commitment] = f"{name}, person id {person}"
    return shown
