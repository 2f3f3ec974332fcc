"""Structured logs: one JSON object per line on stderr, for the service and its workers.

Log records carry what happened and where, never secrets: API keys, private keys and database
passwords are not passed to the logger anywhere in the service. A client can still put a key
where it does not belong, in a URL, which the access log would then copy: `RedactSecrets`
replaces anything shaped like an API key, and the value of any query parameter named like a
credential, in every line before it is written. A database error's statement
parameters and the values its server quotes back (`DETAIL: Key (id)=(...)`) may be personal
data: `redact_database_values` drops them from an error before it is logged, and the formatter
applies it to every error it writes.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Final

from sqlalchemy.exc import StatementError

MAX_MESSAGE_CHARS: Final = 4000
"""A log line's message is truncated here: one hostile input cannot make a megabyte line."""


MAX_CHAINED_ERRORS: Final = 16
"""Causes and contexts followed when redacting: enough for any real chain, bounded for loops."""


def redact_database_values(error: BaseException) -> None:
    """Make `error` and the errors it was raised from print without SQL parameters."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen and len(seen) < MAX_CHAINED_ERRORS:
        seen.add(id(current))
        if isinstance(current, StatementError):
            current.hide_parameters = True
        current = current.__cause__ or current.__context__


_API_KEY: Final = re.compile(r"(kl_[0-9a-f]{16}_)[A-Za-z0-9_\-]+")
"""An API key (`kl_<client id>_<secret>`): the client id is kept, it names who leaked it."""
_CREDENTIAL_PARAM: Final = re.compile(
    r"([?&;](?:api[_-]?key|key|token|access[_-]?token|id[_-]?token|secret|password"
    r"|authorization|code|state)=)[^&;\s\"]*", re.IGNORECASE)
"""A query parameter named like a credential, in a logged URL (a single sign-on answer's
`code` and `state` included: spent once and bound to a browser, but still not for a log)."""
REDACTED: Final = "[redacted]"


def redact_secrets(text: str) -> str:
    """`text` with API keys and credential-named query values replaced by `[redacted]`."""
    return _CREDENTIAL_PARAM.sub(r"\1" + REDACTED, _API_KEY.sub(r"\1" + REDACTED, text))


class RedactSecrets(logging.Filter):
    """Rewrites each record's message without keys (uvicorn's access log lines included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_secrets(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def _without_quoted_values(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("DETAIL:"))


_node: str | None = None


def set_node(node: str) -> None:
    """Name this process's node (`api.node`) in every line from now on."""
    global _node
    _node = node


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage()[:MAX_MESSAGE_CHARS],
        }
        if _node is not None:
            entry["node"] = _node
        if record.exc_info:
            if record.exc_info[1] is not None:
                redact_database_values(record.exc_info[1])
            error = _without_quoted_values(self.formatException(record.exc_info))
            entry["error"] = redact_secrets(error)[-MAX_MESSAGE_CHARS:]
        return json.dumps(entry, ensure_ascii=False)


def configure(level: str = "info") -> None:
    """Send every logger's records to stderr as JSON lines."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
