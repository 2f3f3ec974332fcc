"""The witness's HTTP front (standard library only): `POST /add-checkpoint` and
`GET /<sha256(origin) hex>/checkpoint`.

Bounded in every direction a client controls: the body must announce its length and stay under
`MAX_BODY_BYTES`; every socket read times out; each connection has an overall deadline after
which its socket is shut, whatever the client trickles; at most `MAX_CONNECTIONS` are served at
once and the rest are closed unanswered. Every refusal carries its reason in the body (except
409, whose body the protocol fixes as the size) and in the `Witness-Refusal` header.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import socket
import sys
import threading
from typing import Any, Final

from ledger.witness.service import MAX_BODY_BYTES, Answer, Witness

READ_TIMEOUT_S: Final = 5.0
CONNECTION_DEADLINE_S: Final = 15.0
MAX_CONNECTIONS: Final = 32
REFUSAL_HEADER: Final = "Witness-Refusal"


class WitnessHandler(http.server.BaseHTTPRequestHandler):
    server: WitnessServer
    timeout = READ_TIMEOUT_S
    server_version = "kitledger-witness"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self._deadline = threading.Timer(CONNECTION_DEADLINE_S, self._cut_off)
        self._deadline.daemon = True
        self._deadline.start()

    def handle(self) -> None:
        with contextlib.suppress(OSError):  # a client cut off or gone: nothing left to answer
            super().handle()

    def finish(self) -> None:
        self._deadline.cancel()
        with contextlib.suppress(OSError):
            super().finish()

    def _cut_off(self) -> None:
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send(self, answer: Answer) -> None:
        data = answer.body.encode("utf-8")
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(data)))
        if answer.reason:
            header = answer.reason.encode("ascii", "replace").decode("ascii")[:300]
            self.send_header(REFUSAL_HEADER, header)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        if self.path != "/add-checkpoint":
            self._send(Answer(404, "no such endpoint\n", reason="no such endpoint"))
            return
        length_text = self.headers.get("Content-Length")
        if length_text is None or not length_text.isdigit():
            self._send(Answer(411, "Content-Length required\n", reason="no Content-Length"))
            return
        length = int(length_text)
        if length > MAX_BODY_BYTES:
            self._send(Answer(413, f"body over {MAX_BODY_BYTES} bytes\n",
                              reason=f"body over {MAX_BODY_BYTES} bytes"))
            return
        try:
            body = self.rfile.read(length)
        except OSError:
            return  # timed out or cut off: nothing to answer
        if len(body) != length:
            return
        answer = self.server.witness.add_checkpoint(body)
        if answer.status != 200:
            self.log_message("refused %d: %s", answer.status, answer.reason)
        self._send(answer)

    def do_GET(self) -> None:
        parts = self.path.split("/")
        if len(parts) == 3 and parts[2] == "checkpoint" and parts[1] in self.server.by_hash:
            latest = self.server.witness.state.latest(self.server.by_hash[parts[1]])
            if latest.note:
                self._send(Answer(200, latest.note.decode("utf-8")))
                return
        self._send(Answer(404, "no checkpoint cosigned for that log\n", reason="not found"))

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"witness {self.address_string()}: {format % args}\n")


class WitnessServer(http.server.ThreadingHTTPServer):
    """A threading HTTP server that serves `witness`, at most MAX_CONNECTIONS at a time."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], witness: Witness) -> None:
        self.witness = witness
        self.by_hash = {hashlib.sha256(o.encode("utf-8")).hexdigest(): o for o in witness.logs}
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, WitnessHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()
