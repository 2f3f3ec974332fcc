"""Helpers of the trust-boundary tests: signing in through the real form, its token included,
and the environment of a real `kitledger serve` process."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

KITLEDGER = str(Path(sys.executable).parent / "kitledger")


def serve_env(tmp_path: Path, url: str, **extra: str) -> dict[str, str]:
    """`serve`'s environment: database `url`, no chain, log keys under `tmp_path`, `extra`
    settings, and none of the caller's own `KITLEDGER_*` settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KITLEDGER_")}
    env.update(KITLEDGER_DATABASE_URL=url, KITLEDGER_ANCHOR_CHAIN_URL="none",
               KITLEDGER_LOG_KEY_DIR=str(tmp_path / "keys"), **extra)
    return env


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
