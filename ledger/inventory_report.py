"""The inventories section of the custody and site reports: each stocktake the bundle's
registry records show (never from a database), with the estimate of a sampled one, and each
change of a site's custodian (after which a full inventory is due)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ledger.core.bundle import AuditBundle
from ledger.core.encoding import parse_record
from ledger.core.errors import LedgerError
from ledger.core.records import INVENTORY_TAKEN, SITE_CUSTODIAN, Holder, RegistryRecord


def _percent(basis_points: int) -> str:
    return f"{basis_points / 100:.2f} %"


def inventory_rows(bundle: AuditBundle, site: str | None, names: Mapping[str, str] | None
                   ) -> list[dict[str, Any]]:
    """The inventories in log order (of `site` only, if given), as the report shows them
    (records that do not parse are left out: the verifier fails them)."""
    from ledger.report import show_holder  # the report imports this module

    rows = []
    for item in bundle.registry:
        try:
            record = RegistryRecord.from_record(parse_record(item.record))
        except LedgerError:
            continue
        if record.kind not in (INVENTORY_TAKEN, SITE_CUSTODIAN) or site not in (
                None, record.get("site")):
            continue
        if record.kind == SITE_CUSTODIAN:
            custodian = record.get("custodian")
            rows.append({"leaf": item.leaf_index, "site": record.get("site"),
                         "started": record.time, "ended": "", "reader": "",
                         "mode": "custodian changed: a full inventory is due", "seed": "",
                         "counts": None, "share": "", "by": "nobody" if custodian is None
                         else show_holder(Holder("person", custodian), names)})
            continue
        sampled = record.get("mode") == "sampled"
        low, high = int(record.get("share_low_bp")), int(record.get("share_high_bp"))
        rows.append({
            "leaf": item.leaf_index, "site": record.get("site"), "reader": record.get("reader"),
            "started": record.get("started"), "ended": record.get("ended"),
            "mode": (f"sampled {record.get('sample')} of {record.get('population')} "
                     f"({_percent(int(record.get('confidence_bp')))} ± "
                     f"{_percent(int(record.get('margin_bp')))})") if sampled else "full",
            "seed": record.get("seed") or "",
            "counts": {name: record.get(name) for name in
                       ("expected", "found", "missing", "unexpected", "unknown")},
            "share": (f"{_percent(low)} to {_percent(high)}" if low != high
                      else _percent(low)),
            "by": show_holder(Holder("person", record.get("by")), names)})
    return rows
