"""The log writers' locks on PostgreSQL: one per agency log, so two agencies' batches commit
in parallel while one agency's take turns, and a batch touching two agencies' logs holds both,
taken in one order. Real connections; who waits for whom is read from the server
(`pg_stat_activity`, `pg_locks`), and threads meet at barriers: no timing."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session, SQLModel, select

from api.config import load_settings
from api.ingest.pipeline import IngestPipeline
from api.logstore import (
    LOG_LOCK_CLASS,
    UnclaimedLog,
    appending_log,
    claim_log_writer,
    log_lock_key,
)
from api.models import Agency, Asset, AssetClass, CustodyEventRow, Site
from api.models.assets import AssetCreate, AssetShare, AssetStatus, HolderKind
from api.models.people import PersonCreate
from api.models.registry import ReaderRole
from api.registry import RegistryError, create_asset, create_person
from tests.api.api_support import register_reader
from tests.fixtures.polling import wait_for

BARRIER_S = 30.0
"""How long a thread waits at a barrier for the other: only a deadline for a broken test."""


@pytest.fixture
def pg(_migrated_postgres: Engine) -> Engine:
    tables = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    with _migrated_postgres.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    return _migrated_postgres


def _now() -> datetime:
    return datetime.now(UTC)


def _backend(session: Session) -> int:
    return int(session.connection().execute(text("SELECT pg_backend_pid()")).scalar_one())


def _waits_for_a_lock(engine: Engine, pid: int) -> bool:
    with engine.connect() as conn:
        event = conn.execute(text("SELECT wait_event FROM pg_stat_activity WHERE pid = :pid"),
                             {"pid": pid}).scalar()
    return event == "advisory"


def _holds_log_lock(engine: Engine, pid: int, agency: str) -> bool:
    with engine.connect() as conn:
        return bool(conn.execute(text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND pid = :pid AND classid = CAST(:cls AS oid) AND objid = CAST(:key AS oid)"
        ), {"pid": pid, "cls": LOG_LOCK_CLASS, "key": log_lock_key(agency)}).scalar())


class Holder:
    """A thread holding a claim open until `release()`; `pid`: its backend once claimed."""

    def __init__(self, engine: Engine, claim: Callable[[Session], object]) -> None:
        self.pid = 0
        self.claimed = threading.Event()
        self.done = threading.Event()
        self.error: BaseException | None = None
        self._release = threading.Event()
        self._engine, self._claim = engine, claim
        self._before_claim = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._before_claim.wait(BARRIER_S)

    def _run(self) -> None:
        try:
            with Session(self._engine) as session:
                self.pid = _backend(session)
                self._before_claim.set()
                self._claim(session)
                self.claimed.set()
                self._release.wait(BARRIER_S)
                session.commit()
        except BaseException as exc:  # reported to the test
            self.error = exc
        finally:
            self._before_claim.set()
            self.done.set()

    def release(self) -> None:
        self._release.set()
        self._thread.join(BARRIER_S)
        assert self.done.is_set()


def _claims(*agencies: str) -> Callable[[Session], object]:
    return lambda session: claim_log_writer(session, _now(), list(agencies))


def test_two_agencies_write_their_logs_at_once(pg: Engine) -> None:
    """Each holds its agency's claim until the other has its own: with one lock for every
    log the second would wait for the first and the barrier would break."""
    both_in = threading.Barrier(2, timeout=BARRIER_S)

    def claim_then_meet(agency: str) -> Callable[[Session], None]:
        def claim(session: Session) -> None:
            claim_log_writer(session, _now(), [agency])
            both_in.wait()
        return claim

    north, south = Holder(pg, claim_then_meet("north")), Holder(pg, claim_then_meet("south"))
    north.release()
    south.release()
    assert north.error is None and south.error is None


def test_one_agency_writers_take_turns(pg: Engine) -> None:
    first = Holder(pg, _claims("north"))
    assert first.claimed.wait(BARRIER_S)
    second = Holder(pg, _claims("north"))
    assert wait_for(lambda: _waits_for_a_lock(pg, second.pid))
    assert not second.claimed.is_set()
    first.release()
    assert second.claimed.wait(BARRIER_S)
    second.release()
    assert first.error is None and second.error is None


def test_several_logs_are_claimed_in_one_order_whatever_the_callers_order(pg: Engine) -> None:
    """Two claims of the same two logs, named in opposite orders, queue behind a holder of
    the first in key order and hold nothing else meanwhile: neither can hold one log while
    waiting for the other's, so they cannot deadlock."""
    low, high = sorted(("north", "south"), key=log_lock_key)
    blocker = Holder(pg, _claims(low))
    assert blocker.claimed.wait(BARRIER_S)
    forward, backward = Holder(pg, _claims(low, high)), Holder(pg, _claims(high, low))
    assert wait_for(lambda: _waits_for_a_lock(pg, forward.pid)
                    and _waits_for_a_lock(pg, backward.pid))
    assert not _holds_log_lock(pg, forward.pid, high)
    assert not _holds_log_lock(pg, backward.pid, high)
    blocker.release()
    assert forward.claimed.wait(BARRIER_S) or backward.claimed.wait(BARRIER_S)
    forward.release()
    backward.release()
    assert (blocker.error, forward.error, backward.error) == (None, None, None)


