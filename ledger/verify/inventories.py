"""Verifier check of the inventories the log holds: each one's figures hold together.

An `inventory-taken` record (`ledger.core.records`) is in the agency's own registry chain, so
every bundle carries them all and the head map proves none is left out. A bundle cannot show
which items sat on a shelf, but it can hold the operator to the arithmetic they signed: a full
count looks for every item expected, with no seed; a sampled one looks for exactly the sample
its population, confidence and margin call for (`ledger.core.sampling.sample_size`), drawn
from a logged seed; found and missing make up what was looked for; the session ends after it
starts and before it is logged; and the share present is the interval the found count gives
(`ledger.core.sampling.share_interval`). An operator who edits a count after the fact, or
logs a smaller sample than promised, fails here. Whether the sample is the one the seed draws
is for `kitledger inventory redraw`, with the population list the agency hands over.

The reader that took it must be one the registry had registered before the inventory was
logged, not revoked by the time the session started, and either a handheld or a reader of the
inventory's own site (as the API requires when it opens one): an inventory credited to a
reader the log never knew, or to another site's desk, fails.
"""

from __future__ import annotations

from ledger.core.errors import LedgerError
from ledger.core.records import RegistryRecord, parse_time
from ledger.core.sampling import SamplingError, sample_size, share_interval
from ledger.verify.registry import Logged, Registry
from ledger.verify.report import CheckResult, VerificationReport

NAME = "inventories"
HANDHELD_ROLE = "handheld"
"""The reader role that may count any site of its agency (`api.models.registry.ReaderRole`)."""


def check_inventories(registry: Registry | None, report: VerificationReport) -> None:
    """Each inventory the proven registry holds adds up."""
    result = CheckResult(NAME)
    report.checks.append(result)
    if registry is None:
        result.passed = None
        result.detail = "no registry proven: no inventories to check"
        return
    if not registry.inventories:
        result.passed = None
        result.detail = "the log holds no inventory"
        return
    result.items = len(registry.inventories)
    for item in registry.inventories:
        reason = inventory_fault(item.record) or reader_fault(registry, item)
        if reason is not None:
            result.fail(f"inventory at leaf {item.leaf} (site {item.record.get('site')!r}): "
                        f"{reason}")


def inventory_fault(record: RegistryRecord) -> str | None:
    """What is wrong with the figures of the `inventory-taken` record, or None."""
    population, sample = int(record.get("population")), int(record.get("sample"))
    confidence, margin = int(record.get("confidence_bp")), int(record.get("margin_bp"))
    expected, found = int(record.get("expected")), int(record.get("found"))
    try:
        if parse_time(record.get("started")) > parse_time(record.get("ended")):
            return "expected the session to end after it started"
        if parse_time(record.get("ended")) > parse_time(record.time):
            return "expected the session to end before it was logged"
        if record.get("mode") == "full":
            if (record.get("seed"), confidence, margin, sample) != (None, 0, 0, population):
                return ("expected a full count to look for every item, with no seed, "
                        f"confidence or margin; found sample {sample} of {population}")
        else:
            wanted = sample_size(population, confidence, margin)
            if record.get("seed") is None or sample != wanted:
                return (f"expected a seed and a sample of {wanted} for {population} items at "
                        f"{confidence} and {margin} basis points, found {sample}")
        if expected != sample or found + int(record.get("missing")) != expected:
            return (f"expected found + missing = looked for = sample ({sample}), found "
                    f"{found} + {record.get('missing')} of {expected}")
        interval = share_interval(found, sample, population, confidence)
    except (LedgerError, SamplingError) as exc:
        return str(exc)
    shown = (int(record.get("share_low_bp")), int(record.get("share_high_bp")))
    if shown != (interval.low_bp, interval.high_bp):
        return (f"expected the share present {interval.low_bp}..{interval.high_bp} basis "
                f"points for {found} of {sample}, found {shown[0]}..{shown[1]}")
    return None


def reader_fault(registry: Registry, item: Logged) -> str | None:
    """What is wrong with the reader the inventory at `item` names, or None."""
    name, site = item.record.get("reader"), item.record.get("site")
    entry = registry.by_reader.get(str(name))
    if entry is None or not registry.known(entry.leaf, item.leaf):
        return f"expected reader {name!r} registered in the log before the inventory, found none"
    if (entry.revoked is not None and entry.revoked_leaf is not None
            and registry.known(entry.revoked_leaf, item.leaf)
            and parse_time(entry.revoked) <= parse_time(item.record.get("started"))):
        return f"expected reader {name!r} in service when the session started, found it revoked"
    if entry.role != HANDHELD_ROLE and entry.site != site:
        return (f"expected a handheld or a reader of site {site!r}, found reader {name!r} of "
                f"site {entry.site!r} ({entry.role})")
    return None
