"""A loopback TCP proxy the fault suite puts between two real processes, to cut or freeze the
link between them without touching either.

`cut()` is a link that fails loudly: every connection through it is reset and new ones are
refused (the listening socket is closed), as when a database server goes away. `freeze()` is a
black hole: connections stay open and new ones are accepted, but no byte moves either way, so
each side sees silence rather than an error, as a dropped route or a firewall that drops
packets would show; only its own timeouts can tell it. `restore()` ends either. Threads, not
asyncio: the harness drives it from the test's own thread.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
from typing import Final

CHUNK_BYTES: Final = 65536
POLL_S: Final = 0.05
"""How often a frozen or idle pump looks again at the proxy's state."""


class LoopbackProxy:
    """Listens on `host`:`port` (free unless given) and forwards to 127.0.0.1:`target`."""

    def __init__(self, target: int, port: int = 0, host: str = "127.0.0.1") -> None:
        self.target = target
        self.host = host
        self._lock = threading.Lock()
        self._frozen = threading.Event()
        self._closing = threading.Event()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._listener: socket.socket | None = None
        self.port = port
        self._listen()

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(128)
        self.port = int(listener.getsockname()[1])
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True,
                         name=f"proxy-{self.port}").start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by cut() or close()
            if listener is not self._listener:
                client.close()  # accepted as cut() closed the listener: the link is down
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                client.close()  # the far side is down: so is the link
                continue
            with self._lock:
                self._pairs.append((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while not self._closing.is_set():
                if self._frozen.is_set():
                    self._frozen_wait()
                    continue
                ready, _, _ = select.select([source], [], [], POLL_S)
                if not ready or self._frozen.is_set():
                    continue
                data = source.recv(CHUNK_BYTES)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def _frozen_wait(self) -> None:
        while self._frozen.is_set() and not self._closing.is_set():
            self._closing.wait(POLL_S)

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._pairs)

    def cut(self) -> None:
        """Reset every connection and refuse new ones until `restore()`."""
        self._stop_listening()
        self._drop_all()

    def _stop_listening(self) -> None:
        """Close the listener. A close alone does not wake the thread blocked in its accept(),
        which would then let the next connection through; a shutdown does (EINVAL)."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()

    def freeze(self) -> None:
        """Stop moving bytes, closing nothing (a black hole) until `restore()`."""
        self._frozen.set()

    def restore(self) -> None:
        self._frozen.clear()
        if self._listener is None:
            self._listen()

    def _drop_all(self) -> None:
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for end in pair:
                with contextlib.suppress(OSError):
                    # Linger on, zero seconds: close with a reset, as a peer that went away.
                    end.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                with contextlib.suppress(OSError):
                    end.close()

    def close(self) -> None:
        self._closing.set()
        self._frozen.clear()
        self._stop_listening()
        self._drop_all()
