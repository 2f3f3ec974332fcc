"""Signing on the second core: a child process turns slices of observations into envelope bytes
while the agent's loop commits the previous slice to the outbox and publishes it.

Why a process. One observation costs about 130 µs to sign (Ed25519 plus building its record and
canonical bytes) and about 110 µs to commit and publish; in one process the GIL serialises the
two, so a burst goes at about 4,000 observations/s. With signing in a child, the two halves
overlap on the machine's two cores.

What stays in the agent. Only the child signs; the parent still appends every slice to the
outbox (one fsynced transaction) before any of it is published, so durability and kill -9
behaviour are unchanged. Sequence numbers: the first slice of a burst carries the outbox's
`next_seq`; later slices continue from the child's own count, which is exactly what the parent
would compute (invalid observations get no number), and `Outbox.append` still refuses any gap.

Start-up and failure. The child is forked from the constructed `ObservationSigner` (the key
never crosses a pipe), before the agent opens its outbox or starts any thread, so it inherits
no lock, socket or database in use. It exits when the parent's end of the pipe closes, so a
killed agent leaves no signer behind. If the child dies, the slices it had not returned are
signed in the agent's own process from then on (logged once): slower, never lost.
"""

from __future__ import annotations

import collections
import logging
import multiprocessing
import signal
from collections.abc import Generator, Sequence
from multiprocessing.connection import Connection
from typing import Final

from reader_agent.pipeline import PipelineObservation
from reader_agent.signer import ObservationSigner

MAX_SLICES_AHEAD: Final = 3
"""Slices sent to the child before the first comes back: enough to keep it busy while the loop
commits and publishes one slice, while the pipe holds at most ~0.5 MB of pending work."""

log = logging.getLogger("reader_agent.signing_worker")

Rows = list[tuple[int, bytes]]


def _serve(signer: ObservationSigner, conn: Connection, parent_end: Connection) -> None:
    """The child: sign what arrives until the parent's end closes."""
    # Ctrl-C reaches the whole process group; the parent stops cleanly and closes the pipe,
    # which ends this loop. Left to Python, the child would die printing a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent_end.close()  # else the child keeps its own EOF from ever arriving
    next_seq = 0
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        first_seq, items = request
        seq = next_seq if first_seq is None else first_seq
        before = signer.invalid
        rows = signer.sign(items, seq)
        next_seq = seq + len(rows)
        conn.send((rows, signer.invalid - before))


class SigningWorker:
    """Signs as `signer` does, in a child process; `signer` also counts the child's refusals."""

    def __init__(self, signer: ObservationSigner) -> None:
        self.signer = signer
        parent_end, child_end = multiprocessing.get_context("fork").Pipe()
        self._process = multiprocessing.get_context("fork").Process(
            target=_serve, args=(signer, child_end, parent_end), name="reader-agent-signer",
            daemon=True)
        self._process.start()
        child_end.close()
        self._conn: Connection | None = parent_end

    @property
    def alive(self) -> bool:
        return self._conn is not None

    def _lost(self, exc: BaseException) -> None:
        log.error("signing process lost (%s); signing in the agent process from now on",
                  type(exc).__name__)
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def sign_slices(self, items: Sequence[PipelineObservation], first_seq: int,
                    slice_size: int) -> Generator[Rows, None, None]:
        """Signed rows of `items`, `slice_size` observations at a time, numbered from
        `first_seq` without gaps. The caller commits each slice before taking the next; it may
        stop early (the rest is then discarded, unnumbered)."""
        slices = [items[i:i + slice_size] for i in range(0, len(items), slice_size)]
        if len(slices) <= 1 or self._conn is None:  # nothing to overlap: no round trip
            seq = first_seq
            for part in slices:
                rows = self.signer.sign(part, seq)
                seq += len(rows)
                yield rows
            return
        sent: collections.deque[Sequence[PipelineObservation]] = collections.deque()
        following = 0  # next slice to send
        seq = first_seq  # the number the next yielded row will carry
        try:
            while sent or following < len(slices):
                while self._conn is not None and following < len(slices) \
                        and len(sent) < MAX_SLICES_AHEAD:
                    try:
                        self._conn.send((first_seq if following == 0 else None,
                                         slices[following]))
                    except OSError as exc:
                        self._lost(exc)
                        break
                    sent.append(slices[following])
                    following += 1
                if self._conn is None:  # sign in-process whatever the child did not return
                    for part in [*sent, *slices[following:]]:
                        rows = self.signer.sign(part, seq)
                        seq += len(rows)
                        yield rows
                    sent.clear()
                    following = len(slices)
                    return
                try:
                    rows, invalid = self._conn.recv()
                except (EOFError, OSError) as exc:
                    self._lost(exc)
                    continue
                sent.popleft()
                self.signer.invalid += invalid
                seq += len(rows)
                yield rows
        finally:
            self._drain(len(sent))

    def _drain(self, outstanding: int) -> None:
        """Read replies the caller will never take, so the next burst starts in step."""
        for _ in range(outstanding):
            if self._conn is None:
                return
            try:
                _rows, invalid = self._conn.recv()
            except (EOFError, OSError) as exc:
                self._lost(exc)
                return
            self.signer.invalid += invalid

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._process.join(timeout=2.0)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(timeout=2.0)
