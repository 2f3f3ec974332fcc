"""Bulk writes for ingest's hottest tables: thousands of rows per batch in one statement.

Through `connection.execute(insert(table), rows)` SQLAlchemy processes each row's parameters
one by one and, on PostgreSQL, sends one pipelined statement per row. Here values are
converted a column at a time with the same type processors, then go to the driver at once:
on PostgreSQL, an INSERT as a binary COPY (rows dumped by psycopg's C code), and an UPDATE,
or an INSERT with a column COPY is not known here to carry the same way, as one array per
column through `unnest` (one round trip, one statement text for psycopg to prepare, arrays in
binary form); on SQLite as sqlite3's `executemany`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, Final

from sqlalchemy import (
    Connection,
    Dialect,
    LargeBinary,
    Table,
    TypeDecorator,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import TypeEngine

from api.db import array_of


def _bind_processor(column_type: TypeEngine[Any], dialect: Dialect) -> Any:
    """The function SQLAlchemy binds a value of `column_type` with, or None.

    Bytes on PostgreSQL go as they are: the arrays here are sent in binary form, where
    psycopg's own (C) bytea dumper takes `bytes`. SQLAlchemy's wrapper (the DBAPI `Binary`,
    which picks binary form for a lone parameter) would send each element through a
    Python dumper instead, at twice the cost (0.9 against 0.4 µs an element here).
    """
    plain, converts = column_type, False
    if isinstance(column_type, TypeDecorator):
        plain = column_type.impl_instance
        converts = type(column_type).process_bind_param is not TypeDecorator.process_bind_param
    if dialect.name == "postgresql" and isinstance(plain, LargeBinary) and not converts:
        return None
    return column_type.dialect_impl(dialect).bind_processor(dialect)


def _column_values(
    connection: Connection, table: Table, names: list[str], rows: Sequence[Mapping[str, Any]]
) -> list[list[Any]]:
    """Each column's values over `rows`, converted as SQLAlchemy would bind them (the same
    type processors), so a bulk write stores exactly what `connection.execute` would."""
    dialect = connection.dialect
    values = []
    for name in names:
        column = [row[name] for row in rows]
        process = _bind_processor(table.c[name].type, dialect)
        if process is not None:
            first = column[0]
            if all(value is first for value in column):  # a batch's one `now`, say
                column = [process(first)] * len(column)
            else:
                column = [process(value) for value in column]
        values.append(column)
    return values


def _unnest(connection: Connection, table: Table, names: list[str]) -> str:
    """`unnest(...)` of one typed array parameter per column, in `names` order, each in
    binary form (psycopg escapes text arrays element by element in Python)."""
    dialect = connection.dialect
    return "unnest({})".format(", ".join(
        f"CAST(%b AS {array_of(table.c[name].type).compile(dialect=dialect)})"
        for name in names))


_COPY_TYPES: Final = frozenset({
    "varchar", "text", "bigint", "integer", "smallint", "boolean", "bytea",
    "timestamp with time zone",
})
"""PostgreSQL types whose binary COPY form psycopg dumps from the values `_column_values`
gives (str, int, bool, bytes, aware datetime) as the unnest arrays would. Others go through
unnest, where the server casts them: JSON, say, arrives as text SQLAlchemy has already
encoded, which psycopg's JSON dumper would encode again."""


@lru_cache(maxsize=256)
def _copy_types(
    dialect: Dialect, table: Table, names: tuple[str, ...]
) -> tuple[str, ...] | None:
    """The PostgreSQL type of each column in `names` for a binary COPY, or None if one of
    them is not in `_COPY_TYPES`; remembered, as a table's inserts name the same columns
    batch after batch."""
    types = []
    for name in names:
        item = array_of(table.c[name].type).item_type.compile(dialect=dialect)
        spelled = re.sub(r"\(.*\)", "", item).strip().lower()  # VARCHAR(32) -> varchar
        if spelled not in _COPY_TYPES:
            return None
        types.append(spelled)
    return tuple(types)


def _copy_rows(
    connection: Connection, table: Table, names: list[str], types: Sequence[str],
    values: list[list[Any]],
) -> None:
    """`COPY table (names) FROM STDIN` in binary, in the connection's transaction. Unlike the
    unnest arrays, whose elements psycopg dumps one by one in Python, COPY's rows are dumped
    in psycopg's C code: 1.5 against 2.7 µs of client CPU for an observation row. The server
    checks each value against its column (a VARCHAR's length, say) as an INSERT does, and a
    refusal is raised as SQLAlchemy raises the INSERT's (`DataError` &c.)."""
    quote = connection.dialect.identifier_preparer.quote
    driver = connection.connection.driver_connection
    if driver is None:
        raise RuntimeError("COPY needs a live driver connection")
    statement = (f"COPY {quote(table.name)} ({', '.join(quote(n) for n in names)}) "
                 "FROM STDIN (FORMAT BINARY)")
    dbapi_error = connection.dialect.loaded_dbapi.Error
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            copy.set_types(types)
            for row in zip(*values, strict=True):
                copy.write_row(row)
    except dbapi_error as error:
        raise DBAPIError.instance(statement, None, error, dbapi_error) from error


