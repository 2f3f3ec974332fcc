"""Fixtures for the reader agent's tests (helpers live in agent_support.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.reader_agent.agent_support import AGENT_TOML, Subscriber


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """Write an agent.toml in tmp_path; keyword arguments fill the template."""

    def write(**values: Any) -> Path:
        fields = {"protocol": "replay", "port": str(tmp_path / "reads.txt"),
                  "settings": "rate = 2000", "max_rows": 1_000_000, "mqtt_port": 1}
        fields.update(values)
        path = tmp_path / "agent.toml"
        path.write_text(AGENT_TOML.format(**fields))
        return path

    return write


@pytest.fixture
def subscriber_factory() -> Iterator[Callable[..., Subscriber]]:
    made: list[Subscriber] = []

    def make(port: int, topic: str = "kitledger/v1/testforce/stores/desk-1/#",
             client_id: str = "test-subscriber", ack: bool = False) -> Subscriber:
        sub = Subscriber(port, topic, client_id, ack)
        made.append(sub)
        return sub

    yield make
    for sub in made:
        sub.close()
