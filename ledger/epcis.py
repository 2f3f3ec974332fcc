"""EPCIS 2.0 JSON-LD export of custody events, as GS1 ObjectEvents.

Mapping (docs/audit-bundle.md has the table): the asset's EPC URI (GIAI/GRAI/SGTIN/SSCC) in
`epcList`, taken from the tag its own events' signed reads name (`asset_epc_uris`: custody
events name assets by registry id; the bundle's observations carry the tag's EPC);
the action's CBV business step and disposition; the reader as read point and the store (or the
receiving holder's location) as business location; `possessing_party` source and destination
from the event's `from`/`to` holders, and `owning_party` when ownership begins (register) or
ends (dispose). People appear only as their salted commitments, never by name: an EPCIS
document leaves the agency. Each event carries the ledger's event hash as an extension
(`kl:custodyEventHash`) and an `eventID` computed with the CBV 2.0 event-hash scheme (`ni:///`
SHA-256 over the pre-hash string, see `cbv_event_hash`), equal to GS1's reference generator's.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ledger.core import hashing
from ledger.core.errors import LedgerError
from ledger.core.record_scan import read_observation
from ledger.core.records import CustodyEvent, Holder, event_hash

EPCIS_CONTEXT: Final = "https://ref.gs1.org/standards/epcis/epcis-context.jsonld"
KITLEDGER_NS: Final = "https://kitledger.example/ns/epcis/"
CBV: Final = "https://ref.gs1.org/cbv/"
MAX_EXPORT_EVENTS: Final = 100_000
"""Events in one EPCIS document: large exports are paged, as EPCIS query results are."""

BIZ_STEPS: Final = {
    "register": ("commissioning", "active", "ADD"),
    "check_out": ("departing", "in_progress", "OBSERVE"),
    "check_in": ("receiving", "available", "OBSERVE"),
    "transfer": ("accepting", "in_progress", "OBSERVE"),
    "loan_out": ("shipping", "in_transit", "OBSERVE"),
    "loan_return": ("receiving", "returned", "OBSERVE"),
    "dispose": ("destroying", "destroyed", "DELETE"),
}
"""Custody action -> (CBV business step, CBV disposition, EPCIS action)."""


DIGITAL_LINK: Final = "https://id.gs1.org"
"""The canonical GS1 Digital Link host the CBV event hash writes EPCs under."""
_PURE_IDENTITY: Final = re.compile(r"urn:epc:id:(sgtin|sscc|grai|giai):(\d+)\.(\d*)(?:\.(\d+))?")
"""The pure-identity URIs our decoder makes (`reader_agent.epc`): all-digit fields (a GRAI's
asset type is empty under a 12-digit company prefix)."""


class EpcisExportError(ValueError):
    """An export that would not be a valid EPCIS document (too many events)."""


ERROR_REASON: Final = "incorrect_data"
"""CBV 2.0's error reason for an event that happened but was recorded wrongly (the custody
record's own words are in `kl:reason`)."""


@dataclass(frozen=True, slots=True)
class Correction:
    """A logged correction of one event: when, why, and its own leaf in the log."""

    time: str
    reason: str
    leaf: int


def party_uri(holder: Holder) -> str:
    """The URI naming a holder: a location, an agency, or a person by commitment only."""
    return f"urn:kitledger:{holder.kind}:{holder.ref}"


BADGE_KIND: Final = "badge"
"""Observation kind of a person's badge read: never the asset's own tag."""


def gs1_uri(epc_hex: str) -> str | None:
    """The GS1 pure-identity URI of an EPC in hex, or None when it is no GS1 encoding (a
    chip-default `E2...` EPC, a 96-bit value that breaks its scheme's rules, odd hex)."""
    from reader_agent.epc import decode_epc

    try:
        identity = decode_epc(bytes.fromhex(epc_hex))
    except ValueError:  # not hex, or longer than any EPC (EpcError)
        return None
    return identity.uri if identity.gs1 else None


