"""The desk's live stream: each new decision at its reader and each new custody alert of its
agency, pushed as server-sent events the moment they are committed.

Decisions and alerts are written by whichever API node's ingest worker took the read, so the
stream cannot wait on an in-process queue: it asks the database for rows above the last id it
sent, every `POLL_S`. An indexed range read on a primary key per desk per second is cheap
beside ingest's writes, works the same on SQLite and PostgreSQL, and needs no broker of its
own. Each poll also re-reads the web session: signing out (anywhere), or the key being
revoked, ends the stream. A stream lives at most `MAX_STREAM_S`; the browser's EventSource
then reconnects, sending the id of the last event it had (`Last-Event-ID`), and the stream
carries on from there, so nothing committed in between is missed.

Events: `decision` (the row's HTML, as the page renders it), `alert` (the banner's HTML) and
`signed-out`. The HTML comes from the same templates as the page, with autoescaping on.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import Annotated, Final, NamedTuple

import anyio
from fastapi import APIRouter, Query, Request
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from api.models import Alert, Decision, Reader
from api.models.clients import Scope
from api.web.desk_alerts import BANNER_KINDS, Banner, latest_ids
from api.web.desk_lines import feed_lines
from api.web.session import AssetsUser, SignInRequired, WebUser, web_user
from api.web.templating import TEMPLATES
from ledger.core.bounds import MAX_ID_CHARS

router = APIRouter(prefix="/web", include_in_schema=False)

POLL_S: Final = 1.0
"""How often a stream asks the database for new rows: a decision reaches the desk within
about a second of its commit."""
MAX_STREAM_S: Final = 15 * 60
"""A stream's lifetime; the browser reconnects and resumes (`Last-Event-ID`), which also
bounds what one connection can hold on to."""
MAX_EVENTS_PER_POLL: Final = 50
"""Rows sent per poll: a burst beyond this follows in the next polls, in order."""
MAX_LAST_EVENT_ID_CHARS: Final = 64
"""Our ids are two integers, `decision.alert`; anything longer is ignored, not parsed."""
SKIP_MARGIN: Final = 1000
"""Other readers' decisions are skipped up to this many ids below the newest, so a quiet
desk's poll scans a bounded range however busy the others are. The margin leaves room for
a transaction that took its ids earlier and commits later (decisions are written in
custody batches, far smaller than this)."""
PING_S: Final = 15
"""A comment line this often keeps proxies from closing an idle stream."""

_CURSOR = re.compile(r"(\d{1,19})\.(\d{1,19})")
BigId = Annotated[int, Query(ge=0, le=2**63 - 1)]


class Cursor(NamedTuple):
    """The last decision id and alert id sent."""

    decision: int
    alert: int

    @property
    def event_id(self) -> str:
        return f"{self.decision}.{self.alert}"


def resume_from(last_event_id: str | None) -> Cursor | None:
    """The cursor a reconnecting browser sends back, or None if absent or not ours."""
    if not last_event_id or len(last_event_id) > MAX_LAST_EVENT_ID_CHARS:
        return None
    match = _CURSOR.fullmatch(last_event_id.strip())
    if match is None:
        return None
    decision, alert = int(match.group(1)), int(match.group(2))
    if decision >= 2**63 or alert >= 2**63:
        return None
    return Cursor(decision, alert)


def _render(name: str, **context: object) -> str:
    return TEMPLATES.get_template(name).render(**context)


def poll(engine: Engine, request: Request, reader_id: str | None,
         cursor: Cursor) -> tuple[Cursor, list[ServerSentEvent]] | None:
    """New rows above `cursor` as events, and the cursor after them; None once the web
    session has ended."""
    with Session(engine) as session:
        try:
            user = web_user(request, session)
        except SignInRequired:
            return None
        if not user.caller.may(Scope.ASSETS_READ):
            return None
        events: list[ServerSentEvent] = []
        decision_id, alert_id = cursor
        decisions: list[Decision] = []
        if reader_id is not None:
            newest = session.exec(select(func.max(Decision.id))).one() or 0
            decisions = list(session.exec(
                select(Decision).where(Decision.reader_id == reader_id,
                                       col(Decision.id) > cursor.decision)
                .order_by(col(Decision.id)).limit(MAX_EVENTS_PER_POLL)))
            if decisions:
                decision_id = decisions[-1].id or decision_id
            if len(decisions) < MAX_EVENTS_PER_POLL:  # all of ours are sent: skip the rest
                decision_id = max(decision_id, newest - SKIP_MARGIN)
        alerts = list(session.exec(
            select(Alert).where(Alert.agency_id == user.caller.agency_id,
                                col(Alert.id) > cursor.alert)
            .order_by(col(Alert.id)).limit(MAX_EVENTS_PER_POLL)))
        if alerts:
            alert_id = alerts[-1].id or alert_id
        after = Cursor(decision_id, alert_id)
        for line in feed_lines(session, user, reader_id, decisions) if reader_id else []:
            # Each decision's own id: a browser resuming from it gets the rest of the batch.
            events.append(ServerSentEvent(
                _render("desk_row.html", d=line), event="decision",
                id=Cursor(line.decision_id, cursor.alert).event_id))
        for alert in alerts:
            if alert.kind in BANNER_KINDS and alert.resolved_at is None:
                events.append(ServerSentEvent(
                    _render("desk_banner.html", b=Banner(alert, None), user=user,
                            chosen=reader_id), event="alert",
                    id=Cursor(after.decision, alert.id or 0).event_id))
        return after, events


@router.get("/desk/stream")
async def stream(
    request: Request, user: AssetsUser,
    reader: Annotated[str | None, Query(max_length=MAX_ID_CHARS)] = None,
    after: BigId | None = None, alerts_after: BigId | None = None,
) -> EventSourceResponse:
    """The desk's live decisions and alerts (server-sent events)."""
    engine: Engine = request.app.state.engine
    reader_id, start = await run_in_threadpool(_start, engine, user, reader, after,
                                               alerts_after)
    cursor = resume_from(request.headers.get("last-event-id")) or start

    async def events() -> AsyncIterator[ServerSentEvent]:
        nonlocal cursor
        deadline = time.monotonic() + MAX_STREAM_S
        while time.monotonic() < deadline:
            polled = await run_in_threadpool(poll, engine, request, reader_id, cursor)
            if polled is None:
                yield ServerSentEvent("", event="signed-out")
                return
            cursor, batch = polled
            for event in batch:
                yield event
            await anyio.sleep(POLL_S)

    return EventSourceResponse(events(), ping=PING_S,
                               headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def _start(engine: Engine, user: WebUser, reader: str | None, after: int | None,
           alerts_after: int | None) -> tuple[str | None, Cursor]:
    """The reader to follow (one of the user's agency's, else none: another agency's reader
    streams nothing, as if unknown) and where to start (the page's newest rows)."""
    with Session(engine) as session:
        row = session.get(Reader, reader) if reader else None
        reader_id = row.id if row is not None and row.agency_id == user.caller.agency_id \
            else None
        latest = latest_ids(session, user)
    # A crafted `after=0` replays the reader's history, which the same user may read anyway,
    # `MAX_EVENTS_PER_POLL` rows a second.
    return reader_id, Cursor(after if after is not None else latest["decision"],
                             alerts_after if alerts_after is not None else latest["alert"])
