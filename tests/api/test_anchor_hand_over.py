"""The anchorer's hand-over: a process giving up the anchorer's role (a rolling restart) first
sees its transactions in flight final and recorded, and sends nothing new meanwhile, so the
next node to hold the role never anchors beside one of them. On a real anvil mining a block
every 1.5 s, with 3 confirmations asked: a transaction stays in flight for seconds."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import Engine
from sqlmodel import Session, col, select
from web3.types import RPCEndpoint

from api.anchoring import CHAIN_CHECK_S, AnchoringService
from api.config import load_settings
from api.db import make_engine
from api.migrate import upgrade
from api.models.assets import AssetClass, AssetCreate
from api.models.custody import LogCheckpoint
from api.registry import create_asset
from ledger.chain.provider import connect
from tests.api.api_support import register_reader
from tests.ledger.chain.anvil_node import AnvilNode


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    made = make_engine(load_settings(database_url=f"sqlite:///{tmp_path / 'api.db'}"))
    upgrade(made)
    register_reader(made)
    with Session(made) as session:
        session.add(AssetClass(id="radio", agency_id="north", name="Radio"))
        session.flush()
        create_asset(session, agency_id="north", now=datetime.now(UTC), data=AssetCreate(
            id="R-1", class_id="radio", epc_hex="E28011606000020500000001",
            home_site_id="north-store"))
        session.commit()
    yield made
    made.dispose()


@pytest.fixture
def node(tmp_path: Path) -> Iterator[AnvilNode]:
    started = AnvilNode(tmp_path / "anvil", block_time=1.5)
    started.state.parent.mkdir()
    started.start()
    yield started
    started.stop()


def _service(tmp_path: Path, node: AnvilNode, engine: Engine) -> AnchoringService:
    admin: LocalAccount = Account.create()
    connect(node.url).provider.make_request(
        RPCEndpoint("anvil_setBalance"), [admin.address, hex(10**21)])
    key_file = tmp_path / "admin.key"
    key_file.write_text(admin.key.hex())
    key_file.chmod(0o600)
    settings = load_settings(environment="test", secret_key="y" * 40,
                             log_key_dir=tmp_path / "keys", anchor_chain_url=node.url,
                             anchor_admin_key_file=key_file, anchor_interval_s=1,
                             anchor_confirmations=3)
    service = AnchoringService(settings, engine)
    service.start()
    return service


def _recorded(engine: Engine) -> list[int]:
    with Session(engine) as session:
        return list(session.exec(select(LogCheckpoint.tree_size).where(
            LogCheckpoint.agency_id == "north", col(LogCheckpoint.tx_hash).is_not(None))))


def _in_flight(service: AnchoringService) -> int:
    assert service.pending is not None
    return sum(len(service.pending.unfinished(agency.anchorer.chain_log_id))
               for agency in service.agencies.values())


def test_a_stopping_anchorer_sees_its_transaction_in_flight_final_and_recorded_before_it_lets_go(
    engine: Engine, node: AnvilNode, tmp_path: Path
) -> None:
    service = _service(tmp_path, node, engine)
    try:
        now = time.time()
        for _ in range(100):  # until the first anchor is sent (the log joins on the way)
            now += CHAIN_CHECK_S
            service.step(now)
            if _in_flight(service):
                break
            time.sleep(0.1)
        assert _in_flight(service) == 1
        assert _recorded(engine) == []
        started = time.monotonic()
        assert service.hand_over(time.monotonic() + 30, poll_s=0.2)
        # Three confirmations at 1.5 s a block: it waited for them, and sent nothing new.
        assert time.monotonic() - started >= 2.5
        assert _in_flight(service) == 0
        assert len(_recorded(engine)) == 1
        # Nothing in flight any more: a later hand-over lets go at once.
        started = time.monotonic()
        assert service.hand_over(time.monotonic() + 10, poll_s=0.2)
        assert time.monotonic() - started < 5
    finally:
        service.close()


def test_a_hand_over_that_cannot_finish_gives_up_at_its_deadline_with_the_anchor_still_owed(
    engine: Engine, node: AnvilNode, tmp_path: Path
) -> None:
    service = _service(tmp_path, node, engine)
    try:
        now = time.time()
        for _ in range(100):
            now += CHAIN_CHECK_S
            service.step(now)
            if _in_flight(service):
                break
            time.sleep(0.1)
        assert _in_flight(service) == 1
        node.kill()  # the chain node is gone: nothing can become final
        started = time.monotonic()
        assert not service.hand_over(time.monotonic() + 3, poll_s=0.2)
        assert 3 <= time.monotonic() - started < 20
        assert _in_flight(service) == 1  # kept in the pending store, settled when back
        assert _recorded(engine) == []
    finally:
        service.close()
