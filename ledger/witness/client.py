"""Asking a witness for its cosignature (the client side of c2sp.org/tlog-witness), standard
library only, so the API and the tests' operators use the same code.

`request_cosignature` sends `old N`, the consistency proof and the checkpoint note to
`<prefix>/add-checkpoint`; a 409 names the size the witness holds, and the request is made once
more from that size (the caller's `proof_from(size)` gives the proof). The answer is checked
before it is kept: only a line by the witness's own key that verifies over the note's text is
returned. Every refusal is a typed error carrying the witness's reason.
"""

from __future__ import annotations

import http.client
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from ledger.core import note

TIMEOUT_S: Final = 10.0
MAX_REPLY_BYTES: Final = 8 * 1024
SIZE_CONTENT_TYPE: Final = "text/x.tlog.size"


class WitnessError(Exception):
    """A witness did not cosign."""


class WitnessUnreachable(WitnessError):
    """No answer (connection refused, timeout, broken reply): worth retrying later."""


class WitnessRefused(WitnessError):
    """The witness answered with a refusal: its status and its reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"witness refused ({status}): {reason}")
        self.status = status
        self.reason = reason


class WitnessConflict(WitnessRefused):
    """409: the witness last cosigned another size than the request's old size."""

    def __init__(self, size: int, reason: str) -> None:
        super().__init__(409, reason or f"witness holds size {size}")
        self.size = size


@dataclass(frozen=True, slots=True)
class Cosigned:
    """A verified cosignature line and the size the witness now holds."""

    line: str
    timestamp: int
    size: int


def add_checkpoint_body(old_size: int, proof: Sequence[bytes], checkpoint_note: bytes) -> bytes:
    lines = [f"old {old_size}", *(note.b64encode(node) for node in proof)]
    return ("\n".join(lines) + "\n\n").encode("ascii") + checkpoint_note


def _post(url: str, body: bytes, timeout: float) -> tuple[int, str, str, bytes]:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WitnessUnreachable(f"witness URL {url[:80]!r} is not http(s)")
    connection_type = (http.client.HTTPSConnection if parts.scheme == "https"
                       else http.client.HTTPConnection)
    connection = connection_type(parts.hostname, parts.port, timeout=timeout)
    try:
        connection.request("POST", parts.path.rstrip("/") + "/add-checkpoint", body=body,
                           headers={"Content-Type": "text/plain"})
        response = connection.getresponse()
        data = response.read(MAX_REPLY_BYTES + 1)
        return (response.status, response.getheader("Content-Type", ""),
                response.getheader("Witness-Refusal", ""), data)
    except (OSError, http.client.HTTPException) as exc:
        raise WitnessUnreachable(f"witness {url[:80]}: {exc}") from None
    finally:
        connection.close()


def _cosignature(reply: bytes, text: str, witness: note.NoteVerifier) -> int:
    try:
        lines = reply.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise WitnessUnreachable("witness reply is not UTF-8") from None
    for line in lines[: note.MAX_SIGNATURES]:
        try:
            signature = note.parse_signature_line(line)
            if witness.matches(signature):
                return note.verify_cosignature(text, signature, witness)
        except note.NoteError as exc:
            raise WitnessRefused(200, f"the witness's reply does not verify: {exc}") from None
    raise WitnessRefused(200, "the witness's reply has no cosignature by its key")


def request_cosignature(url: str, witness: note.NoteVerifier, checkpoint_note: bytes,
                        old_size: int, proof_from: Callable[[int], Sequence[bytes]],
                        timeout: float = TIMEOUT_S) -> Cosigned:
    """Ask the witness at `url` to cosign `checkpoint_note`, starting from `old_size` (the size
    it last cosigned, as far as the caller knows)."""
    parsed = note.parse_note(checkpoint_note)
    checkpoint = note.parse_checkpoint_text(parsed.text)
    for attempt in range(2):
        body = add_checkpoint_body(old_size, proof_from(old_size), checkpoint_note)
        status, content_type, refusal, reply = _post(url, body, timeout)
        if status == 200:
            timestamp = _cosignature(reply, parsed.text, witness)
            line = next(line for line in reply.decode().splitlines()
                        if witness.matches(note.parse_signature_line(line)))
            return Cosigned(line, timestamp, checkpoint.size)
        if status == 409 and content_type.startswith(SIZE_CONTENT_TYPE):
            text = reply.decode("ascii", "replace").strip()
            held = int(text) if text.isdigit() and len(text) <= 20 else -1
            if attempt == 0 and 0 <= held <= checkpoint.size and held != old_size:
                old_size = held
                continue
            raise WitnessConflict(held, refusal)
        reason = refusal or reply[:300].decode("utf-8", "replace").strip()
        raise WitnessRefused(status, reason)
    raise AssertionError("unreachable: the loop returns or raises")
