"""The custody rules' answers as decisions: a row each, stored with the batch, and a message
each for the reader's decisions topic once the batch has committed.

A decision row keeps the topic it goes to and what the reader is told, so an answer not yet
acknowledged by the broker is sent again, as it was, after a crash (`api.ingest.publishing`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlmodel import Session

from api.bulk import insert_rows
from api.custody.batch import DESK_SESSION_TIMEOUT
from api.custody.reads import Answer
from api.custody.ruling import release_stale_holds
from api.db import table
from api.ingest.topics import DECISIONS, ReaderTopic
from api.models.custody import Decision

_DECISIONS = table(Decision)


@dataclass(frozen=True, slots=True)
class DecisionMessage:
    """One answer for a reader's decisions topic: JSON {"seq","decision","reason","asset",
    "action"}; `decision_id`: its stored row, marked published once the broker has it."""

    topic: str
    payload: bytes
    decision_id: int | None = None


_DECISION_JSON: Final = json.JSONEncoder(sort_keys=True)
"""`json.dumps(body, sort_keys=True)` builds an encoder per call; one answer per read."""


def decision_payload(body: Mapping[str, object]) -> bytes:
    """A decision's wire form: sorted-key JSON {"seq","decision","reason","asset","action"}."""
    return _DECISION_JSON.encode(body).encode()


def store_answers(
    session: Session, answers: Sequence[Answer], now: datetime
) -> list[DecisionMessage]:
    """Store `answers` as decision rows in the session's transaction (one bulk INSERT), not
    yet published; return their messages, in order, each with its row's id."""
    if not answers:
        return []
    by_reader: dict[str, str] = {}  # a batch answers few readers, many times each
    rows = []
    messages = []
    for reader, seq, verdict, reason, asset_id, action in answers:
        topic = by_reader.get(reader.reader_id)
        if topic is None:
            topic = by_reader[reader.reader_id] = ReaderTopic(
                reader.agency_id, reader.site_id, reader.reader_id).topic(DECISIONS)
        rows.append({
            "reader_id": reader.reader_id, "topic": topic, "seq": seq, "decision": verdict,
            "reason": reason, "asset_id": asset_id, "action": action, "created_at": now,
            "published_at": None,
        })
        messages.append((topic, decision_payload({
            "seq": seq, "decision": verdict, "reason": reason, "asset": asset_id,
            "action": action})))
    # The ids come back so the worker can mark each decision published once the broker has it.
    ids = insert_rows(session.connection(), _DECISIONS, rows, returning="id")
    return [DecisionMessage(topic, payload, decision_id)
            for (topic, payload), decision_id in zip(messages, ids, strict=True)]


def answer_stale_holds(
    session: Session, now: datetime, *, session_timeout: timedelta = DESK_SESSION_TIMEOUT,
    gaps_since: datetime | None = None,
) -> list[DecisionMessage]:
    """Rule on reads held past `api.custody.pending.HOLD_LIMIT` and store their answers, in
    the caller's transaction (the log writer claimed); the caller commits, then publishes."""
    batch = release_stale_holds(session, now, session_timeout=session_timeout,
                                gaps_since=gaps_since)
    if batch is None:
        return []
    return store_answers(session, batch.flush(), now)
