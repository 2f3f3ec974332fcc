"""Consortium admin orders: role and log changes the admin signs offline and anyone submits.

An order is a small JSON file (`FORMAT`) holding what the admin decided (`action` and its
`subject`: agency, log, accounts) and the raw signed transactions that carry it out, signed by
the admin's key on the admin's own machine. Nonce, chain id and fees are inside the signed
bytes, given on the command line or read from a node the admin chooses to ask. The file holds
no secret; whoever has it (an agency's server, any node operator) can submit it, and the chain
accepts it only because the contract's admin signed it.

`read_order` trusts nothing in the file: each transaction's sender is recovered from its
signature and must be the file's admin; its chain id, contract, value and call data must be
exactly what the `subject` says, recomputed here; the nonces must follow each other. So a file
whose words were edited no longer matches its bytes, and bytes that were edited no longer
carry the admin's signature. `submit_order` refuses a file already submitted (its first
transaction is mined: a replay), and one whose nonce the admin has since used for another
order, before sending anything.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from eth_account import Account
from eth_account.typed_transactions.typed_transaction import TypedTransaction
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import TimeExhausted, TransactionNotFound

from ledger.chain.consortium import local_account
from ledger.chain.contract_artifact import load_artifact
from ledger.chain.errors import ChainError, ChainIdMismatch, ReceiptTimeout, TransactionFailed
from ledger.chain.order_actions import SUBJECT_FIELDS
from ledger.chain.txpolicy import guarded, with_retries
from ledger.core.checkpoint import chain_agency_id, chain_log_id
from ledger.core.errors import SchemaError

FORMAT: Final = "kitledger-consortium-order/1"
MAX_ORDER_BYTES: Final = 16 * 1024
"""An order holds at most `MAX_TRANSACTIONS` transactions of a few hundred bytes each."""
MAX_TRANSACTIONS: Final = 2
MAX_RAW_TX_BYTES: Final = 1024
"""One role or log call is about 200 bytes signed; a bigger blob is not one of ours."""
ADMIN_ROLE: Final = b"\x00" * 32
"""OpenZeppelin's DEFAULT_ADMIN_ROLE, the contract's consortium admin."""
ANCHORER_TAG: Final = keccak(b"kitledger.CustodyAnchor.ANCHORER_ROLE")
"""The contract's domain tag of per-agency anchorer roles (`_ANCHORER_TAG`)."""
ADMIN_GAS: Final = 120_000
RECEIPT_TIMEOUT_S: Final = 60.0

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_LOG_ID = re.compile(r"[0-9a-f]{32}")
ACTIONS: Final = tuple(SUBJECT_FIELDS)
_ORDER_FIELDS: Final = {"format", "action", "chain_id", "contract", "admin", "subject",
                        "transactions"}


class OrderError(ChainError):
    """An order file is malformed, altered, or does not fit the chain it is submitted to."""


@dataclass(frozen=True, slots=True)
class TxTerms:
    """What the admin fixes in each signed transaction besides the call."""

    chain_id: int
    nonce: int
    gas: int = ADMIN_GAS
    gas_price: int | None = None
    """A legacy-style price (0 on a free-gas Besu network): signed as an EIP-2930 transaction."""
    max_fee: int | None = None
    priority_fee: int = 0
    """EIP-1559 fees, used when `gas_price` is None."""


@dataclass(frozen=True, slots=True)
class AdminOrder:
    """A checked order: every transaction verified against the subject and the admin."""

    action: str
    chain_id: int
    contract: str
    admin: str
    subject: dict[str, str]
    transactions: tuple[bytes, ...]
    nonces: tuple[int, ...]
    hashes: tuple[bytes, ...]

    def to_json(self) -> str:
        return json.dumps({
            "format": FORMAT, "action": self.action, "chain_id": self.chain_id,
            "contract": self.contract, "admin": self.admin, "subject": self.subject,
            "transactions": ["0x" + raw.hex() for raw in self.transactions],
        }, indent=2) + "\n"


