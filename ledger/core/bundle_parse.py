"""Strict reading of audit bundles (format in `ledger.core.bundle`, docs/audit-bundle.md).

Refused before anything is hashed: a file over MAX_BUNDLE_BYTES, a header with another format
or version, counts over the MAX_* limits or not matching the number of lines, a line that is not
canonical JSON, a missing final newline, anything after the end line. Parsing says nothing about
whether signatures and proofs hold: that is `ledger.verify`.
"""

from __future__ import annotations

import re
from typing import Any, Final

from ledger.core.bounds import HASH_HEX_CHARS
from ledger.core.bundle import (
    BUNDLE_FORMAT,
    MAX_BUNDLE_BYTES,
    MAX_CHECKPOINTS,
    MAX_COSIGNATURES,
    MAX_DEVICES,
    MAX_EVENTS,
    MAX_HEAD_LINES,
    MAX_OBSERVATIONS,
    MAX_REGISTRY,
    READABLE_VERSIONS,
    REGISTRY_VERSION,
    SCOPE_KINDS,
    AnchorProof,
    AuditBundle,
    BundleCheckpoint,
    BundleError,
    BundleEvent,
    ChainInfo,
    ConsistencyStep,
    DeviceRegistration,
    FingerprintHasher,
    Scope,
)
from ledger.core.checkpoint import MAX_AGENCY_ID_CHARS
from ledger.core.encoding import MAX_RECORD_BYTES, MAX_SAFE_INTEGER, parse_record
from ledger.core.envelope import Envelope
from ledger.core.errors import EncodingError, LedgerError
from ledger.core.heads import HeadEntry, HeadProof
from ledger.core.merkle import MAX_PROOF_NODES
from ledger.core.note import NoteError, parse_signature_line
from ledger.core.records import parse_time

_LIMITS: Final = {"devices": MAX_DEVICES, "checkpoints": MAX_CHECKPOINTS,
                  "consistency": MAX_CHECKPOINTS, "observations": MAX_OBSERVATIONS,
                  "events": MAX_EVENTS}
_LIMITS_V2: Final = {**_LIMITS, "heads": MAX_HEAD_LINES}
_LIMITS_V3: Final = {**_LIMITS_V2, "registry": MAX_REGISTRY}
_LIMITS_OF: Final = {1: _LIMITS, 2: _LIMITS_V2, 3: _LIMITS_V3}
_HEX64 = re.compile(f"[0-9a-f]{{{HASH_HEX_CHARS}}}")
_HEX = re.compile(r"(?:[0-9a-f]{2})*")
_NODE_STEP: Final = HASH_HEX_CHARS + len('"",')
"""Bytes per node in a matched proof path: the quoted hex and the comma after it."""
_CONTRACT = re.compile(r"0x[0-9a-fA-F]{40}")
_AGENCY = re.compile(rf"[\x21-\x7e]{{1,{MAX_AGENCY_ID_CHARS}}}")
"""An agency id as `ledger.core.checkpoint.chain_agency_id` accepts it."""

_INDEX: Final = f"(0|[1-9][0-9]{{0,{len(str(MAX_SAFE_INTEGER)) - 1}}})"
_NODE: Final = f'"[0-9a-f]{{{HASH_HEX_CHARS}}}"'
_INCLUSION_LINE = re.compile((
    rf'\{{"leaf":{_INDEX},"path":\[((?:{_NODE}(?:,{_NODE})*)?)\],'
    rf'"size":{_INDEX},"type":"inclusion"\}}'
).encode("ascii"))
"""The one canonical spelling of an inclusion line: matching it is the strict parse, about ten
times faster than decoding and re-encoding, and these lines are a third of a large bundle."""


def _inclusion(line: bytes, where: str) -> tuple[int, int, tuple[bytes, ...]]:
    match = _INCLUSION_LINE.fullmatch(line)
    if match is None:  # take the general path for its precise error message
        proof = parse_line(line, where)
        _exact(proof, {"type", "leaf", "size", "path"}, "inclusion", where)
        return _get(proof, "leaf", int, where), _get(proof, "size", int, where), _path(
            proof["path"], where)
    leaf, size = int(match[1]), int(match[3])
    if leaf > MAX_SAFE_INTEGER or size > MAX_SAFE_INTEGER:
        raise BundleError(f"{where}: leaf or size out of range")
    nodes = match[2]
    if len(nodes) > MAX_PROOF_NODES * _NODE_STEP:
        raise BundleError(f"{where}: proof path longer than {MAX_PROOF_NODES} nodes")
    path = tuple(bytes.fromhex(nodes[i + 1:i + 1 + HASH_HEX_CHARS].decode())
                 for i in range(0, len(nodes), _NODE_STEP))
    return leaf, size, path


