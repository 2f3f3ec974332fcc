"""Statement builders for batches of ids: one statement text per database, answered from an index.

The ingest batch looks up hundreds of EPCs, ids and (device, seq) pairs at once. Built naively
through the expression language, each value costs a coercion and every new list length a new
statement (and, on PostgreSQL, a new parse in psycopg); these builders keep one text per kind
of database.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    CursorResult,
    Enum,
    Executable,
    String,
    TextClause,
    any_,
    bindparam,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, Session
from sqlalchemy.types import TypeDecorator


def _dialect(bind: Connection | Session) -> Dialect:
    return bind.dialect if isinstance(bind, Connection) else bind.get_bind().dialect


def pairs_in(
    first: ColumnElement[Any], second: ColumnElement[Any], pairs: Iterable[tuple[Any, Any]],
    *, also: Mapping[ColumnElement[Any], Any] | None = None, name: str = "k",
    bind: Connection | Session | None = None,
) -> TextClause:
    """`(first, second) IN pairs` (with each `also` column equal to its value), written so
    every backend answers it from an index; `pairs` must not be empty. `bind`: the connection
    or session it runs on (only PostgreSQL is written differently).

    SQLite plans a row-value IN, `(a, b) IN (VALUES ...)`, as a scan of the whole table;
    grouped by `first` and OR'ed, `(a = ? AND b IN (...)) OR ...`, it searches the index once
    per group. Plain SQL text with bound values: built through the expression language, each
    value of an IN list costs a coercion, which dominated a batch. On PostgreSQL the pairs go
    as two arrays, `(a, b) IN (SELECT * FROM unnest(...))`: one statement text whatever the
    pairs, as psycopg parses every new text in Python (see `among`).
    """
    fixed = [(f"{column.key} = :{name}c{n}", f"{name}c{n}", value)
             for n, (column, value) in enumerate((also or {}).items())]
    params: dict[str, Any] = {key: value for _, key, value in fixed}
    prefix = "".join(f"{clause} AND " for clause, _, _ in fixed)
    if bind is not None and (dialect := _dialect(bind)).name == "postgresql":
        wanted = list(pairs)
        params[f"{name}a"] = [a for a, _ in wanted]
        params[f"{name}b"] = [b for _, b in wanted]
        arrays = ", ".join(f"CAST(:{name}{tag} AS {column.type.compile(dialect=dialect)}[])"
                           for tag, column in (("a", first), ("b", second)))
        # Only column names and types go into the text; every value is a bound parameter.
        clause = f"{prefix}({first.key}, {second.key}) IN (SELECT * FROM unnest({arrays}))"  # noqa: S608
        return text(clause).bindparams(**params)
    groups: dict[Any, list[Any]] = defaultdict(list)
    for a, b in pairs:
        groups[a].append(b)
    branches = []
    for g, (a, bs) in enumerate(groups.items()):
        params[f"{name}a{g}"] = a
        names = []
        for j, b in enumerate(bs):
            params[f"{name}b{g}_{j}"] = b
            names.append(f":{name}b{g}_{j}")
        branches.append(
            f"({prefix}{first.key} = :{name}a{g} AND {second.key} IN ({', '.join(names)}))")
    return text(" OR ".join(branches)).bindparams(**params)


def array_of(kind: Any) -> postgresql.ARRAY[Any]:
    """The array type a column's values are bound as on PostgreSQL: text without a length
    (a CAST to VARCHAR(n)[] would silently cut a longer value down to a stored one, where
    storing it into the column refuses it), any other type, enums included, as itself."""
    stored = kind.impl_instance if isinstance(kind, TypeDecorator) else kind  # AutoString &c.
    text_like = stored is None or (isinstance(stored, String) and not isinstance(stored, Enum))
    return postgresql.ARRAY(String() if text_like else kind)


def among(
    column: ColumnElement[Any] | Mapped[Any], values: Iterable[Any],
    bind: Connection | Session | None = None,
) -> ColumnElement[bool]:
    """`column IN values`, the values bound as one parameter, so the statement is the same
    for any values: given a literal list, the expression language coerces every value into
    its own bound parameter, and builds a new statement (and cache key) for each length.

    With `bind` on PostgreSQL: `column = ANY(array)`. An expanding IN is spelled out into a
    new statement text for each number of values, which psycopg parses in Python and
    PostgreSQL plans afresh (a batch's hundreds of EPCs or ids cost PostgreSQL ingest more
    than the rows it wrote); the array is one text every time. SQLite, and a statement built
    without knowing its database, keep the expanding IN, which SQLite's planner answers from
    the index."""
    wanted = list(values)
    kind = getattr(column, "type", None)  # an ORM attribute (`col(Model.field)`) has one too
    if bind is not None and _dialect(bind).name == "postgresql":
        return column == any_(bindparam(None, wanted, type_=array_of(kind)))
    return column.in_(bindparam(None, wanted, expanding=True, type_=kind))


class ByIds:
    """A statement whose condition is `column IN :ids`, built once for each kind of database
    (as `among`: an array on PostgreSQL, an expanding IN elsewhere) and run with the ids.

    `build` makes the statement from that condition. Built once, a batch's look-ups skip the
    expression language, whose building and cache keys cost more than running them."""

    def __init__(
        self, column: ColumnElement[Any], build: Callable[[ColumnElement[bool]], Executable]
    ) -> None:
        self._in = build(column.in_(bindparam("ids", expanding=True)))
        self._any = build(column == any_(bindparam("ids", type_=array_of(column.type))))

    def __call__(
        self, connection: Connection, ids: Iterable[Any]
    ) -> CursorResult[*tuple[Any, ...]]:
        statement = self._any if connection.dialect.name == "postgresql" else self._in
        return connection.execute(statement, {"ids": list(ids)})
