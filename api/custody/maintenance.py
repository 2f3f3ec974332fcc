"""Maintenance and calibration: per-class schedules, the work done on items, items taken out
of service and back, and what the issue desk refuses for want of them.

Each is a registry record appended in the transaction that stores its row: a schedule
(`maintenance-schedule`) in its class's chain, a check done (`maintenance-done`, pass or fail,
by whom as a commitment, next due) and a service change (`out-of-service`,
`back-in-service`) in the asset's. The rows index them for the desk and the due list; the
verifier holds check-outs to the records (`ledger.verify.maintenance`), with the same rule
(`ledger.core.maintenance_rules`). A refusal raises `CustodyRefused`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlmodel import Session, col, select

from api import webhook_outbox
from api.custody.transfers import CustodyRefused
from api.logstore import claim_log_writer
from api.models.assets import Asset, AssetClass, AssetStatus
from api.models.maintenance import MaintenanceSchedule, MaintenanceWork
from api.models.people import Person
from api.registry_log import Change, log_registry, subject_records
from ledger.core.maintenance_rules import ScheduleState, issue_refusal
from ledger.core.records import (
    BACK_IN_SERVICE,
    MAINTENANCE_DONE,
    MAINTENANCE_SCHEDULE,
    OUT_OF_SERVICE,
    format_time,
)


class AssetKey(Protocol):
    """What the desk checks read of an asset: an `Asset` or the ingest's `AssetRow`."""

    @property
    def id(self) -> str: ...
    @property
    def agency_id(self) -> str: ...
    @property
    def class_id(self) -> str: ...


OUT: str = "out"
BACK: str = "in"
"""`MaintenanceWork.result` of a service change (a check's is "pass" or "fail")."""


def _claim(session: Session, agency_id: str, now: datetime) -> None:
    claim_log_writer(session, now, [agency_id], registry=True)


def _live(asset: Asset) -> None:
    if asset.status in (AssetStatus.DISPOSED, AssetStatus.RETIRED):
        raise CustodyRefused(f"asset is {asset.status}")


def add_schedule(session: Session, *, asset_class: AssetClass, key: str, name: str,
                 interval_days: int, blocking: bool, now: datetime) -> MaintenanceSchedule:
    """Give `asset_class` the schedule `key`, logged in the class's chain."""
    _claim(session, asset_class.agency_id, now)
    taken = session.exec(select(MaintenanceSchedule).where(
        MaintenanceSchedule.agency_id == asset_class.agency_id,
        MaintenanceSchedule.key == key)).first()
    if taken is not None:
        raise CustodyRefused(f"schedule {key!r} exists")
    leaf = _logged(session, asset_class.agency_id, ("class", asset_class.id),
                   Change(MAINTENANCE_SCHEDULE, {
                       "class": asset_class.id, "schedule": key, "name": name,
                       "interval_days": interval_days, "blocking": blocking}), now)
    schedule = MaintenanceSchedule(agency_id=asset_class.agency_id, key=key,
                                   class_id=asset_class.id, name=name,
                                   interval_days=interval_days, blocking=blocking,
                                   leaf_index=leaf, created_at=now)
    session.add(schedule)
    return schedule


def _logged(session: Session, agency_id: str, subject: tuple[str, str], change: Change,
            now: datetime) -> int:
    """Log `change` of `subject`; its leaf."""
    log_registry(session, agency_id, [change], now)
    return subject_records(session, agency_id, subject)[-1][1]


def schedules_of(session: Session, agency_id: str, class_id: str | None = None
                 ) -> list[MaintenanceSchedule]:
    """The agency's schedules (of one class if asked), by key."""
    query = select(MaintenanceSchedule).where(MaintenanceSchedule.agency_id == agency_id)
    if class_id is not None:
        query = query.where(MaintenanceSchedule.class_id == class_id)
    return list(session.exec(query.order_by(col(MaintenanceSchedule.key))))


def record_check(session: Session, *, asset: Asset, schedule: MaintenanceSchedule,
                 passed: bool, officer: Person, now: datetime) -> MaintenanceWork:
    """Record that `officer` did `schedule`'s check on `asset`: a pass is next due after the
    schedule's interval; a fail blocks issue (if the schedule blocks) until a pass."""
    _claim(session, asset.agency_id, now)
    session.refresh(asset, with_for_update=True)
    _live(asset)
    _officer(officer, asset)
    if schedule.agency_id != asset.agency_id or schedule.class_id != asset.class_id:
        raise CustodyRefused(f"schedule {schedule.key!r} is not one of class "
                             f"{asset.class_id!r}")
    next_due = now + timedelta(days=schedule.interval_days) if passed else None
    result = "pass" if passed else "fail"
    leaf = _logged(session, asset.agency_id, ("asset", asset.id), Change(MAINTENANCE_DONE, {
        "asset": asset.id, "schedule": schedule.key, "result": result,
        "by": officer.commitment,
        "next_due": format_time(next_due) if next_due is not None else None}), now)
    work = MaintenanceWork(agency_id=asset.agency_id, asset_id=asset.id,
                           schedule_key=schedule.key, result=result, officer_id=officer.id,
                           next_due=next_due, leaf_index=leaf, created_at=now)
    session.add(work)
    webhook_outbox.property_room_event(session, asset.agency_id, "maintenance.done", {
        "asset_id": asset.id, "schedule": schedule.key, "result": result, "leaf_index": leaf,
        "next_due": format_time(next_due) if next_due is not None else None}, now)
    return work