def parse_line(line: bytes, where: str) -> dict[str, Any]:
    """One line as a JSON object, refused unless it is its own canonical form: exactly what
    `parse_record` accepts, with its reason prefixed by `where`."""
    if len(line) > MAX_RECORD_BYTES:
        raise BundleError(f"{where}: line of {len(line)} bytes exceeds {MAX_RECORD_BYTES}")
    try:
        return parse_record(line)
    except EncodingError as exc:
        raise BundleError(f"{where}: {exc}") from None


def _get(record: dict[str, Any], name: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = record.get(name)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise BundleError(f"{where}: field {name!r} has the wrong type")
    if isinstance(value, int) and not 0 <= value <= MAX_SAFE_INTEGER:
        raise BundleError(f"{where}: field {name!r} out of range")
    return value


def _exact(record: dict[str, Any], names: set[str], kind: str, where: str) -> None:
    if set(record) != names or record.get("type", kind) != kind:
        raise BundleError(f"{where}: expected a {kind!r} line with fields {sorted(names)}")


def _hex(value: Any, where: str, exact: int | None = None) -> bytes:
    if not isinstance(value, str) or not _HEX.fullmatch(value):
        raise BundleError(f"{where}: expected lower-case hex")
    if exact is not None and len(value) != 2 * exact:
        raise BundleError(f"{where}: expected {exact} bytes of hex")
    return bytes.fromhex(value)


def _path(value: Any, where: str) -> tuple[bytes, ...]:
    if not isinstance(value, list) or len(value) > MAX_PROOF_NODES:
        raise BundleError(f"{where}: proof path must be a list of at most {MAX_PROOF_NODES}")
    if not all(isinstance(v, str) and _HEX64.fullmatch(v) for v in value):
        raise BundleError(f"{where}: proof nodes must be 64 hex characters")
    return tuple(bytes.fromhex(v) for v in value)


def _cosignatures(record: dict[str, Any], version: int, where: str) -> tuple[str, ...]:
    """The optional cosignature lines of a version 2 checkpoint line, each a C2SP signature
    line; whether any verifies is the verifier's question."""
    if "cosignatures" not in record:
        return ()
    lines = record["cosignatures"]
    if version < 2:
        raise BundleError(f"{where}: cosignatures need bundle version 2")
    if not isinstance(lines, list) or not 0 < len(lines) <= MAX_COSIGNATURES:
        raise BundleError(f"{where}: cosignatures must be a list of 1 to {MAX_COSIGNATURES}")
    for line in lines:
        if not isinstance(line, str) or len(line) > 1024:
            raise BundleError(f"{where}: a cosignature must be one signature line")
        try:
            parse_signature_line(line)
        except NoteError as exc:
            raise BundleError(f"{where}: cosignature: {exc}") from None
    return tuple(lines)


def _header(record: dict[str, Any]) -> tuple[dict[str, int], Scope, ChainInfo | None]:
    where = "line 1 (header)"
    if record.get("format") != BUNDLE_FORMAT or record.get("type") != "audit-bundle":
        raise BundleError(f"{where}: not a {BUNDLE_FORMAT} file")
    version = record.get("v")
    if type(version) is not int or version not in READABLE_VERSIONS:
        raise BundleError(f"{where}: bundle version {version!r:.20}, "
                          f"this verifier reads {sorted(READABLE_VERSIONS)}")
    _exact(record, {"type", "format", "v", "created", "scope", "log", "chain", "counts"},
           "audit-bundle", where)
    counts = _get(record, "counts", dict, where)
    limits = _LIMITS_OF[version]
    if set(counts) != set(limits):
        raise BundleError(f"{where}: counts must name {sorted(limits)}")
    counts = {"heads": 0, "registry": 0, **counts}
    for name, limit in limits.items():
        if _get(counts, name, int, where) > limit:
            raise BundleError(f"{where}: {counts[name]} {name} exceeds the limit {limit}")
    scope = _get(record, "scope", dict, where)
    named = {"kind", "assets", "site", "start", "end"} | ({"case"} if "case" in scope else set())
    if set(scope) != named or scope["kind"] not in SCOPE_KINDS:
        raise BundleError(f"{where}: malformed scope")
    if (scope["kind"] == "case") != ("case" in scope):
        raise BundleError(f"{where}: a case scope, and only one, names its case")
    assets = _get(scope, "assets", list, where)
    if len(assets) > MAX_EVENTS or not all(isinstance(a, str) for a in assets):
        raise BundleError(f"{where}: scope assets must be a list of ids")
    log = record["log"]
    if not isinstance(log, dict) or set(log) != {"id", "public_key"}:
        raise BundleError(f"{where}: log must name its id and public key")
    for name in ("site", "start", "end"):
        _get(scope, name, (str, type(None)), where)
    try:  # the record format's one spelling of a time; the verifier orders it (`header`)
        parse_time(_get(record, "created", str, where))
    except LedgerError as exc:
        raise BundleError(f"{where}: created: {exc}") from None
    _get(log, "id", str, where)
    parsed_scope = Scope(scope["kind"], tuple(assets), scope["site"], scope["start"], scope["end"],
                         _get(scope, "case", str, where) if "case" in scope else None)
    chain = record["chain"]
    info = None
    if chain is not None:
        if not isinstance(chain, dict) or set(chain) != {"chain_id", "contract", "agency"}:
            raise BundleError(f"{where}: malformed chain section")
        info = ChainInfo(_get(chain, "chain_id", int, where), _get(chain, "contract", str, where),
                         _get(chain, "agency", str, where))
        if not _CONTRACT.fullmatch(info.contract):
            raise BundleError(f"{where}: chain contract must be 0x and 40 hex digits")
        if not _AGENCY.fullmatch(info.agency):
            raise BundleError(f"{where}: chain agency must be 1..{MAX_AGENCY_ID_CHARS} "
                              "printable ASCII characters")
    return counts, parsed_scope, info


def _device(record: dict[str, Any], where: str) -> DeviceRegistration:
    _exact(record, {"type", "reader", "agency", "kid", "public_key", "registered", "revoked"},
           "device", where)
    revoked = _get(record, "revoked", (str, type(None)), where)
    return DeviceRegistration(
        _get(record, "reader", str, where), _get(record, "agency", str, where),
        _get(record, "kid", str, where), _hex(record["public_key"], where, 32),
        _get(record, "registered", str, where), revoked)


def _anchor(value: Any, where: str) -> AnchorProof | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"tx", "block", "block_hash", "anchorer",
                                                     "log"}:
        raise BundleError(f"{where}: malformed anchor")
    log = value["log"]
    if not isinstance(log, dict) or set(log) != {"address", "topics", "data"}:
        raise BundleError(f"{where}: malformed anchor log")
    topics = _get(log, "topics", list, where)
    if len(topics) > 4:
        raise BundleError(f"{where}: an EVM log has at most 4 topics")
    return AnchorProof(
        _hex(value["tx"], where, 32), _get(value, "block", int, where),
        _hex(value["block_hash"], where, 32), _get(value, "anchorer", str, where),
        _get(log, "address", str, where), tuple(_hex(t, where, 32) for t in topics),
        _hex(log["data"], where))


