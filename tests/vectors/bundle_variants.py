"""The tampered variants of the corpus bundle, each with the verdict a verifier must reach.

Each `Variant` says how its file is made from the story (`bundle_story.fortnight`) and its valid
bundle, and what `kitledger verify --trust trust.toml --offline` (or, for a variant that is
not `pinned`, without the trust file) must answer: the exit code, the checks that fail
with a phrase of each one's first failing item, and the custody events (leaf indices) named as
failed. The expectations are written from what each tampering breaks, not read back from the
verifier: the corpus test holds the verifier to them. Event, observation and checkpoint numbers
refer to the story's table in tests/vectors/bundles/README.md.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bundle_story import (
    CAMERA,
    CASE,
    LEAF,
    RADIO,
    SIZES,
    TASER,
    Forgery,
    History,
    fortnight,
)
from bundle_witnesses import WITNESS_EDITS
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tampering import Sections, edit_json, flip_hex_digit, sealed

from ledger.core.bundle import (
    AnchorProof,
    BundleCheckpoint,
    ChainInfo,
    DeviceRegistration,
    Scope,
)
from ledger.core.checkpoint import Checkpoint, chain_log_id, sign_checkpoint
from ledger.core.encoding import MAX_RECORD_BYTES, canonical_bytes
from ledger.core.envelope import Envelope, key_id, raw_public_key, sign_envelope
from ledger.verify.anchors import ANCHORED_TOPIC


@dataclass(frozen=True)
class Variant:
    """One file of the corpus: how it is made from the story and what the verifier must say."""

    name: str
    what: str
    make: Callable[[History, bytes], bytes]
    exit: int
    failing: dict[str, str] = field(default_factory=dict)
    failed_events: tuple[int, ...] = ()
    unusable: str | None = None
    pinned: bool = True
    """Verified with the corpus's trust file (else without: UNPINNED at best)."""


def _swap_events(a: int, b: int) -> Callable[[Sections], None]:
    def edit(s: Sections) -> None:
        s.events[a], s.events[b] = s.events[b], s.events[a]
    return edit


def _proof_leaf(event: int, delta: int) -> Callable[[Sections], None]:
    def edit(s: Sections) -> None:
        record, proof = s.events[event]
        s.events[event] = (record, edit_json(proof, lambda r: r.update(leaf=r["leaf"] + delta)))
    return edit


def _remove_event(s: Sections) -> None:
    del s.events[6]  # the taser's transfer: its check-in now follows its check-out


def _duplicate_event(s: Sections) -> None:
    s.events.insert(5, s.events[4])


def _reverse_consistency_path(s: Sections) -> None:
    s.consistency[0] = edit_json(s.consistency[0], lambda r: r["path"].reverse())


def _weaken_observation(s: Sections) -> None:
    s.observations[0] = edit_json(s.observations[0], lambda r: r["payload"].update(rssi=-20))


def _duplicate_observation(s: Sections) -> None:
    s.observations.insert(0, s.observations[0])


def _unprintable_agency(s: Sections) -> None:
    s.header = edit_json(s.header, lambda r: r["chain"].update(agency="met-p\x7flice"))


def _flip_event_bit(s: Sections) -> None:
    record, proof = s.events[3]  # the camera's check-out: one bit of the holder's reference
    s.events[3] = (flip_hex_digit(record, record.index(b'"to":{"kind":"person","ref":"') + 29),
                   proof)


def _insert_forged_event(s: Sections) -> None:
    record, proof = s.events[4]  # the taser's check-out, copied as a disposal at the next leaf
    s.events.insert(5, (edit_json(record, lambda r: r.update(action="dispose")),
                        edit_json(proof, lambda r: r.update(leaf=r["leaf"] + 1))))


def _flip_observation_signature(s: Sections) -> None:
    envelope = Envelope.from_bytes(s.observations[6])  # the sergeant's dual sign-off badge read
    flipped = bytes([envelope.sig[0] ^ 0x01]) + envelope.sig[1:]
    s.observations[6] = dataclasses.replace(envelope, sig=flipped).to_bytes()


def _double_checkpoint_size(history: History, resign: bool) -> Callable[[Sections], None]:
    def edit(s: Sections) -> None:
        def double(record: dict[str, Any]) -> None:
            payload = record["envelope"]["payload"]
            payload["size"] *= 2
            if resign:
                point = Checkpoint.from_record(payload)
                record["envelope"] = sign_checkpoint(point, history.log_key).to_record()
        s.checkpoints[3] = edit_json(s.checkpoints[3], double)
    return edit


def _sign_checkpoint_with_another_key(s: Sections) -> None:
    impostor = Ed25519PrivateKey.generate()

    def resign(record: dict[str, Any]) -> None:
        real = Envelope.from_record(record["envelope"])
        forged = sign_envelope(real.payload, impostor)
        record["envelope"] = dataclasses.replace(real, sig=forged.sig).to_record()
    s.checkpoints[1] = edit_json(s.checkpoints[1], resign)