def asset_epc_uris(observation_lines: Sequence[bytes],
                   events: Iterable[CustodyEvent]) -> dict[str, str]:
    """Asset id -> the GS1 URI of the tag its events' reads name (badge reads aside). An asset
    whose cited reads name two different tags, or a tag with no GS1 encoding, gets none: the
    export then names it by its registry id rather than guess. Lines that do not parse are
    skipped here; `kitledger verify` is what judges them."""
    reads: dict[bytes, str] = {}
    for position, line in enumerate(observation_lines):
        try:
            _, read, _ = read_observation(line, f"observation {position}")
        except LedgerError:
            continue
        if read.kind != BADGE_KIND:
            reads[hashing.domain_hash(hashing.ENVELOPE, line)] = read.epc
    tags: dict[str, set[str]] = {}
    for event in events:
        for reference in event.observations:
            epc = reads.get(bytes.fromhex(reference))
            if epc is not None:
                tags.setdefault(event.asset, set()).add(epc)
    found = {}
    for asset, epcs in tags.items():
        uri = gs1_uri(next(iter(epcs))) if len(epcs) == 1 else None
        if uri is not None:
            found[asset] = uri
    return found


def asset_uri(asset: str, epcs: Mapping[str, str] | None = None) -> str:
    """The asset's EPC pure-identity URI when it has one (the asset id itself, or its tag's
    URI in `epcs`), else a kitledger URN."""
    if asset.startswith("urn:epc:id:"):
        return asset
    known = (epcs or {}).get(asset)
    return known if known is not None else f"urn:kitledger:asset:{asset}"


def reader_uri(agency: str, reader: str) -> str:
    return f"urn:kitledger:reader:{agency}:{reader}"


def _parties(event: CustodyEvent) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    sources, destinations = [], []
    if event.holder_from is not None:
        sources.append({"type": "possessing_party", "source": party_uri(event.holder_from)})
    if event.holder_to is not None:
        destinations.append({"type": "possessing_party",
                             "destination": party_uri(event.holder_to)})
    owner = f"urn:kitledger:agency:{event.agency}"
    if event.action == "register":
        destinations.append({"type": "owning_party", "destination": owner})
    if event.action == "dispose":
        sources.append({"type": "owning_party", "source": owner})
    return sources, destinations


