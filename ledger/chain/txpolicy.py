"""Transaction policy shared by every chain call: error mapping, retries, fees, signing.

Only idempotent requests go through `with_retries` (reads, and re-sending the same signed bytes);
everything goes through `guarded`, which turns web3, eth-tester and transport failures into the
typed errors of `ledger.chain.errors`. Fees: a fixed legacy gas price when configured (0 on Besu
free-gas networks), else EIP-1559 when the node reports a base fee, else the node's gas price.
"""

from __future__ import annotations

import ast
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar, cast

from eth_account.signers.local import LocalAccount
from eth_tester.exceptions import (  # type: ignore[import-untyped]
    TransactionFailed as EthTesterFailure,
)
from eth_utils.exceptions import ValidationError as EthValidationError
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import BadFunctionCallOutput, ContractLogicError, Web3RPCError
from web3.types import TxParams

from ledger.chain.contract_artifact import MAX_REVERT_DATA_BYTES, decode_revert
from ledger.chain.errors import ChainReplaced, ChainUnavailable, NodeRejected, TransactionFailed

T = TypeVar("T")

MAX_RETRIES: Final = 5
"""Idempotent requests are tried this many times before ChainUnavailable reaches the caller."""
MAX_BACKOFF_S: Final = 2.0
MAX_MESSAGE_CHARS: Final = 300
"""Node error texts are quoted this far into our errors; a hostile node cannot flood logs."""


@dataclass(frozen=True, slots=True)
class FeePolicy:
    """How transactions pay: `gas_price` fixes a legacy price (0 for free gas) when set."""

    gas_price: int | None = None
    max_priority_fee: int = 10**9


def with_retries(call: Callable[[], T], sleep: Callable[[float], None] = time.sleep) -> T:
    """Run an idempotent `call`, retrying node outages with capped exponential backoff."""
    delay = 0.05
    for attempt in range(MAX_RETRIES):
        try:
            return guarded(call)
        except ChainUnavailable:
            if attempt == MAX_RETRIES - 1:
                raise
            sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_S)
    raise AssertionError("unreachable")  # pragma: no cover


def guarded(call: Callable[[], T]) -> T:
    """Run `call`, turning web3 and transport failures into typed chain errors."""
    try:
        return call()
    except ContractLogicError as exc:
        data = exc.data if isinstance(exc.data, str) else ""
        raise decode_revert(bytes(HexBytes(data))) from None
    except EthTesterFailure as exc:
        raise decode_revert(_tester_revert_data(exc)) from None
    except BadFunctionCallOutput:
        # A call answered with nothing: no code at the contract's address on this chain.
        raise ChainReplaced("the contract answered nothing: no code at its address") from None
    except (OSError, ConnectionError, TimeoutError) as exc:
        raise ChainUnavailable(f"node request failed: {type(exc).__name__}") from None
    except (Web3RPCError, EthValidationError) as exc:
        raise NodeRejected(f"node refused the request: {str(exc)[:MAX_MESSAGE_CHARS]}") from None


def _tester_revert_data(exc: BaseException) -> bytes:
    # py-evm hands back str(EVMRevert(data)), i.e. the repr of the revert bytes: read it back.
    # repr() picks its quote by the bytes' content, and the bytes may hold either quote after a
    # "b", so the literal starts at whichever opening comes first.
    text = str(exc.args[0]) if exc.args else ""
    starts = [i for i in (text.find("b'"), text.find('b"')) if i >= 0]
    start = min(starts, default=-1)
    if start < 0 or len(text) - start > 8 * MAX_REVERT_DATA_BYTES:
        return b""
    try:
        data = ast.literal_eval(text[start:])
    except (ValueError, SyntaxError):
        return b""
    return data if isinstance(data, bytes) else b""


def base_tx(w3: Web3, account: LocalAccount, fees: FeePolicy, gas: int) -> dict[str, Any]:
    tx: dict[str, Any] = {
        "from": account.address,
        "nonce": int(w3.eth.get_transaction_count(account.address, "pending")),
        "gas": gas,
        "chainId": int(w3.eth.chain_id),
    }
    if fees.gas_price is not None:
        tx["gasPrice"] = fees.gas_price
        return tx
    base_fee = w3.eth.get_block("latest").get("baseFeePerGas")
    if base_fee is None:
        tx["gasPrice"] = int(w3.eth.gas_price)
    else:
        # Twice the base fee rides out several full blocks of EIP-1559 increases.
        tx["maxPriorityFeePerGas"] = fees.max_priority_fee
        tx["maxFeePerGas"] = 2 * int(base_fee) + fees.max_priority_fee
    return tx


def unsigned(call: Any, base: dict[str, Any]) -> Any:
    # web3's TxParams and eth-account's dict types disagree; the dict is the same at run time.
    return call.build_transaction(cast(TxParams, base))


def send_and_wait(w3: Web3, account: LocalAccount, tx: Any) -> Any:
    signed = account.sign_transaction(tx)
    guarded(lambda: w3.eth.send_raw_transaction(signed.raw_transaction))
    receipt = guarded(lambda: w3.eth.wait_for_transaction_receipt(signed.hash, timeout=60))
    if receipt["status"] != 1:
        raise TransactionFailed(f"transaction 0x{bytes(signed.hash).hex()} reverted on chain")
    return receipt


def is_duplicate_send(exc: Exception) -> bool:
    text = str(exc).lower()
    if any(mark in text for mark in _DUPLICATE_MARKS):
        return True
    # py-evm: "Invalid transaction nonce: Expected 4, but got 3" (a lower nonce: already used).
    found = re.search(r"expected (\d+), but got (\d+)", text)
    return found is not None and int(found.group(2)) < int(found.group(1))


_DUPLICATE_MARKS: Final = (
    "already known", "known transaction", "nonce too low", "already imported", "nonce is too low",
)