NO_DEVICE_LINES = "expected no device line for a reader of agency 'met-police'"
STRUCK_RADIO = f"registry records of asset {RADIO!r}, which the scope does not list"
"""The radio struck from a scope whose bundle still holds its tag and share records."""
OTHER_EPC = "30340242201D8C40000000FF"
"""A tag the camera's reads name in `observation-other-epc`: not the one the log registered."""


def _swap_registered_key(s: Sections) -> None:
    impostor = raw_public_key(Ed25519PrivateKey.generate().public_key())
    record, proof = s.registry[1]  # issue-desk-1's registration
    s.registry[1] = (edit_json(record, lambda r: r.update(public_key=impostor.hex())), proof)


def _back_to_v2(history: History) -> Callable[[Sections], None]:
    devices = [canonical_bytes(d.to_record()) for d in history.devices]

    def edit(s: Sections) -> None:
        s.registry = []
        s.heads = [line for line in s.heads if "subject" not in json.loads(line)]
        s.devices = devices
        s.header = edit_json(s.header, lambda r: (r.update(v=2), r["counts"].pop("registry")))
    return edit


def _drop_correction(s: Sections) -> None:
    s.registry = [(r, p) for r, p in s.registry if json.loads(r)["type"] != "event-corrected"]


def _edit_corrected_event(s: Sections) -> None:
    """The camera's check_in, which the property room's correction names, edited to say what
    the correction says it should have (return-desk-north) instead of being corrected."""
    record, proof = s.events[7]
    s.events[7] = (edit_json(record, lambda r: r.update(reader="return-desk-north")), proof)


def _drop_revocation(s: Sections) -> None:
    s.registry = [(r, p) for r, p in s.registry if json.loads(r)["type"] != "reader-revoked"]


def _forged(forgery: Forgery, edit: Callable[[Sections], None] | None = None
            ) -> Callable[[History, bytes], bytes]:
    """A history the operator logged, signed and anchored with its own log key (judged
    without the corpus's trust file), as exported, then `edit`ed and re-sealed if given."""
    def make(_history: History, _valid: bytes) -> bytes:
        data = _story(forgery).bundle()
        return data if edit is None else sealed(data, edit)
    return make


@functools.cache
def _story(forgery: Forgery) -> History:
    return fortnight(forgery=forgery)


def _impostor_desk(history: History, resign: bool) -> bytes:
    impostor = Ed25519PrivateKey.generate()
    real = history.devices[0]
    fake = DeviceRegistration(real.reader, real.agency, key_id(impostor.public_key()),
                              raw_public_key(impostor.public_key()), real.registered)
    observations = history.observations
    if resign:
        observations = [sign_envelope(e.payload, impostor) if e.kid == real.kid else e
                        for e in observations]
    return history.bundle(devices=[fake, *history.devices[1:]], observations=observations)


def _desk_with_other_desks_key(history: History) -> bytes:
    real, other, *rest = history.devices
    swapped = DeviceRegistration(real.reader, real.agency, real.kid, other.public_key,
                                 real.registered)
    return history.bundle(devices=[swapped, other, *rest])


def _desk_revoked(history: History) -> bytes:
    real = history.devices[0]
    revoked = dataclasses.replace(real, revoked="2026-01-03T00:00:00.000Z")
    return history.bundle(devices=[revoked, *history.devices[1:]])


FORGED_CONTRACT = "0x" + "f0" * 20
"""A CustodyAnchor the forger deployed: its receipts are fabricated, as offline no one can tell."""


def _fabricated_receipt(point: Checkpoint, contract: str, anchorer: str, n: int) -> AnchorProof:
    topics = (ANCHORED_TOPIC, chain_log_id(point.log_id), point.tree_size.to_bytes(32, "big"),
              bytes(12) + bytes.fromhex(anchorer[2:]))
    return AnchorProof(bytes([0xA0 + n]) * 32, 100 + n, bytes([0xB0 + n]) * 32, anchorer,
                       contract, topics, point.root)


def _invented(history: History, fresh_key: bool, contract: str) -> bytes:
    """The same history re-signed (with a fresh log key, or the operator's), every checkpoint
    "anchored" in `contract` by receipts that contract's owner fabricates. The operator's own
    key signs the same notes the witnesses cosigned, so it keeps their cosignatures; a fresh
    key makes notes of another log, which no trusted witness has seen."""
    key = Ed25519PrivateKey.generate() if fresh_key else history.log_key
    anchorer = history.anchoring.anchorer.account.address.lower()
    checkpoints = []
    for n, real in enumerate(history.checkpoints):
        old = Checkpoint.from_record(real.envelope.payload)
        point = Checkpoint(key_id(key.public_key()), old.tree_size, old.root, old.time,
                           old.heads)
        checkpoints.append(BundleCheckpoint(sign_checkpoint(point, key),
                                            _fabricated_receipt(point, contract, anchorer, n),
                                            () if fresh_key else real.cosignatures))
    return history.bundle(log_public_key=raw_public_key(key.public_key()),
                          chain=ChainInfo(history.anchoring.chain_id, contract, "met-police"),
                          checkpoints=checkpoints)


def _unrelated_justification(_history: History, _valid: bytes) -> bytes:
    """A history the operator logged, signed and anchored itself (its own log key and contract:
    judged without the corpus's trust file), in which the camera's check_out at the issue desk
    cites a store portal's read of the taser's tag two months earlier."""
    return fortnight(unrelated_read=True).bundle()


