"""The service's settings: `KITLEDGER_*` environment variables, an optional TOML file, defaults.

Precedence, highest first: explicit keyword overrides, environment variables, the TOML file named
by `KITLEDGER_CONFIG` (or passed in), the embedded defaults. The defaults make a first run work
on one machine (a SQLite file beside the process, the broker on 127.0.0.1:1883); outside
`development` a placeholder secret is refused rather than silently used in production.
Nothing is read at import time: call `load_settings()`.
"""

from __future__ import annotations

import ipaddress
import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from api.errors import ConfigError
from ledger.core.note import COSIGNATURE_V1, NoteError, parse_vkey
from ledger.core.read_window import MAX_READ_AGE, MAX_READ_AHEAD

CONFIG_FILE_ENV: Final = "KITLEDGER_CONFIG"
"""Environment variable naming the TOML settings file."""

PLACEHOLDER_SECRETS: Final = frozenset(
    {"", "changeme", "change-me", "changethis", "secret", "password", "placeholder", "dev"}
)
"""Values that mean "nobody set this": accepted in development only."""

MIN_SECRET_CHARS: Final = 32
"""A secret keys HMACs of API keys and webhooks; shorter than 32 characters is guessable."""

DEFAULT_SECRET: Final = "changeme"  # noqa: S105 - refused outside development

_READ_AGE_S: Final = int(MAX_READ_AGE.total_seconds())
_READ_AHEAD_S: Final = int(MAX_READ_AHEAD.total_seconds())

_config_file: ContextVar[Path | None] = ContextVar("kitledger_config_file", default=None)

MAX_INGEST_BATCH: Final = 5_000
"""A batch is one database transaction; bigger batches hold locks (and memory) for too long."""


MAX_WITNESSES: Final = 16
"""Witnesses asked for each checkpoint: policies name a handful; C2SP asks verifiers to accept
at least 16 signatures on a note."""


class WitnessEndpoint(BaseModel):
    """A witness the service asks to cosign its checkpoints (api.cosigning): its submission
    URL and its C2SP verifier key (`name+keyid+base64(0x04 || key)`, from `kitledger witness
    keygen`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(max_length=2048)
    vkey: str = Field(max_length=512)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("a witness URL must be http(s)://host[:port][/prefix]")
        return value

    @field_validator("vkey")
    @classmethod
    def _cosigner_vkey(cls, value: str) -> str:
        try:
            verifier = parse_vkey(value)
        except NoteError as exc:
            raise ValueError(f"witness vkey: {exc}") from None
        if verifier.sig_type != COSIGNATURE_V1:
            raise ValueError("a witness vkey has signature type 0x04 (a cosigner key)")
        return value


STAFF_ROLES: Final = ("read-only", "auditor", "stores-officer", "supervisor", "agency-admin")
"""The roles a provider's groups may map to (`api.accounts.roles.StaffRole`, named here so the
settings need no import of the server's models)."""

MAX_OIDC_PROVIDERS: Final = 32
MAX_GROUP_ROLES: Final = 64
"""Group-to-role lines per provider: a handful of stores and audit groups."""


