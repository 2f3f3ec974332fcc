"""Where the verifier's inputs come from: the bundle's bytes (a regular file, standard input as
`-`, or an http(s):// URL, trusted for nothing and bounded in size and time), and the chain
reader (the bundle's own receipts, or a node read from the pinned contract's deployment block).

Nothing a hostile input can do here blocks or exhausts the verifier: a FIFO, a device such as
/dev/zero or a directory is refused before it is opened for reading; every read stops one byte
past MAX_BUNDLE_BYTES whatever the file claims its size is; a stream whose first line runs past
MAX_RECORD_BYTES is refused as soon as that is seen; a download has an overall deadline, so a
server trickling a byte at a time is cut off.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import stat
import sys
import threading
import urllib.parse
from typing import BinaryIO, Final

from ledger.core.bundle import MAX_BUNDLE_BYTES, AuditBundle, BundleError
from ledger.core.encoding import MAX_RECORD_BYTES
from ledger.verify.anchors import ChainReader, OfflineChainReader
from ledger.verify.trust import LogTrust

DOWNLOAD_DEADLINE_S: Final = 300.0
"""The whole download, connection to last byte: 1 GiB at 30 Mbit/s fits; a trickle does not."""
READ_TIMEOUT_S: Final = 30.0
CHUNK_BYTES: Final = 1024 * 1024


class _Accumulator:
    """Bytes read so far, refused past the size bound or when the first line is too long."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.data = bytearray()
        self.header_seen = False

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > MAX_BUNDLE_BYTES:
            raise BundleError(f"{self.name}: bundle exceeds {MAX_BUNDLE_BYTES} bytes")
        if not self.header_seen:
            self.header_seen = b"\n" in self.data[:MAX_RECORD_BYTES + 1]
            if not self.header_seen and len(self.data) > MAX_RECORD_BYTES:
                raise BundleError(f"{self.name}: no line break in the first {MAX_RECORD_BYTES} "
                                  "bytes: not an audit bundle")


def _read_stream(stream: BinaryIO, name: str) -> bytes:
    found = _Accumulator(name)
    while chunk := stream.read(CHUNK_BYTES):
        found.add(chunk)
    return bytes(found.data)


def fetch_bundle(url: str, deadline_s: float = DOWNLOAD_DEADLINE_S) -> bytes:
    """A bundle downloaded from the operator's API (or anyone's): trusted for nothing, bounded
    in size and cut off `deadline_s` after the connection starts, however the server paces it."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BundleError(f"not an http(s) URL: {url[:80]!r}")
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = kind(parts.hostname, parts.port, timeout=min(READ_TIMEOUT_S, deadline_s))
    expired = threading.Event()
    timer: threading.Timer | None = None
    try:
        connection.connect()
        sock = connection.sock

        def cut_off() -> None:
            expired.set()
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked read

        timer = threading.Timer(deadline_s, cut_off)
        timer.daemon = True
        timer.start()
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.request("GET", target, headers={"Accept": "application/x-ndjson"})
        response = connection.getresponse()
        if response.status != 200:
            raise BundleError(f"the server answered HTTP {response.status} {response.reason}")
        found = _Accumulator(url[:80])
        while chunk := response.read1(CHUNK_BYTES):
            found.add(chunk)
        if expired.is_set():
            raise BundleError("cut off")
        return bytes(found.data)
    except (OSError, http.client.HTTPException, BundleError) as exc:
        if expired.is_set():
            raise BundleError(f"download not finished within {deadline_s:g} s "
                              "(--download-timeout): refused") from None
        if isinstance(exc, BundleError):
            raise
        raise BundleError(f"download failed: {type(exc).__name__}: {str(exc)[:120]}") from None
    finally:
        if timer is not None:
            timer.cancel()
        connection.close()


def read_bundle(path: str, deadline_s: float = DOWNLOAD_DEADLINE_S) -> bytes:
    """The bundle at `path`: a regular file, `-` for standard input, or an http(s):// URL."""
    if path == "-":
        return _read_stream(sys.stdin.buffer, "standard input")
    if path.startswith(("http://", "https://")):
        return fetch_bundle(path, deadline_s)
    return read_regular_file(path, MAX_BUNDLE_BYTES, "bundle file")


def read_regular_file(path: str, limit: int, what: str) -> bytes:
    """The bytes of the regular file at `path`, refused past `limit` bytes however large the
    file says it is; a FIFO, device or directory is refused without being read."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise BundleError(f"{path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        raise BundleError(f"{path} is not a regular file (give - to read standard input)")
    try:  # non-blocking: a file swapped for a FIFO after the check cannot hang the open
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise BundleError(f"{path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise BundleError(f"{path} is not a regular file")
        data = file.read(limit + 1)
    if len(data) > limit:
        raise BundleError(f"{path}: {what} exceeds {limit} bytes")
    return data


def open_chain_reader(bundle: AuditBundle, rpc_url: str | None,
                      pins: LogTrust | None = None) -> ChainReader:
    """The bundle's embedded receipts when `rpc_url` is None, else the node at `rpc_url`,
    reading the pinned contract from its deployment block (the bundle's contract from block 0
    when nothing pins the chain: the verdict is then not VALID anyway, or says so)."""
    if rpc_url is None:
        return OfflineChainReader(bundle)
    from ledger.verify.rpc import RpcChainReader  # web3 only when a node is asked

    if pins is not None and pins.chain is not None:
        chain = pins.chain
        return RpcChainReader.open(rpc_url, chain.contract, chain.chain_id,
                                   from_block=chain.deployment_block)
    if bundle.chain is None:
        raise BundleError("the bundle names no chain, so --rpc has nothing to ask: use --offline")
    reader = RpcChainReader.open(rpc_url, bundle.chain.contract, bundle.chain.chain_id)
    reader.not_checked = ("that the contract is the agency's own: no trust file pins it, so "
                          "it is the one the bundle names",)
    return reader
