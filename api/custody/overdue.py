"""Overdue loans: an alert for each asset held past its due time, resolved when it comes back.

Run periodically by the one ingest worker elected for it (`api.roles`). The scan claims the
logs of the agencies owning overdue kit (`claim_log_writer`), and reads the kit again under
that claim, so a return being stored meanwhile (which resolves the alert) cannot leave an
alert raised for kit already back, and two scans cannot raise the same alert twice.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Final

from sqlalchemy import tuple_, update
from sqlmodel import Session, col, select

from api import webhook_outbox
from api.custody.rules import AlertKind
from api.db import table
from api.logstore import claim_log_writer
from api.models.assets import Asset, AssetStatus
from api.models.custody import Alert

_ALERTS = table(Alert)

MAX_ALERTS_PER_SCAN: Final = 1000
"""Alerts raised by one scan; the rest wait for the next, so one scan's transaction stays
short even on the morning after a bank holiday."""


def _open_overdue(session: Session, asset_ids: set[str]) -> set[tuple[str, str]]:
    """(agency, asset id) of the open overdue alerts of assets `asset_ids` (any agency's)."""
    rows = session.exec(
        select(Alert.agency_id, Alert.asset_id).where(
            Alert.kind == AlertKind.OVERDUE_LOAN.value,
            col(Alert.resolved_at).is_(None),
            col(Alert.asset_id).in_(asset_ids),
        )
    )
    return {(agency_id, asset_id) for agency_id, asset_id in rows if asset_id is not None}


def raise_overdue_alerts(session: Session, now: datetime) -> int:
    """Raise one open alert per overdue asset; return how many were raised."""
    late = (col(Asset.due_at) < now,
            col(Asset.status).in_([AssetStatus.CHECKED_OUT.value, AssetStatus.ON_LOAN.value]))
    owners = set(session.exec(select(Asset.agency_id).where(*late).distinct()))
    if not owners:
        return 0
    claim_log_writer(session, now, owners)
    overdue = session.exec(
        select(Asset).where(*late, col(Asset.agency_id).in_(owners)).limit(MAX_ALERTS_PER_SCAN)
    ).all()
    already = _open_overdue(session, {a.id for a in overdue})
    # With their webhook events, in this transaction (api.webhook_outbox).
    return webhook_outbox.raise_alerts(session, [
        {"agency_id": asset.agency_id, "kind": AlertKind.OVERDUE_LOAN.value,
         "asset_id": asset.id, "reader_id": None, "site_id": None,
         "detail": f"due back {asset.due_at:%Y-%m-%d %H:%M} UTC, held by {asset.holder_kind}",
         "created_at": now, "resolved_at": None}
        for asset in overdue if (asset.agency_id, asset.id) not in already
    ])


def resolve_overdue(session: Session, assets: Collection[tuple[str, str]],
                    now: datetime) -> None:
    """Close the open overdue alerts of `assets` ((owner, asset id)): they are back in
    store."""
    if not assets:
        return
    connection = session.connection()
    connection.execute(
        update(_ALERTS)
        .where(tuple_(_ALERTS.c.agency_id, _ALERTS.c.asset_id).in_(list(assets)),
               _ALERTS.c.kind == AlertKind.OVERDUE_LOAN.value, _ALERTS.c.resolved_at.is_(None))
        .values(resolved_at=now)
    )
