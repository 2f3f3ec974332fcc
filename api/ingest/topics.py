"""The MQTT topic scheme shared with the reader agent.

    kitledger/v1/{agency}/{site}/{reader}/events      observations, signed by the reader
    kitledger/v1/{agency}/{site}/{reader}/decisions   our answers, JSON
    kitledger/v1/{agency}/{site}/{reader}/acks        how far its numbers are stored, JSON
                                                      (`api.ingest.acks`)
    kitledger/v1/{agency}/{site}/{reader}/status      "online"/"offline", retained (Last Will)
    kitledger/v1/{agency}/{site}/{reader}/health      the agent's health, JSON, unsigned
                                                      (`api.ingest.health`)

A topic names who claims to be speaking; the signature says who is. Ingest refuses a message
whose topic names a different agency, site or reader than the key that signed it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from ledger.core.bounds import MAX_ID_CHARS

PREFIX: Final = "kitledger/v1"
EVENTS: Final = "events"
DECISIONS: Final = "decisions"
ACKS: Final = "acks"
STATUS: Final = "status"
HEALTH: Final = "health"

MAX_TOPIC_SEGMENT_CHARS: Final = MAX_ID_CHARS
"""Agency, site and reader ids are registry ids, bounded as the record format bounds them."""

TOPIC_CACHE_SIZE: Final = 4096
"""Events topics whose parse is remembered: one per reader, so more than a broker partition's
readers, and bounded, so topics made up by a hostile publisher only cost their own parse."""


@dataclass(frozen=True, slots=True)
class ReaderTopic:
    """The (agency, site, reader) a topic is addressed to."""

    agency: str
    site: str
    reader: str

    def topic(self, leaf: str) -> str:
        return f"{PREFIX}/{self.agency}/{self.site}/{self.reader}/{leaf}"


def events_subscription(share_group: str | None) -> str:
    """The events filter; with a share group, brokers split messages among its members."""
    wildcard = f"{PREFIX}/+/+/+/{EVENTS}"
    return f"$share/{share_group}/{wildcard}" if share_group else wildcard


MAX_EVENTS_TOPIC_CHARS: Final = (
    len(ReaderTopic("", "", "").topic(EVENTS)) + 3 * MAX_TOPIC_SEGMENT_CHARS)
"""The longest events topic; a longer one is refused before it is split (or remembered)."""


def parse_events_topic(topic: str) -> ReaderTopic | None:
    """The address of an events topic, or None if `topic` is not one."""
    if len(topic) > MAX_EVENTS_TOPIC_CHARS:
        return None
    return _parse_events_topic(topic)


@lru_cache(maxsize=TOPIC_CACHE_SIZE)
def _parse_events_topic(topic: str) -> ReaderTopic | None:
    """`parse_events_topic`, remembered: ingest asks for every envelope, and a reader's
    envelopes share its topic."""
    parsed = _split(topic, _EVENTS_LEAF)
    return None if parsed is None else parsed[0]


_EVENTS_LEAF: Final = frozenset({EVENTS})


def health_subscriptions(share_group: str | None) -> list[str]:
    """The health and status filters. Health is split among a share group's members; status
    is not shared, so that every listener gets each reader's retained status when it
    subscribes (brokers send no retained messages to a shared subscription)."""
    health = f"{PREFIX}/+/+/+/{HEALTH}"
    return [f"$share/{share_group}-health/{health}" if share_group else health,
            f"{PREFIX}/+/+/+/{STATUS}"]


def parse_reader_topic(topic: str, leaves: frozenset[str]) -> tuple[ReaderTopic, str] | None:
    """The address and leaf of a topic ending in one of `leaves`, or None (not remembered:
    for the few messages a reader sends about itself)."""
    if len(topic) > MAX_EVENTS_TOPIC_CHARS:
        return None
    return _split(topic, leaves)


def _split(topic: str, leaves: frozenset[str]) -> tuple[ReaderTopic, str] | None:
    parts = topic.split("/")
    if len(parts) != 6 or "/".join(parts[:2]) != PREFIX or parts[5] not in leaves:
        return None
    agency, site, reader = parts[2:5]
    for segment in (agency, site, reader):
        if not segment or len(segment) > MAX_TOPIC_SEGMENT_CHARS or "+" in segment:
            return None
    return ReaderTopic(agency=agency, site=site, reader=reader), parts[5]