def _head(record: dict[str, Any], where: str, version: int) -> HeadProof:
    fields = {"type", "index", "map_size", "asset", "site", "seq", "head", "path"}
    for optional in ("subject", "case"):
        if version >= REGISTRY_VERSION and optional in record:
            fields.add(optional)
    _exact(record, fields, "head", where)
    subject = _get(record, "subject", str, where) if "subject" in record else None
    case = _get(record, "case", str, where) if "case" in record else None
    try:
        entry = HeadEntry(_get(record, "asset", str, where),
                          _get(record, "site", (str, type(None)), where),
                          _get(record, "seq", int, where), _hex(record["head"], where, 32),
                          subject, case)
    except LedgerError as exc:
        raise BundleError(f"{where}: {exc}") from None
    return HeadProof(entry, _get(record, "index", int, where),
                     _get(record, "map_size", int, where), _path(record["path"], where))


def parse_bundle(data: bytes) -> AuditBundle:
    """Parse a bundle strictly; raises BundleError saying which line is wrong and why."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise BundleError(f"bundle of {len(data)} bytes exceeds {MAX_BUNDLE_BYTES}")
    if not data.endswith(b"\n"):
        raise BundleError("bundle must end with a newline after its end line (truncated?)")
    first = data.find(b"\n")
    header = parse_line(data[:first], "line 1 (header)")
    counts, scope, chain = _header(header)
    sections = (counts["devices"], counts["checkpoints"], counts["consistency"],
                counts["observations"], 2 * counts["events"], 2 * counts["registry"],
                counts["heads"])
    expected_lines = 2 + sum(sections)
    # Counted before splitting, so a header announcing a huge bundle costs nothing.
    found_lines = data.count(b"\n")
    if found_lines != expected_lines:
        raise BundleError(f"header announces {expected_lines} lines, found {found_lines} "
                          "(truncated bundle or trailing data)")
    lines = data.split(b"\n")[:-1]
    hasher = FingerprintHasher()
    hasher.add(lines[0])
    position = 1

    def take() -> tuple[dict[str, Any], bytes, str]:
        nonlocal position
        line = lines[position]
        where = f"line {position + 1}"
        hasher.add(line)
        position += 1
        return parse_line(line, where), line, where

    devices = [_device(*_first_and_where(take())) for _ in range(counts["devices"])]
    checkpoints = []
    for _ in range(counts["checkpoints"]):
        record, _raw, where = take()
        fields = {"type", "envelope", "anchor"} | ({"cosignatures"} & set(record))
        _exact(record, fields, "bundle-checkpoint", where)
        try:
            envelope = Envelope.from_record(_get(record, "envelope", dict, where))
        except EncodingError as exc:
            raise BundleError(f"{where}: {exc}") from None
        checkpoints.append(BundleCheckpoint(envelope, _anchor(record["anchor"], where),
                                            _cosignatures(record, header["v"], where)))
    steps = []
    for _ in range(counts["consistency"]):
        record, _raw, where = take()
        _exact(record, {"type", "size1", "size2", "path"}, "consistency", where)
        steps.append(ConsistencyStep(_get(record, "size1", int, where),
                                     _get(record, "size2", int, where),
                                     _path(record["path"], where)))
    observations = lines[position:position + counts["observations"]]
    for offset, line in enumerate(observations):
        if len(line) > MAX_RECORD_BYTES:
            raise BundleError(f"line {position + offset + 1}: observation line exceeds "
                              f"{MAX_RECORD_BYTES} bytes")
        hasher.add(line)
    position += len(observations)
    proven: dict[str, list[BundleEvent]] = {"events": [], "registry": []}
    for section, items in proven.items():
        for _ in range(counts[section]):
            raw, proof_line = lines[position], lines[position + 1]
            hasher.add(raw)
            hasher.add(proof_line)
            if len(raw) > MAX_RECORD_BYTES:
                raise BundleError(f"line {position + 1}: line exceeds {MAX_RECORD_BYTES} bytes")
            items.append(BundleEvent(raw, *_inclusion(proof_line, f"line {position + 2}")))
            position += 2
    heads = [_head(*_first_and_where(take()), header["v"]) for _ in range(counts["heads"])]
    end = parse_line(lines[position], f"line {position + 1} (end)")
    _exact(end, {"type", "lines", "fingerprint"}, "bundle-end", f"line {position + 1}")
    if end["lines"] != position:
        raise BundleError(f"end line counts {end['lines']!r:.20} lines, found {position}")
    return AuditBundle(
        scope=scope, created=header["created"], log_id=header["log"]["id"],
        log_public_key=_hex(header["log"].get("public_key") if isinstance(header["log"], dict)
                            else None, "line 1 (header) log key", 32),
        chain=chain, devices=tuple(devices), checkpoints=tuple(checkpoints),
        consistency=tuple(steps), observations=tuple(observations),
        events=tuple(proven["events"]), registry=tuple(proven["registry"]),
        heads=tuple(heads), version=header["v"],
        fingerprint=_hex(end["fingerprint"], "end line fingerprint", 32),
        computed_fingerprint=hasher.digest())


def _first_and_where(taken: tuple[dict[str, Any], bytes, str]) -> tuple[dict[str, Any], str]:
    return taken[0], taken[2]
