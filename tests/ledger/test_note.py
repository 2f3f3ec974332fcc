"""C2SP signed notes, checkpoints and cosignatures (ledger.core.note): the spec's own examples as
known answers, then round trips and hostile input."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.core import note
from ledger.core.checkpoint import Checkpoint
from ledger.core.envelope import key_id, raw_public_key

# c2sp.org/signed-note, "Verifier keys / Example".
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n\n"
    "\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3m"
    "FXmRKuwHjG1Yu72IneyaQM=\n"
).encode()

# c2sp.org/tlog-cosignature, the example checkpoint and its witness line; the spec's example
# signed message gives that cosignature's time as 1679315147.
SPEC_CHECKPOINT = (
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n"
    "\u2014 example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/"
    "Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
    "\u2014 witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJ"
    "sX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
).encode()


# The signed-note test vector of Go's reference implementation (golang.org/x/mod/sumdb/note):
# a signer key in its PRIVATE+KEY+name+id+base64(type || seed) form, its vkey, a text and the
# exact signature line Ed25519 (deterministic) must give.
GO_SIGNER = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = ("If you think cryptography is the answer to your problem,\n"
           "then you don't know what your problem is.\n")
GO_SIGNATURE = ("\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSN"
                "XgKvqfqdngotpRZb6KE6RyyBwJnAM=\n")


def test_go_reference_vector_signs_byte_for_byte() -> None:
    seed = note.b64decode(GO_SIGNER.split("+", 4)[4], "seed")  # the base64 holds a "+"
    assert seed[0] == note.ED25519
    key = Ed25519PrivateKey.from_private_bytes(seed[1:])
    signature = note.sign_note(GO_TEXT, "PeterNeumann", key)
    assert signature.line() == GO_SIGNATURE
    verifier = note.parse_vkey(GO_VKEY)
    assert verifier.public_key == raw_public_key(key.public_key())
    parsed = note.parse_note((GO_TEXT + "\n" + GO_SIGNATURE).encode())
    assert note.verify_note(parsed, [verifier]) == (verifier,)


def test_spec_note_verifies_under_spec_vkey() -> None:
    verifier = note.parse_vkey(SPEC_VKEY)
    assert verifier.name == "example.com/foo"
    assert verifier.key_id.hex() == "530d903a"
    assert verifier.vkey() == SPEC_VKEY
    parsed = note.parse_note(SPEC_NOTE)
    assert parsed.text == "This is an example message.\n"
    assert note.verify_note(parsed, [verifier]) == (verifier,)
    assert parsed.to_bytes() == SPEC_NOTE


def test_spec_note_with_one_changed_byte_is_refused() -> None:
    verifier = note.parse_vkey(SPEC_VKEY)
    tampered = note.parse_note(SPEC_NOTE.replace(b"example message", b"example messagE"))
    with pytest.raises(note.BadNoteSignature):
        note.verify_note(tampered, [verifier])


def test_spec_checkpoint_and_cosignature_parse() -> None:
    parsed = note.parse_note(SPEC_CHECKPOINT)
    body = note.parse_checkpoint_text(parsed.text)
    assert (body.origin, body.size) == ("example.com/behind-the-sofa", 20852163)
    assert body.text() == parsed.text
    witness = parsed.signatures[1]
    assert witness.name == "witness.example.com/w1"
    assert int.from_bytes(witness.signature[:8], "big") == 1679315147
    assert len(witness.signature) == 8 + 64
    message = note.cosignature_message(parsed.text, 1679315147)
    assert message.startswith(b"cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n")


def test_unknown_keys_are_ignored_and_none_known_is_refused() -> None:
    other = note.NoteVerifier("example.com/foo", note.ED25519, bytes(range(32)))  # same name
    with pytest.raises(note.UnverifiedNote):
        note.verify_note(note.parse_note(SPEC_NOTE), [other])


def test_key_id_is_sha256_of_name_newline_type_key() -> None:


    public = bytes(range(32))
    expected = hashlib.sha256(b"w.example/1\n\x04" + public).digest()[:4]
    assert note.key_id("w.example/1", note.COSIGNATURE_V1, public) == expected
    assert note.key_id("w.example/1", note.ED25519, public) != expected


def test_cosignature_round_trip_binds_time_and_text() -> None:
    key = Ed25519PrivateKey.generate()
    verifier = note.NoteVerifier("w.example/1", note.COSIGNATURE_V1,
                                 raw_public_key(key.public_key()))
    text = note.CheckpointBody("kitledger/ab", 5, bytes(32)).text()
    signature = note.cosign(text, "w.example/1", key, 1_700_000_000)
    assert note.parse_signature_line(signature.line()[:-1]) == signature
    assert note.verify_cosignature(text, signature, verifier) == 1_700_000_000
    later = note.NoteSignature(signature.name, signature.key_id,
                               (1_700_000_001).to_bytes(8, "big") + signature.signature[8:])
    with pytest.raises(note.BadNoteSignature):
        note.verify_cosignature(text, later, verifier)
    with pytest.raises(note.BadNoteSignature):
        note.verify_cosignature(text.replace("\n5\n", "\n6\n"), signature, verifier)
    # A note (0x01) verifier with the same name and key does not accept a cosignature.
    plain = note.NoteVerifier("w.example/1", note.ED25519, verifier.public_key)
    with pytest.raises(note.MalformedNote):
        note.verify_cosignature(text, signature, plain)


def test_kitledger_checkpoint_note_text() -> None:
    log_key = Ed25519PrivateKey.generate()
    log_id = key_id(log_key.public_key())
    root = bytes(range(32))
    checkpoint = Checkpoint(log_id, 7, root, "2026-01-01T00:00:00.000Z")
    assert checkpoint.note_extensions() == ()
    assert checkpoint.note_text() == (
        f"kitledger/{log_id}\n7\n{base64.b64encode(root).decode()}\n")
    signature = note.sign_note(checkpoint.note_text(), note.log_origin(log_id), log_key)
    verifier = note.NoteVerifier(note.log_origin(log_id), note.ED25519,
                                 raw_public_key(log_key.public_key()))
    parsed = note.parse_note(note.Note(checkpoint.note_text(), (signature,)).to_bytes())
    assert note.verify_note(parsed, [verifier]) == (verifier,)


@pytest.mark.parametrize(("data", "reason"), [
    (b"x" * (note.MAX_NOTE_BYTES + 1), "exceeds"),
    (b"text\n\n\xe2\x80\x94 k AAAA\xff\n", "UTF-8"),
    (b"text\x07\n\n\xe2\x80\x94 k AAAAAAA=\n", "control"),
    (b"text\n\xe2\x80\x94 k AAAAAAA=\n", "blank line"),
    (b"text\n\n", "no signature"),
    (b"text\n\n- k AAAAAAA=\n", "em dash"),
    (b"text\n\n\xe2\x80\x94 k AAAA*AA=\n", "base64"),
    (b"text\n\n\xe2\x80\x94 k AAAAAAB=\n", "canonical"),
    (b"text\n\n\xe2\x80\x94 k AAA=\n", "shorter"),
    (b"text\n\n\xe2\x80\x94 k+x AAAAAAA=\n", "has a space"),
    (b"text\n\n" + b"\xe2\x80\x94 k AAAAAAA=\n" * (note.MAX_SIGNATURES + 1), "at most"),
])
def test_hostile_notes_are_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(note.MalformedNote, match=reason):
        note.parse_note(data)


@pytest.mark.parametrize(("text", "reason"), [
    ("o\n01\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", "leading"),
    ("o\n1\nAAAA\n", "32 bytes"),
    ("o\n1\n", "at least"),
    ("o\n18446744073709551616\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", "size"),
    ("o\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n", "extension"),
])
def test_bad_checkpoint_texts(text: str, reason: str) -> None:
    with pytest.raises(note.MalformedNote, match=reason):
        note.parse_checkpoint_text(text)


@pytest.mark.parametrize("vkey", [
    "example.com/foo+530d903b+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",  # wrong key id
    "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2",  # bad base64
    "example.com/foo+530d903a",
    "example.com/foo+530d903a+AukyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",  # type 0x02
])
def test_bad_vkeys(vkey: str) -> None:
    with pytest.raises(note.MalformedNote):
        note.parse_vkey(vkey)


def test_vkeys_whose_base64_holds_a_plus_round_trip() -> None:
    for seed in range(200):
        public = hashlib.sha256(b"%d" % seed).digest()
        verifier = note.NoteVerifier("w.example/1", note.COSIGNATURE_V1, public)
        if "+" in verifier.vkey().split("+", 2)[2]:
            assert note.parse_vkey(verifier.vkey()) == verifier
            return
    raise AssertionError("no key with '+' in its base64 among 200")
