"""The record format's bounds are defined once, in `ledger.core.bounds`, and mean one thing.

No other module of the product assigns a name the bounds module defines (importing it is how a
bound is used), and the pattern spellings other parts take from it (pydantic's anchored
patterns, the id predicate) accept exactly what `Observation.from_record` accepts.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.core import bounds
from ledger.core.errors import SchemaError
from ledger.core.records import Observation
from tests.paths import REPO_ROOT

ROOT = REPO_ROOT
BOUNDS = ROOT / "ledger" / "core" / "bounds.py"
PARTS = [ROOT / "api", ROOT / "ledger", ROOT / "reader-agent" / "reader_agent"]


def _module_names(path: Path) -> list[str]:
    """The names `path` assigns at module level."""
    names = []
    for node in ast.parse(path.read_text(), filename=str(path)).body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) else [])
        names += [t.id for t in targets if isinstance(t, ast.Name)]
    return names


DEFINED = frozenset(_module_names(BOUNDS))


def _assigned(path: Path) -> list[str]:
    return [name for name in _module_names(path) if name in DEFINED]


def test_no_other_module_defines_a_bound_again() -> None:
    found = [f"{path.relative_to(ROOT)}: {name}" for part in PARTS
             for path in sorted(part.rglob("*.py")) if path != BOUNDS
             for name in _assigned(path)]
    assert found == []


def test_the_apis_holder_kinds_are_the_records() -> None:
    from api.models.assets import HolderKind

    assert {kind.value for kind in HolderKind} == bounds.HOLDER_KINDS


def test_the_guard_sees_a_restated_bound(tmp_path: Path) -> None:
    module = tmp_path / "restates.py"
    module.write_text("from typing import Final\nMAX_EPC_BYTES: Final = 62\nMAX_ID_CHARS = 128\n")
    assert _assigned(module) == ["MAX_EPC_BYTES", "MAX_ID_CHARS"]


def _observation(**fields: Any) -> dict[str, Any]:
    record = {"type": "observation", "v": 1, "device": "desk-1", "seq": 0,
              "time": "2026-03-01T12:30:15.123Z", "kind": "read", "epc": "3034",
              "antenna": 1, "rssi": None, "zone": None, "session": None, "uri": None,
              "direction": None}
    return {**record, **fields}


def _accepted(record: dict[str, Any]) -> bool:
    try:
        Observation.from_record(record)
    except SchemaError:
        return False
    return True


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=bounds.MAX_ID_CHARS + 2),
                 st.text(st.characters(min_codepoint=0x1F, max_codepoint=0x80),
                         max_size=bounds.MAX_ID_CHARS + 2)))
def test_id_pattern_and_predicate_are_the_records_ids(text: str) -> None:
    pattern = re.search(bounds.ID_PATTERN, text) is not None and len(text) <= bounds.MAX_ID_CHARS
    assert bounds.is_identifier(text) == pattern == _accepted(_observation(zone=text))


@settings(max_examples=300, deadline=None)
@given(st.text("0123456789ABCDEFa", max_size=bounds.MAX_EPC_HEX_CHARS + 8))
def test_epc_pattern_is_the_records_epc(text: str) -> None:
    assert (re.search(bounds.EPC_HEX_PATTERN, text) is not None) == _accepted(
        _observation(epc=text))


@pytest.mark.parametrize(("field", "low", "high"), [
    ("antenna", bounds.MIN_ANTENNA, bounds.MAX_ANTENNA),
    ("rssi", bounds.MIN_RSSI_DBM, bounds.MAX_RSSI_DBM),
])
def test_numeric_bounds_are_the_records(field: str, low: int, high: int) -> None:
    assert _accepted(_observation(**{field: low})) and _accepted(_observation(**{field: high}))
    assert not _accepted(_observation(**{field: low - 1}))
    assert not _accepted(_observation(**{field: high + 1}))


def test_epc_sizes_agree() -> None:
    assert bounds.MAX_EPC_HEX_CHARS == 2 * bounds.MAX_EPC_BYTES == 4 * bounds.MAX_EPC_WORDS
    assert _accepted(_observation(epc="AB" * bounds.MAX_EPC_BYTES))
    assert not _accepted(_observation(epc="AB" * (bounds.MAX_EPC_BYTES + 2)))
