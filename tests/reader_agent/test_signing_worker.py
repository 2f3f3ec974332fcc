"""The signing process signs exactly what the agent's own signer would: the same bytes, the same
contiguous sequence numbers past invalid observations, slice by slice; a caller that stops
early leaves it in step for the next burst; a killed child costs speed, never observations."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from reader_agent.pipeline import PipelineObservation
from reader_agent.signer import ObservationSigner
from reader_agent.signing_worker import MAX_SLICES_AHEAD, SigningWorker

from ledger.core.envelope import Envelope, verify_envelope

KEY = Ed25519PrivateKey.generate()


def observation(n: int, rssi: int = -40) -> PipelineObservation:
    return PipelineObservation("arrive", bytes.fromhex("3034") + n.to_bytes(10, "big"), 1, rssi,
                               "desk", 5.0 + n)


def burst(count: int, invalid_every: int = 0) -> list[PipelineObservation]:
    # RSSI -200 is outside the record format: such observations get no sequence number.
    return [observation(n, -200 if invalid_every and n % invalid_every == 0 else -40)
            for n in range(count)]


def fixed_signer() -> ObservationSigner:
    # A fixed wall offset: both processes then build byte-identical records (Ed25519 is
    # deterministic), so the comparison below is exact.
    return ObservationSigner("desk-1", KEY, wall_offset=lambda: 1.7e9)


@pytest.fixture
def worker() -> Iterator[SigningWorker]:
    signing = SigningWorker(fixed_signer())
    yield signing
    signing.close()


def test_slices_equal_in_process_signing_and_stay_contiguous(worker: SigningWorker) -> None:
    items = burst(1000, invalid_every=7)
    slices = list(worker.sign_slices(items, 40, 64))
    assert worker.alive
    assert [len(s) for s in slices][:2] == [64 - 10, 64 - 9]  # 10 and 9 refused in the first two
    rows = [row for part in slices for row in part]
    assert rows == fixed_signer().sign(items, 40)
    assert [seq for seq, _ in rows] == list(range(40, 40 + len(rows)))
    assert worker.signer.invalid == len(items) - len(rows)
    for seq, data in rows[:: 97]:
        assert verify_envelope(Envelope.from_bytes(data), KEY.public_key())["seq"] == seq


def test_a_caller_that_stops_early_leaves_the_next_burst_in_step(worker: SigningWorker) -> None:
    signed = worker.sign_slices(burst(64 * (MAX_SLICES_AHEAD + 3)), 0, 64)
    first = next(signed)
    signed.close()  # e.g. the outbox refused the slice: the rest is discarded, unnumbered
    assert [seq for seq, _ in first] == list(range(64))
    again = [row for part in worker.sign_slices(burst(300), 64, 64) for row in part]
    assert [seq for seq, _ in again] == list(range(64, 364))
    assert again == fixed_signer().sign(burst(300), 64)


def test_a_killed_signing_process_costs_speed_not_observations(worker: SigningWorker) -> None:
    items = burst(640, invalid_every=11)
    signed = worker.sign_slices(items, 0, 64)
    rows = list(next(signed))
    os.kill(worker._process.pid or 0, signal.SIGKILL)
    worker._process.join(5)
    rows += [row for part in signed for row in part]
    assert not worker.alive
    assert rows == fixed_signer().sign(items, 0)
    # Later bursts are signed in the agent's process, still numbered on.
    later = [row for part in worker.sign_slices(burst(200), len(rows), 64) for row in part]
    assert later[0][0] == len(rows) and later == fixed_signer().sign(burst(200), len(rows))


def test_the_child_exits_when_the_agent_end_closes() -> None:
    signing = SigningWorker(fixed_signer())
    process = signing._process
    signing.close()
    assert not process.is_alive()
    assert process.exitcode == 0
