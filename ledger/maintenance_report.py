"""The maintenance section of the custody report: the checks done on the asset and its times
out of service, as the bundle's registry records show them (never from a database)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ledger.core.bundle import AuditBundle
from ledger.core.encoding import parse_record
from ledger.core.errors import LedgerError
from ledger.core.records import (
    BACK_IN_SERVICE,
    MAINTENANCE_DONE,
    OUT_OF_SERVICE,
    Holder,
    RegistryRecord,
)

_SHOWN = {MAINTENANCE_DONE: "check", OUT_OF_SERVICE: "out of service",
          BACK_IN_SERVICE: "back in service"}


def maintenance_rows(bundle: AuditBundle, asset: str, names: Mapping[str, str] | None
                     ) -> list[dict[str, Any]]:
    """The asset's maintenance records in log order, as the report shows them (records that
    do not parse are left out: the verifier fails them)."""
    from ledger.report import show_holder  # the report imports this module

    rows = []
    for item in bundle.registry:
        try:
            record = RegistryRecord.from_record(parse_record(item.record))
        except LedgerError:
            continue
        if record.kind not in _SHOWN or record.get("asset") != asset:
            continue
        done = record.kind == MAINTENANCE_DONE
        rows.append({
            "leaf": item.leaf_index, "time": record.time, "what": _SHOWN[record.kind],
            "schedule": record.get("schedule") if done else "",
            "result": record.get("result").upper() if done else "",
            "next_due": (record.get("next_due") or "") if done else "",
            "reason": "" if done else record.get("reason"),
            "by": show_holder(Holder("person", record.get("by")), names)})
    return rows
