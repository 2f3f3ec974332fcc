"""Connecting to a node: the embedded py-evm chain, HTTP(S) or WebSocket, with the chain id checked.

URLs: ``embedded://`` (an in-process eth-tester chain: nothing to install, instant finality),
``http(s)://host:port`` and ``ws(s)://host:port``. web3 8 only ships an asyncio WebSocket
provider, so a small synchronous one lives here; the client stays synchronous and simple.
"""

from __future__ import annotations

import threading
from contextlib import ExitStack
from typing import Any, Final
from urllib.parse import urlsplit

from web3 import EthereumTesterProvider, HTTPProvider, Web3
from web3.providers import JSONBaseProvider
from web3.types import RPCEndpoint, RPCResponse
from websockets.exceptions import WebSocketException
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from ledger.chain.errors import ChainIdMismatch, ChainUnavailable

EMBEDDED_URL: Final = "embedded://"

MAX_URL_CHARS: Final = 2048
"""Node URLs come from configuration; a bound keeps a pasted blob out of error messages."""

MAX_RESPONSE_BYTES: Final = 16 * 1024 * 1024
"""A JSON-RPC answer bigger than this (a huge log query) is refused rather than buffered."""

DEFAULT_TIMEOUT_S: Final = 10.0


class SyncWebSocketProvider(JSONBaseProvider):
    """JSON-RPC over one WebSocket, one request at a time (a lock serialises callers)."""

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        super().__init__()
        self.url = url
        self.timeout = timeout
        self._lock = threading.Lock()
        self._socket: ClientConnection | None = None
        self._exit = ExitStack()

    def _connection(self) -> ClientConnection:
        if self._socket is None:
            # Entered as a context manager (websockets wants that); `close()` exits it.
            self._socket = self._exit.enter_context(
                ws_connect(self.url, open_timeout=self.timeout, max_size=MAX_RESPONSE_BYTES)
            )
        return self._socket

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        request = self.encode_rpc_request(method, params)
        with self._lock:
            try:
                socket = self._connection()
                socket.send(request.decode("utf-8"))
                raw = socket.recv(timeout=self.timeout)
            except (OSError, TimeoutError, WebSocketException) as exc:
                self.close()
                # The node went away mid-request: the caller decides whether to retry.
                raise ConnectionError(f"websocket request {method} failed: {exc}") from None
        return self.decode_rpc_response(raw if isinstance(raw, bytes) else raw.encode("utf-8"))

    def close(self) -> None:
        self._socket = None
        self._exit.close()


def _provider(url: str, timeout: float) -> Any:
    if url == EMBEDDED_URL:
        return EthereumTesterProvider()
    scheme = urlsplit(url).scheme
    if scheme in {"http", "https"}:
        return HTTPProvider(url, request_kwargs={"timeout": timeout})
    if scheme in {"ws", "wss"}:
        return SyncWebSocketProvider(url, timeout)
    raise ValueError(f"unsupported node URL scheme {scheme!r}: use embedded://, http(s)://, ws(s)://")


def connect(
    url: str = EMBEDDED_URL,
    expected_chain_id: int | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Web3:
    """A Web3 handle on the node at `url`; raises ChainIdMismatch when it serves another chain."""
    if len(url) > MAX_URL_CHARS:
        raise ValueError(f"node URL longer than {MAX_URL_CHARS} characters")
    w3 = Web3(_provider(url, timeout))
    try:
        chain_id = int(w3.eth.chain_id)
    except (OSError, ConnectionError, TimeoutError) as exc:
        # Host and port only: a URL may carry credentials, which never go into messages.
        parts = urlsplit(url)
        where = f"{parts.hostname}:{parts.port}" if parts.hostname else parts.scheme
        raise ChainUnavailable(f"node at {where} unreachable: {type(exc).__name__}") from None
    if expected_chain_id is not None and chain_id != expected_chain_id:
        raise ChainIdMismatch(expected_chain_id, chain_id)
    return w3