def _officer(officer: Person, asset: Asset) -> None:
    if officer.agency_id != asset.agency_id or not officer.active:
        raise CustodyRefused("the officer must be an active person of the owning agency")


def out_of_service(session: Session, asset: AssetKey) -> MaintenanceWork | None:
    """The service change that took `asset` out of service, if it is out."""
    last = session.exec(select(MaintenanceWork).where(
        MaintenanceWork.agency_id == asset.agency_id, MaintenanceWork.asset_id == asset.id,
        col(MaintenanceWork.result).in_([OUT, BACK])).order_by(
        col(MaintenanceWork.id).desc())).first()
    return last if last is not None and last.result == OUT else None


def change_service(session: Session, *, asset: Asset, in_service: bool, reason: str,
                   officer: Person, now: datetime) -> MaintenanceWork:
    """Take `asset` out of service (no issue until it is back) or put it back, with why."""
    _claim(session, asset.agency_id, now)
    session.refresh(asset, with_for_update=True)
    _live(asset)
    _officer(officer, asset)
    if (out_of_service(session, asset) is None) == in_service:
        raise CustodyRefused("asset is " + ("in service" if in_service else "out of service")
                             + " already")
    kind = BACK_IN_SERVICE if in_service else OUT_OF_SERVICE
    leaf = _logged(session, asset.agency_id, ("asset", asset.id), Change(kind, {
        "asset": asset.id, "reason": reason, "by": officer.commitment}), now)
    work = MaintenanceWork(agency_id=asset.agency_id, asset_id=asset.id,
                           result=BACK if in_service else OUT, officer_id=officer.id,
                           reason=reason, leaf_index=leaf, created_at=now)
    session.add(work)
    event = "asset.back_in_service" if in_service else "asset.out_of_service"
    webhook_outbox.property_room_event(session, asset.agency_id, event, {
        "asset_id": asset.id, "leaf_index": leaf}, now)
    return work


@dataclass(frozen=True, slots=True)
class ItemState:
    """An item's standing against one schedule (or its service state: `schedule` None)."""

    asset_id: str
    class_id: str
    schedule: str | None
    state: str
    """"out_of_service", "never_done", "failed", "overdue" or "due"."""
    blocking: bool
    next_due: datetime | None


def _latest_checks(session: Session, agency_id: str, asset_ids: list[str] | None
                   ) -> dict[tuple[str, str], MaintenanceWork]:
    """(asset, schedule) -> the latest check, for the agency's assets (or `asset_ids`)."""
    query = select(MaintenanceWork).where(MaintenanceWork.agency_id == agency_id,
                                          col(MaintenanceWork.schedule_key).is_not(None))
    if asset_ids is not None:
        query = query.where(col(MaintenanceWork.asset_id).in_(asset_ids))
    latest: dict[tuple[str, str], MaintenanceWork] = {}
    for work in session.exec(query.order_by(col(MaintenanceWork.id))):
        latest[(work.asset_id, str(work.schedule_key))] = work
    return latest


def issue_block(session: Session, asset: AssetKey, now: datetime) -> str | None:
    """Why `asset` may not be issued at `now` for want of maintenance, or None."""
    out = out_of_service(session, asset)
    blocking = [s for s in schedules_of(session, asset.agency_id, asset.class_id) if s.blocking]
    checks = _latest_checks(session, asset.agency_id, [asset.id]) if blocking else {}
    states = []
    for schedule in blocking:
        check = checks.get((asset.id, schedule.key))
        states.append(ScheduleState(schedule.key, schedule.name,
                                    check.result if check else None,
                                    check.next_due if check else None))
    return issue_refusal(None if out is None else str(out.reason), states, now)


def due_items(session: Session, agency_id: str, now: datetime, within: timedelta
              ) -> list[ItemState]:
    """The agency's live items out of service, or never checked, failed, overdue or due
    within `within` for a schedule of their class."""
    assets = list(session.exec(select(Asset).where(
        Asset.agency_id == agency_id,
        col(Asset.status).not_in([AssetStatus.DISPOSED, AssetStatus.RETIRED]))))
    by_class: dict[str, list[MaintenanceSchedule]] = {}
    for schedule in schedules_of(session, agency_id):
        by_class.setdefault(schedule.class_id, []).append(schedule)
    checks = _latest_checks(session, agency_id, None)
    outs = {w.asset_id: w for w in session.exec(select(MaintenanceWork).where(
        MaintenanceWork.agency_id == agency_id,
        col(MaintenanceWork.result).in_([OUT, BACK])).order_by(col(MaintenanceWork.id)))}
    found: list[ItemState] = []
    for asset in sorted(assets, key=lambda a: a.id):
        out = outs.get(asset.id)
        if out is not None and out.result == OUT:
            found.append(ItemState(asset.id, asset.class_id, None, "out_of_service", True,
                                   None))
        for schedule in by_class.get(asset.class_id, []):
            state = _standing(checks.get((asset.id, schedule.key)), now, within)
            if state is not None:
                check = checks.get((asset.id, schedule.key))
                found.append(ItemState(asset.id, asset.class_id, schedule.key, state,
                                       schedule.blocking, check.next_due if check else None))
    return found


def _standing(check: MaintenanceWork | None, now: datetime, within: timedelta) -> str | None:
    if check is None:
        return "never_done"
    if check.result != "pass":
        return "failed"
    if check.next_due is not None and now > check.next_due:
        return "overdue"
    if check.next_due is not None and now + within >= check.next_due:
        return "due"
    return None
