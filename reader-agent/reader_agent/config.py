"""`agent.toml`: the agent's one configuration file, parsed with tomllib and validated whole.

Every section and key is known: an unknown key is refused (a typo must not silently fall back
to a default), a missing required key is named, and numbers are checked against their bounds.
Relative paths are taken relative to the config file. See `reader-agent/agent.example.toml`.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from ledger.core.bounds import MAX_EPC_BYTES
from reader_agent.errors import ConfigError

MAX_CONFIG_BYTES: Final = 256 * 1024
"""A site's config is a few kilobytes; refusing more bounds what a bad path can make us parse."""

MAX_ANTENNAS: Final = 64
"""The largest fixed readers drive 32 ports; 64 bounds the zone table."""

MAX_BADGE_ENTRIES: Final = 10_000
"""Badge lists are per-site staff lists; beyond this use a prefix or EPC class."""

ROLES: Final = frozenset({"issue_desk", "return_desk", "portal", "locker", "vehicle_bay"})
_IDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HEX = re.compile(f"(?:[0-9A-Fa-f]{{2}}){{1,{MAX_EPC_BYTES}}}")


@dataclass(frozen=True, slots=True)
class AntennaZone:
    zone: str
    rssi_floor: int


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    """Thresholds of the read pipeline (times in seconds of the monotonic clock)."""

    antennas: dict[int, AntennaZone]
    min_reads: int = 2
    debounce_s: float = 1.0
    depart_after_s: float = 5.0
    badge_prefixes: tuple[bytes, ...] = ()
    badge_epcs: frozenset[bytes] = frozenset()
    session_timeout_s: float = 60.0
    cosign_window_s: float = 5.0
    portal_inside: str | None = None
    portal_outside: str | None = None
    portal_window_s: float = 5.0


MAX_ENVELOPES_PER_MESSAGE: Final = 50
"""Envelopes packed into one events message when there is a backlog (`ledger.core.packing`):
MQTT then costs a fiftieth per read, and a message stays small. The API takes up to 64. An
agent set to 1 sends one envelope a message, for an API from before packing."""


@dataclass(frozen=True, slots=True)
class MqttSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = ""
    keepalive_s: int = 30
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    username: str | None = None
    password_file: Path | None = None
    api_key: bytes | None = None
    """The public half (32 raw bytes) of the agency's answers key: decisions and acks must be
    signed with it (`ledger.core.answers`). Unset: they are taken unchecked, with a warning."""
    reconnect_max_s: int = 60
    inflight_window: int = 1000
    health_interval_s: float = 30.0
    envelopes_per_message: int = MAX_ENVELOPES_PER_MESSAGE
    unacked_max: int = 5000
    ack_timeout_s: float = 5.0
    ack_timeout_max_s: float = 60.0


MAX_GPIO_PIN: Final = 27
"""The Pi's 40-pin header brings out GPIO 0 to 27 (BCM numbering, as gpiozero counts)."""


@dataclass(frozen=True, slots=True)
class IndicatorSettings:
    """The desk's feedback, wired to GPIO pins (BCM numbers); a pin left out is not wired.
    With no pins the decisions are only logged."""

    green_pin: int | None = None
    red_pin: int | None = None
    buzzer_pin: int | None = None

    def pins(self) -> dict[str, int]:
        """The wired pins by key name, for messages and for the indicator."""
        named = {"green_pin": self.green_pin, "red_pin": self.red_pin,
                 "buzzer_pin": self.buzzer_pin}
        return {name: pin for name, pin in named.items() if pin is not None}


@dataclass(frozen=True, slots=True)
class AgentConfig:
    reader_id: str
    agency: str
    site: str
    role: str
    protocol: str
    port: str
    driver_settings: dict[str, Any]
    key_file: Path
    outbox_path: Path
    outbox_max_rows: int
    outbox_alarm_fraction: float
    mqtt: MqttSettings
    disk_warn_mb: int = 256
    disk_floor_mb: int = 32
    pipeline: PipelineSettings = field(default_factory=lambda: PipelineSettings(antennas={}))
    indicator: IndicatorSettings = field(default_factory=IndicatorSettings)


