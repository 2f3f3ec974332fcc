"""Every decisions and acks message leaves signed with the reader's agency's answers key.

The signing sits at the one place both kinds of answer leave the worker: the client that
`DecisionPublisher` publishes through (`SigningSink`), so no answer can go out unsigned and the
publishing logic (packing, re-sending, marking) is unchanged. A row re-sent after a crash is
signed again as it goes. The agency is the topic's (`kitledger/v1/{agency}/...`, built from
the registered reader); its key is read once per agency and kept (`api.agency_keys`).
"""

from __future__ import annotations

import threading
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from api.agency_keys import answers_key
from api.ingest.publishing import DecisionSink, PublishReceipt
from api.ingest.topics import PREFIX
from ledger.core.answers import sign_answer


class AnswerSigner:
    """Signs an answer for its topic with the topic's agency's answers key."""

    def __init__(self, key_dir: Path) -> None:
        self._key_dir = key_dir
        self._keys: dict[str, Ed25519PrivateKey] = {}
        self._lock = threading.Lock()  # the ingest thread and the settler both publish

    def key(self, agency_id: str) -> Ed25519PrivateKey:
        with self._lock:
            key = self._keys.get(agency_id)
            if key is None:
                key = self._keys[agency_id] = answers_key(self._key_dir, agency_id)
            return key

    def sign(self, topic: str, body: bytes) -> bytes:
        prefix, _, rest = topic.partition(f"{PREFIX}/")
        agency_id = rest.split("/", 1)[0]
        if prefix or not agency_id:
            raise ValueError(f"not a reader's topic: {topic[:80]!r}")
        return sign_answer(self.key(agency_id), topic, body)


class SigningSink:
    """An MQTT client's `publish` that signs each payload first."""

    def __init__(self, client: DecisionSink, signer: AnswerSigner) -> None:
        self._client = client
        self._signer = signer

    def publish(self, topic: str, payload: bytes, qos: int) -> PublishReceipt:
        return self._client.publish(topic, self._signer.sign(topic, payload), qos)