def anchorer_role(agency: str) -> bytes:
    """`CustodyAnchor.anchorerRole(chain_agency_id(agency))`, computed offline."""
    return keccak(ANCHORER_TAG + chain_agency_id(agency))


def check_subject(action: str, subject: dict[str, str]) -> dict[str, str]:
    """The subject with addresses checksummed; `OrderError` naming the first bad field."""
    fields = SUBJECT_FIELDS.get(action)
    if fields is None:
        raise OrderError(f"unknown action {action[:40]!r}: one of {', '.join(ACTIONS)}")
    if set(subject) != set(fields):
        raise OrderError(f"{action} takes exactly {', '.join(fields)}; "
                         f"got {', '.join(sorted(subject)[:8]) or 'nothing'}")
    checked = {}
    for name in fields:
        value = subject[name]
        if not isinstance(value, str):
            raise OrderError(f"{name} must be a string")
        if name == "agency":
            try:
                chain_agency_id(value)
            except SchemaError as exc:
                raise OrderError(str(exc)) from None
        elif name == "log":
            if not _LOG_ID.fullmatch(value):
                raise OrderError("log must be the log's key id: 32 lowercase hex characters")
        else:
            if not _ADDRESS.fullmatch(value) or int(value, 16) == 0:
                raise OrderError(f"{name} must be a non-zero 0x-prefixed 20-byte address")
            value = Web3.to_checksum_address(value)
        checked[name] = value
    return checked


def calls(action: str, subject: dict[str, str], admin: str) -> list[bytes]:
    """The call data of each transaction that carries out `action` on `subject`, in order.

    Rotations grant before they revoke, so the agency (or the consortium) is never without a
    working key between the two transactions."""
    contract = Web3().eth.contract(abi=load_artifact().abi)

    def call(name: str, *args: Any) -> bytes:
        return bytes(HexBytes(contract.encode_abi(name, args=list(args))))

    if action == "rotate-admin":
        return [call("grantRole", ADMIN_ROLE, subject["new"]),
                call("renounceRole", ADMIN_ROLE, admin)]
    agency = subject["agency"]
    role = anchorer_role(agency)
    steps: list[bytes] = []
    if action in ("register-log", "enroll"):
        steps.append(call("registerLog", chain_log_id(subject["log"]), chain_agency_id(agency)))
    if action in ("grant-anchorer", "enroll"):
        steps.append(call("grantRole", role, subject["account"]))
    if action == "revoke-anchorer":
        steps.append(call("revokeRole", role, subject["account"]))
    if action == "rotate-anchorer":
        steps += [call("grantRole", role, subject["new"]), call("revokeRole", role, subject["old"])]
    return steps


def sign_order(action: str, subject: dict[str, str], contract: str, admin_key: bytes | str,
               terms: TxTerms) -> AdminOrder:
    """Sign the transactions of `action` with the admin's key; nothing is sent."""
    account = local_account(admin_key)
    checked = check_subject(action, subject)
    if not _ADDRESS.fullmatch(contract):
        raise OrderError("contract must be a 0x-prefixed 20-byte address")
    if action == "rotate-admin" and checked["new"] == account.address:
        raise OrderError("the new admin is the admin signing: rotate to another account")
    signed = []
    for offset, data in enumerate(calls(action, checked, account.address)):
        tx: dict[str, Any] = {"to": Web3.to_checksum_address(contract), "value": 0,
                              "data": data, "gas": terms.gas, "chainId": terms.chain_id,
                              "nonce": terms.nonce + offset}
        if terms.gas_price is not None:
            tx |= {"gasPrice": terms.gas_price, "accessList": []}
        elif terms.max_fee is not None:
            tx |= {"maxFeePerGas": terms.max_fee, "maxPriorityFeePerGas": terms.priority_fee}
        else:
            raise OrderError("give a gas price or a maximum fee")
        signed.append(bytes(account.sign_transaction(tx).raw_transaction))
    return read_order(AdminOrder(
        action, terms.chain_id, Web3.to_checksum_address(contract), account.address, checked,
        tuple(signed), (), ()).to_json().encode("utf-8"))


