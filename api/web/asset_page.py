"""The asset page: what the asset is (EPC as hex and as its GS1 URI, class), where it stands
(status, holder named as a person, site or agency, last seen: reader, site, time), its open
alerts, its custody timeline with who authorised each step (manual entries and corrected
steps flagged), and, for the owning agency, where other agencies' readers read it.

The page needs `assets:read`, as `GET /v1/assets/{id}` and `/location` do. The timeline is
custody history, which the REST API serves to `audit:read` (`/v1/assets/{id}/history`): with
that scope it is drawn in full, each step checked against the log. A stores officer
(`custody:write` without `audit:read`) sees the custody-only timeline of the agency's own
assets (who had it, when, at which reader, authorised by whom, entered by hand or corrected),
the history they need at the desk, without the audit details: no verification marks, log
leaves or link to the audit view. Anyone else, and anyone for another agency's shared asset,
is told the timeline is withheld.
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import col, select

from api.deps import SessionDep
from api.models import Alert, AssetClass, Reader
from api.models.assets import HolderKind
from api.models.clients import Scope
from api.routes.assets import foreign_sightings
from api.routes.paging import IdPath
from api.scoping import own_row, visible_asset
from api.web.holders import Holders
from api.web.session import AssetsUser
from api.web.templating import page
from api.web.timeline import TimelineStep, asset_timeline
from ledger.core.bounds import MAX_ID_CHARS
from ledger.epcis import gs1_uri

router = APIRouter(prefix="/web", include_in_schema=False)

MAX_FOREIGN_SIGHTINGS: Final = 50
"""Other agencies' sightings listed, latest first (`GET /v1/assets/{id}/foreign-sightings`
pages through the rest)."""

OwnerParam = Annotated[str | None, Query(alias="owner", max_length=MAX_ID_CHARS)]
"""`?owner=`: the agency that owns the asset, where another agency shared it (ids are per
agency, so the id alone may name more than one)."""


def _step_holder(step: TimelineStep, holders: Holders) -> str:
    if step.holder_kind == HolderKind.PERSON.value:  # already the person's id, or unknown
        return step.holder if step.holder.startswith("person ") else f"person {step.holder}"
    if not step.holder_kind:
        return step.holder
    return holders.label(step.holder_kind, step.holder, step.holder_agency)


@router.get("/assets/{asset_id}", response_class=HTMLResponse)
def asset_page(request: Request, asset_id: IdPath, session: SessionDep,
               user: AssetsUser, owner_id: OwnerParam = None) -> Response:
    """One asset: identity, custody now, last seen, timeline and foreign sightings. An asset
    another agency shared is named by its id and, where the id alone does not say which,
    `?owner=` (the owning agency)."""
    caller = user.caller
    asset = visible_asset(session, caller, asset_id, owner_id or None)
    holders = Holders(session, caller.agency_id)
    asset_class = own_row(session, AssetClass, asset.agency_id, asset.class_id)
    reader = (session.get(Reader, asset.last_seen_reader_id)
              if asset.last_seen_reader_id else None)
    owner = asset.agency_id == caller.agency_id
    alerts = list(session.exec(select(Alert).where(
        Alert.agency_id == caller.agency_id, Alert.asset_id == asset.id,
        col(Alert.resolved_at).is_(None)).order_by(col(Alert.id)))) if owner else []
    audit = caller.may(Scope.AUDIT_READ)
    custody_only = not audit and owner and caller.may(Scope.CUSTODY_WRITE)
    timeline = asset_timeline(session, asset) if audit or custody_only else None
    steps = [(s, _step_holder(s, holders)) for s in timeline.steps] if timeline else []
    foreign = (foreign_sightings(asset.id, session, caller, MAX_FOREIGN_SIGHTINGS)
               if owner else [])
    return page(request, "asset.html", user=user, asset=asset, holders=holders,
                class_name=asset_class.name if asset_class else asset.class_id,
                epc_uri=asset.epc_uri or gs1_uri(asset.epc_hex), reader=reader,
                seen_at=reader.agency_id if reader is not None else asset.agency_id,
                alerts=alerts, timeline=timeline, audit=audit, steps=steps, owner=owner,
                foreign=foreign)
