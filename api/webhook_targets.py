"""Where a webhook may be sent: the address policy for receivers.

A webhook URL names a receiver outside the deployment. Anything that reaches inward (loopback,
private, link-local including cloud metadata at 169.254.169.254, multicast, unspecified,
reserved or otherwise non-global addresses) is refused unless the operator allow-lists its
network (`webhook_allowed_networks`). The name is resolved and every address it resolves to is
checked, at registration and again before each delivery, because DNS answers can change; the
delivery then connects to the address that was checked (`PinnedTarget`), never resolving again.

URLs with userinfo are refused (credentials in a URL would be sent as Basic auth and echoed back),
as are numeric hosts in any spelling other than the canonical one (`http://2130706433/`,
`http://0x7f000001/`), which exist mainly to slip past filters.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit, urlunsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_ADDRESSES: Final = 32
"""Addresses of one name that are checked; a longer answer is refused rather than truncated."""
_INWARD_NAMES: Final = frozenset({"localhost", "metadata", "metadata.google.internal"})
"""Names that mean this host or the cloud's metadata service wherever they are resolved."""


class TargetRefused(ValueError):
    """A webhook URL may not be used; the message says why, without credentials."""


@dataclass(frozen=True)
class PinnedTarget:
    """A checked URL and the address to connect to for it."""

    url: str
    """The URL with the host replaced by the checked address (bracketed for IPv6)."""
    host_header: str
    """The original host (and port) for the Host header."""
    sni_hostname: str | None
    """The original name for TLS (SNI and certificate check); None for plain HTTP."""


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (replaced in tests that simulate DNS answers)."""
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


def redact(url: str) -> str:
    """The URL without userinfo, for showing back a URL stored before userinfo was refused."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _inward_reason(address: IPAddress) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return _inward_reason(address.ipv4_mapped)
    checks = (("loopback", address.is_loopback), ("link-local", address.is_link_local),
              ("private", address.is_private), ("multicast", address.is_multicast),
              ("unspecified", address.is_unspecified), ("reserved", address.is_reserved),
              ("non-public", not address.is_global))
    return next((name for name, hit in checks if hit), None)


def check_address(address: IPAddress, allowed: Iterable[IPNetwork]) -> None:
    """Refuse an inward address unless an allow-listed network holds it."""
    if any(address.version == net.version and address in net for net in allowed):
        return
    reason = _inward_reason(address)
    if reason is not None:
        raise TargetRefused(f"webhook target resolves to a {reason} address")


def _literal(host: str) -> IPAddress | None:
    """The host as an IP address if it is one in canonical form; refuses other numeric forms."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        socket.inet_aton(host)
    except OSError:
        return None
    raise TargetRefused("webhook host is an IP address in a non-canonical spelling")


def check_url(url: str) -> tuple[str, str, int]:
    """The scheme, host and port of a well-formed webhook URL (no resolution)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetRefused("webhook URL must be http(s)://host/...")
    if "@" in parts.netloc:
        raise TargetRefused("webhook URL must not contain a user name or password")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise TargetRefused("webhook URL has an invalid port") from None
    host = parts.hostname.rstrip(".")
    if host in _INWARD_NAMES or host.endswith(".localhost"):
        raise TargetRefused(f"webhook host {host!r} names this host or a metadata service")
    return parts.scheme, host, port


def vet(url: str, allowed: Sequence[IPNetwork]) -> PinnedTarget:
    """Check a webhook URL and every address its host resolves to now; the target to
    connect to. Raises `TargetRefused` with the reason."""
    scheme, host, port = check_url(url)
    literal = _literal(host)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        try:
            found = resolve(host, port)
        except (OSError, UnicodeError):
            raise TargetRefused("webhook host does not resolve") from None
        if not found or len(found) > MAX_ADDRESSES:
            raise TargetRefused("webhook host does not resolve to a usable address list")
        addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in found]
    for address in addresses:
        check_address(address, allowed)
    parts = urlsplit(url)
    pinned = addresses[0]
    ip_host = f"[{pinned}]" if pinned.version == 6 else str(pinned)
    netloc = f"{ip_host}:{parts.port}" if parts.port else ip_host
    return PinnedTarget(url=urlunsplit(parts._replace(netloc=netloc)),
                        host_header=parts.netloc,
                        sni_hostname=host if scheme == "https" else None)
