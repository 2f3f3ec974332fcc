"""Verifier check of the corrections the log holds: each names an earlier event of its own log.

A wrong custody event is never edited: an `event-corrected` registry record, chained into the
asset's registry records (so the head map proves none is left out), names the event by leaf
index and hash and says why. The event itself stays as it was logged. For each correction the
bundle must hold the named event at that leaf, of the same agency and asset, logged before the
correction, with exactly the hash the correction names: an operator who edits the corrected
event, or points a correction at an event the log does not hold, fails here.

An `asset-disposed` record (why and to whom an item was disposed of) names its `dispose` event
the same way, and is held to the same test, and to that event being a disposal: the check
counts both.
"""

from __future__ import annotations

from ledger.core import hashing
from ledger.core.bundle import AuditBundle
from ledger.core.errors import LedgerError
from ledger.core.record_scan import read_event
from ledger.verify.registry import Logged, Registry
from ledger.verify.report import CheckResult, VerificationReport

NAME = "corrections"


def check_corrections(bundle: AuditBundle, registry: Registry | None,
                      report: VerificationReport) -> None:
    """Each correction the proven registry holds names an earlier event the bundle holds."""
    result = CheckResult(NAME)
    report.checks.append(result)
    if registry is None:
        result.passed = None
        result.detail = "no registry proven: corrections cannot be tied to the log"
        return
    result.items = len(registry.corrections) + len(registry.disposals)
    lines = {item.leaf_index: item.record for item in bundle.events}
    for what, records, action in (("correction", registry.corrections, None),
                                  ("disposal", registry.disposals, "dispose")):
        for correction in records:
            reason = _wrong(correction, lines, registry.agency, action)
            if reason is not None:
                result.fail(f"{what} at leaf {correction.leaf}: {reason}")


def _wrong(correction: Logged, lines: dict[int, bytes], agency: str,
           action: str | None) -> str | None:
    record = correction.record
    leaf = int(record.get("leaf"))
    if leaf >= correction.leaf:
        return f"expected an event logged before it, it names leaf {leaf}"
    line = lines.get(leaf)
    if line is None:
        return f"expected the corrected event at leaf {leaf} in the bundle, found none"
    try:
        event = read_event(line, f"event at leaf {leaf}")
    except LedgerError as exc:
        return str(exc)
    if (event.agency, event.asset) != (agency, record.get("asset")):
        return (f"expected an event of asset {record.get('asset')!r} of agency {agency!r} at "
                f"leaf {leaf}, found one of asset {event.asset!r} of agency {event.agency!r}")
    if action is not None and event.action != action:
        return f"expected a {action} event at leaf {leaf}, found a {event.action} event"
    found = hashing.domain_hash(hashing.CUSTODY_EVENT, line).hex()
    if found != record.get("event"):
        return (f"expected the event at leaf {leaf} to hash to {record.get('event')}, found "
                f"{found}: the {'disposed' if action else 'corrected'} event was changed")
    return None