class _Section:
    """One TOML table being consumed; `finish` refuses whatever was not consumed."""

    def __init__(self, raw: Any, name: str) -> None:
        if not isinstance(raw, dict):
            raise ConfigError(f"[{name}] must be a table")
        self.raw, self.name, self.used = raw, name, set[str]()

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        self.used.add(key)
        if key not in self.raw:
            if default is ...:
                raise ConfigError(f"[{self.name}] is missing required key {key!r}")
            return default
        value = self.raw[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            names = "/".join(k.__name__ for k in kinds)
            raise ConfigError(f"[{self.name}] {key} must be {names}, found {type(value).__name__}")
        return value

    def number(self, key: str, low: float, high: float, default: Any = ...) -> Any:
        value = self.get(key, (int, float) if isinstance(default, float) else int, default)
        if not low <= value <= high:
            raise ConfigError(f"[{self.name}] {key} = {value} is outside {low}..{high}")
        return value

    def ident(self, key: str, default: Any = ...) -> Any:
        value = self.get(key, str, default)
        if value is not None and not _IDENT.fullmatch(value):
            raise ConfigError(f"[{self.name}] {key} must be 1-64 of A-Z a-z 0-9 . _ - (MQTT-safe)")
        return value

    def path(self, key: str, base: Path, default: Any = ...) -> Path | None:
        value = self.get(key, str, default)
        return None if value is None else (base / value)

    def finish(self) -> None:
        unknown = sorted(set(self.raw) - self.used)
        if unknown:
            raise ConfigError(f"[{self.name}] has unknown keys {unknown}")


def _hex_list(section: _Section, key: str) -> list[bytes]:
    items = section.get(key, list, [])
    if len(items) > MAX_BADGE_ENTRIES:
        raise ConfigError(f"[{section.name}] {key} lists more than {MAX_BADGE_ENTRIES} entries")
    for item in items:
        if not isinstance(item, str) or not _HEX.fullmatch(item):
            raise ConfigError(f"[{section.name}] {key} entries must be hex byte strings")
    return [bytes.fromhex(item) for item in items]


def _antennas(raw: Any, default_floor: int) -> dict[int, AntennaZone]:
    if not isinstance(raw, dict) or not raw:
        raise ConfigError("[antennas] must map at least one antenna number to a zone")
    if len(raw) > MAX_ANTENNAS:
        raise ConfigError(f"[antennas] lists more than {MAX_ANTENNAS} antennas")
    result: dict[int, AntennaZone] = {}
    for key, table in raw.items():
        if not key.isdigit() or not 1 <= int(key) <= 255:
            raise ConfigError(f"[antennas] key {key!r} must be an antenna number 1-255")
        section = _Section(table, f"antennas.{key}")
        zone = section.ident("zone")
        floor = section.number("rssi_floor", -128, 127, default_floor)
        section.finish()
        result[int(key)] = AntennaZone(zone=zone, rssi_floor=floor)
    return result


def _pipeline(doc: dict[str, Any], role: str) -> PipelineSettings:
    pipe = _Section(doc.get("pipeline", {}), "pipeline")
    floor = pipe.number("rssi_floor", -128, 127, -75)
    settings: dict[str, Any] = {
        "min_reads": pipe.number("min_reads", 1, 100, 2),
        "debounce_s": float(pipe.number("debounce_s", 0.0, 60.0, 1.0)),
        "depart_after_s": float(pipe.number("depart_after_s", 0.1, 3600.0, 5.0)),
    }
    pipe.finish()
    antennas = _antennas(doc.get("antennas"), floor)
    badges = _Section(doc.get("badges", {}), "badges")
    settings["badge_prefixes"] = tuple(_hex_list(badges, "prefixes"))
    settings["badge_epcs"] = frozenset(_hex_list(badges, "epcs"))
    settings["session_timeout_s"] = float(badges.number("session_timeout_s", 1.0, 3600.0, 60.0))
    settings["cosign_window_s"] = float(badges.number("cosign_window_s", 0.0, 600.0, 5.0))
    badges.finish()
    zones = {a.zone for a in antennas.values()}
    if "portal" in doc or role == "portal":
        portal = _Section(doc.get("portal", {}), "portal")
        inside, outside = portal.ident("inside"), portal.ident("outside")
        for name in (inside, outside):
            if name not in zones:
                raise ConfigError(f"[portal] zone {name!r} is not the zone of any antenna")
        if inside == outside:
            raise ConfigError("[portal] inside and outside must be different zones")
        settings["portal_window_s"] = float(portal.number("window_s", 0.1, 600.0, 5.0))
        settings.update(portal_inside=inside, portal_outside=outside)
        portal.finish()
    return PipelineSettings(antennas=antennas, **settings)


def _mqtt(raw: Any, base: Path, reader_id: str) -> MqttSettings:
    mqtt = _Section(raw, "mqtt")
    tls_ca = mqtt.path("tls_ca", base, None)
    settings = MqttSettings(
        host=mqtt.get("host", str, "127.0.0.1"),
        port=mqtt.number("port", 1, 65535, 8883 if tls_ca else 1883),
        client_id=mqtt.ident("client_id", f"kitledger-{reader_id}"),
        keepalive_s=mqtt.number("keepalive_s", 5, 3600, 30),
        tls_ca=tls_ca, tls_cert=mqtt.path("tls_cert", base, None),
        tls_key=mqtt.path("tls_key", base, None),
        username=mqtt.get("username", str, None),
        password_file=mqtt.path("password_file", base, None),
        api_key=parse_api_key(mqtt.get("api_key", str, None)),
        reconnect_max_s=mqtt.number("reconnect_max_s", 1, 3600, 60),
        # Below 65,535: paho reuses packet ids past that many unacknowledged publishes.
        inflight_window=mqtt.number("inflight_window", 1, 20_000, 1000),
        health_interval_s=float(mqtt.number("health_interval_s", 0.1, 3600.0, 30.0)),
        envelopes_per_message=mqtt.number(
            "envelopes_per_message", 1, MAX_ENVELOPES_PER_MESSAGE, MAX_ENVELOPES_PER_MESSAGE),
        # Rows sent and not yet acknowledged by the API (`reader_agent.delivery`).
        unacked_max=mqtt.number("unacked_max", 1, 1_000_000, 5000),
        ack_timeout_s=float(mqtt.number("ack_timeout_s", 0.1, 600.0, 5.0)),
        ack_timeout_max_s=float(mqtt.number("ack_timeout_max_s", 0.1, 3600.0, 60.0)),
    )
    mqtt.finish()
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise ConfigError("[mqtt] tls_cert and tls_key must be given together")
    if settings.tls_cert is not None and settings.tls_ca is None:
        raise ConfigError("[mqtt] a client certificate needs tls_ca to check the broker")
    if settings.ack_timeout_max_s < settings.ack_timeout_s:
        raise ConfigError("[mqtt] ack_timeout_max_s must be at least ack_timeout_s")
    if settings.password_file is not None and settings.username is None:
        raise ConfigError("[mqtt] password_file needs username")
    return settings


def parse_api_key(text: str | None) -> bytes | None:
    """The 32 raw bytes of an answers public key given as `kitledger answers-key` prints it."""
    if text is None:
        return None
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise ConfigError("[mqtt] api_key must be the API's answers public key: 64 lowercase "
                          "hex digits (`kitledger answers-key AGENCY`)")
    return bytes.fromhex(text)


def _indicator(raw: Any) -> IndicatorSettings:
    section = _Section(raw, "indicator")
    pins: dict[str, int] = {}
    for name in ("green_pin", "red_pin", "buzzer_pin"):
        if name in section.raw:
            pins[name] = section.number(name, 0, MAX_GPIO_PIN)
    settings = IndicatorSettings(**pins)
    section.finish()
    if len(set(pins.values())) != len(pins):
        raise ConfigError(f"[indicator] pins must differ: {settings.pins()}")
    return settings


def parse_config(text: str, base: Path) -> AgentConfig:
    """Validate a config document; `base` is the directory relative paths start from."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"agent.toml is not valid TOML: {exc}") from None
    unknown = sorted(set(doc) - {"reader", "identity", "outbox", "mqtt", "pipeline",
                                 "antennas", "badges", "portal", "indicator"})
    if unknown:
        raise ConfigError(f"unknown sections {unknown}")
    reader = _Section(doc.get("reader", {}), "reader")
    reader_id = reader.ident("id")
    role = reader.get("role", str)
    if role not in ROLES:
        raise ConfigError(f"[reader] role {role[:40]!r} is not one of {sorted(ROLES)}")
    values: dict[str, Any] = {
        "reader_id": reader_id, "agency": reader.ident("agency"), "site": reader.ident("site"),
        "role": role, "protocol": reader.get("protocol", str), "port": reader.get("port", str),
        "driver_settings": dict(reader.get("settings", dict, {})),
    }
    reader.finish()
    identity = _Section(doc.get("identity", {}), "identity")
    values["key_file"] = identity.path("key_file", base)
    identity.finish()
    outbox = _Section(doc.get("outbox", {}), "outbox")
    values["outbox_path"] = outbox.path("path", base)
    values["outbox_max_rows"] = outbox.number("max_rows", 100, 100_000_000, 1_000_000)
    values["outbox_alarm_fraction"] = outbox.number("alarm_fraction", 0.05, 0.99, 0.8)
    values["disk_warn_mb"] = outbox.number("disk_warn_mb", 1, 1_000_000, 256)
    values["disk_floor_mb"] = outbox.number("disk_floor_mb", 1, 1_000_000, 32)
    outbox.finish()
    if values["disk_floor_mb"] >= values["disk_warn_mb"]:
        raise ConfigError("[outbox] disk_floor_mb must be below disk_warn_mb (the warning comes "
                          "first)")
    values["mqtt"] = _mqtt(doc.get("mqtt", {}), base, reader_id)
    values["pipeline"] = _pipeline(doc, role)
    values["indicator"] = _indicator(doc.get("indicator", {}))
    return AgentConfig(**values)


def load_config(path: Path) -> AgentConfig:
    """Read and validate `path`."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config {path} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"config {path} is not UTF-8") from None
    return parse_config(text, path.parent)
