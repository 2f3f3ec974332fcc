"""Networks of network namespaces, made and removed by the tests.

`SiteNetwork`: the reader site's network as a real one: the agents run in a network namespace
of their own (or one that exists, `namespace=`), joined to the host by a veth pair, and reach
the broker through the uplink proxy listening on the host's end. Taking the host's end down is
a black hole: the agents' packets are dropped, nothing is refused or reset, and only TCP
retransmission and MQTT keepalive can notice; bringing it up lets the same connections carry
on. Needs root and `ip` (`available` says whether this
machine allows it); otherwise the suite freezes the uplink proxy instead.

`Lan`: a switch of its own (a bridge inside a namespace) that namespaces join, each with one
private address, as machines on one LAN: they reach each other and nothing else (the
deployment rehearsal, tests/rehearsal).
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from typing import Final

SUBNET_PREFIX: Final = "10.203"
"""Private addresses for the veth pair: 10.203.N.1 (host) and 10.203.N.2 (the site)."""
LAN_PREFIX: Final = "10.204"
"""A `Lan`'s addresses: 10.204.N.K/24, K from 1 in the order namespaces join."""


def _ip(*args: str, check: bool = True) -> None:
    subprocess.run(["ip", *args], check=check, capture_output=True, timeout=30)


class SiteNetwork:
    """One namespace and veth pair; `prefix()` is what runs a command inside it."""

    def __init__(self, namespace: str | None = None) -> None:
        """`namespace`: join that existing namespace to the host instead of making one (it is
        then left in place by `destroy`)."""
        tag = secrets.token_hex(3)
        self.name = namespace or f"kl-site-{tag}"
        self._own = namespace is None
        self.host_if, self.site_if = f"klh{tag}", f"kls{tag}"
        self.net = int(tag[:2], 16)
        self.host_ip = f"{SUBNET_PREFIX}.{self.net}.1"
        self.site_ip = f"{SUBNET_PREFIX}.{self.net}.2"
        self._up = False

    def create(self) -> None:
        if self._own:
            _ip("netns", "add", self.name)
        self._up = True
        _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.site_if)
        _ip("link", "set", self.site_if, "netns", self.name)
        _ip("addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
        _ip("link", "set", self.host_if, "up")
        inside = ("netns", "exec", self.name, "ip")
        _ip(*inside, "addr", "add", f"{self.site_ip}/30", "dev", self.site_if)
        _ip(*inside, "link", "set", self.site_if, "up")
        _ip(*inside, "link", "set", "lo", "up")

    def prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def black_hole(self, on: bool) -> None:
        _ip("link", "set", self.host_if, "down" if on else "up")

    def destroy(self) -> None:
        if self._up:
            _ip("link", "del", self.host_if, check=False)
            if self._own:
                _ip("netns", "del", self.name, check=False)
            self._up = False


class Lan:
    """A bridge in a namespace of its own; `join(role)` makes a namespace on it ("a machine")
    and returns its name and address. `destroy` removes every namespace it made."""

    def __init__(self) -> None:
        self.tag = secrets.token_hex(3)
        self.name = f"kl-lan-{self.tag}"
        self.net = int(self.tag[:2], 16)
        self.members: dict[str, str] = {}
        """role -> its namespace's address on the LAN."""
        self._made: list[str] = []

    def create(self) -> None:
        _ip("netns", "add", self.name)
        self._made.append(self.name)
        _ip("-n", self.name, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.name, "link", "set", "br0", "up")

    def namespace(self, role: str) -> str:
        return f"kl-{role}-{self.tag}"

    def join(self, role: str) -> str:
        """Make namespace `role` with interface eth0 on the bridge; return its address."""
        name, port = self.namespace(role), f"p{len(self.members) + 1}"
        address = f"{LAN_PREFIX}.{self.net}.{len(self.members) + 1}"
        _ip("netns", "add", name)
        self._made.append(name)
        _ip("link", "add", "eth0", "netns", name, "type", "veth", "peer", "name", port,
            "netns", self.name)
        _ip("-n", self.name, "link", "set", port, "master", "br0", "up")
        _ip("-n", name, "addr", "add", f"{address}/24", "dev", "eth0")
        _ip("-n", name, "link", "set", "eth0", "up")
        _ip("-n", name, "link", "set", "lo", "up")
        self.members[role] = address
        return address

    def prefix(self, role: str) -> list[str]:
        return ["ip", "netns", "exec", self.namespace(role)]

    def destroy(self) -> None:
        for name in reversed(self._made):  # deleting a namespace deletes its veth ends
            _ip("netns", "del", name, check=False)
        self._made.clear()


def available() -> bool:
    if shutil.which("ip") is None:
        return False
    probe = SiteNetwork()
    try:
        probe.create()
    except (subprocess.CalledProcessError, OSError):
        return False
    finally:
        probe.destroy()
    return True
