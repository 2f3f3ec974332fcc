"""Regenerate tests/vectors/core_*.json from ledger.core (run by hand, review the diff).

The signing key is RFC 8032's test key 1 (a published test vector, not a secret): Ed25519 is
deterministic, so signatures are known answers too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.core import commitments, hashing
from ledger.core.encoding import canonical_bytes
from ledger.core.envelope import key_id, raw_public_key, sign_envelope
from ledger.core.records import (
    ASSET_RETIRED,
    EVENT_CORRECTED,
    GENESIS_PREV,
    PERSON_RETIRED,
    CustodyEvent,
    Holder,
    Observation,
    RegistryChains,
    event_hash,
    registry_hash,
)

HERE = Path(__file__).parent
RFC8032_SEED = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"


def observation() -> Observation:
    return Observation(
        device="met-issue-desk-1", seq=41, time="2026-11-28T09:15:02.125Z", kind="arrive",
        epc="3034257BF7194E4000001A85", antenna=2, rssi=-58, zone="desk",
        session="met-issue-desk-1:s17", uri="urn:epc:id:sgtin:0614141.812345.6789",
    )


def build() -> dict[str, Any]:
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(RFC8032_SEED))
    obs = observation()
    env = sign_envelope(obs.to_record(), key)
    salt = bytes(range(16))
    person = commitments.commit(commitments.PERSON, "met/officer/4471", salt)
    first = CustodyEvent(
        agency="met", asset="urn:epc:id:sgtin:0614141.812345.6789", seq=0, prev=GENESIS_PREV,
        action="register", time="2026-11-28T08:00:00.000Z", holder_from=None,
        holder_to=Holder("location", "met/store/central"),
    )
    second = CustodyEvent(
        agency="met", asset=first.asset, seq=1, prev=event_hash(first).hex(),
        action="check_out", time="2026-11-28T09:15:02.500Z",
        holder_from=Holder("location", "met/store/central"), holder_to=Holder("person", person),
        observations=(hashing.domain_hash(hashing.ENVELOPE, env.to_bytes()).hex(),),
        authorised_by=(person,), reader="met-issue-desk-1",
    )
    manual = CustodyEvent(
        agency="met", asset=first.asset, seq=2, prev=event_hash(second).hex(),
        action="check_in", time="2026-11-28T17:40:00.000Z",
        holder_from=Holder("person", person), holder_to=Holder("location", "met/store/central"),
        authorised_by=(person,), reader="met-return-desk-1",
        manual="tag unreadable: label torn",
    )
    chains = RegistryChains("met")
    correction = chains.append(EVENT_CORRECTED, "2026-11-29T08:00:00.000Z", asset=first.asset,
                               event=event_hash(second).hex(), leaf=1,
                               reason="checked out at the wrong desk")
    retired = chains.append(ASSET_RETIRED, "2026-11-30T08:00:00.000Z", asset=first.asset,
                            reason="written off: water damage")
    person_retired = chains.append(PERSON_RETIRED, "2026-11-30T09:00:00.000Z", person=person,
                                   reason="left the force")
    property_room = [correction, retired, person_retired]
    return {
        "property_room": {
            "manual_event": manual.to_record(), "manual_hash": event_hash(manual).hex(),
            "records": [r.to_record() for r in property_room],
            "hashes": [registry_hash(r.to_bytes()).hex() for r in property_room],
        },
        "canonical": [
            {"name": "key order and unicode", "input": {"b": 1, "a": ["é", None, True]},
             "canonical": canonical_bytes({"b": 1, "a": ["é", None, True]}).decode()},
            {"name": "nested and escapes", "input": {"z": {"y": "line\nbreak\u0001"}, "x": -7},
             "canonical": canonical_bytes({"z": {"y": "line\nbreak\u0001"}, "x": -7}).decode()},
        ],
        "domain_hash": [
            {"domain": d, "data_hex": "", "hash": hashing.domain_hash(d, b"").hex()}
            for d in (hashing.OBSERVATION, hashing.CUSTODY_EVENT, hashing.COMMITMENT)
        ],
        "envelope": {
            "seed_hex": RFC8032_SEED,
            "public_key_hex": raw_public_key(key.public_key()).hex(),
            "kid": key_id(key.public_key()),
            "observation": obs.to_record(),
            "wire": env.to_bytes().decode(),
        },
        "commitment": {"purpose": commitments.PERSON, "value": "met/officer/4471",
                       "salt_hex": salt.hex(), "commitment": person},
        "chain": {
            "events": [first.to_record(), second.to_record()],
            "hashes": [event_hash(first).hex(), event_hash(second).hex()],
        },
    }


def main() -> None:
    text = json.dumps(build(), indent=2, ensure_ascii=False)
    (HERE / "core_records.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
