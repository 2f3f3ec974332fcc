"""The consortium's contract as one server sees it: accounts, funding, enrolment.

`Consortium.open` connects to a node and attaches to the consortium's CustodyAnchor contract.
An agency's server holds no admin key: it attaches to the configured contract, and `enroll`
only checks that the consortium admin registered the agency's log and granted the agency's
account its anchorer role (the admin does that offline, `ledger.chain.admin_orders`), raising
`NotAuthorised` with the cause when not. With the admin's key (the embedded development chain,
where a fresh admin is made and funded from the chain's unlocked genesis account, or a test
chain run by one operator) `open` may deploy the contract, and `enroll` registers the log,
grants the role and keeps the agency's account funded itself. Either way `enroll` returns the
client that anchors as the agency's account. `anchor_receipt` reads back a final anchor's
`Anchored` receipt log, so a service can keep everything an auditor needs in its own database
and never scan chain logs.

Callers outside `ledger.chain` (the API's anchoring service) hand in plain values (URLs, hex
keys, 32-byte secrets) and get plain values back: web3 stays in this package.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.types import Wei

from ledger.chain.client import CustodyAnchorClient
from ledger.chain.errors import ChainError, NotAuthorised
from ledger.chain.pending import PendingAnchor
from ledger.chain.provider import EMBEDDED_URL, connect
from ledger.chain.txpolicy import FeePolicy, guarded, with_retries

MIN_ANCHORER_BALANCE: Final = 10**17
"""Wei an agency's account keeps: about 300 anchors at 2 gwei; topped up below this."""
TOP_UP_WEI: Final = 10**18
EMBEDDED_ADMIN_WEI: Final = TOP_UP_WEI * 100
"""The embedded chain's admin funds a hundred top-ups; its genesis account holds far more."""
NO_AGENCY: Final = b"\x00" * 32
RECEIPT_TIMEOUT_S: Final = 60.0


class AccountKeyError(ChainError):
    """A configured account key is not a usable secp256k1 private key (never shown)."""


@dataclass(frozen=True, slots=True)
class AnchorReceiptLog:
    """Where a final anchor landed, with its `Anchored` receipt log as the node returned it."""

    chain_id: int
    contract: str
    tx_hash: bytes
    block_number: int
    block_hash: bytes
    anchorer: str
    address: str
    topics: tuple[bytes, ...]
    data: bytes


def local_account(secret: bytes | str) -> LocalAccount:
    """The account for a 32-byte secret or its hex; `AccountKeyError` without echoing it."""
    try:
        account: LocalAccount = Account.from_key(secret)
    except (ValueError, TypeError):
        raise AccountKeyError("not a valid account private key") from None
    return account


class NoContract(ChainError):
    """No contract to attach to, and no admin key to deploy one."""