def _created_before_checkpoint(s: Sections) -> None:
    s.header = edit_json(s.header, lambda h: h.update(created="2026-01-10T00:00:00.000Z"))


def _created_not_a_time(s: Sections) -> None:
    s.header = edit_json(s.header, lambda h: h.update(created="yesterday"))


def _other_chain_id(s: Sections) -> None:
    s.header = edit_json(s.header, lambda r: r["chain"].update(chain_id=r["chain"]["chain_id"] + 1))


def _contract_not_hex(s: Sections) -> None:
    s.header = edit_json(s.header, lambda r: r["chain"].update(contract="0x" + "zz" * 20))


def _oversize_observation(s: Sections) -> None:
    line = s.observations[0]  # refused for its size before its content is read
    s.observations[0] = line[:-1] + b',"padding":"' + b"x" * MAX_RECORD_BYTES + b'"}'
def _leaf(proof: bytes) -> int:
    leaf: int = json.loads(proof)["leaf"]
    return leaf


def _drop_leaves(*leaves: int) -> Callable[[Sections], None]:
    """Delete the events at `leaves` with their proofs, as an operator hiding them would."""
    def edit(s: Sections) -> None:
        s.events = [(r, p) for r, p in s.events if _leaf(p) not in leaves]
    return edit


def _drop_asset(asset: str, *, from_scope: bool, heads: bool) -> Callable[[Sections], None]:
    """Delete every event of `asset`; also strike it from the scope and (`heads`) drop the head
    lines that name it, so that what is left looks like a bundle of the other assets."""
    def edit(s: Sections) -> None:
        s.events = [(r, p) for r, p in s.events if json.loads(r)["asset"] != asset]
        if from_scope:
            s.header = edit_json(s.header, lambda h: h["scope"].update(
                assets=[a for a in h["scope"]["assets"] if a != asset]))
        if heads:
            s.heads = [line for line in s.heads if json.loads(line)["asset"] != asset]
    return edit


def _scope(**change: Any) -> Callable[[Sections], None]:
    def edit(s: Sections) -> None:
        s.header = edit_json(s.header, lambda h: h["scope"].update(change))
    return edit


SITE = Scope("site", (CAMERA, RADIO, TASER), site="store-central")
RANGE = Scope("time-range", (CAMERA, RADIO, TASER), start="2026-01-06T00:00:00.000Z",
              end="2026-01-08T00:00:00.000Z")
"""Leaves 14..22: the checkpoints of 2026-01-02 (size 14) and 2026-01-14 (size 23) bracket it;
events 3 to 9 and the radio's two share records."""


def _scoped(scope: Scope, edit: Callable[[Sections], None] | None = None
            ) -> Callable[[History, bytes], bytes]:
    def make(history: History, _valid: bytes) -> bytes:
        data = history.bundle(scope=scope)
        return data if edit is None else sealed(data, edit)
    return make


def _raw(edit: Callable[[bytes], bytes]) -> Callable[[History, bytes], bytes]:
    return lambda _history, valid: edit(valid)


def _resealed(edit: Callable[[Sections], None]) -> Callable[[History, bytes], bytes]:
    return lambda _history, valid: sealed(valid, edit)


def _with(make: Callable[[History], Callable[[Sections], None]]
          ) -> Callable[[History, bytes], bytes]:
    return lambda history, valid: sealed(valid, make(history))


UNSEALED_BIT_FLIP = _raw(lambda valid: sealed(valid, _flip_event_bit, reseal=False))
ADDED_LINE = b'{"note":"appended after the end line","type":"note"}\n'
CUT_AT = 0.55
"""Where the truncated copy stops, as a fraction of the valid bundle: mid-line, mid-events."""