def _check_digit(digits: str) -> str:
    """The GS1 mod-10 check digit: weights 3, 1, 3, ... from the rightmost digit."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return str(-total % 10)


def digital_link(uri: str) -> str:
    """The canonical GS1 Digital Link URI of an SGTIN/SSCC/GRAI/GIAI pure-identity URI (as the
    CBV event hash writes EPCs); any other URI unchanged. Our URIs' fields are all digits, so
    no percent-encoding is needed."""
    match = _PURE_IDENTITY.fullmatch(uri)
    if match is None:
        return uri
    scheme, prefix, reference, serial = match.groups()
    if not reference:  # a GRAI under a 12-digit prefix: the reference generator keeps the URN
        return uri
    if scheme == "giai" and serial is None:
        return f"{DIGITAL_LINK}/8004/{prefix}{reference}"
    if scheme == "sscc" and serial is None:
        key = reference[:1] + prefix + reference[1:]
        return f"{DIGITAL_LINK}/00/{key}{_check_digit(key)}"
    if scheme == "sgtin" and serial is not None:
        key = reference[:1] + prefix + reference[1:]
        return f"{DIGITAL_LINK}/01/{key}{_check_digit(key)}/21/{serial}"
    if scheme == "grai" and serial is not None:
        key = "0" + prefix + reference
        return f"{DIGITAL_LINK}/8003/{key}{_check_digit(key)}{serial}"
    return uri


def cbv_event_hash(epcis_event: Mapping[str, Any]) -> str:
    """`ni:///sha-256;<hex>?ver=CBV2.0` over the CBV 2.0 pre-hash string of an ObjectEvent.

    The pre-hash concatenates, with no separators, `eventType=`, `eventTime=` (UTC, ms),
    `eventTimeZoneOffset=`, `epcList` + sorted `epc=` values, `action=`, `bizStep=` and
    `disposition=` as full CBV web-vocabulary URIs, `readPoint` + `id=`, `bizLocation` + `id=`,
    then, sorted together as the reference generator does, `sourceList` / `destinationList` +
    sorted `type=<CBV SDT URI>source=` pairs and the extension fields as `{namespace}name=value`.
    EPC URIs are hashed as GS1 Digital Link URIs (`digital_link`), as the CBV requires: the hash
    equals GS1's reference generator's (`epcis-event-hash-generator`, run in
    tests/ledger/verify/test_epcis.py)."""
    e = epcis_event
    parts = [f"eventType={e['type']}", f"eventTime={e['eventTime']}",
             f"eventTimeZoneOffset={e['eventTimeZoneOffset']}"]
    if e.get("epcList"):
        parts.append("epcList" + "".join(sorted(f"epc={digital_link(epc)}"
                                                for epc in e["epcList"])))
    parts.append(f"action={e['action']}")
    parts.append(f"bizStep={CBV}BizStep-{e['bizStep']}")
    parts.append(f"disposition={CBV}Disp-{e['disposition']}")
    for name in ("readPoint", "bizLocation"):
        if name in e:
            parts.append(f"{name}id={e[name]['id']}")
    # GS1's reference generator hashes the source and destination lists with the remaining
    # elements (extensions), all sorted as whole strings, not in the CBV's field order: its
    # hashes are the ones other EPCIS systems compute, so ours follow it.
    remaining = [f"{{{KITLEDGER_NS}}}{k[3:]}={v}" for k, v in e.items() if k.startswith("kl:")]
    for name, key in (("sourceList", "source"), ("destinationList", "destination")):
        if e.get(name):
            items = sorted(f"type={CBV}SDT-{i['type']}{key}={i[key]}" for i in e[name])
            remaining.append(name + "".join(items))
    parts.extend(sorted(remaining))
    digest = hashlib.sha256("".join(parts).encode("utf-8")).hexdigest()
    return f"ni:///sha-256;{digest}?ver=CBV2.0"


def object_event(event: CustodyEvent, site: str | None = None,
                 epcs: Mapping[str, str] | None = None) -> dict[str, Any]:
    """One custody event as an EPCIS 2.0 ObjectEvent (without `@context`: the document's);
    `epcs` maps asset ids to their tags' GS1 URIs."""
    step, disposition, action = BIZ_STEPS[event.action]
    sources, destinations = _parties(event)
    result: dict[str, Any] = {
        "type": "ObjectEvent",
        "eventTime": event.time,
        "eventTimeZoneOffset": "+00:00",
        "epcList": [asset_uri(event.asset, epcs)],
        "action": action,
        "bizStep": step,
        "disposition": disposition,
    }
    if event.reader is not None:
        result["readPoint"] = {"id": reader_uri(event.agency, event.reader)}
    location = site or next((h.ref for h in (event.holder_to, event.holder_from)
                             if h is not None and h.kind == "location"), None)
    if location is not None:
        result["bizLocation"] = {"id": f"urn:kitledger:location:{location}"}
    if sources:
        result["sourceList"] = sources
    if destinations:
        result["destinationList"] = destinations
    if event.manual is not None:
        result["kl:manualEntry"] = event.manual
    result["kl:custodyEventHash"] = event_hash(event).hex()
    result["eventID"] = cbv_event_hash(result)
    return result


def error_declaration(declared: dict[str, Any], correction: Correction) -> dict[str, Any]:
    """The copy of the ObjectEvent `declared` that EPCIS 2.0 publishes to declare it wrong:
    the same event (and so the same eventID) with an `errorDeclaration` saying when and why,
    and the correction's leaf in the log."""
    return {**declared, "errorDeclaration": {
        "declarationTime": correction.time, "reason": ERROR_REASON,
        "kl:reason": correction.reason, "kl:correctionLeaf": correction.leaf}}


def epcis_document(events: Iterable[CustodyEvent], created: str,
                   sites: Mapping[str, str] | None = None,
                   epcs: Mapping[str, str] | None = None,
                   corrections: Mapping[str, Sequence[Correction]] | None = None
                   ) -> dict[str, Any]:
    """An EPCISDocument holding the events as ObjectEvents; `sites` maps reader -> site and
    `epcs` asset id -> GS1 URI (`asset_epc_uris`); each event `corrections` names (by its
    custody event hash) is followed by its error declaration, one per correction."""
    listed = list(events)
    if len(listed) > MAX_EXPORT_EVENTS:
        raise EpcisExportError(f"{len(listed)} events exceed {MAX_EXPORT_EVENTS} per document")
    sites = sites or {}
    return {
        "@context": [EPCIS_CONTEXT, {"kl": KITLEDGER_NS}],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": created,
        "epcisBody": {"eventList": [
            item for e in listed
            for item in _with_declarations(object_event(e, sites.get(e.reader or ""), epcs),
                                           (corrections or {}).get(event_hash(e).hex(), ()))
        ]},
    }


def _with_declarations(declared: dict[str, Any], corrections: Sequence[Correction]
                       ) -> list[dict[str, Any]]:
    return [declared, *(error_declaration(declared, c) for c in corrections)]
