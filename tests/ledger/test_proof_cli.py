"""`kitledger proof` run as a real subprocess: verdicts, exit codes 0/1/2, hostile input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ledger.cli import main
from ledger.core.merkle import EMPTY_ROOT, MAX_PROOF_NODES
from ledger.merkle_log import MerkleLog
from ledger.merkle_nodes import MemoryNodeStore

SCRIPT = Path(sys.executable).parent / "kitledger"
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "ledger.cli"]
H = "ab" * 32


def kitledger(*args: str) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [*COMMAND, *args], capture_output=True, text=True, timeout=60, check=False
    )
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, f"expected one JSON line, got {done.stdout!r} / {done.stderr!r}"
    verdict: dict[str, Any] = json.loads(lines[0])
    return done.returncode, verdict


@pytest.fixture(scope="module")
def log() -> MerkleLog:
    merkle_log = MerkleLog(MemoryNodeStore())
    merkle_log.append_many(b"event %d" % i for i in range(21))
    return merkle_log


def inclusion_args(log: MerkleLog, index: int, size: int, /, **change: str) -> list[str]:
    values = {
        "--leaf-hash": log.leaf_hash(index).hex(),
        "--index": str(index),
        "--size": str(size),
        "--root": log.root(size).hex(),
        "--path": ",".join(h.hex() for h in log.inclusion_proof(index, size)),
    }
    values.update({f"--{k.replace('_', '-')}": v for k, v in change.items()})
    return ["proof", "inclusion", *[part for item in values.items() for part in item]]


def consistency_args(log: MerkleLog, size1: int, size2: int, /, **change: str) -> list[str]:
    values = {
        "--size1": str(size1),
        "--size2": str(size2),
        "--root1": log.root(size1).hex(),
        "--root2": log.root(size2).hex(),
        "--path": ",".join(h.hex() for h in log.consistency_proof(size1, size2)),
    }
    values.update({f"--{k}": v for k, v in change.items()})
    return ["proof", "consistency", *[part for item in values.items() for part in item]]


def test_valid_inclusion_exits_0(log: MerkleLog) -> None:
    code, verdict = kitledger(*inclusion_args(log, 13, 21))
    assert code == 0
    assert verdict == {"verdict": "valid", "kind": "inclusion", "index": 13, "size": 21,
                       "root": log.root(21).hex()}


def test_valid_single_leaf_inclusion_with_empty_path_exits_0(log: MerkleLog) -> None:
    code, verdict = kitledger(*inclusion_args(log, 0, 1))
    assert (code, verdict["verdict"]) == (0, "valid")


def test_valid_consistency_exits_0(log: MerkleLog) -> None:
    code, verdict = kitledger(*consistency_args(log, 6, 21))
    assert (code, verdict["verdict"]) == (0, "valid")
    code, verdict = kitledger(*consistency_args(log, 0, 21, root1=EMPTY_ROOT.hex()))
    assert (code, verdict["verdict"]) == (0, "valid")


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"root": H}, "RootMismatch"),
        ({"index": "12"}, "RootMismatch"),
        ({"size": "42"}, "ProofLengthMismatch"),
        ({"leaf_hash": H}, "RootMismatch"),
        ({"path": ""}, "ProofLengthMismatch"),
    ],
)
def test_failing_inclusion_exits_1_with_reason(
    log: MerkleLog, change: dict[str, str], error: str
) -> None:
    code, verdict = kitledger(*inclusion_args(log, 13, 21, **change))
    assert code == 1
    assert verdict["verdict"] == "invalid" and verdict["error"] == error and verdict["reason"]


def test_failing_consistency_exits_1_with_reason(log: MerkleLog) -> None:
    code, verdict = kitledger(
        *consistency_args(log, 6, 21, root1=log.root(21).hex(), root2=log.root(6).hex())
    )
    assert (code, verdict["verdict"], verdict["error"]) == (1, "invalid", "RootMismatch")
    assert log.root(6).hex() in verdict["reason"]  # says what was expected


def test_trailing_garbage_in_path_exits_1(log: MerkleLog) -> None:
    args = inclusion_args(log, 3, 21)
    args[-1] += "," + H
    code, verdict = kitledger(*args)
    assert (code, verdict["error"]) == (1, "ProofLengthMismatch")


@pytest.mark.parametrize(
    "change",
    [
        {"index": "21"},  # index == size
        {"index": "-1"},
        {"index": "1e3"},
        {"index": "0x10"},
        {"index": " 3"},
        {"size": "9" * 21},  # beyond uint64 digits
        {"size": "9" * 5000},  # would trip Python's int() digit limit if parsed blindly
        {"size": "18446744073709551616"},  # 2**64: 20 digits but not a uint64
        {"root": "zz" * 32},
        {"root": "ab" * 31},
        {"root": "ab" * 33},
        {"leaf_hash": "ab" * 16 + " " + "ab" * 15 + "a"},
        {"leaf_hash": ""},
        {"path": ","},
        {"path": H + ",,"},
        {"path": "ab" * 31},
        {"path": "\u0661" * 64},  # Arabic-Indic digits: not hex even though str.isdigit
    ],
)
def test_unusable_inclusion_input_exits_2(log: MerkleLog, change: dict[str, str]) -> None:
    code, verdict = kitledger(*inclusion_args(log, 3, 21, **change))
    assert code == 2
    assert verdict["verdict"] == "unusable" and verdict["reason"]


def test_ten_thousand_node_paths_are_refused_unread(
    log: MerkleLog, capsys: pytest.CaptureFixture[str]
) -> None:
    # 10,000 one-digit nodes fit on a command line; the node count bound refuses them.
    code, verdict = kitledger(*inclusion_args(log, 3, 21, path=",".join(["a"] * 10_000)))
    assert (code, verdict["verdict"]) == (2, "unusable")
    code, _ = kitledger(*inclusion_args(log, 3, 21, path=",".join(["a"] * (MAX_PROOF_NODES + 1))))
    assert code == 2
    # 10,000 full hashes (650 kB) exceed what Linux passes as one argument, so run them
    # through main() in this process: the text length bound refuses them before splitting.
    assert main(inclusion_args(log, 3, 21, path=",".join([H] * 10_000))) == 2
    assert json.loads(capsys.readouterr().out)["verdict"] == "unusable"


@pytest.mark.parametrize(
    "change",
    [{"size1": "22"}, {"size1": "-5"}, {"size2": "x"}, {"root2": "00"}, {"path": "nothex"}],
)
def test_unusable_consistency_input_exits_2(log: MerkleLog, change: dict[str, str]) -> None:
    code, verdict = kitledger(*consistency_args(log, 6, 21, **change))
    assert (code, verdict["verdict"]) == (2, "unusable")


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["proof"],
        ["proof", "inclusion", "--index", "0"],
        ["proof", "exclusion"],
        ["proof", "inclusion", "--leaf-hash", H, "--index", "0", "--size", "1", "--root", H,
         "--path", "", "--surprise", "1"],
    ],
)
def test_malformed_command_lines_exit_2_with_json(args: list[str]) -> None:
    code, verdict = kitledger(*args)
    assert (code, verdict["verdict"]) == (2, "unusable")
