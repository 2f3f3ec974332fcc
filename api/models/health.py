"""The latest health of each reader, as its agent last reported it over MQTT.

One row per reader, overwritten by every health or status message (`api.ingest.health`); the
history is not kept (the alerts it raises are). Health messages are not signed: a row is a
hint about a reader's state, shown to people and used for alerts, and never custody evidence.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlmodel import Field, SQLModel

from api.db import UTCDateTime
from api.models.registry import MAX_ID_CHARS

MAX_HEALTH_ERROR_CHARS: Final = 200
"""The agent's last error as stored and shown: enough to name the fault, bounded per reader."""


class ReaderHealth(SQLModel, table=True):
    __tablename__ = "reader_health"

    reader_id: str = Field(primary_key=True, foreign_key="reader.id", max_length=MAX_ID_CHARS)
    agency_id: str = Field(index=True, max_length=MAX_ID_CHARS)
    site_id: str = Field(max_length=MAX_ID_CHARS)
    online: bool | None = None
    """The retained status topic: True "online", False "offline" (the Last Will included)."""
    status_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    seen_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    """When the last valid health message arrived (the API's clock, not the agent's)."""
    reader_connected: bool | None = None
    mqtt_connected: bool | None = None
    reads_per_s: float | None = None
    antennas_down: int | None = None
    antenna_faults: int | None = None
    temperature_c: float | None = None
    disk_state: str | None = Field(default=None, max_length=16)
    outbox_depth: int | None = None
    outbox_max: int | None = None
    outbox_alarm: bool | None = None
    last_error: str | None = Field(default=None, max_length=MAX_HEALTH_ERROR_CHARS)
