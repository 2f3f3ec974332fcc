"""CustodyAnchor on both chains: every role path, every revert and its custom error, events."""

from __future__ import annotations

import os
from typing import Any

import pytest

from ledger.chain.client import CustodyAnchorClient, guarded
from ledger.chain.errors import ContractRevert
from tests.ledger.chain.chain_support import ChainHarness, Deployment

ZERO32 = b"\x00" * 32
ZERO_ADDRESS = "0x" + "00" * 20


def reverts(error_name: str, call: Any, sender: str) -> ContractRevert:
    """Assert that simulating `call` from `sender` reverts with `error_name`; return the error."""
    with pytest.raises(ContractRevert) as caught:
        guarded(lambda: call.call({"from": sender}))
    assert caught.value.error_name == error_name, caught.value
    return caught.value


def test_deploy_refuses_zero_admin(chain: ChainHarness) -> None:
    with pytest.raises(ContractRevert) as caught:
        CustodyAnchorClient.deploy(chain.w3, chain.new_account(), admin=ZERO_ADDRESS)
    assert caught.value.error_name == "ZeroAdmin"


def test_deployed_code_matches_artifact(chain: ChainHarness, deployment: Deployment) -> None:
    from ledger.chain.contract_artifact import load_artifact

    code = chain.w3.eth.get_code(deployment.admin.contract.address)
    assert "0x" + bytes(code).hex() == load_artifact().deployed_bytecode


def test_admin_registers_log_and_event_names_agency(deployment: Deployment) -> None:
    admin = deployment.admin
    log_id, agency_id = os.urandom(32), os.urandom(32)
    receipt = admin.register_log(log_id, agency_id)
    assert bytes(admin.contract.functions.agencyOf(log_id).call()) == agency_id
    tx = admin.w3.eth.get_transaction_receipt(receipt.tx_hash)
    (event,) = admin.contract.events.LogRegistered().process_receipt(tx)
    assert bytes(event["args"]["logId"]) == log_id
    assert bytes(event["args"]["agencyId"]) == agency_id
    assert event["args"]["admin"] == admin.account.address


def test_register_log_reverts(deployment: Deployment, chain: ChainHarness) -> None:
    admin = deployment.admin
    fn = admin.contract.functions
    me = admin.account.address
    reverts("ZeroId", fn.registerLog(ZERO32, os.urandom(32)), me)
    reverts("ZeroId", fn.registerLog(os.urandom(32), ZERO32), me)
    err = reverts("LogAlreadyRegistered", fn.registerLog(deployment.log_id, os.urandom(32)), me)
    assert err.arguments == {"logId": deployment.log_id, "agencyId": deployment.agency_id}
    stranger = chain.new_account().address
    err = reverts("AccessControlUnauthorizedAccount", fn.registerLog(os.urandom(32),
                                                                     os.urandom(32)), stranger)
    assert err.arguments["account"] == stranger
    assert bytes(err.arguments["neededRole"]) == ZERO32


def test_anchor_role_paths(deployment: Deployment, chain: ChainHarness) -> None:
    admin, anchorer = deployment.admin, deployment.anchorer
    fn = admin.contract.functions
    root = os.urandom(32)
    # Granted anchorer: accepted, and the event and views say so.
    assert admin.is_anchorer(deployment.agency_id, anchorer.account.address)
    reverts_none = fn.anchor(deployment.log_id, 3, root).call({"from": anchorer.account.address})
    assert reverts_none == []
    # The consortium admin is not an anchorer of any agency by default.
    err = reverts("NotAnchorer", fn.anchor(deployment.log_id, 3, root), admin.account.address)
    assert err.arguments == {"logId": deployment.log_id, "agencyId": deployment.agency_id,
                             "account": admin.account.address}
    # An anchorer of another agency cannot anchor this agency's log.
    other = chain.new_account()
    admin.grant_anchorer(os.urandom(32), other.address)
    reverts("NotAnchorer", fn.anchor(deployment.log_id, 3, root), other.address)
    # Revoking removes the right.
    admin.revoke_anchorer(deployment.agency_id, anchorer.account.address)
    assert not admin.is_anchorer(deployment.agency_id, anchorer.account.address)
    reverts("NotAnchorer", fn.anchor(deployment.log_id, 3, root), anchorer.account.address)


