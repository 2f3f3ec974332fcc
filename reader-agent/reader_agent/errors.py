"""The reader agent's typed errors: one root, `AgentError`, and one family per concern.

Messages name the offending setting or file but never a secret's value.
"""

from __future__ import annotations


class AgentError(Exception):
    """Root of every error the agent's own modules raise (codecs have `ProtocolError`)."""


class ConfigError(AgentError):
    """`agent.toml` is missing, unreadable or invalid; the message names the key at fault."""


class IdentityError(AgentError):
    """The device key file is missing, unreadable, malformed or readable by others."""


class OutboxError(AgentError):
    """The durable outbox cannot be opened or written."""


class OutboxFull(OutboxError):
    """The outbox holds its configured maximum: the observation was refused (and counted)."""


class PublisherError(AgentError):
    """The MQTT client could not be configured (bad TLS files, bad credentials file)."""
