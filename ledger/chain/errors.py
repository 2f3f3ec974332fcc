"""Typed errors of the chain client, all rooted in `ChainError`.

Callers branch on the type: `ChainUnavailable` is worth retrying later, `ContractRevert` never is
(the chain said no, and says why), `TransactionDropped` means the transaction is no longer known
and its checkpoint must be anchored again.
"""

from __future__ import annotations

from typing import Any


class ChainError(Exception):
    """Root of every error raised by `ledger.chain`."""


class ArtifactError(ChainError):
    """The committed contract artifact is missing or malformed."""


class ChainUnavailable(ChainError):
    """The node could not be reached or did not answer in time (retry later)."""


class ChainIdMismatch(ChainError):
    """The node serves another chain than the one configured."""

    def __init__(self, expected: int, found: int) -> None:
        super().__init__(f"node serves chain id {found}, expected {expected}")
        self.expected = expected
        self.found = found


class ContractRevert(ChainError):
    """The contract refused a call with one of its custom errors (or an unknown revert)."""

    def __init__(self, error_name: str, arguments: dict[str, Any]) -> None:
        shown = ", ".join(f"{k}={_show(v)}" for k, v in arguments.items())
        super().__init__(f"contract reverted with {error_name}({shown})")
        self.error_name = error_name
        self.arguments = arguments


class NodeRejected(ChainError):
    """The node refused a request (insufficient funds, fee too low, a malformed transaction)."""


class TransactionFailed(ChainError):
    """A mined transaction has status 0 (it reverted on chain)."""


class ReceiptTimeout(ChainError):
    """No receipt, or too few confirmations, before the deadline."""


class TransactionDropped(ChainError):
    """The node no longer knows the transaction (node restart, reorg, replaced nonce)."""


class PendingStoreError(ChainError):
    """The pending-anchor store holds a row that contradicts what is being recorded."""


class ChainReplaced(ChainError):
    """The chain no longer holds what we anchored on it, and not by a reorg the anchorer can
    repair: no contract code at the address, another genesis block, or a contract whose
    checkpoint contradicts our final anchor. Anchoring there stops until an operator decides."""


class NotAuthorised(ChainError):
    """The contract would refuse this account's anchors of this log, and only the consortium
    admin can change that: `cause` is `unregistered` (nobody registered the log),
    `other_agency` (it is registered to another agency) or `no_role` (the account lacks the
    agency's anchorer role: never granted, or revoked)."""

    def __init__(self, cause: str, account: str, detail: str) -> None:
        super().__init__(detail)
        self.cause = cause
        self.account = account


class ConsistencyError(ChainError):
    """The log's new checkpoint does not extend the checkpoint already anchored."""


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)
