"""Helpers of the trust-boundary tests: signing in through the real form, its token included."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

_TOKEN = re.compile(r'name="csrf" value="([^"]+)"')


def form_token(client: TestClient) -> str:
    """Load the sign-in form (which sets its cookie) and return the token it carries."""
    answer = client.get("/web/login")
    assert answer.status_code == 200, answer.text[:200]
    match = _TOKEN.search(answer.text)
    assert match is not None, "the sign-in form carries no token"
    return match.group(1)


def sign_in(client: TestClient, key: str, **headers: str) -> Any:
    """Post the sign-in form as a browser would: token from the form, key typed in."""
    token = form_token(client)
    return client.post("/web/login", data={"key": key, "csrf": token}, headers=headers)