class OidcProvider(BaseModel):
    """An agency's OpenID Connect provider for single sign-on to the pages (api.accounts.oidc).

    The client secret is never in the settings themselves: `client_secret_file` names a file
    holding it, or `client_secret_env` an environment variable that does; it is read when
    used and never logged or shown. `group_roles` maps the provider's group names (in the ID
    token's `groups_claim`) to staff roles; a person in none of them is refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")
    label: str = Field(default="", max_length=64)
    agency_id: str = Field(min_length=1, max_length=128)
    issuer: str = Field(max_length=2048)
    client_id: str = Field(min_length=1, max_length=256)
    client_secret_file: Path | None = None
    client_secret_env: str | None = Field(default=None, pattern=r"^[A-Z_][A-Z0-9_]{0,127}$")
    scope: str = Field(default="openid profile groups", max_length=512)
    groups_claim: str = Field(default="groups", min_length=1, max_length=64)
    group_roles: dict[str, str] = Field(min_length=1, max_length=MAX_GROUP_ROLES)

    @field_validator("issuer")
    @classmethod
    def _https_issuer(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.query or parts.fragment or not parts.hostname or "@" in parts.netloc:
            raise ValueError("an issuer is a URL with no query, fragment or credentials")
        if parts.scheme != "https" and not (parts.scheme == "http"
                                            and is_loopback(parts.hostname)):
            raise ValueError("an issuer must be https:// (http:// only on loopback)")
        return value

    @field_validator("group_roles")
    @classmethod
    def _known_roles(cls, value: dict[str, str]) -> dict[str, str]:
        for group, role in value.items():
            if not 0 < len(group) <= 256:
                raise ValueError("a group name is 1-256 characters")
            if role not in STAFF_ROLES:
                raise ValueError(f"group {group!r}: role must be one of {', '.join(STAFF_ROLES)}")
        return value

    @model_validator(mode="after")
    def _one_secret_source(self) -> OidcProvider:
        if (self.client_secret_file is None) == (self.client_secret_env is None):
            raise ValueError(f"provider {self.name}: give client_secret_file or "
                             "client_secret_env (one of them)")
        if "openid" not in self.scope.split():
            raise ValueError(f"provider {self.name}: scope must include openid")
        return self

    def client_secret(self) -> SecretStr:
        """The client secret, read now from its file or variable; `ConfigError` (naming where
        it was looked for, never a value) when missing."""
        if self.client_secret_file is not None:
            try:
                value = self.client_secret_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"provider {self.name}: cannot read client_secret_file "
                                  f"{self.client_secret_file} ({exc.strerror})") from None
            where = str(self.client_secret_file)
        else:
            assert self.client_secret_env is not None
            value = os.environ.get(self.client_secret_env, "").strip()
            where = f"${self.client_secret_env}"
        if not value:
            raise ConfigError(f"provider {self.name}: no client secret in {where}")
        return SecretStr(value)


class Settings(BaseSettings):
    """Every knob of the API service and its ingest workers."""

    model_config = SettingsConfigDict(
        env_prefix="KITLEDGER_", extra="forbid", frozen=True, validate_default=True
    )

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = "sqlite:///kitledger.db"
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    mqtt_client_id: str = "kitledger-ingest"
    # This node's id (api.node): empty means host-pid-random, unique per `serve`.
    node_id: str = Field(default="", pattern=r"^([A-Za-z0-9][A-Za-z0-9._-]{0,47})?$")
    mqtt_share_group: str = "kitledger-ingest"
    # Reader health (api.ingest.health): a reader with no health message for this long is
    # down; per-reader gauges on /metrics (one series per reader and metric) only when asked.
    reader_health_timeout_s: float = Field(default=120.0, ge=1.0, le=86_400.0)
    # A reader reporting this temperature (degrees Celsius) or more raises reader_overheat;
    # it is resolved once the reader is 5 degrees cooler (api.custody.reader_health).
    reader_temperature_alert_c: float = Field(default=70.0, ge=0.0, le=150.0)
    metrics_per_reader: bool = False
    # Pool planning (api.planning) counts requests by the stores' hour of day and day of week,
    # and its periods are their calendar days: an IANA time zone name (e.g. "Europe/London").
    planning_time_zone: str = Field(default="UTC", min_length=1, max_length=64)
    # The broker's security (api.ingest.broker_security): an mqtts:// URL turns TLS on, checking
    # the broker against mqtt_tls_ca (the system's trust store when unset); a client
    # certificate and key, and a username with its password in a file, as the broker asks.
    mqtt_tls_ca: Path | None = None
    mqtt_tls_cert: Path | None = None
    mqtt_tls_key: Path | None = None
    mqtt_username: str | None = Field(default=None, min_length=1, max_length=256)
    mqtt_password_file: Path | None = None
    secret_key: SecretStr = SecretStr(DEFAULT_SECRET)

    ingest_batch_size: int = Field(default=500, ge=1, le=MAX_INGEST_BATCH)
    ingest_batch_wait_ms: int = Field(default=20, ge=0, le=5_000)
    # Child processes per ingest worker that check signatures and schemas while the worker
    # stores the batch before (api.ingest.verifier_pool); 0 verifies in the worker itself.
    ingest_verify_processes: int = Field(default=1, ge=0, le=8)
    # Readers buffer observations while offline (the durable outbox), so old times are normal
    # up to the outbox's retention; times in the future mean a broken or forged clock. Bounded
    # by the window the verifier allows between an event and its reads (ledger.core.read_window).
    max_future_skew_s: int = Field(default=_READ_AHEAD_S, ge=0, le=_READ_AHEAD_S)
    max_observation_age_s: int = Field(default=_READ_AGE_S, ge=60, le=_READ_AGE_S)

    # Anchoring (api.anchoring): "embedded://" runs an in-process chain with a contract deployed
    # at start; an http(s)/ws(s) URL anchors on that node; "none" signs checkpoints only.
    # Absolute paths in production; elsewhere a relative log_key_dir is resolved against the
    # config file's folder, else the working directory (`_stable_key_dir`); docs/anchoring.md.
    log_key_dir: Path = Path("kitledger-keys")
    anchor_chain_url: str = Field(default="embedded://", max_length=2048)
    anchor_chain_id: int | None = Field(default=None, ge=1)
    anchor_contract: str | None = Field(default=None, pattern=r"^0x[0-9a-fA-F]{40}$")
    # The consortium admin's key (a file holding its hex, mode 0600, or the key itself in the
    # environment): unset on an agency's server, which attaches to anchor_contract and anchors
    # once the admin's offline-signed orders enrolled it (`kitledger consortium`); set only
    # where this server may act as the admin (a test chain run by one operator).
    anchor_admin_key_file: Path | None = None
    anchor_admin_key: SecretStr | None = None
    anchor_interval_s: float = Field(default=60.0, gt=0, le=86_400)
    anchor_max_new_leaves: int = Field(default=10_000, ge=1, le=10_000_000)
    anchor_confirmations: int = Field(default=1, ge=1, le=1_000)
    # Readiness (api.readiness): `/readyz` answers 503 when a log has more leaves than this
    # waiting for an anchor, or the chain node has been unreachable for longer than this.
    anchor_backlog_max: int = Field(default=100_000, ge=1, le=1_000_000_000)
    anchor_unavailable_max_s: float = Field(default=600.0, gt=0, le=7 * 86_400)
    # A fixed (legacy) gas price in wei for every transaction: 0 on a free-gas consortium
    # network (Besu with zeroBaseFee and min-gas-price 0), whose agency accounts hold no ether;
    # unset, EIP-1559 fees from the node's base fee plus a 1 gwei tip.
    anchor_gas_price: int | None = Field(default=None, ge=0, le=10**15)

    # Witnesses (api.cosigning) asked to cosign each new checkpoint; none by default. In the
    # environment, JSON: KITLEDGER_WITNESSES='[{"url": "...", "vkey": "..."}]'. A witness that
    # does not answer is asked again after a backoff doubling from the interval up to the max.
    witnesses: tuple[WitnessEndpoint, ...] = Field(default=(), max_length=MAX_WITNESSES)
    witness_interval_s: float = Field(default=5.0, gt=0, le=3_600)
    witness_backoff_max_s: float = Field(default=600.0, gt=0, le=86_400)
    witness_timeout_s: float = Field(default=10.0, gt=0, le=60)

    # Webhook delivery (api.webhooks): tries per event, backoff doubling from base to max.
    webhook_max_attempts: int = Field(default=8, ge=1, le=100)
    webhook_backoff_base_s: float = Field(default=5.0, gt=0, le=3_600)
    webhook_backoff_max_s: float = Field(default=3_600.0, gt=0, le=86_400)
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=60)
    # Networks webhooks may reach although they are not public (api.webhook_targets), e.g.
    # ["10.20.0.0/16"] for a receiver on the agency's own network; empty refuses them all.
    webhook_allowed_networks: tuple[IPvAnyNetwork, ...] = Field(default=(), max_length=64)

    # Failed authentication (api.auth_limits): after this many failures within the window an
    # address, or a client id, is answered 429 until its oldest failure leaves the window.
    auth_failure_limit: int = Field(default=10, ge=1, le=10_000)
    auth_failure_window_s: int = Field(default=300, ge=1, le=86_400)
    # The bearer token a Prometheus scraper sends for /metrics (api.routes.health); unset,
    # /metrics answers 404: its labels name every agency.
    metrics_key: SecretStr | None = None
    # Single sign-on to the web pages (api.accounts.oidc): each agency's OpenID Connect
    # provider, in TOML as [[oidc_providers]] tables (docs/accounts.md).
    oidc_providers: tuple[OidcProvider, ...] = Field(default=(), max_length=MAX_OIDC_PROVIDERS)

    @field_validator("anchor_chain_url")
    @classmethod
    def _known_chain(cls, value: str) -> str:
        if value == "embedded":  # the spelling people type for the default
            return "embedded://"
        if value not in ("none", "embedded://") and urlsplit(value).scheme not in (
            "http", "https", "ws", "wss"
        ):
            raise ValueError("anchor chain URL must be none, embedded:// or http(s)/ws(s)://")
        return value

    @field_validator("planning_time_zone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}: use an IANA name such as "
                             "'Europe/London'") from None
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        scheme = urlsplit(value).scheme
        if scheme not in ("sqlite", "postgresql", "postgresql+psycopg"):
            raise ValueError(f"database URL scheme {scheme!r}: use sqlite or postgresql")
        return value

    @field_validator("mqtt_url")
    @classmethod
    def _known_broker(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError("MQTT URL must look like mqtt://host:port or mqtts://host:port")
        if "@" in parts.netloc:  # a password in a URL is shown wherever the URL is
            raise ValueError("MQTT URL must not hold credentials: set mqtt_username and "
                             "mqtt_password_file")
        return value

    @model_validator(mode="after")
    def _coherent_broker_security(self) -> Settings:
        """TLS files only with mqtts:// (never silently unused), a certificate with its key,
        a password with its username; relative paths resolved as `log_key_dir` is."""
        tls_files = ("mqtt_tls_ca", "mqtt_tls_cert", "mqtt_tls_key")
        if not self.mqtt_tls and any(getattr(self, name) for name in tls_files):
            raise ValueError("mqtt_tls_* settings need an mqtts:// mqtt_url")
        if (self.mqtt_tls_cert is None) != (self.mqtt_tls_key is None):
            raise ValueError("mqtt_tls_cert and mqtt_tls_key must be given together")
        if self.mqtt_password_file is not None and self.mqtt_username is None:
            raise ValueError("mqtt_password_file needs mqtt_username")
        for name in (*tls_files, "mqtt_password_file"):
            path = getattr(self, name)
            if path is not None and not path.is_absolute():
                object.__setattr__(self, name, _config_base() / path)  # frozen model
        return self

    @model_validator(mode="after")
    def _unique_providers(self) -> Settings:
        names = [p.name for p in self.oidc_providers]
        if len(names) != len(set(names)):
            raise ValueError("oidc_providers: each provider needs its own name")
        for provider in self.oidc_providers:
            path = provider.client_secret_file
            if path is not None and not path.is_absolute():
                object.__setattr__(provider, "client_secret_file", _config_base() / path)
        return self

    @model_validator(mode="after")
    def _real_secret_outside_development(self) -> Settings:
        if self.metrics_key is not None and (
                problem := secret_problem(self.metrics_key.get_secret_value())):
            raise ValueError(f"KITLEDGER_METRICS_KEY {problem}")
        if self.environment == "development":
            return self
        if problem := secret_problem(self.secret_key.get_secret_value()):
            raise ValueError(f"KITLEDGER_SECRET_KEY {problem} in {self.environment}")
        return self

    @model_validator(mode="after")
    def _stable_key_dir(self) -> Settings:
        """Keys live where the settings say, the same folder from every process. In
        production `log_key_dir` and `anchor_admin_key_file` must be absolute paths: a
        relative one (the default `kitledger-keys` among them) depends on where the service
        was started or where its config file happens to be, and a service that looks for its
        keys elsewhere makes new ones or cannot anchor. In development and tests a relative
        path is resolved against the config file's folder, else the working directory."""
        for name in ("log_key_dir", "anchor_admin_key_file"):
            path = getattr(self, name)
            if path is None or path.is_absolute():
                continue
            if self.environment == "production":
                raise ValueError(f"{name} must be an absolute path in production (it is "
                                 f"{str(path)!r}, which depends on the folder the service "
                                 "starts in)")
            object.__setattr__(self, name, _config_base() / path)  # frozen model
        return self

    @property
    def sqlalchemy_url(self) -> str:
        """The URL with the driver SQLAlchemy should use (psycopg 3 for PostgreSQL)."""
        if self.database_url.startswith("postgresql://"):
            return "postgresql+psycopg://" + self.database_url.removeprefix("postgresql://")
        return self.database_url

    @property
    def mqtt_host(self) -> str:
        return urlsplit(self.mqtt_url).hostname or "127.0.0.1"

    @property
    def mqtt_tls(self) -> bool:
        """The URL asks for TLS (`mqtts://`)."""
        return urlsplit(self.mqtt_url).scheme == "mqtts"

    @property
    def mqtt_port(self) -> int:
        parts = urlsplit(self.mqtt_url)
        return parts.port or (8883 if parts.scheme == "mqtts" else 1883)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = _config_file.get() or os.environ.get(CONFIG_FILE_ENV)
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(path)))
        return tuple(sources)


