"""Structured logs: one JSON object per line on stderr, for the service and its workers.

Log records carry what happened and where, never secrets: API keys, private keys and database
passwords are not passed to the logger anywhere in the service.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Final

MAX_MESSAGE_CHARS: Final = 4000
"""A log line's message is truncated here: one hostile input cannot make a megabyte line."""


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage()[:MAX_MESSAGE_CHARS],
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)[-MAX_MESSAGE_CHARS:]
        return json.dumps(entry, ensure_ascii=False)


def configure(level: str = "info") -> None:
    """Send every logger's records to stderr as JSON lines."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
