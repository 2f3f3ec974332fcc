"""`api.bulk.insert_rows` and `update_rows` store exactly what SQLAlchemy's own executemany
stores, on both backends; `insert_rows` hands generated keys back in the rows' order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Engine, String, Table, cast, insert, select, update
from sqlalchemy.exc import DataError

from api import db
from api.bulk import insert_rows, update_rows
from api.models import CustodyEventRow, Decision, DeviceCursor, WebhookEvent

_WEBHOOKS = db.table(WebhookEvent)
_EVENTS = db.table(CustodyEventRow)
_DECISIONS = db.table(Decision)
_CURSORS = db.table(DeviceCursor)

NOW = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
ELSEWHERE = timezone(timedelta(hours=5, minutes=30))


def _webhooks(agency: str) -> list[dict[str, Any]]:
    return [{"agency_id": agency, "event_type": "custody.changed",
             "data": {"asset_id": f"A-{n}", "n": n, "note": "é\u00a0\"q\"", "none": None},
             "created_at": NOW + timedelta(microseconds=n)} for n in range(7)]


def _events(agency: str) -> list[dict[str, Any]]:
    return [{"agency_id": agency, "asset_id": f"A-{n}", "seq": 2**40 + n, "action": "check_out",
             "record": bytes(range(n, n + 40)) + b"\x00'\\", "event_hash": bytes([n]) * 32,
             "leaf_index": n, "created_at": NOW.astimezone(ELSEWHERE)} for n in range(5)]


def _decisions(reader: str, count: int) -> list[dict[str, Any]]:
    return [{"reader_id": reader, "topic": f"t/{reader}", "seq": n, "decision": "accept",
             "reason": "checked out" if n % 2 else "", "asset_id": None if n % 3 else f"A-{n}",
             "action": None, "created_at": NOW, "published_at": None} for n in range(count)]


def _rolled_back(engine: Engine, write: Any, table: Table) -> list[tuple[Any, ...]]:
    """What `write(conn)` stored in `table` (JSON as stored text), then rolled back."""
    with engine.connect() as conn, conn.begin() as transaction:
        write(conn)
        columns = [cast(c, String) if c.name == "data" else c for c in table.c if c.name != "id"]
        stored = [tuple(r) for r in conn.execute(select(*columns).order_by(table.c.id))]
        transaction.rollback()
    return stored


@pytest.mark.parametrize(("table", "rows"), [
    (_WEBHOOKS, _webhooks("north")), (_EVENTS, _events("north")),
])
def test_insert_rows_stores_what_executemany_stores(
    engine: Engine, table: Table, rows: list[dict[str, Any]]
) -> None:
    expected = _rolled_back(engine, lambda conn: conn.execute(insert(table), rows), table)
    assert len(expected) == len(rows)
    assert _rolled_back(engine, lambda conn: insert_rows(conn, table, rows), table) == expected


@pytest.mark.parametrize(("table", "row"), [
    # JSON: through unnest arrays on PostgreSQL
    (_WEBHOOKS, {**_webhooks("north")[0], "event_type": "x" * 33}),
    # only text, integers, bytes and times: a binary COPY on PostgreSQL
    (_EVENTS, {**_events("north")[0], "action": "x" * 33}),
    (_DECISIONS, {**_decisions("north", 1)[0], "decision": "x" * 9}),
])
def test_insert_rows_refuses_what_the_column_refuses(
    engine: Engine, table: Table, row: dict[str, Any]
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite does not enforce VARCHAR lengths")
    writes = [lambda conn: conn.execute(insert(table), [row]),
              lambda conn: insert_rows(conn, table, [row])]
    if table is _DECISIONS:
        writes.append(lambda conn: insert_rows(conn, table, [row], returning="id"))
    for write in writes:
        with pytest.raises(DataError), engine.begin() as conn:
            write(conn)
    with engine.connect() as conn:
        assert conn.execute(select(table.c.agency_id if table is not _DECISIONS
                                   else table.c.reader_id)).all() == []


def test_insert_rows_returns_keys_in_row_order(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(insert(_DECISIONS), _decisions("first", 3))
        ids = insert_rows(conn, _DECISIONS, _decisions("second", 25), returning="id")
        assert insert_rows(conn, _DECISIONS, [], returning="id") == []
        found = dict(conn.execute(
            select(_DECISIONS.c.id, _DECISIONS.c.seq).where(_DECISIONS.c.reader_id == "second")
        ).all())
        assert [found[i] for i in ids] == list(range(25))
        assert ids == sorted(ids) and len(set(ids)) == 25
    rows = _decisions("third", 4)
    assert _rolled_back(engine, lambda conn: insert_rows(conn, _DECISIONS, rows, returning="id"),
                        _DECISIONS) == _rolled_back(
        engine, lambda conn: conn.execute(insert(_DECISIONS), rows), _DECISIONS)


def test_insert_rows_returns_keys_in_row_order_through_unnest(engine: Engine) -> None:
    """A JSON column is not copied (`api.bulk._COPY_TYPES`): its rows and keys go through
    unnest on PostgreSQL."""
    rows = _webhooks("south")
    with engine.begin() as conn:
        conn.execute(insert(_WEBHOOKS), _webhooks("north")[:2])
        ids = insert_rows(conn, _WEBHOOKS, rows, returning="id")
        found = dict(conn.execute(
            select(_WEBHOOKS.c.id, _WEBHOOKS.c.created_at).where(_WEBHOOKS.c.agency_id == "south")
        ).all())
    assert ids == sorted(ids) and len(set(ids)) == len(rows)
    assert [found[i] for i in ids] == [row["created_at"] for row in rows]


def test_update_rows_sets_what_executemany_sets(engine: Engine) -> None:
    devices = [f"dev-{n}" for n in range(6)]
    with engine.begin() as conn:
        conn.execute(insert(_CURSORS), [
            {"device_id": f"{side}{d}", "high_seq": 1, "updated_at": NOW}
            for side in ("a-", "b-") for d in devices])
        changes = [{"device_id": d, "high_seq": 10 * n, "updated_at": NOW + timedelta(hours=n)}
                   for n, d in enumerate(devices[:4])]
        conn.execute(
            update(_CURSORS).where(_CURSORS.c.device_id == _bind("b_id"))
            .values(high_seq=_bind("b_seq"), updated_at=_bind("b_at")),
            [{"b_id": f"a-{c['device_id']}", "b_seq": c["high_seq"], "b_at": c["updated_at"]}
             for c in changes])
        update_rows(conn, _CURSORS, [{**c, "device_id": f"b-{c['device_id']}"} for c in changes],
                    key="device_id")
        update_rows(conn, _CURSORS, [], key="device_id")
        rows = {d: (s, t) for d, s, t in conn.execute(select(_CURSORS)).all()}
    for d in devices:
        assert rows[f"a-{d}"] == rows[f"b-{d}"]
    assert rows["b-dev-3"][0] == 30 and rows["b-dev-5"][0] == 1


def _bind(name: str) -> Any:
    from sqlalchemy import bindparam

    return bindparam(name)
