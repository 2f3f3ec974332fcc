"""`kitledger witness serve` as a separate process, spoken to over HTTP as c2sp.org/tlog-witness
says: it cosigns a log that only grows, refuses forks, rollbacks and replays with the status
and reason the protocol gives, survives a restart, and bounds what a client can send."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ledger.core import note
from ledger.verify.trust import parse_trust
from ledger.witness.client import WitnessConflict, WitnessUnreachable, request_cosignature
from ledger.witness.server import CONNECTION_DEADLINE_S
from ledger.witness.service import MAX_BODY_BYTES
from ledger.witness.state import WitnessState
from tests.fixtures.ports import free_port
from tests.fixtures.witnesses import (
    KITLEDGER,
    NoteLog,
    WitnessProcess,
    add_checkpoint_body,
    get,
    post,
    start_witness,
)

NAME = "witness.inspectorate.example/w1"


@pytest.fixture
def log() -> NoteLog:
    log = NoteLog()
    log.add(*(b"event %d" % i for i in range(5)))
    return log


@pytest.fixture
def witness(tmp_path: Path, log: NoteLog) -> Iterator[WitnessProcess]:
    process = start_witness(tmp_path, NAME, [(log.origin, log.vkey)])
    yield process
    process.stop()


def _cosigned(reply_body: bytes, checkpoint_note: bytes, witness: WitnessProcess) -> int:
    lines = reply_body.decode().splitlines()
    assert len(lines) == 1 and reply_body.endswith(b"\n")
    signature = note.parse_signature_line(lines[0])
    text = note.parse_note(checkpoint_note).text
    return note.verify_cosignature(text, signature, witness.verifier)


def test_first_checkpoint_then_growth_are_cosigned(witness: WitnessProcess,
                                                   log: NoteLog) -> None:
    before = int(time.time())
    reply = post(witness.port, log.submission(0))
    assert reply.status == 200, reply.body
    assert _cosigned(reply.body, log.note(), witness) >= before
    log.add(b"event 5", b"event 6")
    reply = post(witness.port, log.submission(5))
    assert reply.status == 200, reply.body
    _cosigned(reply.body, log.note(), witness)
    # The monitoring endpoint serves the latest checkpoint with the log's and its signature.
    origin_hash = hashlib.sha256(log.origin.encode()).hexdigest()
    served = note.parse_note(get(witness.port, f"/{origin_hash}/checkpoint").body)
    assert note.parse_checkpoint_text(served.text).size == 7
    _, cosignature = served.signatures
    assert note.verify_note(served, [note.parse_vkey(log.vkey)]) == (note.parse_vkey(log.vkey),)
    assert note.verify_cosignature(served.text, cosignature, witness.verifier) > 0
    assert get(witness.port, f"/{'0' * 64}/checkpoint").status == 404


def test_a_witness_shown_one_fork_refuses_the_other(witness: WitnessProcess,
                                                    log: NoteLog) -> None:
    assert post(witness.port, log.submission(0)).status == 200
    fork = log.fork()
    log.add(b"the real check-in")
    fork.add(b"a forged transfer")
    assert post(witness.port, log.submission(5)).status == 200
    # Same size, another root: the fork is refused with the reason.
    same_size = post(witness.port, fork.submission(6, 6))
    assert same_size.status == 422
    assert "fork" in same_size.refusal and b"another root" in same_size.body
    # Larger, with the fork's own (valid) proof from size 5: 409, the witness holds 6.
    fork.add(b"more")
    stale = post(witness.port, fork.submission(5))
    assert (stale.status, stale.content_type, stale.body) == (409, "text/x.tlog.size", b"6\n")
    # From 6, with a proof that only holds for the fork's own size-6 root: 422.
    from_six = post(witness.port, fork.submission(6))
    assert from_six.status == 422 and "no consistency" in from_six.refusal
    # The real log still grows.
    log.add(b"next")
    assert post(witness.port, log.submission(6)).status == 200
    # The two fork checkpoints are kept, log-signed, as evidence; the 409 is not a fork.
    evidence = WitnessState(witness.state).evidence(log.origin)
    assert [reason[:5] for _, reason in evidence] == ["fork:", "fork:"]
    for kept, _ in evidence:
        note.verify_note(note.parse_note(kept), [note.parse_vkey(log.vkey)])


def test_rollback_and_replay_are_refused(witness: WitnessProcess, log: NoteLog) -> None:
    assert post(witness.port, log.submission(0, 3)).status == 200
    assert post(witness.port, log.submission(3, 5)).status == 200
    replay = post(witness.port, add_checkpoint_body(0, [], log.note(3)))
    assert (replay.status, replay.body) == (409, b"5\n")
    assert "rollback" in replay.refusal
    rollback = post(witness.port, add_checkpoint_body(5, [], log.note(3)))
    assert rollback.status == 400 and b"above the checkpoint's size 3" in rollback.body
    same = post(witness.port, log.submission(5, 5))  # the same checkpoint again: still fine
    assert same.status == 200


def test_state_is_durable_across_restarts(tmp_path: Path, log: NoteLog) -> None:
    first = start_witness(tmp_path, NAME, [(log.origin, log.vkey)])
    key = tmp_path / f"{NAME.replace('/', '_')}.key"
    try:
        assert post(first.port, log.submission(0)).status == 200
    finally:
        first.stop()
    again = start_witness(tmp_path, NAME, [(log.origin, log.vkey)], key=key, vkey=first.vkey)
    try:
        fork = log.fork()
        fork.add(b"x")
        reply = post(again.port, fork.submission(0))
        assert (reply.status, reply.body) == (409, b"5\n")
    finally:
        again.stop()


def test_concurrent_forks_only_one_is_cosigned(witness: WitnessProcess, log: NoteLog) -> None:
    assert post(witness.port, log.submission(0)).status == 200
    forks = []
    for n in range(6):
        fork = log.fork()
        fork.add(b"branch %d" % n)
        forks.append(fork.submission(5))
    with ThreadPoolExecutor(6) as pool:
        statuses = sorted(r.status for r in pool.map(lambda b: post(witness.port, b), forks))
    assert statuses == [200, 409, 409, 409, 409, 409]


def test_log_signature_and_key_checks(witness: WitnessProcess, log: NoteLog,
                                      tmp_path: Path) -> None:
    stranger = NoteLog()
    stranger.add(b"x")
    assert post(witness.port, stranger.submission(0)).status == 404
    # Signed by another key under the log's name (its key id differs): no trusted signature.
    impostor = NoteLog()
    text = log.checkpoint().note_text()
    forged = note.Note(text, (note.sign_note(text, log.origin, impostor.key),)).to_bytes()
    reply = post(witness.port, add_checkpoint_body(0, [], forged))
    assert reply.status == 403 and "no signature by a trusted key" in reply.refusal
    # The right name and key id, a signature that does not verify.
    good = note.parse_note(log.note())
    bad_sig = note.NoteSignature(log.origin, good.signatures[0].key_id, bytes(64))
    reply = post(witness.port, add_checkpoint_body(0, [], note.Note(text, (bad_sig,)).to_bytes()))
    assert reply.status == 403 and "does not verify" in reply.refusal


@pytest.mark.parametrize(("body", "status", "reason"), [
    (b"old 0\nnot base64!\n\n", 400, "base64"),
    (b"old 00\n\n", 400, "old <size>"),
    (b"old 0\n", 400, "proof line 1"),  # the note's own lines read as proof
    (b"new 0\n\n", 400, "old <size>"),
])
def test_malformed_requests(witness: WitnessProcess, log: NoteLog, body: bytes, status: int,
                            reason: str) -> None:
    reply = post(witness.port, body + log.note())
    assert reply.status == status and reason in reply.refusal


def test_proof_from_zero_must_be_empty(witness: WitnessProcess, log: NoteLog) -> None:
    reply = post(witness.port, add_checkpoint_body(0, [bytes(32)], log.note()))
    assert reply.status == 422 and "from size 0" in reply.refusal


def test_oversize_body_is_refused_unread(witness: WitnessProcess) -> None:
    reply = post(witness.port, b"x", headers={"Content-Length": str(MAX_BODY_BYTES + 1)})
    assert reply.status == 413


def test_trickling_client_is_cut_off(witness: WitnessProcess) -> None:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", witness.port), timeout=60) as sock:
        sock.settimeout(None)  # so MSG_DONTWAIT peeks instead of waiting out a timeout
        sock.sendall(b"POST /add-checkpoint HTTP/1.1\r\nX-Slow: ")  # then a byte a second
        closed = False
        while time.monotonic() - started < CONNECTION_DEADLINE_S + 10:
            try:
                sock.sendall(b"x")
                if sock.recv(1, socket.MSG_DONTWAIT) == b"":
                    closed = True
                    break
            except BlockingIOError:
                pass
            except OSError:
                closed = True
                break
            time.sleep(1)
    assert closed
    # Each byte came within the read timeout: only the connection's deadline ended it.
    assert CONNECTION_DEADLINE_S - 1 < time.monotonic() - started < CONNECTION_DEADLINE_S + 10


def test_keygen_refuses_to_overwrite_and_serve_refuses_a_readable_key(tmp_path: Path,
                                                                       log: NoteLog) -> None:
    key = tmp_path / "w.key"
    first = subprocess.run([str(KITLEDGER), "witness", "keygen", "--name", NAME, "--out",
                            str(key)], capture_output=True, timeout=60)
    assert first.returncode == 0 and key.stat().st_mode & 0o777 == 0o600
    vkey = note.parse_vkey(first.stdout.decode().strip())
    assert vkey.sig_type == note.COSIGNATURE_V1
    # The table keygen prints for an auditor's trust file pins the same name and key.
    trust = parse_trust(f'version = 1\n[[log]]\nagency = "north"\npublic_keys = ["{"00" * 32}"]'
                        f'\n[log.witnesses]\nquorum = 1\n{first.stderr.decode()}'.encode())
    pinned = trust.logs[0].witnesses
    assert pinned is not None and pinned.keys[0].name == NAME
    assert pinned.keys[0].public_key == vkey.public_key
    again = subprocess.run([str(KITLEDGER), "witness", "keygen", "--name", NAME, "--out",
                            str(key)], capture_output=True, timeout=60)
    assert again.returncode == 2
    key.chmod(0o644)
    serve = subprocess.run([str(KITLEDGER), "witness", "serve", "--key", str(key), "--state",
                            str(tmp_path / "s.db"), "--listen", "127.0.0.1:1",
                            "--log", f"{log.origin}={log.vkey}"], capture_output=True, timeout=60)
    assert serve.returncode == 2 and b"readable by others" in serve.stderr


def test_client_catches_up_from_the_size_the_witness_names(witness: WitnessProcess,
                                                           log: NoteLog) -> None:
    assert post(witness.port, log.submission(0, 3)).status == 200
    log.add(b"event 5")

    def proof_from(old: int) -> list[bytes]:
        return log.log.consistency_proof(old, 6) if 0 < old < 6 else []

    # The caller believes the witness has seen nothing: the 409 names 3 and the client asks
    # again from there, with the proof from 3.
    cosigned = request_cosignature(witness.url, witness.verifier, log.note(), 0, proof_from)
    assert cosigned.size == 6
    assert note.verify_cosignature(note.parse_note(log.note()).text,
                                   note.parse_signature_line(cosigned.line),
                                   witness.verifier) == cosigned.timestamp
    with pytest.raises(WitnessConflict) as raised:  # an older checkpoint: the witness holds 6
        request_cosignature(witness.url, witness.verifier, log.note(3), 0, proof_from)
    assert raised.value.size == 6 and "rollback" in raised.value.reason
    with pytest.raises(WitnessUnreachable):
        request_cosignature(f"http://127.0.0.1:{free_port()}", witness.verifier, log.note(), 6,
                            proof_from, timeout=2)
