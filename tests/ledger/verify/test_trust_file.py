"""The trust file parser (`ledger.verify.trust`): the plan's format read into frozen values,
everything else refused with the place it is wrong; and the pins for one log given as flags."""

from __future__ import annotations

import dataclasses

import pytest

from ledger.verify.trust import (
    ChainTrust,
    LogTrust,
    TrustError,
    WitnessKey,
    WitnessPolicy,
    parse_trust,
    trust_from_flags,
)

LOG_KEY = "ab" * 32
OTHER_KEY = "cd" * 32
WITNESS_KEY = "ef" * 32
CONTRACT = "0x" + "12" * 20
FULL = f"""
version = 1

[[log]]
agency = "north-fire"
public_keys = ["{LOG_KEY}", "{OTHER_KEY}"]

[log.chain]
chain_id = 31337
contract = "{CONTRACT}"
deployment_block = 12
required = true

[log.witnesses]
quorum = 1
[[log.witnesses.key]]
name = "witness.fire-inspectorate.example"
public_key = "{WITNESS_KEY}"

[[log]]
agency = "south-fire"
public_keys = ["{OTHER_KEY}"]
""".encode()


def test_the_plans_format_parses_into_frozen_values() -> None:
    trust = parse_trust(FULL)
    north = trust.for_agency("north-fire")
    assert north == LogTrust(
        "north-fire", (bytes.fromhex(LOG_KEY), bytes.fromhex(OTHER_KEY)),
        ChainTrust(31337, CONTRACT, 12, True),
        WitnessPolicy(1, (WitnessKey("witness.fire-inspectorate.example",
                                     bytes.fromhex(WITNESS_KEY)),)))
    south = trust.for_agency("south-fire")
    assert south is not None and south.chain is None and south.witnesses is None
    assert trust.for_agency("east-fire") is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        north.agency = "other"  # type: ignore[misc]


def test_required_defaults_to_true() -> None:
    text = FULL.replace(b"required = true\n", b"")
    north = parse_trust(text).for_agency("north-fire")
    assert north is not None and north.chain is not None and north.chain.required


@pytest.mark.parametrize(("old", "new", "phrase"), [
    (b'agency = "south-fire"', b'agency = "north-fire"', "an agency has two"),
    (b"quorum = 1", b"quorum = 2", "quorum: 2 exceeds the 1 keys"),
    (b"deployment_block = 12", b"deployment_block = -1", "deployment_block"),
    (b"chain_id = 31337", b'chain_id = "31337"', "chain_id"),
    (b'contract = "0x', b'contract = "0y', "contract"),
    (b"required = true", b'required = "yes"', "required"),
    (b'agency = "north-fire"', b'agency = "north fire"', "agency"),
    (b"[log.chain]", b"[log.chains]", "unknown key 'chains'"),
    (b"version = 1", b"version = 1\nextra = 2", "unknown key 'extra'"),
    (f'public_keys = ["{OTHER_KEY}"]'.encode(), b"public_keys = []", "1..64 keys"),
])
def test_anything_else_is_refused_with_its_place(old: bytes, new: bytes, phrase: str) -> None:
    assert FULL.count(old) >= 1
    with pytest.raises(TrustError) as refused:
        parse_trust(FULL.replace(old, new, 1))
    assert phrase in str(refused.value)


def test_flags_pin_one_log() -> None:
    trust = trust_from_flags(None, [LOG_KEY], 31337, CONTRACT, 12)
    (log,) = trust.logs
    assert log.public_keys == (bytes.fromhex(LOG_KEY),)
    assert log.chain == ChainTrust(31337, CONTRACT, 12, True)
    assert trust_from_flags(None, [LOG_KEY], None, None, None).logs[0].chain is None
    for keys, chain_id, contract in (([], 1, CONTRACT), ([LOG_KEY], None, CONTRACT),
                                     ([LOG_KEY], 1, None), (["zz"], None, None)):
        with pytest.raises(TrustError):
            trust_from_flags(None, keys, chain_id, contract, None)
