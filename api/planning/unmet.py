"""Recording unmet demand: an officer at the desk asked for a class and none was in store.

The REST route (`POST /v1/sites/{site_id}/none-in-store`) and the desk page's button both come
here. The row is no custody-log record (nothing changed hands); it is the agency's own, for
one of its sites and one of its classes, and pool planning counts it as a request not met.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from sqlmodel import Session

from api.models.assets import AssetClass
from api.models.planning import NoneInStore
from api.models.registry import Site
from api.problems import Problem
from api.scoping import agency_row, own_row

MAX_BACKDATE: Final = timedelta(days=31)
"""A refusal entered later (a busy shift, a desk written up on paper) is accepted this late."""
CLOCK_SKEW: Final = timedelta(minutes=5)
"""A desk's clock a little ahead of the server's is not a refusal in the future."""


def record_none_in_store(session: Session, *, agency_id: str, site_id: str, class_id: str,
                         at: datetime | None, now: datetime, client_id: str | None = None,
                         account_id: str | None = None) -> NoneInStore:
    """Add the refusal (in the caller's transaction): the site is the agency's (404
    otherwise, as for an unknown one), the class too (422), `at` neither in the future nor
    older than `MAX_BACKDATE` (422)."""
    agency_row(session, Site, agency_id, site_id, "site")
    if own_row(session, AssetClass, agency_id, class_id) is None:
        raise Problem(422, "unknown-class", f"{class_id!r} is not one of your agency's classes")
    when = now if at is None else at
    if when > now + CLOCK_SKEW or when < now - MAX_BACKDATE:
        raise Problem(422, "bad-time", f"'at' is within the last {MAX_BACKDATE.days} days, "
                      "not in the future")
    row = NoneInStore(agency_id=agency_id, site_id=site_id, class_id=class_id, at=when,
                      client_id=client_id, account_id=account_id, created_at=now)
    session.add(row)
    return row
