"""Witness cosignatures on the corpus story's checkpoints, and the witness attacks as data.

Three witnesses (`ledger.witness.service.Witness`, the code `kitledger witness serve` runs,
here in-process over a throwaway state file) are shown each checkpoint in order with its
consistency proof and cosign it. The auditor's policy is 2 of those 3, written with their names
and public keys into the corpus's trust file (`History.trust_file`).
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bundle_story import History
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tampering import Sections, edit_json

from ledger.core import note
from ledger.core.checkpoint import Checkpoint
from ledger.core.envelope import raw_public_key
from ledger.witness.keys import CosigningKey
from ledger.witness.service import Witness
from ledger.witness.state import WitnessState

NAMES = ("witness.fire-inspectorate.example", "witness.kent-police.example",
         "witness.audit-office.example")
QUORUM = 2


def cosign_history(history: History) -> list[CosigningKey]:
    """Have three witnesses cosign every checkpoint of `history` (in place); their keys."""
    origin = note.log_origin(Checkpoint.from_record(history.checkpoints[0].envelope.payload)
                             .log_id)
    log_verifier = note.NoteVerifier(origin, note.ED25519,
                                     raw_public_key(history.log_key.public_key()))
    keys = [CosigningKey(name, Ed25519PrivateKey.generate()) for name in NAMES]
    with tempfile.TemporaryDirectory() as scratch:
        witnesses = [Witness(key, WitnessState(Path(scratch) / f"{n}.sqlite"),
                             {origin: (log_verifier,)}) for n, key in enumerate(keys)]
        old = 0
        for position, item in enumerate(history.checkpoints):
            point = Checkpoint.from_record(item.envelope.payload)
            text = point.note_text()
            signed = note.Note(text, (note.sign_note(text, origin, history.log_key),))
            proof = history.log.consistency_proof(old, point.tree_size) if old else []
            body = ("\n".join([f"old {old}", *map(note.b64encode, proof)]) + "\n\n").encode()
            lines = []
            for witness in witnesses:
                answer = witness.add_checkpoint(body + signed.to_bytes())
                assert answer.status == 200, answer.body
                lines.append(answer.body.rstrip("\n"))
            history.checkpoints[position] = dataclasses.replace(item, cosignatures=tuple(lines))
            old = point.tree_size
    return keys


def _newest(change: Callable[[list[str], Sections], list[str] | None]
            ) -> Callable[[Sections], None]:
    """An edit of the newest checkpoint's cosignature lines (None: drop the field)."""
    def edit(s: Sections) -> None:
        def apply(record: dict[str, Any]) -> None:
            lines = change(list(record["cosignatures"]), s)
            if lines is None:
                del record["cosignatures"]
            else:
                record["cosignatures"] = lines
        s.checkpoints[-1] = edit_json(s.checkpoints[-1], apply)
    return edit


def keep_one(lines: list[str], _s: Sections) -> list[str]:
    """Only one witness saw this view: what a fork shown to one witness looks like."""
    return lines[:1]


def forge_first(lines: list[str], _s: Sections) -> list[str]:
    """The first witness's name and key id over a signature by a key the forger holds."""
    real = note.parse_signature_line(lines[0])
    forged = Ed25519PrivateKey.generate().sign(b"cosignature/v1\n")  # another key's signature
    line = note.NoteSignature(real.name, real.key_id, real.signature[:8] + forged).line()
    return [line.rstrip("\n"), *lines[1:]]


def unlisted(lines: list[str], s: Sections) -> list[str]:
    """Valid cosignatures of the newest checkpoint by three witnesses the forger runs."""
    point = Checkpoint.from_record(json.loads(s.checkpoints[-1])["envelope"]["payload"])
    return [note.cosign(point.note_text(), f"witness{n}.forger.example",
                        Ed25519PrivateKey.generate(), 1_768_000_000).line().rstrip("\n")
            for n in range(len(lines))]


def replay_previous(_lines: list[str], s: Sections) -> list[str]:
    """The cosignatures of the checkpoint before, moved onto the newest."""
    return list(json.loads(s.checkpoints[-2])["cosignatures"])


def drop_all_v1(s: Sections) -> None:
    """Every cosignature, registry record and head line removed and the header set back to
    format version 1, which carries none of them."""
    for n, line in enumerate(s.checkpoints):
        s.checkpoints[n] = edit_json(line, lambda r: r.pop("cosignatures", None))
    s.heads = []
    s.registry = []
    s.header = edit_json(s.header, lambda r: (r.update(v=1), r["counts"].pop("heads", None),
                                              r["counts"].pop("registry", None)))


def bad_base64(lines: list[str], _s: Sections) -> list[str]:
    name = lines[0].split(" ")[1]
    return [f"\u2014 {name} not*base64", *lines[1:]]


WITNESS_EDITS = {"keep_one": _newest(keep_one), "forge_first": _newest(forge_first),
                 "unlisted": _newest(unlisted), "replay_previous": _newest(replay_previous),
                 "drop_all_v1": drop_all_v1, "bad_base64": _newest(bad_base64)}
