"""The Core `Table` behind a table model: the one way modules reach a table for bulk SQL.

SQLModel declares `__table__` only at run time, so reading it from a model needs a type
ignore; the ORM's metadata by name (`SQLModel.metadata.tables["asset"]`) loses the link to
the model. `table(Asset)` gives the typed `Table` for Core statements (bulk INSERT, UPDATE,
prebuilt look-ups) and keeps the model as the name a reader follows.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table
from sqlmodel import SQLModel


def table(model: type[SQLModel]) -> Table:
    """The `Table` of table model `model` (one declared with `table=True`)."""
    found = getattr(model, "__table__", None)
    if not isinstance(found, Table):
        raise TypeError(f"{model.__name__} is not a table model")
    return cast(Table, found)
