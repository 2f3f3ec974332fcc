"""Verifier checks of reader keys and the signed observations that justify custody events.

An observation counts only if its envelope is signed by a registered reader key, the payload is
a valid observation naming that reader, and its time falls inside the key's registration
(registered <= time < revoked). The keys are the ones the log registered, as the bundle's
registry records prove them (`ledger.verify.registry`); only when it cannot prove them (older
formats and logs) does the bundle's device list stand in, and the verdict says so. Signatures
are checked by `ledger.core.ed25519.VerifyingKey`: libsodium's speed, `cryptography`'s verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ledger.core import hashing
from ledger.core.bundle import AuditBundle
from ledger.core.ed25519 import VerifyingKey
from ledger.core.envelope import (
    SIGNING_PREFIX,
    Envelope,
    key_id,
    public_key_from_raw,
)
from ledger.core.errors import LedgerError
from ledger.core.record_scan import read_observation
from ledger.core.records import Observation, parse_time
from ledger.verify.registry import Registry
from ledger.verify.report import PROGRESS_EVERY, CheckResult, Progress, VerificationReport


@dataclass(frozen=True, slots=True)
class RegisteredKey:
    reader: str
    public_key: bytes
    registered: str
    revoked: str | None


def check_devices(bundle: AuditBundle, report: VerificationReport,
                  registry: Registry | None = None) -> dict[str, RegisteredKey]:
    """Registrations whose key id matches their key, by key id: the log's (`registry`) and,
    beside them, device lines only for readers of other agencies (whose registrations are in
    their own agency's log, which this bundle cannot prove: the verdict says so); without a
    registry, the bundle's device list."""
    result = CheckResult("device-keys")
    report.checks.append(result)
    found = _device_keys(bundle, result)
    if registry is None:
        return found
    own = [d for d in bundle.devices if d.agency == registry.agency]
    if own:  # the log's registry names this agency's readers; a second list would mislead
        result.fail(f"expected no device line for a reader of agency {registry.agency!r} "
                    f"beside the log's registry, found one for {own[0].reader!r}")
    foreign = {kid: key for kid, key in found.items() if kid not in registry.readers
               and not any(d.kid == kid for d in own)}
    registry.foreign |= {key.reader for key in foreign.values()}
    if foreign:
        report.unpinned.append(
            f"{len(foreign)} reader key(s) of other agencies (first: reader "
            f"{next(iter(foreign.values())).reader!r}) are the bundle's device lines: their "
            "registrations are in their own agencies' logs, not proven here")
    elif result.passed is not False:
        result.passed = None
        result.detail = f"the log's registry names {len(registry.readers)} reader key(s)"
    return {**foreign, **{kid: RegisteredKey(r.reader, r.public_key, r.registered, r.revoked)
                          for kid, r in registry.readers.items()}}


def _device_keys(bundle: AuditBundle, result: CheckResult) -> dict[str, RegisteredKey]:
    """The bundle's device lines whose key id matches their key, by key id."""
    found: dict[str, RegisteredKey] = {}
    for device in bundle.devices:
        result.items += 1
        try:
            computed = key_id(public_key_from_raw(device.public_key))
            start = parse_time(device.registered)
            if device.revoked is not None and parse_time(device.revoked) <= start:
                raise LedgerError(f"revoked {device.revoked} not after registered {start}")
        except LedgerError as exc:
            result.fail(f"reader {device.reader!r}: {exc}")
            continue
        if computed != device.kid:
            result.fail(f"reader {device.reader!r}: expected key id {computed} for its public "
                        f"key, found {device.kid}")
            continue
        if device.kid in found:
            result.fail(f"reader {device.reader!r}: key id {device.kid} registered twice")
            continue
        found[device.kid] = RegisteredKey(device.reader, device.public_key, device.registered,
                                          device.revoked)
    return found


def _check_one(line: bytes, where: str, keys: dict[str, RegisteredKey],
               verifiers: dict[str, VerifyingKey]) -> Observation | str:
    """The observation `line` holds if it holds, else the reason it does not."""
    envelope, read, payload = read_observation(line, where)
    registration = keys.get(envelope.kid)
    if registration is None:
        return f"expected a registered reader key, found unknown key id {envelope.kid}"
    key = verifiers.get(envelope.kid)
    if key is None:
        key = verifiers[envelope.kid] = VerifyingKey(registration.public_key)
    if not key.accepts(SIGNING_PREFIX + payload, envelope.sig):
        # The reference's typed error, with its message, for the refused signature.
        key.verify_envelope(Envelope.from_bytes(line))
    if read.device != registration.reader:
        return (f"key {envelope.kid} is registered to reader {registration.reader!r}, "
                f"observation names {read.device!r}")
    # Fixed-width UTC times compare correctly as text.
    if read.time < registration.registered:
        return (f"observed {read.time}, before reader {registration.reader!r} was "
                f"registered ({registration.registered})")
    if registration.revoked is not None and read.time >= registration.revoked:
        return (f"observed {read.time}, after reader {registration.reader!r} was "
                f"revoked ({registration.revoked})")
    return read


def check_observations(bundle: AuditBundle, keys: dict[str, RegisteredKey],
                       checks: list[CheckResult],
                       progress: Progress | None) -> dict[bytes, Observation]:
    """Check every signed observation; return the ones that hold, by envelope hash (the
    events' justification is checked against what they say)."""
    result = CheckResult("observation-signatures")
    checks.append(result)
    good: dict[bytes, Observation] = {}
    verifiers: dict[str, VerifyingKey] = {}
    lines: Sequence[bytes] = bundle.observations
    total = len(lines)
    for position, line in enumerate(lines):
        if progress and position % PROGRESS_EVERY == 0:
            progress("observations", position, total)
        result.items += 1
        try:
            outcome = _check_one(line, f"observation {position}", keys, verifiers)
        except LedgerError as exc:
            outcome = str(exc)
        if isinstance(outcome, str):
            result.fail(f"observation {position}: {outcome}")
            continue
        # The line is the envelope's canonical wire form, so this is `envelope_hash`.
        good[hashing.domain_hash(hashing.ENVELOPE, line)] = outcome
    return good