_ROOM = Forgery(property_room=True)
PROPERTY_ROOM = [
    Variant("property-room",
            "the operator's honest history with the property room's work after the fortnight: "
            "the taser checked out by hand (officer and co-signing sergeant, no reads), the "
            "camera's check_in corrected, the radio retired", _forged(_ROOM), 4, pinned=False),
    Variant("correction-dropped",
            "the same history with the camera's correction left out of the bundle",
            _forged(_ROOM, _drop_correction), 1,
            {"registry": f"asset {CAMERA!r}: the log's latest registry record is seq 1"},
            pinned=False),
    Variant("corrected-event-edited",
            "the same history with the corrected event (the camera's check_in) edited instead",
            _forged(_ROOM, _edit_corrected_event), 1,
            {"inclusion-proofs": f"event at leaf {LEAF[7]}",
             "event-justification": "reader 'return-desk-north' is registered at site",
             "completeness": "events left out",
             "corrections": f"correction at leaf {SIZES[3] + 1}: expected the event at leaf "
                            f"{LEAF[7]} to hash to"}, (LEAF[7],), pinned=False),
    Variant("correction-other-asset",
            "the operator's history with a second correction of the camera that names the "
            "taser's transfer (another asset's event)",
            _forged(dataclasses.replace(_ROOM, corrected_leaf=LEAF[6])), 1,
            {"corrections": f"expected an event of asset {CAMERA!r} of agency 'met-police' at "
                            f"leaf {LEAF[6]}, found one of asset {TASER!r}"}, pinned=False),
    Variant("correction-no-event",
            "the operator's history with a second correction of the camera that names a leaf "
            "holding no event (a registry record)",
            _forged(dataclasses.replace(_ROOM, corrected_leaf=0)), 1,
            {"corrections": "expected the corrected event at leaf 0 in the bundle, found none"},
            pinned=False),
    Variant("retired-asset-moved",
            "the operator's history in which the radio is checked out after its retirement",
            _forged(dataclasses.replace(_ROOM, retired_moved=True)), 1,
            {"event-justification": f"asset {RADIO!r} was retired at leaf"},
            (SIZES[3] + 3,), pinned=False),
    Variant("manual-without-supervisor",
            "the operator's history in which the taser's manual check_out names the officer "
            "only (its class asks for dual sign-off)",
            _forged(dataclasses.replace(_ROOM, manual_alone=True)), 1,
            {"event-justification": "asks for dual sign-off"}, (SIZES[3],), pinned=False),
    Variant("manual-at-wrong-desk",
            "the operator's history in which the taser's manual check_out is entered at the "
            "return desk", _forged(dataclasses.replace(_ROOM, manual_desk="return-desk-1")), 1,
            {"event-justification": "manual check_out needs a desk of role issue_desk in "
                                    "service, desk 'return-desk-1' is return_desk"},
            (SIZES[3],), pinned=False),
    Variant("issued-after-failed-check",
            "the operator's history in which the taser's class gets a blocking annual test, "
            "the taser fails it, and the taser's manual check_out issues it all the same",
            _forged(dataclasses.replace(_ROOM, unserviced=True)), 1,
            {"event-justification": "check-out of an item that was failed annual test: not "
                                    "issued until it passes"}, (SIZES[3] + 2,), pinned=False),
    Variant("inventory-taken",
            "the operator's history with a full inventory of the central store logged after "
            "the radio's retirement (the camera found, the taser missing, a stray tag)",
            _forged(dataclasses.replace(_ROOM, inventory="honest")), 4, pinned=False),
    Variant("inventory-uncounted",
            "the same history with the inventory logged as none missing: 1 found of 2 looked "
            "for", _forged(dataclasses.replace(_ROOM, inventory="uncounted")), 1,
            {"inventories": "expected found + missing = looked for = sample (2), found 1 + 0 "
                            "of 2"}, pinned=False),
    Variant("inventory-by-a-stranger",
            "the same history with the inventory credited to a handheld the log never "
            "registered", _forged(dataclasses.replace(_ROOM, inventory="stranger")), 1,
            {"inventories": "expected reader 'handheld-9' registered in the log before the "
                            "inventory, found none"}, pinned=False),
    Variant("manual-disposal",
            "the operator's history in which the taser is disposed of by a manual entry (only "
            "check-outs, check-ins and hand-overs are entered by hand)",
            _forged(dataclasses.replace(_ROOM, manual_action="dispose")), 1,
            {"event-justification": "dispose cannot be entered by hand at a desk"},
            (SIZES[3],), pinned=False),
]
"""Corrections, retirements and manual entries (`bundle_story.property_room`)."""


def _case(edit: Callable[[Sections], None] | None = None) -> Callable[[History, bytes], bytes]:
    """The case bundle of the evidence story (camera and taser in case `CASE`), as the API
    exports it, then `edit`ed and re-sealed if given."""
    def make(_history: History, _valid: bytes) -> bytes:
        data = _story(_EVIDENCE).case_bundle(CASE, (CAMERA, TASER))
        return data if edit is None else sealed(data, edit)
    return make


def _drop_reference(asset: str) -> Callable[[Sections], None]:
    """Delete `asset`'s case reference record, as an operator hiding what put it in the case
    would (its asset's registry chain then ends early)."""
    def edit(s: Sections) -> None:
        s.registry = [(r, p) for r, p in s.registry if json.loads(r)["type"] !=
                      "evidence-referenced" or json.loads(r)["asset"] != asset]
    return edit


def _drop_exhibit(asset: str) -> Callable[[Sections], None]:
    """Delete every event and registry record of `asset` and strike it from the scope: all
    that is left of it is the head map's entries the other proofs reach."""
    events = _drop_asset(asset, from_scope=True, heads=False)

    def edit(s: Sections) -> None:
        events(s)
        s.registry = [(r, p) for r, p in s.registry if json.loads(r).get("asset") != asset]
    return edit


