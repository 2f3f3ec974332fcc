"""The add-checkpoint rules of c2sp.org/tlog-witness: what this witness cosigns, and why it
refuses everything else.

`Witness.add_checkpoint(body)` answers with an `Answer` (HTTP status, content type, body):

- 200 and the cosignature line: the checkpoint is signed by the log's trusted key and is proven
  consistent with the last one this witness cosigned for that log (or is the first);
- 400: the request is malformed (bad old-size line, bad base64, too many proof lines, a note
  that does not parse, an old size above the new size);
- 403: no valid signature by the log's trusted key, or a known key's signature fails;
- 404: the checkpoint's origin is not a log this witness was configured for;
- 409 (`text/x.tlog.size`, body the size it holds): the old size is not the size this witness
  last cosigned: a replay of an older checkpoint, or a client that lost track;
- 422: a consistency proof that does not verify, a non-empty proof from size 0, or the same
  size with another root: the log forked.

A validly signed checkpoint refused with 422 is kept as evidence of the fork
(`WitnessState.keep_evidence`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from ledger.core import note
from ledger.core.errors import LedgerError
from ledger.core.merkle import EMPTY_ROOT, HASH_SIZE, verify_consistency
from ledger.witness.keys import CosigningKey
from ledger.witness.state import Latest, WitnessState

MAX_PROOF_LINES: Final = 63
MAX_BODY_BYTES: Final = 64 + MAX_PROOF_LINES * 46 + note.MAX_NOTE_BYTES
"""The old-size line, 63 base64 hashes of 45 characters and a newline, and a bounded note."""

SIZE_CONTENT_TYPE: Final = "text/x.tlog.size"
_OLD = re.compile(r"old (0|[1-9][0-9]{0,19})")


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"
    reason: str = ""


class Refused(Exception):
    """A request this witness will not cosign; carries the HTTP answer."""

    def __init__(self, status: int, reason: str, *, size: int | None = None) -> None:
        super().__init__(reason)
        self.answer = (Answer(status, f"{size}\n", SIZE_CONTENT_TYPE, reason) if size is not None
                       else Answer(status, reason + "\n", reason=reason))


@dataclass(frozen=True, slots=True)
class Submission:
    """A parsed add-checkpoint body."""

    old_size: int
    proof: tuple[bytes, ...]
    note_bytes: bytes


def parse_submission(body: bytes) -> Submission:
    """`old N`, up to 63 base64 proof lines, an empty line, then the checkpoint note."""
    if len(body) > MAX_BODY_BYTES:
        raise Refused(400, f"request body over {MAX_BODY_BYTES} bytes")
    head, sep, rest = body.partition(b"\n\n")
    if not sep:
        raise Refused(400, "request has no empty line before the checkpoint")
    try:
        lines = head.decode("ascii").split("\n")
    except UnicodeDecodeError:
        raise Refused(400, "old size and proof lines must be ASCII") from None
    match = _OLD.fullmatch(lines[0])
    if match is None:
        raise Refused(400, "first line must be 'old <size>' without leading zeroes")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise Refused(400, f"more than {MAX_PROOF_LINES} consistency proof lines")
    proof = []
    for position, line in enumerate(lines[1:], 1):
        try:
            node = note.b64decode(line, f"proof line {position}")
        except note.MalformedNote as exc:
            raise Refused(400, str(exc)) from None
        if len(node) != HASH_SIZE:
            raise Refused(400, f"proof line {position} is not a {HASH_SIZE}-byte hash")
        proof.append(node)
    return Submission(int(match[1]), tuple(proof), rest)


class Witness:
    """Cosigns checkpoints of the logs in `logs` (origin -> trusted log keys) with `key`."""

    def __init__(self, key: CosigningKey, state: WitnessState,
                 logs: Mapping[str, tuple[note.NoteVerifier, ...]],
                 clock: Callable[[], float] = time.time) -> None:
        self.key = key
        self.state = state
        self.logs = dict(logs)
        self.clock = clock

    def add_checkpoint(self, body: bytes) -> Answer:
        try:
            return self._add(body)
        except Refused as refused:
            return refused.answer

    def _add(self, body: bytes) -> Answer:
        submission = parse_submission(body)
        try:
            checkpoint_note = note.parse_note(submission.note_bytes)
            checkpoint = note.parse_checkpoint_text(checkpoint_note.text)
        except note.MalformedNote as exc:
            raise Refused(400, f"checkpoint: {exc}") from None
        trusted = self.logs.get(checkpoint.origin)
        if trusted is None:
            raise Refused(404, f"unknown log {checkpoint.origin[:80]!r}")
        try:
            note.verify_note(checkpoint_note, trusted)
        except note.NoteError as exc:
            raise Refused(403, f"log signature: {exc}") from None
        if submission.old_size > checkpoint.size:
            raise Refused(400, f"old size {submission.old_size} is above the checkpoint's "
                               f"size {checkpoint.size}")
        if checkpoint.size == 0 and checkpoint.root != EMPTY_ROOT:
            raise Refused(422, "a checkpoint of size 0 must have the empty tree's root")
        # Made before the check, sent only if it passes: the stored note then carries it, as
        # the monitoring endpoint must serve it.
        cosignature = note.cosign(checkpoint_note.text, self.key.name, self.key.private_key,
                                  int(self.clock()))
        cosigned_note = submission.note_bytes + cosignature.line().encode("utf-8")
        try:
            self.state.compare_and_swap(
                checkpoint.origin, lambda latest: self._check(submission, checkpoint, latest),
                lambda _: Latest(checkpoint.size, checkpoint.root, cosigned_note))
        except Refused as refused:
            if refused.answer.status == 422:  # two histories signed by one log key
                self.state.keep_evidence(checkpoint.origin, submission.note_bytes,
                                         refused.answer.reason)
            raise
        return Answer(200, cosignature.line())

    @staticmethod
    def _check(submission: Submission, checkpoint: note.CheckpointBody, latest: Latest) -> None:
        if submission.old_size != latest.size:
            if checkpoint.size < latest.size:
                why = (f"rollback: checkpoint size {checkpoint.size} is below the size "
                       f"{latest.size} this witness cosigned")
            else:
                why = (f"old size {submission.old_size} is not the size {latest.size} this "
                       "witness last cosigned")
            raise Refused(409, why, size=latest.size)
        if submission.old_size == 0 and submission.proof:
            raise Refused(422, "a consistency proof from size 0 must be empty")
        if checkpoint.size == latest.size and checkpoint.root != latest.root:
            raise Refused(422, f"fork: size {latest.size} was cosigned with another root")
        try:
            verify_consistency(latest.size, checkpoint.size, latest.root, checkpoint.root,
                               submission.proof)
        except LedgerError as exc:
            raise Refused(422, f"fork: no consistency from the cosigned size {latest.size} to "
                               f"{checkpoint.size}: {exc}") from None
