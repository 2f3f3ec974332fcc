"""Chain fixtures: every client and anchorer test runs on the embedded py-evm chain AND on a
real anvil node started fresh for the module."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.chain.client import CustodyAnchorClient
from ledger.chain.provider import EMBEDDED_URL, connect
from tests.ledger.chain.anvil_node import AnvilNode
from tests.ledger.chain.chain_support import ChainHarness, Deployment


@pytest.fixture(scope="module", params=["embedded", "anvil"])
def chain(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[ChainHarness]:
    if request.param == "embedded":
        yield ChainHarness("embedded", connect(EMBEDDED_URL), EMBEDDED_URL)
        return
    node = AnvilNode(tmp_path_factory.mktemp("anvil"))
    node.start()
    try:
        yield ChainHarness("anvil", connect(node.url, expected_chain_id=node.chain_id),
                           node.url, node)
    finally:
        node.stop()


@pytest.fixture
def deployment(chain: ChainHarness) -> Deployment:
    admin_account = chain.new_account()
    admin = CustodyAnchorClient.deploy(chain.w3, admin_account)
    anchorer_account = chain.new_account()
    log_id, agency_id = os.urandom(32), os.urandom(32)
    admin.register_log(log_id, agency_id)
    admin.grant_anchorer(agency_id, anchorer_account.address)
    return Deployment(admin, CustodyAnchorClient(chain.w3, admin.address, anchorer_account),
                      log_id, agency_id)


@pytest.fixture
def tmp_db(tmp_path: Path) -> Path:
    return tmp_path / "pending.sqlite"
