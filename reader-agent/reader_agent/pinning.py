"""Pinning the API's answers key in agent.toml at enrolment (`kitledger-agent enroll --api-key`).

The key is public; what matters is which key the reader trusts, since a decision lights the desk
and an ack deletes outbox rows. So a pin is written once: the same key again changes nothing,
and another key is refused while one is pinned (the operator removes the line, on purpose, when
the agency's answers key is replaced). The file is rewritten whole through a temporary file in
its own directory, with the old file's mode, owner and group, and checked by parsing the new
text before it replaces the old, so a failed write leaves the old file and a written file
always loads with the key pinned.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Final

from ledger.core.envelope import key_id, public_key_from_raw
from reader_agent.config import AgentConfig, load_config, parse_api_key, parse_config
from reader_agent.errors import ConfigError

_MQTT_TABLE: Final = re.compile(r"^[ \t]*\[[ \t]*mqtt[ \t]*\][ \t]*(?:#[^\n]*)?(?:\n|\Z)",
                                re.MULTILINE)


def fingerprint(raw: bytes) -> str:
    """The key id `kitledger answers-key` prints as `kid` for the same key."""
    return key_id(public_key_from_raw(raw))


def pin_api_key(path: Path, key_hex: str) -> AgentConfig:
    """Pin `key_hex` as `[mqtt] api_key` in the agent.toml at `path`; the config as it now
    loads. Refused (ConfigError, file untouched) if the key is malformed, another key is
    pinned, or the file cannot be rewritten."""
    key = parse_api_key(key_hex)
    assert key is not None
    config = load_config(path)
    if config.mqtt.api_key == key:
        return config
    if config.mqtt.api_key is not None:
        raise ConfigError(
            f"{path} already pins API key {fingerprint(config.mqtt.api_key)}, not "
            f"{fingerprint(key)}; to trust another key, delete its [mqtt] api_key line first")
    text = path.read_text(encoding="utf-8")  # load_config checked its size and encoding
    line = f'api_key = "{key.hex()}"\n'
    table = _MQTT_TABLE.search(text)
    if table is None:
        pinned = text + ("\n" if text and not text.endswith("\n") else "") + "\n[mqtt]\n" + line
    else:
        end = table.end()
        pinned = text[:end] + ("" if text[:end].endswith("\n") else "\n") + line + text[end:]
    try:
        written = parse_config(pinned, path.parent)
    except ConfigError as exc:
        raise ConfigError(f"cannot place [mqtt] api_key in {path} ({exc}); add the line "
                          f"{line.strip()} to its [mqtt] table by hand") from None
    if written.mqtt.api_key != key:
        raise ConfigError(f"cannot place [mqtt] api_key in {path}; add the line "
                          f"{line.strip()} to its [mqtt] table by hand")
    _replace(path, pinned, line.strip())
    return written


def _replace(path: Path, text: str, line: str) -> None:
    """Write `text` over `path` atomically, keeping its mode, owner and group (agent.toml is
    root's and readable by the agent's group: a copy owned by whoever ran `enroll` could leave
    the agent unable to read its own configuration)."""
    try:
        before = path.stat()
        handle, temporary = tempfile.mkstemp(prefix=".agent-", suffix=".toml", dir=path.parent)
    except OSError as exc:
        raise ConfigError(f"cannot rewrite {path}: {exc.strerror}; add the line {line} to "
                          "its [mqtt] table as the file's owner") from None
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, before.st_mode & 0o777)
        written = os.stat(temporary)
        if (written.st_uid, written.st_gid) != (before.st_uid, before.st_gid):
            os.chown(temporary, before.st_uid, before.st_gid)
        os.replace(temporary, path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise ConfigError(f"cannot rewrite {path} keeping its owner, group and mode "
                          f"({exc.strerror}); add the line {line} to its [mqtt] table as the "
                          "file's owner") from None
