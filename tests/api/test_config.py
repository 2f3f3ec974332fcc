"""Settings: defaults for a first run, environment and TOML precedence, refused placeholders."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.config import MIN_SECRET_CHARS, load_settings
from api.errors import ConfigError

REAL_SECRET = "x" * MIN_SECRET_CHARS


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("KITLEDGER_"):
            monkeypatch.delenv(name)


def test_defaults_work_for_a_first_run() -> None:
    settings = load_settings()
    assert settings.environment == "development"
    assert settings.database_url.startswith("sqlite:///")
    assert (settings.mqtt_host, settings.mqtt_port) == ("127.0.0.1", 1883)


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KITLEDGER_DATABASE_URL", "postgresql://kl@db.example:5433/kitledger")
    monkeypatch.setenv("KITLEDGER_MQTT_URL", "mqtts://broker.example")
    settings = load_settings()
    assert settings.sqlalchemy_url == "postgresql+psycopg://kl@db.example:5433/kitledger"
    assert (settings.mqtt_host, settings.mqtt_port) == ("broker.example", 8883)


def test_toml_file_is_read_and_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "kitledger.toml"
    config.write_text('mqtt_url = "mqtt://10.0.0.5:1884"\ningest_batch_size = 64\n')
    monkeypatch.setenv("KITLEDGER_INGEST_BATCH_SIZE", "128")
    settings = load_settings(config)
    assert settings.mqtt_port == 1884
    assert settings.ingest_batch_size == 128
    monkeypatch.setenv("KITLEDGER_CONFIG", str(config))
    assert load_settings().mqtt_port == 1884


@pytest.mark.parametrize("secret", ["changeme", "", "CHANGEME", "Password", "short-but-not-known"])
def test_placeholder_or_short_secret_refused_outside_development(secret: str) -> None:
    with pytest.raises(ConfigError, match="SECRET_KEY") as info:
        load_settings(environment="production", secret_key=secret)
    if secret:
        assert secret not in str(info.value).replace("SECRET_KEY", "")


def test_real_secret_accepted_in_production_and_never_printed() -> None:
    settings = load_settings(environment="production", secret_key=REAL_SECRET,
                             log_key_dir="/var/lib/kitledger/keys")
    assert REAL_SECRET not in repr(settings)
    assert settings.secret_key.get_secret_value() == REAL_SECRET


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("database_url", "mysql://x/y"),
        ("mqtt_url", "http://broker"),
        ("mqtt_url", "mqtt://"),
        ("ingest_batch_size", 0),
        ("ingest_batch_size", 10**9),
        ("environment", "staging"),
        ("no_such_setting", 1),
        ("anchor_gas_price", -1),
        ("anchor_gas_price", 10**16),
        ("anchor_gas_price", "free"),
    ],
)
def test_bad_values_refused(name: str, value: object) -> None:
    with pytest.raises(ConfigError, match=name if name != "no_such_setting" else "no_such"):
        load_settings(**{name: value})


def test_free_gas_is_a_fixed_price_of_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().anchor_gas_price is None  # EIP-1559 fees from the node
    monkeypatch.setenv("KITLEDGER_ANCHOR_GAS_PRICE", "0")
    assert load_settings().anchor_gas_price == 0


def test_malformed_or_missing_toml_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "absent.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("mqtt_url = [unterminated\n")
    with pytest.raises(ConfigError):
        load_settings(broken)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('secret_keyy = "typo"\n')
    with pytest.raises(ConfigError, match="secret_keyy"):
        load_settings(unknown)