_EVIDENCE = dataclasses.replace(_ROOM, evidence=True)
CASES = [
    Variant("case-valid", "the property room's history with the camera and the taser "
            f"referenced to case {CASE} (exhibits JD/1, JD/2), exported for the case",
            _case(), 4, pinned=False),
    Variant("case-exhibit-omitted", "the case bundle with the taser's events and registry "
            "records deleted and the taser struck from the scope: a bundle of the camera alone",
            _case(_drop_exhibit(TASER)), 1,
            {"completeness": "lists 1 exhibit(s) of the case that the bundle leaves out"},
            pinned=False),
    Variant("case-chain-dropped", "the case bundle with the taser's events deleted, the taser "
            "still in the scope", _case(_drop_asset(TASER, from_scope=False, heads=False)), 1,
            {"completeness": "events left out", "hash-chains": "expected events of scope asset"},
            pinned=False),
    Variant("case-reference-dropped", "the case bundle with the taser's case reference record "
            "deleted", _case(_drop_reference(TASER)), 1,
            {"completeness": "reference record", "registry": f"asset {TASER!r}: the log's "
             "latest registry record is seq"}, pinned=False),
    Variant("case-renamed", "the case bundle's scope edited to the case 24-009999",
            _case(_scope(case="24-009999")), 1,
            {"completeness": "which the head map does not put in the case"}, pinned=False),
]
"""Case bundles (`History.case_bundle`): every exhibit of a case, proven by the head map's
case index."""

