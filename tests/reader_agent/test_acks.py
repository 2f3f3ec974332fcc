"""The API's end-to-end acks at the agent: the parser's bounds, and what an ack may release."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from reader_agent.acks import MAX_ACK_BYTES, MAX_MISSING_RANGES, Ack, AckError, parse_ack
from reader_agent.config import MqttSettings
from reader_agent.delivery import Delivery
from reader_agent.outbox import Outbox

from ledger.core.envelope import Envelope, verify_envelope
from ledger.core.lost import LostRange
from ledger.core.packing import unpack
from tests.reader_agent.test_outbox import signed_rows


def ack(**fields: Any) -> bytes:
    return json.dumps({"v": 1, **fields}).encode()


def test_a_good_ack_parses() -> None:
    assert parse_ack(ack(through=9, missing=[[11, 12], [15, 15]]), 20) == Ack(
        9, ((11, 12), (15, 15)))
    assert parse_ack(ack(through=-1), 1) == Ack(-1)
    # Reserved for the API's signature (issue 18): accepted, not yet checked.
    assert parse_ack(ack(through=3, kid="k", sig="s"), 5) == Ack(3)


@pytest.mark.parametrize("payload", [
    b"", b"{", b"\xff\xfe", b"[]", b"null", b'"through"', b"[" * 5000,
    ack(through="9"), ack(through=True), ack(through=1.5), ack(through=-2), ack(through=2 ** 80),
    json.dumps({"through": 3}).encode(),  # no version
    ack(through=3, v=2), ack(through=3, extra=1),
    ack(through=3, missing="4-5"), ack(through=3, missing=[[5]]), ack(through=3, missing=[[6, 5]]),
    ack(through=3, missing=[[3, 4]]),  # at or below `through`: contradicts itself
    ack(through=3, missing=[[4, 5, 6]]), ack(through=3, missing=[{"first": 4}]),
    ack(through=3, missing=[[4, 4]] * (MAX_MISSING_RANGES + 1)),
    b" " * (MAX_ACK_BYTES + 1),
])
def test_malformed_or_oversized_acks_are_refused(payload: bytes) -> None:
    with pytest.raises(AckError):
        parse_ack(payload, 100)


@pytest.mark.parametrize("payload", [ack(through=100), ack(through=10 ** 6),
                                     ack(through=3, missing=[[50, 100]])])
def test_an_ack_for_numbers_never_handed_out_is_refused(payload: bytes) -> None:
    with pytest.raises(AckError, match=r"beyond|outside"):
        parse_ack(payload, 100)


class FakePublisher:
    """The publisher's surface `Delivery` uses, recording what it is given: a stand-in so the
    release rules can be driven ack by ack (the real client runs in test_mqtt and the
    end-to-end tests)."""

    def __init__(self) -> None:
        self.connected = True
        self.connections = 1
        self.window_free = 1000
        self.acks: list[bytes] = []
        self.published: list[int] = []
        self.envelopes: list[bytes] = []

    def take_acknowledged(self) -> int:
        return 0

    def take_acks(self) -> list[bytes]:
        taken, self.acks = self.acks, []
        return taken

    def publish_rows(self, rows: list[tuple[int, bytes]]) -> int:
        self.published += [seq for seq, _ in rows]
        return len(rows)

    def publish_envelope(self, envelope: bytes) -> bool:
        self.envelopes.append(envelope)
        return True


KEY = Ed25519PrivateKey.generate()


def delivery(tmp_path: Path, rows: int = 10, **settings: Any) -> tuple[Delivery, FakePublisher]:
    box = Outbox(tmp_path / "o.db", max_rows=10_000)
    box.append(signed_rows(0, rows))
    publisher = FakePublisher()
    made = Delivery(box, publisher, MqttSettings(**settings), "desk-1", KEY)  # type: ignore[arg-type]
    return made, publisher


def test_rows_stay_until_the_api_acks_them_and_only_up_to_through(tmp_path: Path) -> None:
    sent, publisher = delivery(tmp_path)
    sent.step(0.0)
    assert publisher.published == list(range(10)) and sent.outbox.depth == 10
    publisher.acks.append(ack(through=3, missing=[[5, 5]]))  # 4 stored, 5 missing: 0-3 go
    sent.step(0.1)
    assert sent.outbox.depth == 6 and sent.acked_through == 3
    publisher.acks.append(ack(through=1))  # an old ack (a replay, a slower node): no change
    sent.step(0.2)
    assert sent.outbox.depth == 6 and sent.acked_through == 3
    assert publisher.published[10:] == [5]  # the missing one, sent again at once


def test_hostile_acks_release_nothing_and_are_counted(tmp_path: Path) -> None:
    sent, publisher = delivery(tmp_path)
    sent.step(0.0)
    publisher.acks += [ack(through=10), ack(through=999), b"garbage", ack(through="9")]
    sent.step(0.1)
    assert sent.outbox.depth == 10 and sent.acks_rejected == 4


def test_no_progress_resends_from_through_with_backoff_and_progress_resets_it(
        tmp_path: Path) -> None:
    sent, publisher = delivery(tmp_path, ack_timeout_s=5.0, ack_timeout_max_s=12.0)
    sent.step(0.0)
    publisher.acks.append(ack(through=2))
    sent.step(1.0)
    publisher.published.clear()
    sent.step(5.9)
    assert publisher.published == []  # not yet: 5 s from the last progress
    sent.step(6.1)
    assert publisher.published == list(range(3, 10)) and sent.resends == 1
    publisher.published.clear()
    sent.step(6.1 + 9.9)
    assert publisher.published == []  # the timeout doubled to 10 s
    sent.step(6.1 + 10.1)
    assert publisher.published == list(range(3, 10))
    publisher.published.clear()
    sent.step(16.3 + 12.1)  # capped at 12 s
    assert publisher.published == list(range(3, 10))
    publisher.acks.append(ack(through=5))
    sent.step(30.0)
    assert sent.timeout_s == 5.0  # progress: back to the first timeout


def test_every_reconnection_resends_what_is_not_acknowledged(tmp_path: Path) -> None:
    sent, publisher = delivery(tmp_path)
    sent.step(0.0)
    publisher.acks.append(ack(through=6))
    sent.step(0.1)
    publisher.published.clear()
    publisher.connections += 1
    sent.step(0.2)
    assert publisher.published == [7, 8, 9]


def test_the_unacked_window_bounds_what_is_out_beside_the_puback_window(tmp_path: Path) -> None:
    sent, publisher = delivery(tmp_path, rows=100, unacked_max=30)
    sent.step(0.0)
    assert publisher.published == list(range(30)) and sent.unacked == 30
    sent.step(0.1)
    assert len(publisher.published) == 30  # nothing more until the API acks
    publisher.acks.append(ack(through=9))
    sent.step(0.2)
    assert publisher.published[30:] == list(range(30, 40))


def test_numbers_no_longer_held_are_reported_lost_signed(tmp_path: Path) -> None:
    sent, publisher = delivery(tmp_path)
    sent.step(0.0)
    publisher.acks.append(ack(through=2))
    sent.step(0.1)
    sent.outbox._quarantine(5, b"corrupt", "test")  # as a corrupt row found at replay would
    publisher.acks.append(ack(through=2, missing=[[4, 6]]))
    publisher.published.clear()
    sent.step(0.2)
    assert publisher.published == [4, 6]
    [envelope] = publisher.envelopes
    record = verify_envelope(Envelope.from_bytes(unpack(envelope, 1)[0]), KEY.public_key())
    lost = LostRange.from_record(record)
    assert (lost.device, lost.first, lost.last, lost.reason) == ("desk-1", 5, 5,
                                                                 "outbox quarantine")
    assert sent.lost_reported == 1
