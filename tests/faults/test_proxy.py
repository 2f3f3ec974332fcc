"""The fault suite's loopback proxy: a cut link must refuse the very next connection.

A listener closed while its thread is blocked in accept() still takes one more connection, so
a "cut" uplink once let the first agent to reconnect through, and that agent delivered all
through a partition. Real sockets on loopback, no fault stack.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from tests.faults.proxy import LoopbackProxy

CONNECT_TIMEOUT_S = 5.0


@pytest.fixture
def echo_port() -> Iterator[int]:
    """A loopback server answering every connection with what it receives."""
    server = socket.create_server(("127.0.0.1", 0))
    port = int(server.getsockname()[1])

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                data = conn.recv(64)
                conn.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield port
    finally:
        with contextlib.suppress(OSError):
            server.shutdown(socket.SHUT_RDWR)
        server.close()


def _echo(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=CONNECT_TIMEOUT_S) as conn:
        conn.sendall(b"ping")
        return conn.recv(64)


def test_cut_refuses_the_next_connection_and_restore_reopens(echo_port: int) -> None:
    proxy = LoopbackProxy(echo_port)
    try:
        assert _echo(proxy.port) == b"ping"
        proxy.cut()
        for _ in range(3):
            with pytest.raises(OSError):
                _echo(proxy.port)
        proxy.restore()
        assert _echo(proxy.port) == b"ping"
    finally:
        proxy.close()


def test_close_refuses_connections(echo_port: int) -> None:
    proxy = LoopbackProxy(echo_port)
    assert _echo(proxy.port) == b"ping"
    proxy.close()
    with pytest.raises(OSError):
        _echo(proxy.port)
