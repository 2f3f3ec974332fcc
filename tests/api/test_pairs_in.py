"""`api.db.pairs_in` (the same rows as a row-value IN, answered from the index on SQLite) and
`api.db.among` (the same rows as IN, one statement text on PostgreSQL)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    insert,
    select,
)
from sqlmodel import Session

from api.db import ByIds, among, pairs_in, table
from api.models import Reader as ReaderRow
from tests.api.api_support import register_reader

_META = MetaData()
_NODES = Table(
    "node", _META,
    Column("agency", String, primary_key=True),
    Column("level", Integer, primary_key=True),
    Column("idx", Integer, primary_key=True),
)
_STORED = [("north", level, idx) for level in range(4) for idx in range(40)] + [
    ("south", level, idx) for level in range(2) for idx in range(10)]

_engine = create_engine("sqlite://")
_META.create_all(_engine)
with _engine.begin() as _conn:
    _conn.execute(insert(_NODES), [dict(zip(("agency", "level", "idx"), r, strict=True))
                                   for r in _STORED])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(-1, 5), st.integers(-1, 45)), min_size=1, max_size=80),
       st.sampled_from(["north", "south", "west"]))
def test_same_rows_as_the_pairs_asked_for(wanted: list[tuple[int, int]], agency: str) -> None:
    c = _NODES.c
    with _engine.connect() as conn:
        found = set(conn.execute(select(c.agency, c.level, c.idx).where(
            pairs_in(c.level, c.idx, wanted, also={c.agency: agency}))).all())
    assert found == {r for r in _STORED if r[0] == agency and (r[1], r[2]) in set(wanted)}


def test_sqlite_searches_the_index_instead_of_scanning() -> None:
    c = _NODES.c
    query = select(c.level).where(pairs_in(c.level, c.idx, [(0, 1), (0, 2), (3, 7)],
                                           also={c.agency: "north"}))
    with _engine.connect() as conn:
        compiled = query.compile(conn, compile_kwargs={"render_postcompile": True})
        plan = " / ".join(str(row[-1]) for row in conn.exec_driver_sql(
            "EXPLAIN QUERY PLAN " + str(compiled),
            tuple(compiled.params[name] for name in compiled.positiontup or ())))
    assert "SEARCH node USING" in plan and "SCAN node" not in plan, plan


def test_among_finds_the_rows_asked_for_with_one_statement_text(engine: Engine) -> None:
    for n in range(5):
        register_reader(engine, reader_id=f"rdr-{n}")
    ids = table(ReaderRow).c.id
    texts = set()
    with Session(engine) as session:
        for wanted in (["rdr-1"], ["rdr-0", "rdr-4", "nobody"], [f"x-{i}" for i in range(300)]
                       + ["rdr-2"], ["it's", 'a "quote"', "rdr-3"]):
            query = select(ids).where(among(ids, wanted, session))
            found = set(session.connection().execute(query).scalars())
            assert found == {w for w in wanted if w.startswith("rdr-")}
            texts.add(str(query.compile(dialect=engine.dialect)))
    # PostgreSQL: one array parameter, so one text however many values (psycopg parses each
    # new text in Python); SQLite keeps a plain IN list, which it expands at execution.
    assert len(texts) == 1
    assert ("= ANY" in texts.pop()) == (engine.dialect.name == "postgresql")


def test_by_ids_finds_the_rows_asked_for_and_nothing_like_them(engine: Engine) -> None:
    """A prebuilt look-up (`ByIds`) answers as `among` does, and a value longer than the
    column matches nothing: on PostgreSQL the ids go as TEXT[], where a VARCHAR(n)[] would
    cut the value down to the stored id it starts with."""
    ids = table(ReaderRow).c.id
    longest = "r" * ids.type.length
    for reader_id in ("rdr-0", "rdr-1", longest):
        register_reader(engine, reader_id=reader_id)
    by_ids = ByIds(ids, lambda where: select(ids).where(where))
    with Session(engine) as session:
        connection = session.connection()
        for wanted, expected in ((["rdr-0"], {"rdr-0"}), (["rdr-1", "nobody"], {"rdr-1"}),
                                 ([longest + "r"], set()), ([longest], {longest}), ([], set())):
            assert set(by_ids(connection, wanted).scalars()) == expected
            assert set(connection.execute(
                select(ids).where(among(ids, wanted, connection))).scalars()) == expected