def test_a_claim_of_every_log_waits_for_each_agency_writer_and_holds_them_off(
    pg: Engine,
) -> None:
    agency = Holder(pg, _claims("north"))
    assert agency.claimed.wait(BARRIER_S)
    every = Holder(pg, lambda session: claim_log_writer(session, _now()))
    assert wait_for(lambda: _waits_for_a_lock(pg, every.pid))
    agency.release()
    assert every.claimed.wait(BARRIER_S)
    later = Holder(pg, _claims("south"))
    assert wait_for(lambda: _waits_for_a_lock(pg, later.pid))
    every.release()
    assert later.claimed.wait(BARRIER_S)
    later.release()
    assert (agency.error, every.error, later.error) == (None, None, None)


def test_appending_to_a_log_not_claimed_is_refused(pg: Engine) -> None:
    with Session(pg) as session:
        claim_log_writer(session, _now(), ["south"])
        with pytest.raises(UnclaimedLog, match="'north'"), appending_log(session) as logs:
            logs.of("north")
        logs_of_south = None
        with appending_log(session) as logs:
            logs_of_south = logs.of("south")
        assert logs_of_south.size == 0
        session.rollback()


@pytest.fixture
def lent(pg: Engine) -> Iterator[Engine]:
    """North's radio R-1 on loan to south (shared with it), and south's return desk."""
    with Session(pg) as session:
        for agency in ("north", "south"):
            session.add(Agency(id=agency, name=agency.title()))
        session.flush()
        for agency in ("north", "south"):
            session.add(Site(id=f"{agency}-store", agency_id=agency, name="Store"))
        session.add(AssetClass(id="radio", agency_id="north", name="Radio"))
        session.flush()
        create_asset(session, agency_id="north", now=_now(), data=AssetCreate(
            id="R-1", class_id="radio", epc_hex=RADIO, home_site_id="north-store"))
        session.flush()
        asset = session.get(Asset, ("north", "R-1"))
        assert asset is not None
        asset.status, asset.holder_kind, asset.holder_ref, asset.holder_agency_id = (
            AssetStatus.ON_LOAN, HolderKind.AGENCY, "south", "south")
        session.add(asset)
        session.add(AssetShare(owner_id="north", asset_id="R-1", agency_id="south"))
        session.commit()
    yield pg


RADIO = "E28011606000020500000077"


def test_a_borrowers_read_of_lent_kit_claims_the_owners_log_too(lent: Engine) -> None:
    """South's return desk reads north's radio back in: the return goes to north's log, so
    the batch waits for north's writer, and it remembers to claim north's log up front."""
    desk = register_reader(lent, agency_id="south", site_id="south-store",
                           reader_id="south-return", role=ReaderRole.RETURN_DESK)
    pipeline = IngestPipeline(lent, load_settings())
    north = Holder(lent, _claims("north"))
    assert north.claimed.wait(BARRIER_S)
    results: list[int] = []
    batch = threading.Thread(target=lambda: results.append(
        pipeline.process([desk.message(0, RADIO)]).attempts), daemon=True)
    batch.start()

    def batch_waits() -> bool:
        with lent.connect() as conn:
            return bool(conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'advisory'"
                " AND pid <> :holder"), {"holder": north.pid}).scalar())

    assert wait_for(batch_waits)
    assert results == []
    north.release()
    batch.join(BARRIER_S)
    assert results == [2]  # the first try found north's log unclaimed
    with Session(lent) as session:
        actions = [e.action for e in session.exec(
            select(CustodyEventRow).where(CustodyEventRow.asset_id == "R-1")
            .order_by(CustodyEventRow.id))]  # type: ignore[arg-type]
    assert actions == ["register", "loan_return"]
    assert pipeline.process([desk.message(1, RADIO)]).attempts == 1  # claimed up front now


@pytest.mark.parametrize(("badge_agency", "refused"), [("north", True), ("south", False)])
def test_registrations_of_one_epc_take_turns(pg: Engine, badge_agency: str,
                                             refused: bool) -> None:
    """An EPC is one asset's or one badge's within an agency: a badge registered while north
    registers the same EPC as an asset waits for it, then is refused in north. EPCs are each
    agency's own, so south's badge with that EPC is registered (and says nothing of north's)."""
    with Session(pg) as session:
        for agency in ("north", "south"):
            session.add(Agency(id=agency, name=agency.title()))
        session.flush()
        session.add(Site(id="north-store", agency_id="north", name="Store"))
        session.add(AssetClass(id="radio", agency_id="north", name="Radio"))
        session.commit()
    asset = Holder(pg, lambda session: create_asset(
        session, agency_id="north", now=_now(), data=AssetCreate(
            id="R-9", class_id="radio", epc_hex=RADIO, home_site_id="north-store")))
    assert asset.claimed.wait(BARRIER_S)
    badge = Holder(pg, lambda session: create_person(
        session, agency_id=badge_agency, now=_now(),
        data=PersonCreate(id="sam", badges=[RADIO])))
    assert wait_for(lambda: _waits_for_a_lock(pg, badge.pid))
    asset.release()
    badge.release()
    assert asset.error is None
    assert isinstance(badge.error, RegistryError) == refused
