"""Auditor fixtures: one embedded chain per module, and a story anchored on it; every test keeps
the auditor's last verified checkpoints in its own directory (XDG_STATE_HOME), never the
user's."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.chain.provider import EMBEDDED_URL, connect
from tests.ledger.verify.audit_support import ChainSetup, Story, deploy, make_story


@pytest.fixture(autouse=True)
def auditor_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
                  ) -> Path:
    state = tmp_path_factory.mktemp("xdg-state")
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    return state / "kitledger"


@pytest.fixture(scope="module")
def log_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def embedded_setup(log_key: Ed25519PrivateKey) -> ChainSetup:
    return deploy(connect(EMBEDDED_URL), log_key)


@pytest.fixture(scope="module")
def story(embedded_setup: ChainSetup, log_key: Ed25519PrivateKey) -> Story:
    return make_story(embedded_setup, log_key)


@pytest.fixture(scope="module")
def bundle(story: Story) -> bytes:
    return story.bundle()
