"""JSON input read as the OpenAPI document describes it, not as pydantic's lax mode would.

Lax mode turns `true` into 1, `"7"` into 7, `0` into False and a number or digits into a Unix
time. A client that sends those is wrong, and an API that accepts them answers a request its own
document calls invalid (schemathesis counts each as a violation). Booleans use pydantic's
`StrictBool`; whole numbers and times are checked here, as their strict modes refuse too much
(`7.0` is an integer in JSON Schema, and FastAPI validates bodies in Python mode, where a
strict time refuses text).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Final

from pydantic import AwareDatetime, BeforeValidator

_DATE_TIME_TEXT: Final = re.compile(r"\d{4}-\d\d-\d\d[Tt ]")


def number_not_text(value: object) -> object:
    """For a `BeforeValidator` placed after the field's bounds (`Field(ge=..., le=...)`), so
    that they stay `minimum` and `maximum` in the document."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("a whole number, not text or a boolean")
    return value


def _date_time_text(value: object) -> object:
    if isinstance(value, datetime) or (isinstance(value, str) and _DATE_TIME_TEXT.match(value)):
        return value
    raise ValueError("a time is RFC 3339 text with a zone, e.g. 2030-01-31T00:00:00Z")


DateTimeText = Annotated[AwareDatetime, BeforeValidator(_date_time_text)]
"""An RFC 3339 date-time with its zone; never a number or digits read as Unix seconds."""
