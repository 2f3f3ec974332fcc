"""The consortium admin's order actions and the subject fields each takes (no web3 here, so
the `kitledger` parser can list them without loading the chain client)."""

from __future__ import annotations

from typing import Final

SUBJECT_FIELDS: Final = {
    "register-log": ("agency", "log"),
    "grant-anchorer": ("agency", "account"),
    "revoke-anchorer": ("agency", "account"),
    "enroll": ("agency", "log", "account"),
    "rotate-anchorer": ("agency", "old", "new"),
    "rotate-admin": ("new",),
}
"""Each action and the fields its subject must have (no more, no fewer)."""
