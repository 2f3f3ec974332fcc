"""What each ingest worker tells the HTTP workers about its broker connection.

Ingest workers run in processes of their own (`api.serve.run_ingest`), so `/readyz` and
`/metrics`, answered by the HTTP workers, learn from this table whether the node is
subscribed to the broker: one row per worker of a node, refreshed while the worker runs
(`api.broker_status`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlmodel import Field, SQLModel

from api.db import UTCDateTime, utcnow

MAX_NODE_CHARS: Final = 48
"""A node id's longest form (`api.config.Settings.node_id`)."""

MAX_BROKER_REASON_CHARS: Final = 300
"""A reason is one line for an operator; a longer error text is cut to fit."""


class BrokerStatus(SQLModel, table=True):
    """Whether one ingest worker of a node is subscribed to the broker, and why not."""

    __tablename__ = "broker_status"

    node_id: str = Field(primary_key=True, max_length=MAX_NODE_CHARS)
    worker: int = Field(primary_key=True)
    state: str = Field(max_length=16)
    reason: str = Field(default="", max_length=MAX_BROKER_REASON_CHARS)
    since: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    checked_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
