"""Verifier check of the witnesses' cosignatures: did enough independent witnesses see the
newest checkpoint, so the operator cannot be showing this auditor a fork?

Under the auditor's witness policy (a quorum and the witnesses' names and Ed25519 keys, from
the trust file, or from `--witness VKEY` and `--witness-quorum N`): every cosignature line on
every checkpoint whose name and key id match a trusted witness (C2SP type 0x04 key id) must
verify over that checkpoint's note text, else the check fails; lines from unlisted keys are
ignored, as c2sp.org/signed-note says; and the newest checkpoint must carry valid
cosignatures from at least `quorum` distinct trusted witnesses. Without a policy the check is
"not checked", whatever the bundle carries: a bundle's cosignatures prove nothing by
themselves, since whoever made the bundle could have made the keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ledger.core import note
from ledger.core.bundle import AuditBundle
from ledger.core.checkpoint import Checkpoint
from ledger.verify.report import CheckResult, VerificationReport

CHECK_NAME = "witness-cosignatures"


class TrustedWitness(Protocol):
    """A witness the auditor trusts: its C2SP key name and Ed25519 public key (32 bytes)."""

    @property
    def name(self) -> str: ...

    @property
    def public_key(self) -> bytes: ...


class WitnessQuorum(Protocol):
    """How many of which witnesses must have cosigned the newest checkpoint (the trust file's
    `WitnessPolicy` has this shape)."""

    @property
    def quorum(self) -> int: ...

    @property
    def keys(self) -> Sequence[TrustedWitness]: ...


@dataclass(frozen=True, slots=True)
class VkeyWitness:
    name: str
    public_key: bytes


@dataclass(frozen=True, slots=True)
class VkeyPolicy:
    """A witness policy given on the command line as C2SP verifier keys."""

    quorum: int
    keys: tuple[VkeyWitness, ...]


def policy_from_vkeys(vkeys: Sequence[str], quorum: int | None) -> VkeyPolicy:
    """`--witness VKEY...` and `--witness-quorum N` (default: all of them) as a policy;
    raises note.MalformedNote for a vkey that is not a type 0x04 cosigner key."""
    keys = []
    for text in vkeys:
        verifier = note.parse_vkey(text)
        if verifier.sig_type != note.COSIGNATURE_V1:
            raise note.MalformedNote(f"witness key {verifier.name}: expected a cosignature "
                                     "(type 0x04) verifier key")
        keys.append(VkeyWitness(verifier.name, verifier.public_key))
    wanted = len(keys) if quorum is None else quorum
    if not 1 <= wanted <= len(keys):
        raise note.MalformedNote(f"witness quorum {wanted} must be 1..{len(keys)} "
                                 "(the number of witness keys)")
    return VkeyPolicy(wanted, tuple(keys))


def _verifiers(policy: WitnessQuorum) -> list[note.NoteVerifier]:
    return [note.NoteVerifier(k.name, note.COSIGNATURE_V1, bytes(k.public_key))
            for k in policy.keys]


def check_cosignatures(bundle: AuditBundle, points: Sequence[Checkpoint | None],
                       policy: WitnessQuorum | None, report: VerificationReport) -> None:
    """Check the cosignatures of `bundle`'s checkpoints (`points`: as verified, None where a
    checkpoint's log signature failed) under `policy`; adds one CheckResult to `report`."""
    result = CheckResult(CHECK_NAME)
    report.checks.append(result)
    carried = sum(len(c.cosignatures) for c in bundle.checkpoints)
    if policy is None:
        result.passed = None
        result.detail = f"no witness policy given; {carried} cosignatures carried"
        report.not_checked.append("witness cosignatures (no witness policy: pass --trust, "
                                  "or --witness and --witness-quorum)")
        return
    verifiers = _verifiers(policy)
    newest_signers: set[note.NoteVerifier] = set()
    for position, (item, point) in enumerate(zip(bundle.checkpoints, points, strict=True)):
        if point is None:  # no note text to check them against: checkpoint-signatures fails
            continue
        text = point.note_text()
        signers: set[note.NoteVerifier] = set()
        for line in item.cosignatures:
            signature = note.parse_signature_line(line)
            for verifier in verifiers:
                if not verifier.matches(signature):
                    continue
                result.items += 1
                try:
                    note.verify_cosignature(text, signature, verifier)
                except note.NoteError:
                    result.fail(f"checkpoint {position} (size {point.tree_size}): cosignature "
                                f"by {verifier.name} does not verify")
                    continue
                signers.add(verifier)
        if position == len(bundle.checkpoints) - 1:
            newest_signers = signers
    if not bundle.checkpoints or points[-1] is None:
        result.fail("the newest checkpoint is not signed by the log: nothing to cosign")
        return
    if len(newest_signers) < policy.quorum:
        named = ", ".join(sorted(v.name for v in newest_signers)) or "none"
        result.fail(f"newest checkpoint (size {points[-1].tree_size}): expected cosignatures "
                    f"from {policy.quorum} of the {len(verifiers)} trusted witnesses, found "
                    f"{len(newest_signers)} ({named})")