def test_only_admin_manages_roles(deployment: Deployment, chain: ChainHarness) -> None:
    admin, anchorer = deployment.admin, deployment.anchorer
    role = admin.anchorer_role(deployment.agency_id)
    stranger = chain.new_account().address
    fn = admin.contract.functions
    # An anchorer cannot grant its own role onwards (the admin of every role is the consortium).
    err = reverts("AccessControlUnauthorizedAccount", fn.grantRole(role, stranger),
                  anchorer.account.address)
    assert err.arguments["account"] == anchorer.account.address
    reverts("AccessControlUnauthorizedAccount", fn.revokeRole(role, anchorer.account.address),
            stranger)
    # renounceRole demands the caller confirm its own address.
    reverts("AccessControlBadConfirmation", fn.renounceRole(role, stranger),
            anchorer.account.address)
    # A second consortium admin can register logs; the first can hand over and renounce.
    second = CustodyAnchorClient(chain.w3, admin.address, chain.new_account())
    admin._transact(fn.grantRole(ZERO32, second.account.address))
    second.register_log(os.urandom(32), os.urandom(32))
    admin._transact(fn.renounceRole(ZERO32, admin.account.address))
    reverts("AccessControlUnauthorizedAccount", fn.registerLog(os.urandom(32), os.urandom(32)),
            admin.account.address)


def test_anchorer_roles_differ_per_agency(deployment: Deployment) -> None:
    a, b = os.urandom(32), os.urandom(32)
    roles = {deployment.admin.anchorer_role(x) for x in (a, b, ZERO32)}
    assert len(roles) == 3 and ZERO32 not in roles


def test_anchor_reverts(deployment: Deployment) -> None:
    fn = deployment.admin.contract.functions
    me = deployment.anchorer.account.address
    unknown = os.urandom(32)
    err = reverts("UnknownLog", fn.anchor(unknown, 1, os.urandom(32)), me)
    assert err.arguments == {"logId": unknown}
    err = reverts("TreeSizeNotIncreasing", fn.anchor(deployment.log_id, 0, os.urandom(32)), me)
    assert err.arguments == {"logId": deployment.log_id, "latest": 0, "given": 0}
    err = reverts("ZeroRoot", fn.anchor(deployment.log_id, 1, ZERO32), me)
    assert err.arguments == {"logId": deployment.log_id, "treeSize": 1}


def test_tree_size_strictly_increases(deployment: Deployment, tmp_db: Any) -> None:
    from ledger.chain.pending import SqlitePendingAnchorStore

    store = SqlitePendingAnchorStore(tmp_db)
    anchorer = deployment.anchorer
    root10 = os.urandom(32)
    sent = anchorer.anchor(store, deployment.log_id, 10, root10, b"{}", 0.0)
    anchorer.wait_for_receipt(sent.tx_hash)
    fn = anchorer.contract.functions
    me = anchorer.account.address
    for size in (10, 9, 1):
        err = reverts("TreeSizeNotIncreasing", fn.anchor(deployment.log_id, size, root10), me)
        assert err.arguments["latest"] == 10 and err.arguments["given"] == size
    # The uint64 bound is the ABI's: a bigger size cannot even be encoded.
    with pytest.raises(Exception):  # noqa: B017 - web3 raises its own validation error type
        fn.anchor(deployment.log_id, 2**64, root10).call({"from": me})


def test_views(deployment: Deployment, tmp_db: Any) -> None:
    from ledger.chain.pending import SqlitePendingAnchorStore

    store = SqlitePendingAnchorStore(tmp_db)
    anchorer, log_id = deployment.anchorer, deployment.log_id
    empty = anchorer.latest_checkpoint(log_id)
    assert (empty.tree_size, empty.root, empty.block_number) == (0, ZERO32, 0)
    roots = {}
    for size in (4, 7):
        roots[size] = os.urandom(32)
        sent = anchorer.anchor(store, log_id, size, roots[size], b"{}", 0.0)
        receipt = anchorer.wait_for_receipt(sent.tx_hash)
    latest = anchorer.latest_checkpoint(log_id)
    assert (latest.tree_size, latest.root, latest.block_number) == (7, roots[7],
                                                                     receipt.block_number)
    assert anchorer.root_at(log_id, 4) == roots[4]
    assert anchorer.root_at(log_id, 7) == roots[7]
    fn = anchorer.contract.functions
    me = anchorer.account.address
    err = reverts("NoCheckpoint", fn.rootAt(log_id, 5), me)
    assert err.arguments == {"logId": log_id, "treeSize": 5}
    reverts("UnknownLog", fn.rootAt(os.urandom(32), 4), me)
    reverts("UnknownLog", fn.latestCheckpoint(os.urandom(32)), me)
    events = anchorer.anchored_events(log_id, 0)
    assert [(e.tree_size, e.root, e.anchorer) for e in events] == [
        (4, roots[4], me), (7, roots[7], me)]
