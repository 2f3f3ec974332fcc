"""The reader an `inventory-taken` record credits is held to the registry: registered before the
record, in service when the session started, and a handheld or a reader of the counted site.
(The corpus variant `inventory-by-a-stranger` runs a reader the log never knew through the
`kitledger` command.)"""

from __future__ import annotations

import pytest

from ledger.core.records import GENESIS_PREV, INVENTORY_TAKEN, RegistryRecord
from ledger.verify.inventories import reader_fault
from ledger.verify.registry import Logged, ReaderEntry, Registry
from tests.vectors.bundle_story import inventory_fields


def _registry(
    role: str, site: str, *, registered_leaf: int = 3, revoked: str | None = None
) -> Registry:
    registry = Registry(agency="met-police", opened_leaf=0, backfill_end=0)
    registry.by_reader["return-desk-1"] = ReaderEntry(
        "return-desk-1",
        site,
        role,
        "kid",
        b"\0" * 32,
        "2025-12-01T00:00:00.000Z",
        registered_leaf,
        revoked,
        None if revoked is None else registered_leaf + 1,
    )
    return registry


def _inventory(leaf: int = 10) -> Logged:
    fields = inventory_fields()
    record = RegistryRecord.make(
        INVENTORY_TAKEN,
        agency="met-police",
        seq=1,
        prev=GENESIS_PREV,
        time="2026-01-15T11:30:00.000Z",
        **fields,
    )
    return Logged(record, leaf)


def _site() -> str:
    return str(inventory_fields()["site"])


def test_a_desk_of_the_counted_site_registered_before_passes() -> None:
    assert reader_fault(_registry("return_desk", _site()), _inventory()) is None


def test_a_handheld_may_count_any_site_of_its_agency() -> None:
    assert reader_fault(_registry("handheld", "some-other-store"), _inventory()) is None


@pytest.mark.parametrize(
    ("registry", "phrase"),
    [
        (_registry("return_desk", "some-other-store"), "found reader 'return-desk-1' of site"),
        (_registry("return_desk", "x", registered_leaf=12), "registered in the log before"),
        (_registry("handheld", "x", revoked="2026-01-15T10:00:00.000Z"), "found it revoked"),
    ],
    ids=["another-sites-desk", "registered-after", "revoked-before-it-started"],
)
def test_a_reader_that_could_not_have_taken_it_fails(registry: Registry, phrase: str) -> None:
    fault = reader_fault(registry, _inventory())
    assert fault is not None and phrase in fault


def test_a_reader_revoked_after_the_session_started_still_counts() -> None:
    late = _registry("handheld", "x", revoked="2026-01-15T11:10:00.000Z")
    assert reader_fault(late, _inventory()) is None
