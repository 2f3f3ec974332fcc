"""This `kitledger serve` node's identity: one id per node, unique by default.

Several nodes may serve one database and one broker. Each needs MQTT client ids of its own: two
clients with one id make the broker disconnect one whenever the other connects, and a shared
session would mix their unacknowledged messages. So a node's id is `KITLEDGER_NODE_ID` if set,
else host name, process id and a random suffix (two nodes on one host, or one restarted, never
collide). `serve` fixes it in the environment before starting its children, so all of a node's
processes share it: it is in their MQTT client ids (`{mqtt_client_id}-{node}-{worker}`), their
log lines (`node`) and the `kitledger_node_info` metric.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
import socket
from typing import Final

from api.config import Settings

ENV: Final = "KITLEDGER_NODE_ID"
"""Where `serve` puts the node's id for its children (and where an operator may set it:
1-48 of A-Z a-z 0-9 . _ -, checked by `api.config.Settings.node_id`)."""


@functools.cache
def default_node_id() -> str:
    """host-pid-random, cut to MQTT-safe characters; the same for the life of the process."""
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:24].strip("-.") or "node"
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"


def node_id(settings: Settings | None = None) -> str:
    """The configured node id, else the one `serve` put in the environment for its children,
    else this process's default."""
    configured = settings.node_id if settings is not None else ""
    return configured or os.environ.get(ENV) or default_node_id()