VARIANTS = [
    Variant("valid", "the untouched bundle: every check passes offline", _raw(bytes), 0),
    Variant("event-bit-flip", "one bit of event 3's new holder flipped, bundle re-sealed",
            _resealed(_flip_event_bit), 1,
            {"inclusion-proofs": f"event at leaf {LEAF[3]}",
             "hash-chains": f"event at leaf {LEAF[7]}"}, (LEAF[3], LEAF[7])),
    Variant("event-bit-flip-unsealed", "the same flip, fingerprint left as it was",
            UNSEALED_BIT_FLIP, 1,
            {"fingerprint": "lines hash to", "inclusion-proofs": f"event at leaf {LEAF[3]}",
             "hash-chains": f"event at leaf {LEAF[7]}"}, (LEAF[3], LEAF[7])),
    Variant("event-removed", "event 6, in the middle of the taser's chain, and its proof deleted",
            _resealed(_remove_event), 1,
            {"hash-chains": "expected event seq 2, found 3"}, (LEAF[8],)),
    Variant("event-inserted", "a copy of event 4 as a disposal inserted at the next leaf",
            _resealed(_insert_forged_event), 1,
            {"hash-chains": "expected event seq 2, found 1",
             "inclusion-proofs": f"event at leaf {LEAF[4] + 1}",
             "registry": f"registry record at leaf {LEAF[4] + 1}"},
            (LEAF[4] + 1, LEAF[6])),
    Variant("events-reordered", "events 4 and 6 (both the taser's) swapped with their proofs",
            _resealed(_swap_events(4, 6)), 1,
            {"hash-chains": "expected event seq 1, found 2", "inclusion-proofs": "bundle order"},
            (LEAF[4], LEAF[5], LEAF[6], LEAF[8])),
    Variant("duplicated-event", "event 4 and its proof repeated right after themselves",
            _resealed(_duplicate_event), 1,
            {"hash-chains": "expected event seq 2, found 1", "inclusion-proofs": "bundle order"},
            (LEAF[4],)),
    Variant("proof-index-plus-one", "event 4's inclusion proof claims the next leaf",
            _resealed(_proof_leaf(4, +1)), 1,
            {"inclusion-proofs": f"event at leaf {LEAF[4] + 1}",
             "registry": f"registry record at leaf {LEAF[4] + 1}"}, (LEAF[4] + 1,)),
    Variant("proof-index-minus-one", "event 4's inclusion proof claims the leaf before (event "
            "3's)", _resealed(_proof_leaf(4, -1)), 1, {"inclusion-proofs": "bundle order"},
            (LEAF[3],)),
    Variant("checkpoint-size-doubled", "the last checkpoint's size doubled, not re-signed",
            _with(lambda h: _double_checkpoint_size(h, resign=False)), 1,
            {"checkpoint-signatures": "checkpoint 3: Ed25519 signature",
             "checkpoint-consistency": f"proof {SIZES[2]}->{SIZES[3]}: a checkpoint is unsigned",
             "inclusion-proofs": f"no signed checkpoint at size {SIZES[3]}",
             "completeness": "expected a signed newest checkpoint",
             "witness-cosignatures": "the newest checkpoint is not signed by the log",
             "registry": f"no signed checkpoint at size {SIZES[3]}"},
            (LEAF[8], LEAF[9])),
    Variant("checkpoint-size-doubled-resigned",
            "the last checkpoint's size doubled and re-signed with the real log key",
            _with(lambda h: _double_checkpoint_size(h, resign=True)), 1,
            {"checkpoint-consistency": f"expected a proof {SIZES[2]}->{2 * SIZES[3]}, found "
                                       f"{SIZES[2]}->{SIZES[3]}",
             "inclusion-proofs": f"no signed checkpoint at size {SIZES[3]}",
             "anchors": f"checkpoint at size {2 * SIZES[3]}: expected an anchor on chain, "
                        "found none",
             "witness-cosignatures": f"checkpoint 3 (size {2 * SIZES[3]}): cosignature by",
             "registry": f"no signed checkpoint at size {SIZES[3]}"},
            (LEAF[8], LEAF[9])),
    Variant("wrong-log-key-signature",
            "checkpoint 1 signed by a key other than the log's, naming the log's key",
            _resealed(_sign_checkpoint_with_another_key), 1,
            {"checkpoint-signatures": "checkpoint 1: Ed25519 signature",
             "checkpoint-consistency": f"proof {SIZES[0]}->{SIZES[1]}: a checkpoint is unsigned",
             "inclusion-proofs": f"no signed checkpoint at size {SIZES[1]}",
             "anchors": f"chain anchored size {SIZES[1]}",
             "registry": f"no signed checkpoint at size {SIZES[1]}"},
            (LEAF[3], LEAF[4], LEAF[5])),
    Variant("consistency-path-reversed", "the first consistency proof's nodes in reverse order",
            _resealed(_reverse_consistency_path), 1,
            {"checkpoint-consistency": f"checkpoint {SIZES[0]} -> {SIZES[1]} inconsistent"}),
    Variant("observation-signature-flipped",
            "one bit of observation 6's signature flipped (the second badge of a dual sign-off)",
            _resealed(_flip_observation_signature), 1,
            {"observation-signatures": "observation 6: Ed25519 signature",
             "event-observations": f"event at leaf {LEAF[4]}"}, (LEAF[4],)),
    Variant("observation-payload-edited", "observation 0's signal strength edited, not re-signed",
            _resealed(_weaken_observation), 1,
            {"observation-signatures": "does not verify over the payload",
             "event-observations": f"event at leaf {LEAF[0]}"}, (LEAF[0],)),
    # The operator's device list: before the registry was logged the verifier believed it.
    Variant("device-key-swapped", "a device list beside the log's registry, naming "
            "issue-desk-1 with another key; reads not re-signed",
            lambda h, _v: _impostor_desk(h, resign=False), 1,
            {"device-keys": NO_DEVICE_LINES}),
    Variant("device-key-swapped-resigned",
            "a device list naming issue-desk-1 with another key that re-signed its reads: the "
            "log never registered that key",
            lambda h, _v: _impostor_desk(h, resign=True), 1,
            {"device-keys": NO_DEVICE_LINES, "observation-signatures": "unknown key id",
             "event-observations": f"event at leaf {LEAF[0]}"}, LEAF[:6]),
    Variant("device-kid-mismatch", "a device list pairing issue-desk-1's key id with "
            "return-desk-1's key", lambda h, _v: _desk_with_other_desks_key(h), 1,
            {"device-keys": "reader 'issue-desk-1': expected key id"}),
    Variant("device-revoked", "a device list claiming issue-desk-1 revoked, which the log "
            "never recorded", lambda h, _v: _desk_revoked(h), 1,
            {"device-keys": NO_DEVICE_LINES}),
    # The registry in the log: what the verdict rests on cannot be edited, added or dropped.
    Variant("registry-key-swapped", "issue-desk-1's logged registration edited to another key; "
            "re-sealed", _resealed(_swap_registered_key), 1,
            {"registry": "registry record at leaf 1: tree root",
             "observation-signatures": "unknown key id",
             "event-observations": f"event at leaf {LEAF[0]}"}, LEAF[:6]),
    Variant("registry-dropped-v2", "every registry record and registry head line removed and "
            "the format version set back to 2, the device list restored: the keys would be the "
            "operator's claim again, but the scope's head proofs border registry entries",
            _with(_back_to_v2), 1,
            {"completeness": "expected a head proof of map entry"}),
    Variant("reader-revocation-dropped",
            "the operator's history in which return-desk-1, revoked on 2026-01-08, still "
            "checks the taser in on 2026-01-09; the revocation dropped from the bundle",
            _forged(Forgery(revoked_desk=True), _drop_revocation), 1,
            {"registry": "reader 'return-desk-1': the log's latest registry record is seq 1"},
            pinned=False),
    Variant("reader-revoked",
            "the same history with the revocation left in: the reads after it are refused",
            _forged(Forgery(revoked_desk=True)), 1,
            {"observation-signatures": "after reader 'return-desk-1' was revoked",
             "event-observations": f"event at leaf {LEAF[8] + 1}"},
            (LEAF[8] + 1, LEAF[9] + 1), pinned=False),
    Variant("reader-registered-after",
            "the operator's history in which the camera's check_out is made at issue-desk-2, "
            "whose registration (claiming 2025-12-01) is logged after it",
            _forged(Forgery(late_desk=True)), 1,
            {"event-justification": f"event at leaf {LEAF[3]}: reader 'issue-desk-2' was "
                                    "registered in the log at leaf"}, (LEAF[3],),
            pinned=False),
    Variant("reader-wrong-role",
            "the operator's history in which the camera is checked out at the store portal",
            _forged(Forgery(desk="portal-1")), 1,
            {"event-justification": "check_out needs a reader of role issue_desk, reader "
                                    "'portal-1' is registered as portal"}, (LEAF[3],),
            pinned=False),
    Variant("reader-wrong-site",
            "the operator's history in which store-north's return desk checks the camera in "
            "to store-central", _forged(Forgery(return_desk="return-desk-north")), 1,
            {"event-justification": "reader 'return-desk-north' is registered at site "
                                    "'store-north', the event leaves the asset at location "
                                    "'store-central'"}, (LEAF[7],), pinned=False),
    Variant("observation-other-epc",
            "the operator's history in which every read of the camera is of another tag "
            "(always the same one)", _forged(Forgery(camera_epc=OTHER_EPC)), 1,
            {"event-justification": "expected a read of the asset's registered tag"},
            (LEAF[0], LEAF[3], LEAF[7]), pinned=False),
    Variant("observation-outside-window",
            "the operator's history in which the camera's check_in cites a read of its tag "
            "made eight days before", _forged(Forgery(stale_read=True)), 1,
            {"event-justification": "more than 7 days before the event"}, (LEAF[7],),
            pinned=False),
    Variant("class-policy-relaxed",
            "the operator's history in which the taser is checked out on one badge, and its "
            "class's dual sign-off dropped by a policy logged afterwards",
            _forged(Forgery(single_signoff=True)), 1,
            {"event-justification": "class 'taser''s policy (leaf 6) asks for dual sign-off, "
                                    "the event names 1 authoriser(s)"}, (LEAF[4],),
            pinned=False),
    Variant("header-edited", "the header's creation time changed, fingerprint left as it was",
            _raw(lambda v: v.replace(b'"created":"2026-02-01', b'"created":"2026-02-02', 1)),
            1, {"fingerprint": "lines hash to"}),
    Variant("header-agency-unprintable",
            "the chain agency in the header holds a DEL character; re-sealed",
            _resealed(_unprintable_agency), 2, unusable="agency"),
    Variant("header-contract-not-hex", "the chain contract in the header is not hex; re-sealed",
            _resealed(_contract_not_hex), 2, unusable="contract must be 0x and 40 hex digits"),
    Variant("observation-line-oversize",
            "observation 0 padded past the 64 KiB line limit; re-sealed",
            _resealed(_oversize_observation), 2, unusable="observation line exceeds"),
    Variant("fresh-keys-own-contract",
            "the whole history re-signed with a fresh log key, anchored in the forger's own "
            "contract (fabricated receipts)",
            lambda h, _v: _invented(h, fresh_key=True, contract=FORGED_CONTRACT), 1,
            {"trust-roots": "pinned log key", "witness-cosignatures": "found 0 (none)"}),
    Variant("fresh-keys-own-contract-unpinned",
            "the same invention verified without a trust file: nothing can catch it offline, "
            "so the verdict must not be VALID",
            lambda h, _v: _invented(h, fresh_key=True, contract=FORGED_CONTRACT), 4,
            pinned=False),
    Variant("own-contract",
            "the operator's own log key, checkpoints 'anchored' in another contract it deployed",
            lambda h, _v: _invented(h, fresh_key=False, contract=FORGED_CONTRACT), 1,
            {"trust-roots": "expected contract"}),
    Variant("other-chain-id", "the header names another chain id; re-sealed",
            _resealed(_other_chain_id), 1, {"trust-roots": "expected chain id"}),
    Variant("trailing-garbage-line", "a JSON line appended after the end line",
            _raw(lambda v: v + ADDED_LINE), 2, unusable="trailing data"),
    Variant("duplicated-line", "observation 0's line repeated, header and end line untouched",
            _raw(lambda v: sealed(v, _duplicate_observation, reseal=False)), 2,
            unusable="header announces 88 lines, found 89"),
    Variant("truncated", "the file cut off mid-line, as by a broken download",
            _raw(lambda v: v[: int(len(v) * CUT_AT)]), 2, unusable="truncated"),
    # Omission: what the hash chains alone cannot see is an asset's missing tail.
    Variant("last-event-omitted",
            "event 9 (the radio's loan_return, its last) and its proof deleted; the radio "
            "looks still on loan", _resealed(_drop_leaves(LEAF[9])), 1,
            {"completeness": "the log's latest event is seq 2"}),
    Variant("tail-omitted", "events 6 and 8 (the taser's transfer and check-in, its last two) "
            "deleted; the taser looks still checked out",
            _resealed(_drop_leaves(LEAF[6], LEAF[8])), 1,
            {"completeness": "the log's latest event is seq 3"}),
    Variant("middle-event-omitted", "event 5 (the radio's loan_out, mid-chain) deleted",
            _resealed(_drop_leaves(LEAF[5])), 1,
            {"hash-chains": "expected event seq 1, found 2"}, (LEAF[9],)),
    Variant("first-event-omitted", "event 0 (the camera's registration, first of its chain) "
            "deleted", _resealed(_drop_leaves(LEAF[0])), 1,
            {"hash-chains": "expected event seq 0, found 1"}, (LEAF[3],)),
    Variant("asset-omitted", "every event of the radio deleted, the scope still listing it",
            _resealed(_drop_asset(RADIO, from_scope=False, heads=False)), 1,
            {"hash-chains": "expected events of scope asset", "completeness":
             "the log's latest event is seq 2"}),
    Variant("asset-omitted-scope-edited", "every event of the radio deleted and the radio struck "
            "from the scope; its head lines kept", _resealed(_drop_asset(
                RADIO, from_scope=True, heads=False)), 1,
            {"registry": STRUCK_RADIO}),
    Variant("scope-asset-struck", "the radio struck from the header's scope, its events kept",
            _resealed(_scope(assets=[CAMERA, TASER])), 1,
            {"completeness": "which the scope does not list", "registry": STRUCK_RADIO}),
    Variant("scope-kind-asset", "the scope's kind 'assets' edited to 'asset'",
            _resealed(_scope(kind="asset")), 1, {"completeness": "names one asset"}),
    Variant("scope-kind-site", "the scope edited to the site 'store-central'",
            _resealed(_scope(kind="site", site="store-central")), 1,
            {"completeness": "expected a head proof of map entry"}),
    Variant("site-valid", "the same history exported for the site 'store-central', where the "
            "log leaves all three assets", _scoped(SITE), 0),
    Variant("site-asset-omitted", "the site bundle with the radio's events deleted and the "
            "radio struck from the scope", _scoped(SITE, _drop_asset(RADIO, from_scope=True,
                                                                     heads=False)), 1,
            {"completeness": "places 1 asset(s) there that the bundle leaves out",
             "registry": STRUCK_RADIO}),
    Variant("site-renamed", "the site bundle's scope edited to the site 'store-north'",
            _scoped(SITE, _scope(site="store-north")), 1,
            {"completeness": "which the head map does not place there"}),
    Variant("time-range-valid", "the same history exported for 2026-01-06 to 2026-01-08: "
            "leaves 14..22 between the bracketing checkpoints", _scoped(RANGE), 0),
    Variant("time-range-asset-omitted", "the time-range bundle with the radio's events deleted "
            "and the radio struck from the scope", _scoped(RANGE, _drop_asset(
                RADIO, from_scope=True, heads=False)), 1,
            {"completeness": f"time range: expected every leaf 14..22, leaf {LEAF[5]}",
             "registry": STRUCK_RADIO}),
    Variant("time-range-widened", "the time-range bundle's end moved to 2026-01-20, past the "
            "newest checkpoint", _scoped(RANGE, _scope(end="2026-01-20T00:00:00.000Z")), 1,
            {"completeness": "after the newest checkpoint"}),
    Variant("time-range-start-moved", "the time-range bundle's start moved to 2026-01-07 21:00, "
            "when only the taser and the radio moved", _scoped(RANGE, _scope(
                start="2026-01-07T21:00:00.000Z")), 1,
            {"completeness": "the scope's assets are not those of leaves 20..22"}),
    Variant("witness-quorum-short",
            "the newest checkpoint cosigned by one witness only: a view the others never saw",
            _resealed(WITNESS_EDITS["keep_one"]), 1,
            {"witness-cosignatures": "expected cosignatures from 2 of the 3 trusted "
                                     "witnesses, found 1"}),
    Variant("witness-cosignature-forged",
            "a trusted witness's name and key id over a signature by the forger's key",
            _resealed(WITNESS_EDITS["forge_first"]), 1,
            {"witness-cosignatures": f"checkpoint 3 (size {SIZES[3]}): cosignature by "
                                     "witness.fire-inspectorate.example does not verify"}),
    Variant("witness-cosignatures-unlisted",
            "the newest checkpoint's cosignatures replaced by valid ones from the forger's own "
            "witnesses",
            _resealed(WITNESS_EDITS["unlisted"]), 1,
            {"witness-cosignatures": "found 0 (none)"}),
    Variant("witness-cosignatures-replayed",
            "the cosignatures of checkpoint 2 copied onto checkpoint 3",
            _resealed(WITNESS_EDITS["replay_previous"]), 1,
            {"witness-cosignatures": f"checkpoint 3 (size {SIZES[3]}): cosignature by"}),
    Variant("witness-cosignatures-dropped-v1",
            "every cosignature, registry record and head line removed and the format version "
            "set back to 1 (which has no registry: the reads' keys are then unknown)",
            _resealed(WITNESS_EDITS["drop_all_v1"]), 1,
            {"witness-cosignatures": "found 0 (none)",
             "completeness": "expected proofs from a non-empty map, found none",
             "observation-signatures": "unknown key id",
             "event-observations": f"event at leaf {LEAF[0]}"}, LEAF),
    Variant("witness-cosignature-bad-base64",
            "a cosignature line on the newest checkpoint whose signature is not base64",
            _resealed(WITNESS_EDITS["bad_base64"]), 2, unusable="not standard base64"),
    Variant("unrelated-justification",
            "the operator's own history in which the camera's check_out at issue-desk-1 "
            "(event 3) cites portal-1's read of the taser's tag two months earlier",
            _unrelated_justification, 1,
            {"event-justification": f"leaf {LEAF[3]}: expected observation"}, (LEAF[3],),
            pinned=False),
    Variant("created-before-checkpoint", "the header's created moved to 2026-01-10, before "
            "the newest checkpoint (2026-01-14) the bundle carries",
            _resealed(_created_before_checkpoint), 1,
            {"header": "before the newest checkpoint"}),
    Variant("created-not-a-time", "the header's created edited to 'yesterday'",
            _resealed(_created_not_a_time), 2, unusable="created: time 'yesterday'"),
    *PROPERTY_ROOM,
    *CASES,
]