def _serial_keys(connection: Connection, table: Table, column: str, count: int) -> list[int]:
    """`count` new values of `column`'s sequence (a SERIAL key), ascending: the keys an
    INSERT would have drawn for as many rows, in their order."""
    keys = sorted(connection.exec_driver_sql(
        "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
        (connection.dialect.identifier_preparer.quote(table.name), column, count),
    ).scalars())
    if len(keys) != count or None in keys:
        raise RuntimeError(f"{table.name}.{column} has no sequence to draw keys from")
    return keys


def insert_rows(
    connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]],
    *, returning: str | None = None,
) -> list[Any]:
    """Insert `rows` (column name -> value, the same names in every row) in one statement;
    with `returning` (a generated key column), return its values in the order of `rows`.

    The hottest writes of ingest store thousands of rows per batch. Through
    `connection.execute(insert(table), rows)` each row's parameters are processed one by one
    in SQLAlchemy and, on PostgreSQL, sent as one pipelined statement per row. Here values are
    converted column by column with the same type processors, then go to the driver at once:
    on PostgreSQL as a binary COPY (`_copy_rows`; keys asked for are drawn from the key's
    sequence first) or, with a column COPY is not used for, one array per column,
    `INSERT ... SELECT * FROM unnest(...)` (one round trip, one statement text for psycopg to
    prepare); on SQLite as sqlite3's `executemany`.
    """
    if not rows:
        return []
    names = list(rows[0])
    values = _column_values(connection, table, names, rows)
    quote = connection.dialect.identifier_preparer.quote
    into = f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)})"
    if connection.dialect.name == "postgresql":
        columns = names if returning is None else [*names, returning]
        types = _copy_types(connection.dialect, table, tuple(columns))
        if types is not None:
            if returning is None:
                _copy_rows(connection, table, columns, types, values)
                return []
            keys = _serial_keys(connection, table, returning, len(rows))
            _copy_rows(connection, table, columns, types, [*values, keys])
            return keys
        source = _unnest(connection, table, names)
        if returning is None:
            connection.exec_driver_sql(f"{into} SELECT * FROM {source}", tuple(values))  # noqa: S608
            return []
        # Sequence values follow the ORDER BY of an INSERT ... SELECT (what SQLAlchemy's own
        # `sort_by_parameter_order` relies on): ascending keys are the rows' order.
        aliases = ", ".join(f"c{n}" for n in range(len(names)))
        return sorted(connection.exec_driver_sql(
            f"{into} SELECT {aliases} FROM {source} WITH ORDINALITY AS v({aliases}, n) "  # noqa: S608
            f"ORDER BY n RETURNING {quote(returning)}", tuple(values),
        ).scalars())
    connection.exec_driver_sql(
        f"{into} VALUES ({', '.join('?' for _ in names)})", list(zip(*values, strict=True)))
    if returning is None:
        return []
    # SQLite has one writer: the rows just inserted hold the highest keys, ascending in
    # insertion order (a rowid key is one more than the largest; see "ROWIDs" in its docs).
    key = quote(returning)
    return sorted(connection.exec_driver_sql(
        f"SELECT {key} FROM {quote(table.name)} ORDER BY {key} DESC LIMIT ?",  # noqa: S608
        (len(rows),),
    ).scalars())


def update_rows(
    connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]], *,
    key: str | tuple[str, ...] = "id",
) -> None:
    """Set the other columns of each of `rows` on the row whose `key` column (or columns)
    equals its own `key` value (one row each: keys must be distinct), in one statement (see
    `insert_rows`)."""
    if not rows:
        return
    keys = (key,) if isinstance(key, str) else key
    names = [name for name in rows[0] if name not in keys]
    values = _column_values(connection, table, [*names, *keys], rows)
    quote = connection.dialect.identifier_preparer.quote
    target = quote(table.name)
    if connection.dialect.name == "postgresql":
        aliases = {name: f"c{n}" for n, name in enumerate([*names, *keys])}
        sets = ", ".join(f"{quote(name)} = v.{aliases[name]}" for name in names)
        where = " AND ".join(f"{target}.{quote(k)} = v.{aliases[k]}" for k in keys)
        connection.exec_driver_sql(
            f"UPDATE {target} SET {sets} FROM {_unnest(connection, table, [*names, *keys])} "  # noqa: S608
            f"AS v({', '.join(aliases.values())}) WHERE {where}", tuple(values),
        )
        return
    sets = ", ".join(f"{quote(name)} = ?" for name in names)
    where = " AND ".join(f"{quote(k)} = ?" for k in keys)
    connection.exec_driver_sql(
        f"UPDATE {target} SET {sets} WHERE {where}",  # noqa: S608
        list(zip(*values, strict=True)),
    )
