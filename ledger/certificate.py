"""The certificate page of a custody report: what the verifier checked, with what result, against
which trust roots, and what it did not check.

It certifies a process, not a conclusion: the named checks ran on the bundle whose fingerprint
is recomputed here from its bytes, with this verifier version, against these pins. The
declaration beneath it is left for a qualified person to sign; nothing here claims a legal
effect. Built from the bundle, the verifier's result and the auditor's pins only (no database),
so the page can never state more than the verifier found.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import metadata
from typing import Final

from ledger.core.bundle import AuditBundle
from ledger.core.checkpoint import Checkpoint
from ledger.core.errors import LedgerError
from ledger.verify.report import VerificationReport
from ledger.verify.trust import LogTrust

DISTRIBUTION: Final = "kitledger"
CHECKS: Final = {
    "fingerprint": "bundle fingerprint recomputed from the bundle's lines",
    "trust-roots": "log key, chain id and contract held to the auditor's trust roots",
    "checkpoint-signatures": "checkpoint signatures by the log key",
    "header": "bundle header against the log state",
    "checkpoint-consistency": "consistency proofs between successive checkpoints",
    "known-checkpoint": "consistency with the auditor's last verified checkpoint",
    "witness-cosignatures": "witness cosignatures on the checkpoints",
    "registry": "register records (reader keys, class policies, tags) in the log",
    "device-keys": "reader keys registered in the log",
    "observation-signatures": "reader signatures on every tag read",
    "event-records": "custody event records well formed",
    "event-observations": "each custody event backed by the reads it names",
    "event-justification": "each custody event justified (reader, role, site, time, tag, policy)",
    "hash-chains": "each asset's hash chain of events unbroken",
    "inclusion-proofs": "each record's inclusion proof in a signed checkpoint",
    "corrections": "corrections only as added entries naming an earlier, unchanged event",
    "inventories": "each inventory's counts, sample size and share present add up",
    "completeness": "completeness: no event in scope left out (head-map proofs)",
    "anchors": "checkpoint anchors on the blockchain",
    "freshness": "the newest checkpoint is the latest anchored",
    "tiles": "proofs recomputed from the log's published tiles",
}
"""Each verifier check as the certificate names it (an unknown check is shown by its name)."""
RESULTS: Final = {True: "passed", False: "FAILED", None: "not checked"}


@dataclass(frozen=True, slots=True)
class CertifiedCheck:
    name: str
    description: str
    result: str
    items: int
    detail: str


@dataclass(frozen=True, slots=True)
class CertifiedAnchor:
    """A checkpoint's anchor: `confirmed` when a chain node confirmed it, else only the receipt
    the bundle carries was checked."""

    tree_size: int
    block: int
    transaction: str
    block_hash: str
    confirmed: bool


@dataclass
class Certificate:
    verdict: str
    verified: bool
    fingerprint: str
    claimed_fingerprint: str
    verifier_version: str
    chain_source: str
    scope: str
    checks: list[CertifiedCheck] = field(default_factory=list)
    not_verified: list[str] = field(default_factory=list)
    """Checks skipped or not applicable, and why the verdict is not VERIFIED if it is not."""
    trust_roots: list[tuple[str, str]] = field(default_factory=list)
    """(what, value) for each pin used; empty: nothing was pinned."""
    witness_keys: list[tuple[str, str]] = field(default_factory=list)
    witness_quorum: int = 0
    anchors: list[CertifiedAnchor] = field(default_factory=list)
    corrections: int = 0


def verifier_version() -> str:
    try:
        return f"{DISTRIBUTION} {metadata.version(DISTRIBUTION)}"
    except metadata.PackageNotFoundError:
        return f"{DISTRIBUTION} (version unknown: not installed as a package)"


def _trust_rows(pins: LogTrust) -> list[tuple[str, str]]:
    rows = [("agency", pins.agency or "(pinned by key)")]
    rows += [("log public key", key.hex()) for key in pins.public_keys]
    if pins.chain is not None:
        rows += [("chain id", str(pins.chain.chain_id)), ("contract", pins.chain.contract),
                 ("contract deployment block", str(pins.chain.deployment_block)),
                 ("anchors required", "yes" if pins.chain.required else "no")]
    return rows


def build_certificate(bundle: AuditBundle, verification: VerificationReport, verdict: str,
                      pins: LogTrust | None, corrections: int) -> Certificate:
    """The certificate of `verification` of `bundle`; `pins` the auditor's trust roots for the
    bundle's log (None: nothing pinned); `verdict` as the report states it."""
    certificate = Certificate(
        verdict=verdict, verified=verification.verdict == "valid",
        fingerprint=bundle.computed_fingerprint.hex(),
        claimed_fingerprint=bundle.fingerprint.hex(), verifier_version=verifier_version(),
        chain_source=verification.chain_source, scope=_scope(bundle), corrections=corrections,
        checks=[CertifiedCheck(c.name, CHECKS.get(c.name, c.name), RESULTS[c.passed], c.items,
                               c.detail) for c in verification.checks])
    certificate.not_verified = [f"{c.description}: {c.detail or 'not run'}"
                                for c in certificate.checks if c.result == "not checked"]
    certificate.not_verified += [*verification.not_checked, *verification.unpinned_reasons]
    if pins is not None:
        certificate.trust_roots = _trust_rows(pins)
        if pins.witnesses is not None:
            certificate.witness_quorum = pins.witnesses.quorum
            certificate.witness_keys = [(k.name, k.public_key.hex())
                                        for k in pins.witnesses.keys]
    confirmed = {int(str(a["size"])) for a in verification.anchored}
    for point in bundle.checkpoints:
        if point.anchor is None:
            continue
        try:
            size = Checkpoint.from_record(point.envelope.payload).tree_size
        except LedgerError:  # the verifier failed this checkpoint; its anchor certifies nothing
            continue
        certificate.anchors.append(CertifiedAnchor(
            size, point.anchor.block_number, "0x" + point.anchor.tx_hash.hex(),
            "0x" + point.anchor.block_hash.hex(), size in confirmed))
    return certificate


def _scope(bundle: AuditBundle) -> str:
    scope = bundle.scope
    if scope.kind == "site":
        return f"site {scope.site}"
    if scope.kind == "time-range":
        return f"time range {scope.start} to {scope.end}"
    if scope.kind == "case":
        return f"case {scope.case}: {', '.join(scope.assets)}"
    return f"{scope.kind} {', '.join(scope.assets)}"
