"""`kitledger proof inclusion|consistency`: check one RFC 9162 proof by hand.

For auditors and other implementations: every value comes in on the command line as text
(0-based leaf index, decimal sizes, hex hashes, comma-separated proof path; `--path ""` for an
empty proof). The command prints one JSON verdict and exits 0 when the proof holds, 1 when it
does not, 2 when the input cannot form a proof question. Text is bounded and parsed strictly
before any hashing, so hostile input costs nothing.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from ledger.cli import EXIT_FAILED, EXIT_OK, EXIT_UNUSABLE, emit, say_error
from ledger.core.errors import ProofError
from ledger.core.merkle import (
    HASH_SIZE,
    MAX_PROOF_NODES,
    ProofInputError,
    verify_consistency,
    verify_inclusion,
)

MAX_NUMBER_DIGITS = 20
"""Digits accepted in an index or size: 2**64 - 1 has 20, so longer text is not a tree size."""

MAX_PATH_CHARS = MAX_PROOF_NODES * (2 * HASH_SIZE + 1)
"""Longest `--path` text read: MAX_PROOF_NODES hex hashes and their commas. Longer text is
refused before it is split, so a megabyte argument is not turned into a million strings."""

_HEX_HASH = re.compile(rf"[0-9a-fA-F]{{{2 * HASH_SIZE}}}")
_NUMBER = re.compile(rf"[0-9]{{1,{MAX_NUMBER_DIGITS}}}")


class UnusableInput(ValueError):
    """An argument that is not a well-formed number, hash or path."""


def parse_number(name: str, text: str) -> int:
    if not _NUMBER.fullmatch(text):
        raise UnusableInput(f"{name} must be a decimal integer of 1-{MAX_NUMBER_DIGITS} digits")
    return int(text)


def parse_hash(name: str, text: str) -> bytes:
    # fullmatch, not bytes.fromhex alone: fromhex would accept spaces inside the hash.
    if not _HEX_HASH.fullmatch(text):
        raise UnusableInput(f"{name} must be {2 * HASH_SIZE} hex digits")
    return bytes.fromhex(text)


def parse_path(text: str) -> list[bytes]:
    if len(text) > MAX_PATH_CHARS:
        raise UnusableInput(f"--path longer than {MAX_PATH_CHARS} characters")
    if text == "":
        return []
    parts = text.split(",")
    if len(parts) > MAX_PROOF_NODES:
        raise UnusableInput(f"--path has {len(parts)} nodes; at most {MAX_PROOF_NODES}")
    return [parse_hash(f"--path node {position}", part) for position, part in enumerate(parts)]


def _inclusion(args: argparse.Namespace) -> dict[str, Any]:
    leaf = parse_hash("--leaf-hash", args.leaf_hash)
    index = parse_number("--index", args.index)
    size = parse_number("--size", args.size)
    root = parse_hash("--root", args.root)
    path = parse_path(args.path)
    verify_inclusion(leaf, index, size, path, root)
    return {"index": index, "size": size, "root": root.hex()}


def _consistency(args: argparse.Namespace) -> dict[str, Any]:
    size1 = parse_number("--size1", args.size1)
    size2 = parse_number("--size2", args.size2)
    root1 = parse_hash("--root1", args.root1)
    root2 = parse_hash("--root2", args.root2)
    path = parse_path(args.path)
    verify_consistency(size1, size2, root1, root2, path)
    return {"size1": size1, "size2": size2, "root1": root1.hex(), "root2": root2.hex()}


def run(args: argparse.Namespace) -> int:
    kind: str = args.kind
    check = _inclusion if kind == "inclusion" else _consistency
    try:
        facts = check(args)
    except (UnusableInput, ProofInputError) as err:
        emit({"verdict": "unusable", "kind": kind, "reason": str(err)})
        say_error(f"kitledger proof {kind}", str(err),
                  "copy the values again from the proof's source (see --help)")
        return EXIT_UNUSABLE
    except ProofError as err:
        emit({"verdict": "invalid", "kind": kind, "error": type(err).__name__, "reason": str(err)})
        return EXIT_FAILED
    emit({"verdict": "valid", "kind": kind, **facts})
    return EXIT_OK


def register(subparsers: Any) -> None:
    """Add `proof inclusion` and `proof consistency` to the `kitledger` parser."""
    proof = subparsers.add_parser("proof", help="check one Merkle proof (RFC 9162)")
    kinds = proof.add_subparsers(dest="kind", required=True, parser_class=type(proof))
    inclusion = kinds.add_parser("inclusion", help="a leaf is at an index of a tree")
    inclusion.add_argument("--leaf-hash", required=True, help="leaf hash, hex")
    inclusion.add_argument("--index", required=True, help="0-based leaf index")
    inclusion.add_argument("--size", required=True, help="tree size")
    inclusion.add_argument("--root", required=True, help="tree root, hex")
    inclusion.add_argument("--path", required=True, help='hex hashes, comma-separated; "" if none')
    consistency = kinds.add_parser("consistency", help="a tree extends an older one")
    consistency.add_argument("--size1", required=True, help="older tree size")
    consistency.add_argument("--size2", required=True, help="newer tree size")
    consistency.add_argument("--root1", required=True, help="older root, hex")
    consistency.add_argument("--root2", required=True, help="newer root, hex")
    consistency.add_argument(
        "--path", required=True, help='hex hashes, comma-separated; "" if none'
    )
    for parser in (inclusion, consistency):
        parser.set_defaults(run=run)
