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
"""

from __future__ import annotations

from ledger.core.errors import LedgerError
from ledger.core.records import RegistryRecord, parse_time
from ledger.core.sampling import SamplingError, sample_size, share_interval
from ledger.verify.registry import Registry
from ledger.verify.report import CheckResult, VerificationReport

NAME = "inventories"


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
        reason = inventory_fault(item.record)
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