def terms_from_node(w3: Web3, admin: str, gas_price: int | None = None) -> TxTerms:
    """Chain id, the admin's next nonce and current fees, read from a node of the admin's
    choosing (only reads; the admin's key never reaches the node)."""
    chain_id = int(with_retries(lambda: w3.eth.chain_id))
    nonce = int(with_retries(lambda: w3.eth.get_transaction_count(
        Web3.to_checksum_address(admin), "pending")))
    if gas_price is not None:
        return TxTerms(chain_id, nonce, gas_price=gas_price)
    base_fee = with_retries(lambda: w3.eth.get_block("latest")).get("baseFeePerGas")
    if base_fee is None:
        return TxTerms(chain_id, nonce, gas_price=int(with_retries(lambda: w3.eth.gas_price)))
    priority = 10**9 if int(base_fee) > 0 else 0
    # Twice the base fee rides out several full blocks of EIP-1559 increases.
    return TxTerms(chain_id, nonce, max_fee=2 * int(base_fee) + priority, priority_fee=priority)


def read_order(body: bytes) -> AdminOrder:
    """Parse and check an order file; `OrderError` says what is wrong with it."""
    if len(body) > MAX_ORDER_BYTES:
        raise OrderError(f"order file larger than {MAX_ORDER_BYTES} bytes")
    try:
        raw = json.loads(body.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as exc:
        raise OrderError(f"not an order file (JSON): {str(exc)[:120]}") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise OrderError(f"not an order file: format must be {FORMAT!r}")
    if set(raw) != _ORDER_FIELDS:
        raise OrderError(f"order fields must be exactly {', '.join(sorted(_ORDER_FIELDS))}")
    action, chain_id, contract, admin = (raw["action"], raw["chain_id"], raw["contract"],
                                         raw["admin"])
    if not isinstance(action, str) or not isinstance(raw["subject"], dict):
        raise OrderError("action must be a string and subject an object")
    subject = check_subject(action, raw["subject"])
    if not isinstance(chain_id, int) or isinstance(chain_id, bool) or chain_id < 1:
        raise OrderError("chain_id must be a positive integer")
    for name, value in (("contract", contract), ("admin", admin)):
        if not isinstance(value, str) or not _ADDRESS.fullmatch(value):
            raise OrderError(f"{name} must be a 0x-prefixed 20-byte address")
    contract, admin = Web3.to_checksum_address(contract), Web3.to_checksum_address(admin)
    expected = calls(action, subject, admin)
    texts = raw["transactions"]
    if not isinstance(texts, list) or len(texts) != len(expected):
        raise OrderError(f"{action} carries {len(expected)} transaction(s)")
    transactions: list[bytes] = []
    nonces: list[int] = []
    hashes: list[bytes] = []
    for index, (text, data) in enumerate(zip(texts, expected, strict=True)):
        signed = _decode_tx(index, text)
        fields = TypedTransaction.from_bytes(HexBytes(signed)).as_dict()
        sender = Account.recover_transaction(signed)
        where = f"transaction {index + 1}"
        if sender != admin:
            raise OrderError(f"{where} is signed by {sender}, not the admin {admin}: the file "
                             "was altered or signed with another key")
        if int(fields["chainId"]) != chain_id:
            raise OrderError(f"{where} is for chain id {fields['chainId']}, not {chain_id}")
        if Web3.to_checksum_address(bytes(fields["to"]) or b"\x00" * 20) != contract:
            raise OrderError(f"{where} is addressed to another contract than {contract}")
        if int(fields["value"]) != 0:
            raise OrderError(f"{where} sends value; an order never pays")
        if bytes(fields["data"]) != data:
            raise OrderError(f"{where} does not carry out {action} of the subject: the file "
                             "was altered")
        if nonces and int(fields["nonce"]) != nonces[-1] + 1:
            raise OrderError(f"{where} does not follow the previous nonce")
        transactions.append(signed)
        nonces.append(int(fields["nonce"]))
        hashes.append(keccak(signed))
    return AdminOrder(action, chain_id, contract, admin, subject, tuple(transactions),
                      tuple(nonces), tuple(hashes))


def _decode_tx(index: int, text: object) -> bytes:
    if not isinstance(text, str) or not re.fullmatch(r"0x([0-9a-f]{2})+", text) \
            or len(text) > 2 + 2 * MAX_RAW_TX_BYTES:
        raise OrderError(f"transaction {index + 1} must be 0x-prefixed lowercase hex of at most "
                         f"{MAX_RAW_TX_BYTES} bytes")
    signed = bytes.fromhex(text[2:])
    if signed[0] not in (0x01, 0x02):
        raise OrderError(f"transaction {index + 1} is not an EIP-2930 or EIP-1559 transaction")
    try:
        TypedTransaction.from_bytes(HexBytes(signed))
        Account.recover_transaction(signed)
    except Exception:  # eth-account raises a dozen types for bytes that do not decode
        raise OrderError(f"transaction {index + 1} does not decode as a signed "
                         "transaction") from None
    return signed


def _no_duplicates(pairs: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise ValueError(f"duplicate key {key[:40]!r}")
        found[key] = value
    return found


@dataclass(frozen=True, slots=True)
class Submitted:
    """One transaction of an order, mined: its hash and block."""

    tx_hash: bytes
    block_number: int


def submit_order(w3: Web3, order: AdminOrder,
                 timeout_s: float = RECEIPT_TIMEOUT_S) -> list[Submitted]:
    """Send the order's transactions in turn, each simulated first (a contract refusal comes
    back as `ContractRevert`, nothing sent) and awaited. Refuses a replay and a stale nonce; a
    rotation whose first transaction is mined but not its second (a submission cut short)
    sends the second only."""
    found = int(with_retries(lambda: w3.eth.chain_id))
    if found != order.chain_id:
        raise ChainIdMismatch(order.chain_id, found)
    admin = Web3.to_checksum_address(order.admin)
    used = int(with_retries(lambda: w3.eth.get_transaction_count(admin, "latest")))
    done: list[Submitted] = []
    for signed, tx_hash, nonce in zip(order.transactions, order.hashes, order.nonces,
                                      strict=True):
        if nonce >= used:
            done.append(_send(w3, order, signed, tx_hash, timeout_s))
            continue
        mined = _mined_block(w3, tx_hash)
        if mined is None:
            raise OrderError(f"the admin has used nonce {nonce} for another transaction since "
                             "signing this order: have it signed again")
        done.append(Submitted(tx_hash, mined))
    if len(done) == len(order.hashes) and order.nonces[-1] < used:
        raise OrderError(f"already submitted: transaction 0x{order.hashes[0].hex()} was mined "
                         f"in block {done[0].block_number}; nothing was sent again")
    return done


def _send(w3: Web3, order: AdminOrder, signed: bytes, tx_hash: bytes,
          timeout_s: float) -> Submitted:
    fields = TypedTransaction.from_bytes(HexBytes(signed)).as_dict()
    call = {"from": order.admin, "to": order.contract, "data": HexBytes(fields["data"])}
    guarded(lambda: w3.eth.call(call))  # type: ignore[arg-type]
    guarded(lambda: w3.eth.send_raw_transaction(signed))
    try:
        receipt = guarded(lambda: w3.eth.wait_for_transaction_receipt(
            HexBytes(tx_hash), timeout=timeout_s))
    except TimeExhausted:
        raise ReceiptTimeout(f"0x{tx_hash.hex()} not mined after {timeout_s}s") from None
    if receipt["status"] != 1:
        raise TransactionFailed(f"transaction 0x{tx_hash.hex()} reverted on chain")
    return Submitted(tx_hash, int(receipt["blockNumber"]))


def _mined_block(w3: Web3, tx_hash: bytes) -> int | None:
    def lookup() -> int | None:
        try:
            return int(w3.eth.get_transaction_receipt(HexBytes(tx_hash))["blockNumber"])
        except TransactionNotFound:
            return None

    return with_retries(lookup)
