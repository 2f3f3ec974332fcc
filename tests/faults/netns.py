"""The reader site's network as a real one: the agents run in a network namespace of their own,
joined to the host by a veth pair, and reach the broker through the uplink proxy listening on
the host's end. Taking the host's end down is a black hole: the agents' packets are dropped,
nothing is refused or reset, and only TCP retransmission and MQTT keepalive can notice; bringing
it up lets the same connections carry on. Needs root and `ip` (`available` says whether this
machine allows it); otherwise the suite freezes the uplink proxy instead.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from typing import Final

SUBNET_PREFIX: Final = "10.203"
"""Private addresses for the veth pair: 10.203.N.1 (host) and 10.203.N.2 (the site)."""


def _ip(*args: str, check: bool = True) -> None:
    subprocess.run(["ip", *args], check=check, capture_output=True, timeout=30)


class SiteNetwork:
    """One namespace and veth pair; `prefix()` is what runs a command inside it."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.name = f"kl-site-{tag}"
        self.host_if, self.site_if = f"klh{tag}", f"kls{tag}"
        self.net = int(tag[:2], 16)
        self.host_ip = f"{SUBNET_PREFIX}.{self.net}.1"
        self.site_ip = f"{SUBNET_PREFIX}.{self.net}.2"
        self._up = False

    def create(self) -> None:
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
            _ip("netns", "del", self.name, check=False)
            self._up = False


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