def _config_base() -> Path:
    """The folder relative paths in the settings start from: the config file's, else the
    working directory."""
    config = _config_file.get() or os.environ.get(CONFIG_FILE_ENV)
    return Path(config).resolve().parent if config else Path.cwd()


def secret_problem(secret: str) -> str | None:
    """Why `secret` is not a real secret (a placeholder, too short), or None if it is."""
    if secret.strip().lower() in PLACEHOLDER_SECRETS:
        return "is a placeholder; set a real secret"
    if len(secret) < MIN_SECRET_CHARS:
        return f"must be at least {MIN_SECRET_CHARS} chars"
    return None


def is_loopback(host: str) -> bool:
    """Whether a listen address only reaches this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def listen_problem(settings: Settings, host: str) -> str | None:
    """Why `serve` must not listen on `host` with these settings, or None.

    The placeholder secret (development's default) keys API-key hashes that anyone can
    recompute: it is allowed on loopback only, where `serve` warns about it.
    """
    problem = secret_problem(settings.secret_key.get_secret_value())
    if problem is None or is_loopback(host):
        return None
    return f"KITLEDGER_SECRET_KEY {problem}: only loopback may serve without one (not {host})"


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from overrides, the environment and the TOML file; `ConfigError` if unusable.

    The error names the offending settings but never echoes their values (they may be secrets).
    """
    if config_file is not None and not config_file.is_file():
        raise ConfigError(f"config file {config_file} does not exist")
    token = _config_file.set(config_file)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors(include_input=False)
        )
        raise ConfigError(f"invalid settings: {problems}") from None
    except (OSError, ValueError) as exc:  # an unreadable or malformed TOML file
        raise ConfigError(f"cannot read settings: {type(exc).__name__}") from None
    finally:
        _config_file.reset(token)
