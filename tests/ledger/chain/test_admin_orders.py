"""Consortium admin orders on a real anvil node: signed offline with `kitledger consortium`,
submitted by anyone with `kitledger consortium submit`; every altered, replayed, stale, foreign
or malformed file is refused with a reason, before anything is sent."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.types import RPCEndpoint

from ledger.chain.admin_orders import (
    MAX_ORDER_BYTES,
    OrderError,
    TxTerms,
    anchorer_role,
    read_order,
    sign_order,
    submit_order,
    terms_from_node,
)
from ledger.chain.client import CustodyAnchorClient
from ledger.chain.provider import connect
from ledger.cli import main
from ledger.core.checkpoint import chain_agency_id, chain_log_id
from tests.ledger.chain.anvil_node import AnvilNode
from tests.paths import REPO_ROOT

LOG = "0123456789abcdef0123456789abcdef"
VECTORS = json.loads((REPO_ROOT / "tests" / "vectors" / "consortium_orders.json").read_text())


@pytest.fixture(scope="module")
def node(anvil: AnvilNode) -> AnvilNode:
    return anvil


@pytest.fixture
def admin(node: AnvilNode) -> LocalAccount:
    account: LocalAccount = Account.create()
    fund(node, account.address)
    return account


@pytest.fixture
def contract(node: AnvilNode, admin: LocalAccount) -> Iterator[CustodyAnchorClient]:
    yield CustodyAnchorClient.deploy(connect(node.url), admin)


def fund(node: AnvilNode, address: str) -> None:
    connect(node.url).provider.make_request(
        RPCEndpoint("anvil_setBalance"), [address, hex(10**21)])


def key_file(tmp_path: Path, account: LocalAccount, name: str = "admin.key") -> Path:
    path = tmp_path / name
    path.write_text(account.key.hex() + "\n")
    path.chmod(0o600)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, json.loads(out.strip().splitlines()[-1]) if out.strip() else {}, err


def sign(capsys: pytest.CaptureFixture[str], tmp_path: Path, key: Path,
         contract: CustodyAnchorClient, action: str, out: str, *options: str
         ) -> tuple[int, dict[str, Any], str]:
    return run(capsys, "consortium", action, *options, "--contract", contract.address,
               "--key-file", str(key), "--out", str(tmp_path / out))


def test_offline_enroll_submitted_by_another_node_grants_the_role(
    node: AnvilNode, admin: LocalAccount, contract: CustodyAnchorClient, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    agency: LocalAccount = Account.create()
    key = key_file(tmp_path, admin)
    # Offline: nothing here reaches the node (chain id, nonce and fee are given).
    code, signed, _ = sign(capsys, tmp_path, key, contract, "enroll", "enroll.json",
                           "--agency", "north", "--log", LOG, "--account", agency.address,
                           "--chain-id", str(node.chain_id), "--nonce", "1", "--gas-price",
                           str(10**10))
    assert code == 0 and signed["verdict"] == "signed" and signed["nonces"] == [1, 2]
    body = (tmp_path / "enroll.json").read_text()
    assert admin.key.hex()[2:] not in body and admin.key.hex() not in body
    code, done, err = run(capsys, "consortium", "submit", str(tmp_path / "enroll.json"),
                          "--rpc", node.url)
    assert code == 0, err
    assert done["verdict"] == "submitted" and len(done["blocks"]) == 2
    assert contract.is_anchorer(chain_agency_id("north"), agency.address)
    registered = contract.contract.functions.agencyOf(chain_log_id(LOG)).call()
    assert bytes(registered) == chain_agency_id("north")
    assert contract.anchorer_role(chain_agency_id("north")) == anchorer_role("north")
    # The same file again is a replay: refused by name, nothing sent.
    code, verdict, err = run(capsys, "consortium", "submit", str(tmp_path / "enroll.json"),
                             "--rpc", node.url)
    assert code == 1 and verdict["verdict"] == "refused"
    assert "already submitted" in err and signed["transactions"][0] in err


def test_revoke_and_rotations_take_effect(
    node: AnvilNode, admin: LocalAccount, contract: CustodyAnchorClient, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    old, new, successor = Account.create(), Account.create(), Account.create()
    key = key_file(tmp_path, admin)
    north = chain_agency_id("north")
    steps = [("grant-anchorer", ("--agency", "north", "--account", old.address)),
             ("rotate-anchorer", ("--agency", "north", "--old", old.address, "--new",
                                  new.address)),
             ("revoke-anchorer", ("--agency", "north", "--account", new.address)),
             ("rotate-admin", ("--new", successor.address))]
    held = []
    for n, (action, options) in enumerate(steps):
        code, _, err = sign(capsys, tmp_path, key, contract, action, f"{n}.json", *options,
                            "--rpc", node.url)  # nonce and fees read from a node
        assert code == 0, err
        code, _, err = run(capsys, "consortium", "submit", str(tmp_path / f"{n}.json"),
                           "--rpc", node.url, "--chain-id", str(node.chain_id))
        assert code == 0, err
        held.append((contract.is_anchorer(north, old.address),
                     contract.is_anchorer(north, new.address)))
    assert held[:3] == [(True, False), (False, True), (False, False)]
    admin_role = b"\x00" * 32
    roles = contract.contract.functions
    assert roles.hasRole(admin_role, successor.address).call()
    assert not roles.hasRole(admin_role, admin.address).call()
    # The old admin's key now signs orders the contract refuses, with the contract's reason.
    code, _, err = sign(capsys, tmp_path, key, contract, "grant-anchorer", "late.json",
                        "--agency", "north", "--account", old.address, "--rpc", node.url)
    assert code == 0
    code, verdict, err = run(capsys, "consortium", "submit", str(tmp_path / "late.json"),
                             "--rpc", node.url)
    assert code == 1 and verdict["verdict"] == "refused"
    assert "AccessControlUnauthorizedAccount" in err and "nothing was sent" in err


def test_an_order_whose_nonce_was_used_since_is_refused_before_sending(
    node: AnvilNode, admin: LocalAccount, contract: CustodyAnchorClient, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key = key_file(tmp_path, admin)
    for name, account in (("a.json", Account.create()), ("b.json", Account.create())):
        code, _, _ = sign(capsys, tmp_path, key, contract, "grant-anchorer", name, "--agency",
                          "south", "--account", account.address, "--rpc", node.url)
        assert code == 0
    assert run(capsys, "consortium", "submit", str(tmp_path / "a.json"), "--rpc",
               node.url)[0] == 0
    code, _, err = run(capsys, "consortium", "submit", str(tmp_path / "b.json"), "--rpc",
                       node.url)
    assert code == 1 and "used nonce 1 for another transaction" in err


def test_an_order_for_another_chain_is_refused(
    node: AnvilNode, admin: LocalAccount, contract: CustodyAnchorClient, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, _ = sign(capsys, tmp_path, key_file(tmp_path, admin), contract, "grant-anchorer",
                      "x.json", "--agency", "north", "--account", Account.create().address,
                      "--chain-id", "4242", "--nonce", "1", "--gas-price", "0")
    assert code == 0
    code, _, err = run(capsys, "consortium", "submit", str(tmp_path / "x.json"), "--rpc",
                       node.url)
    assert code == 1 and "chain id 31337, expected 4242" in err


# -- altered and malformed files (no node needed to refuse them) ---------------------------

ADMIN: LocalAccount = Account.from_key(b"\x11" * 32)
CONTRACT = "0x" + "c0" * 20
TERMS = TxTerms(chain_id=1337, nonce=5, gas_price=0)


def _order(action: str = "grant-anchorer", **subject: str) -> dict[str, Any]:
    fields = subject or {"agency": "north", "account": "0x" + "ab" * 20}
    order = sign_order(action, fields, CONTRACT, ADMIN.key, TERMS)
    parsed: dict[str, Any] = json.loads(order.to_json())
    return parsed


def _refused(raw: dict[str, Any] | bytes, reason: str) -> None:
    body = raw if isinstance(raw, bytes) else json.dumps(raw).encode()
    with pytest.raises(OrderError, match=reason):
        read_order(body)


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["name"])
def test_orders_match_their_known_answers(case: dict[str, Any]) -> None:
    """The file format and the signed bytes are pinned: a change here breaks every order
    an admin has signed and not yet submitted."""
    order = sign_order(case["action"], case["subject"], case["contract"], case["admin_key"],
                       TxTerms(**case["terms"]))
    assert json.loads(order.to_json()) == case["order"]
    read = read_order(json.dumps(case["order"]).encode())
    assert ["0x" + h.hex() for h in read.hashes] == case["tx_hashes"]


def test_a_signed_order_reads_back_as_signed() -> None:
    order = read_order(json.dumps(_order("enroll", agency="north", log=LOG,
                                         account="0x" + "ab" * 20)).encode())
    assert order.admin == ADMIN.address and order.nonces == (5, 6)
    assert order.subject == {"agency": "north", "log": LOG,
                             "account": Web3.to_checksum_address("0x" + "ab" * 20)}


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("subject", {"agency": "north", "account": "0x" + "cd" * 20}, "does not carry out"),
    ("subject", {"agency": "south", "account": "0x" + "ab" * 20}, "does not carry out"),
    ("action", "revoke-anchorer", "does not carry out"),
    ("chain_id", 1, "is for chain id 1337, not 1"),
    ("contract", "0x" + "c1" * 20, "another contract"),
    ("admin", "0x" + "11" * 20, "not the admin"),
    ("format", "kitledger-consortium-order/2", "format must be"),
    ("action", "deploy", "unknown action"),
    ("subject", {"agency": "north"}, "takes exactly agency, account"),
    ("subject", {"agency": "north", "account": "0x" + "00" * 20}, "non-zero"),
    ("subject", {"agency": "north\n", "account": "0x" + "ab" * 20}, "agency id"),
    ("chain_id", True, "positive integer"),
    ("chain_id", "1337", "positive integer"),
    ("transactions", [], "carries 1 transaction"),
    ("transactions", ["0x" + "ff" * 2000], "at most 1024 bytes"),
    ("transactions", ["0xZZ"], "lowercase hex"),
    ("transactions", ["0x01c0"], "does not decode"),
])
def test_an_edited_order_is_refused_with_the_reason(field: str, value: Any,
                                                   reason: str) -> None:
    raw = _order()
    raw[field] = value
    _refused(raw, reason)


def test_flipped_bytes_no_longer_carry_the_admins_signature() -> None:
    raw = _order()
    tx = bytes.fromhex(raw["transactions"][0][2:])
    for position in (len(tx) - 70, len(tx) - 40, len(tx) - 1):  # call data, r, s
        flipped = bytearray(tx)
        flipped[position] ^= 0x01
        raw["transactions"] = ["0x" + flipped.hex()]
        with pytest.raises(OrderError, match=r"not the admin|does not decode|does not carry"):
            read_order(json.dumps(raw).encode())


def test_a_transaction_signed_by_the_admin_that_pays_or_is_legacy_is_refused() -> None:
    raw = _order()
    base = {"to": Web3.to_checksum_address(CONTRACT), "gas": 120_000, "chainId": 1337, "nonce": 5,
            "data": bytes.fromhex(_first_call(raw)), "gasPrice": 0}
    paying = ADMIN.sign_transaction(base | {"value": 1, "accessList": []}).raw_transaction
    raw["transactions"] = ["0x" + bytes(paying).hex()]
    _refused(raw, "sends value")
    legacy = ADMIN.sign_transaction(base | {"value": 0}).raw_transaction
    raw["transactions"] = ["0x" + bytes(legacy).hex()]
    _refused(raw, "not an EIP-2930 or EIP-1559")


def _first_call(raw: dict[str, Any]) -> str:
    from eth_account.typed_transactions import TypedTransaction
    from hexbytes import HexBytes
    fields = TypedTransaction.from_bytes(HexBytes(raw["transactions"][0])).as_dict()
    return bytes(fields["data"]).hex()


def test_rotation_nonces_must_follow_each_other() -> None:
    raw = _order("rotate-admin", new="0x" + "ab" * 20)
    other = sign_order("rotate-admin", {"new": "0x" + "ab" * 20}, CONTRACT, ADMIN.key,
                       TxTerms(chain_id=1337, nonce=9, gas_price=0))
    raw["transactions"][1] = "0x" + other.transactions[1].hex()
    _refused(raw, "does not follow the previous nonce")


@pytest.mark.parametrize(("body", "reason"), [
    (b"\xff\xfe", "not an order file"),
    (b"[]", "format must be"),
    (b"{" + b" " * MAX_ORDER_BYTES + b"}", "larger than"),
    (b'{"format": "a", "format": "kitledger-consortium-order/1"}', "duplicate key"),
])
def test_malformed_files_are_refused(body: bytes, reason: str) -> None:
    _refused(body, reason)


def test_unknown_fields_and_trailing_garbage_are_refused() -> None:
    raw = _order()
    _refused(json.dumps(raw).encode() + b"garbage", "not an order file")
    raw["memo"] = "hello"
    _refused(raw, "order fields must be exactly")


def test_signing_checks_its_inputs_and_never_echoes_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "admin.key"
    key.write_text(os.urandom(32).hex())
    key.chmod(0o644)
    common = ("--contract", CONTRACT, "--key-file", str(key), "--out", str(tmp_path / "o.json"))
    grant = ("consortium", "grant-anchorer", "--agency", "north", "--account", "0x" + "ab" * 20)
    code, _, err = run(capsys, *grant, *common, "--chain-id", "1", "--nonce", "0",
                       "--gas-price", "0")
    assert code == 2 and "readable by others" in err and key.read_text() not in err
    key.chmod(0o600)
    code, _, err = run(capsys, *grant, *common)
    assert code == 2 and "offline signing needs --chain-id, --nonce, --gas-price or --max-fee" \
        in err
    key.write_text("not a key")
    code, _, err = run(capsys, *grant, *common, "--chain-id", "1", "--nonce", "0",
                       "--gas-price", "0")
    assert code == 2 and "does not hold a 32-byte hex account key" in err
    assert not (tmp_path / "o.json").exists()


def test_a_rotation_cut_short_sends_only_what_is_missing(
    node: AnvilNode, admin: LocalAccount, contract: CustodyAnchorClient
) -> None:
    w3 = connect(node.url)
    old, new = Account.create(), Account.create()
    north = chain_agency_id("north")
    contract.grant_anchorer(north, old.address)
    order = sign_order("rotate-anchorer", {"agency": "north", "old": old.address,
                                           "new": new.address}, contract.address, admin.key,
                       terms_from_node(w3, admin.address))
    w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(order.transactions[0]))
    assert contract.is_anchorer(north, old.address) and contract.is_anchorer(north, new.address)
    done = submit_order(w3, order)
    assert [d.tx_hash for d in done] == list(order.hashes)
    assert not contract.is_anchorer(north, old.address)
    with pytest.raises(OrderError, match="already submitted"):
        submit_order(w3, order)