class Consortium:
    """One node and one CustodyAnchor contract, with or without the admin's key."""

    def __init__(self, w3: Web3, admin: CustodyAnchorClient, deployed: bool = False,
                 is_admin: bool = True) -> None:
        self.w3 = w3
        # Reads go through this client; it signs only when `is_admin` (else its account is a
        # throwaway that never sends anything).
        self.admin = admin
        self.is_admin = is_admin
        self.chain_id = int(w3.eth.chain_id)
        self.deployed = deployed  # True when `open` deployed the contract just now

    @property
    def address(self) -> str:
        return Web3.to_checksum_address(self.admin.address)

    @classmethod
    def open(cls, url: str, *, chain_id: int | None = None, contract: str | None = None,
             admin_key: bytes | str | None = None,
             remembered: Callable[[int], str | None] | None = None,
             fees: FeePolicy | None = None) -> Consortium:
        """Connect; attach to `contract`, or to the one `remembered` (given the node's chain
        id) returns, or deploy a fresh one with `admin_key`. On `embedded://` the admin is a
        new account funded from the chain's unlocked genesis account. On a node without
        `admin_key` the server is an agency's: it only attaches (`NoContract` without one).
        `fees`: how every transaction pays, the agency's anchors too (a fixed price of 0 on a
        free-gas network, where the agency's account holds no ether)."""
        w3 = connect(url, chain_id)
        policy = fees or FeePolicy()
        if not contract and remembered is not None:
            contract = remembered(int(w3.eth.chain_id))
        if admin_key is not None:
            account = local_account(admin_key)
        elif url == EMBEDDED_URL:
            account = Account.create()
            _fund_from_unlocked(w3, account.address, EMBEDDED_ADMIN_WEI)
        elif contract:
            return cls(w3, CustodyAnchorClient(w3, contract, Account.create(), policy),
                       is_admin=False)
        else:
            raise NoContract(
                "an agency's server attaches to the consortium's contract and never deploys "
                "one: set anchor_contract to the address the consortium published")
        if contract:
            return cls(w3, CustodyAnchorClient(w3, contract, account, policy))
        return cls(w3, CustodyAnchorClient.deploy(w3, account, fees=policy), deployed=True)

    def enroll(self, chain_log: bytes, chain_agency: bytes,
               anchorer_secret: bytes) -> CustodyAnchorClient:
        """Ready `chain_log` for anchoring by the agency's account; idempotent, so a restart
        re-enrolling an agency sends nothing new. Without the admin's key, only checks: raises
        `NotAuthorised` when the admin has not registered the log to the agency or granted
        the account the agency's anchorer role."""
        account = local_account(anchorer_secret)
        contract = self.admin.contract
        agency = bytes(with_retries(contract.functions.agencyOf(chain_log).call))
        if agency == NO_AGENCY:
            if not self.is_admin:
                raise NotAuthorised("unregistered", account.address,
                                    f"log 0x{chain_log.hex()} is not registered on the contract")
            self.admin.register_log(chain_log, chain_agency)
        elif agency != chain_agency:
            raise NotAuthorised("other_agency", account.address,
                                f"log 0x{chain_log.hex()} is registered to another agency "
                                f"(0x{agency.hex()})")
        if not self.admin.is_anchorer(chain_agency, account.address):
            if not self.is_admin:
                raise NotAuthorised("no_role", account.address,
                                    f"account {account.address} lacks the agency's anchorer "
                                    "role")
            self.admin.grant_anchorer(chain_agency, account.address)
        if self.is_admin:
            balance = int(with_retries(lambda: self.w3.eth.get_balance(account.address)))
            if balance < MIN_ANCHORER_BALANCE:
                self._fund(account.address, TOP_UP_WEI)
        return CustodyAnchorClient(self.w3, self.admin.address, account, self.admin.fees)

    def anchor_receipt(self, final: PendingAnchor) -> AnchorReceiptLog:
        """The `Anchored` receipt log of a final anchor, read once from the node."""
        receipt = with_retries(
            lambda: self.w3.eth.get_transaction_receipt(final.tx_hash))  # type: ignore[arg-type]
        address = self.admin.address.lower()
        entry = next(e for e in receipt["logs"] if str(e["address"]).lower() == address)
        return AnchorReceiptLog(
            chain_id=self.chain_id, contract=self.address, tx_hash=final.tx_hash,
            block_number=int(receipt["blockNumber"]), block_hash=bytes(receipt["blockHash"]),
            anchorer=final.sender.lower(), address=str(entry["address"]),
            topics=tuple(bytes(t) for t in entry["topics"]), data=bytes(entry["data"]),
        )

    def _fund(self, to: str, wei: int) -> None:
        sender = self.admin.account
        tx: dict[str, Any] = {
            "to": to, "value": wei, "gas": 21_000, "chainId": self.chain_id,
            "nonce": with_retries(lambda: self.w3.eth.get_transaction_count(
                sender.address, "pending")),
            "gasPrice": int(self.w3.eth.gas_price),
        }
        raw = sender.sign_transaction(tx).raw_transaction
        guarded(lambda: self.w3.eth.wait_for_transaction_receipt(
            self.w3.eth.send_raw_transaction(raw), timeout=RECEIPT_TIMEOUT_S))


def _fund_from_unlocked(w3: Web3, to: str, wei: int) -> None:
    """Pay `to` from the node's first unlocked account (the embedded chain's genesis one)."""
    guarded(lambda: w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction(
        {"from": w3.eth.accounts[0], "to": to, "value": Wei(wei)}), timeout=RECEIPT_TIMEOUT_S))
