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


class OutboxDiskError(OutboxError):
    """The outbox's filesystem refused a read or write; nothing was half-done, and the agent
    retries when the disk recovers. The subclasses say what an engineer has to fix."""


class OutboxDiskFull(OutboxDiskError):
    """The filesystem (or its inodes or a quota) has no room for the outbox's next write."""


class OutboxReadOnly(OutboxDiskError):
    """The filesystem is read-only (an SD card the kernel remounted after I/O errors)."""


class OutboxIOError(OutboxDiskError):
    """The storage failed the read or write (a failing card, a pulled drive)."""


class PublisherError(AgentError):
    """The MQTT client could not be configured (bad TLS files, bad credentials file)."""
