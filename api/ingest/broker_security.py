"""How the API's MQTT client proves itself to the broker and checks the broker back.

An `mqtts://` URL turns TLS on: the broker's certificate is checked against `mqtt_tls_ca`
(or the system's trust store when that is unset) and its name against the URL's host, so a
machine in the middle cannot pose as the broker. A broker that asks for client certificates
(`require_certificate true`, as `hardware/pi/mosquitto-tls.conf.example` does) gets
`mqtt_tls_cert`/`mqtt_tls_key`; one that asks for a password gets `mqtt_username` and the
password read from `mqtt_password_file` (a file, so the password is in no environment listing,
command line or URL). Files that cannot be used stop the worker at start with a `ConfigError`
naming the setting, never a value from the files.

A failed connection is logged with its cause in a few words (`describe_connect_failure`), once
per distinct cause, so an operator sees "broker certificate not trusted" rather than a silent
retry loop.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Final

import paho.mqtt.client as mqtt

from api.config import Settings
from api.errors import ConfigError

MAX_PASSWORD_BYTES: Final = 1024
"""A broker password file holds one line; anything larger is not one."""


def secure(client: mqtt.Client, settings: Settings) -> None:
    """Give `client` the TLS and credentials `settings` ask for; `ConfigError` if unusable."""
    if settings.mqtt_tls:
        try:
            client.tls_set(
                ca_certs=_path(settings.mqtt_tls_ca), certfile=_path(settings.mqtt_tls_cert),
                keyfile=_path(settings.mqtt_tls_key), cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load the mqtt_tls_* files: {_reason(exc)}") from None
    if settings.mqtt_username is not None:
        client.username_pw_set(settings.mqtt_username, read_password(settings.mqtt_password_file))


def read_password(path: Path | None) -> str | None:
    """The password in `path` (one line, surrounding whitespace dropped), or None."""
    if path is None:
        return None
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_PASSWORD_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read mqtt_password_file: {exc.strerror}") from None
    if len(data) > MAX_PASSWORD_BYTES:
        raise ConfigError("mqtt_password_file is too large to hold one password")
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError("mqtt_password_file is not UTF-8 text") from None


def describe_connect_failure(exc: BaseException | None) -> str:
    """A short, secret-free cause of a failed connection attempt, naming the setting to check."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"broker certificate not trusted ({exc.verify_message}); check mqtt_tls_ca"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed ({exc.reason or type(exc).__name__}); check mqtt_tls_*"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (broker down or wrong port)"
    if isinstance(exc, OSError):
        return f"cannot connect: {exc.strerror or type(exc).__name__}"
    return "cannot connect"


def _path(path: Path | None) -> str | None:
    return str(path) if path is not None else None


def _reason(exc: OSError | ssl.SSLError) -> str:
    """What went wrong with a TLS file, without the file's contents."""
    if isinstance(exc, ssl.SSLError):
        return exc.reason or type(exc).__name__
    return exc.strerror or type(exc).__name__
