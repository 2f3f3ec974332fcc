"""Turns pipeline observations into signed envelope bytes with this device's sequence numbers.

The wall-clock time of an observation is derived from its monotonic time and one wall/monotonic
offset taken per batch, so the pipeline's timing never jumps with NTP while records still carry
real UTC times. An observation the record format would refuse (say an RSSI outside -128..127
from a confused reader) is counted as `invalid` and given no sequence number: numbers stay
contiguous.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.core.envelope import sign_envelope
from ledger.core.errors import LedgerError
from ledger.core.records import Observation, format_time
from reader_agent.epc import EpcError, epc_to_uri
from reader_agent.pipeline import PipelineObservation

log = logging.getLogger("reader_agent.signer")


class ObservationSigner:
    """Signs observations as `device` with `key`."""

    def __init__(self, device: str, key: Ed25519PrivateKey,
                 wall_offset: Callable[[], float] | None = None) -> None:
        self.device = device
        self._key = key
        self._wall_offset = wall_offset or (lambda: time.time() - time.monotonic())
        self.invalid = 0

    def sign(self, observations: Sequence[PipelineObservation],
             first_seq: int) -> list[tuple[int, bytes]]:
        """Envelopes numbered from `first_seq`, without gaps, in order."""
        offset = self._wall_offset()
        rows: list[tuple[int, bytes]] = []
        seq = first_seq
        for item in observations:
            try:
                moment = datetime.fromtimestamp(item.monotonic + offset, UTC)
                record = Observation(
                    device=self.device, seq=seq, time=format_time(moment), kind=item.kind,
                    epc=item.epc.hex().upper(), antenna=item.antenna, rssi=item.rssi,
                    zone=item.zone, session=item.session, uri=epc_to_uri(item.epc),
                    direction=item.direction,
                ).to_record()
                envelope = sign_envelope(record, self._key).to_bytes()
            except (LedgerError, EpcError, ValueError, OverflowError) as exc:
                self.invalid += 1
                log.warning("observation not signed: %s", type(exc).__name__)
                continue
            rows.append((seq, envelope))
            seq += 1
        return rows
