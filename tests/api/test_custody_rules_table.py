"""The custody rules driven from their decision table, tests/vectors/custody_rules.json.

Each row of the table is one case; the table is the rules' documentation, so this module also
proves the table complete: every statement of api/custody/rules.py runs under some row, and
every outcome the code can produce (each reason, with each alert and action it can carry) is
the expectation of some row.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from api.custody import rules
from api.custody.rules import (
    AlertKind,
    AssetView,
    PersonView,
    ReaderView,
    Ruling,
    Verdict,
    decide_asset,
    decide_badge,
)
from api.models.assets import AssetStatus, HolderKind
from api.models.registry import ReaderRole
from tests.paths import VECTORS_DIR

TABLE = json.loads(
    (VECTORS_DIR / "custody_rules.json").read_text())
EXPECT_KEYS = {"verdict", "reason", "action", "new_status", "holder", "alert"}


def person(name: str) -> PersonView:
    row = TABLE["people"][name]
    return PersonView(name, row["agency"], frozenset(row["qualifications"]), row["active"])


def reader(row: dict[str, Any]) -> ReaderView:
    spec = row["reader"]
    return ReaderView(f"{spec['role']}@{spec['site']}", spec["agency"], spec["site"],
                      ReaderRole(spec["role"]))


def asset(row: dict[str, Any]) -> AssetView:
    """The row's asset; its holder is of the asset's agency unless the row names another (an
    agency holder is itself): ids are per agency."""
    spec, policy = row["asset"], row["class"]
    holder = spec["holder"]
    holder_agency = holder.get("agency") or (
        holder["ref"] if holder["kind"] == HolderKind.AGENCY.value else spec["agency"])
    return AssetView(
        asset_id="asset-1", agency_id=spec["agency"], shared_with=frozenset(spec["shared_with"]),
        status=AssetStatus(spec["status"]), holder_kind=HolderKind(holder["kind"]),
        holder_ref=holder["ref"], holder_agency_id=holder_agency,
        required_qualification=policy["required_qualification"],
        dual_signoff=policy["dual_signoff"])


def expected(spec: dict[str, Any]) -> Ruling:
    """The ruling a row's `expect` describes; fields it leaves out take Ruling's defaults."""
    holder = spec.get("holder")
    return Ruling(
        verdict=Verdict(spec["verdict"]) if spec["verdict"] else None,
        reason=spec["reason"],
        action=spec.get("action"),
        holder_kind=HolderKind(holder["kind"]) if holder else None,
        holder_ref=holder["ref"] if holder else None,
        new_status=AssetStatus(spec["new_status"]) if spec.get("new_status") else None,
        authorisers=tuple(spec.get("authorisers", ())),
        alert=AlertKind(spec["alert"]) if spec.get("alert") else None,
        opens_session_for=spec.get("opens_session_for"),
        foreign=spec.get("foreign", False),
    )


def rule_badge(row: dict[str, Any]) -> Ruling:
    return decide_badge(reader(row), person(row["badge"]), row["session"])


def rule_asset(row: dict[str, Any]) -> Ruling:
    return decide_asset(reader(row), asset(row), [person(p) for p in row["session"]],
                        row["direction"], row["departing"])


def all_rulings() -> Iterator[tuple[dict[str, Any], Ruling]]:
    for row in TABLE["badge_rows"]:
        yield row, rule_badge(row)
    for row in TABLE["asset_rows"]:
        yield row, rule_asset(row)


@pytest.mark.parametrize("row", [pytest.param(r, id=r["name"]) for r in TABLE["badge_rows"]])
def test_badge_row(row: dict[str, Any]) -> None:
    assert rule_badge(row) == expected(row["expect"])


@pytest.mark.parametrize("row", [pytest.param(r, id=r["name"]) for r in TABLE["asset_rows"]])
def test_asset_row(row: dict[str, Any]) -> None:
    assert set(row["expect"]) >= EXPECT_KEYS, "asset rows spell out the whole outcome"
    assert rule_asset(row) == expected(row["expect"])


def test_rows_are_named_once_and_name_known_people() -> None:
    rows = TABLE["badge_rows"] + TABLE["asset_rows"]
    names = [r["name"] for r in rows]
    assert len(names) == len(set(names))
    for row in rows:
        people = row.get("session", []) if "badge" not in row else [row["badge"]]
        assert set(people) <= set(TABLE["people"]), row["name"]


# --- the table is complete ------------------------------------------------------------------

RULES_FILE = inspect.getsourcefile(rules)
RULES_TREE = ast.parse(Path(str(RULES_FILE)).read_text())
FUNCTIONS = {f.name: f for f in RULES_TREE.body if isinstance(f, ast.FunctionDef)}


def _statement_lines() -> set[int]:
    """The first line of every statement in the rules' function bodies, docstrings aside."""
    lines = set()
    for function in FUNCTIONS.values():
        for node in ast.walk(function):
            if node is function or not isinstance(node, ast.stmt):
                continue
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
                continue
            lines.add(node.lineno)
    return lines


def _lines_run_by_the_table() -> set[int]:
    hit: set[int] = set()

    def local(frame: FrameType, event: str, _arg: object) -> Any:
        if event == "line":
            hit.add(frame.f_lineno)
        return local

    def call(frame: FrameType, event: str, _arg: object) -> Any:
        return local if frame.f_code.co_filename == RULES_FILE else None

    previous = sys.gettrace()
    sys.settrace(call)
    try:
        list(all_rulings())
    finally:
        sys.settrace(previous)
    return hit


def test_every_statement_of_the_rules_runs_under_some_row() -> None:
    missed = _statement_lines() - _lines_run_by_the_table()
    assert not missed, f"rules.py lines no row reaches (add a row): {sorted(missed)}"


Value = str | re.Pattern[str] | None


def _values(node: ast.expr, function: ast.FunctionDef) -> set[Value]:
    """What an argument of a ruling can be: constants (literal or the module's) and enum
    members, following a local name to its assignment and a conditional expression into both
    arms."""
    if isinstance(node, ast.Constant):
        assert node.value is None or isinstance(node.value, str), ast.dump(node)
        return {node.value}
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return {getattr(getattr(rules, node.value.id), node.attr).value}
    if isinstance(node, ast.IfExp):
        return _values(node.body, function) | _values(node.orelse, function)
    if isinstance(node, ast.JoinedStr):  # a reason with values filled in: match its shape
        return {re.compile("".join(re.escape(str(part.value)) if isinstance(part, ast.Constant)
                                   else ".+" for part in node.values))}
    if isinstance(node, ast.Name):
        sources = [a.value for a in ast.walk(function) if isinstance(a, ast.Assign)
                   and any(isinstance(t, ast.Name) and t.id == node.id for t in a.targets)]
        constant = getattr(rules, node.id, None)
        if not sources and isinstance(constant, str):  # a module constant such as NOT_OURS
            return {constant}
        assert len(sources) == 1, f"cannot follow {node.id} in {function.name}"
        return _values(sources[0], function)
    raise AssertionError(f"unexpected argument {ast.dump(node)} in {function.name}")


def _outcomes_in_code() -> set[tuple[Value, Value, Value]]:
    """(reason, alert, action) for every ruling the code builds with a reason; a reason with
    values filled in is a pattern."""
    found = set()
    for function in FUNCTIONS.values():
        for call in ast.walk(function):
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)):
                continue
            if call.func.id == "_refuse":
                args = dict(zip(("reason", "alert"), call.args, strict=False))
            elif call.func.id == "Ruling" and call.keywords:
                args = {"reason": ast.Constant(""),  # Ruling's default: no answer, no reason
                        **{k.arg: k.value for k in call.keywords if k.arg}}
            else:
                continue
            parameters = {a.arg for a in function.args.args}
            if isinstance(args["reason"], ast.Name) and args["reason"].id in parameters:
                continue  # a builder such as _refuse: its callers say the reason
            none = ast.Constant(None)
            for reason in _values(args["reason"], function):
                for alert in _values(args.get("alert", none), function):
                    for action in _values(args.get("action", none), function):
                        found.add((reason, alert, action))
    return found


def _reason_is(reason: str, expected: Value) -> bool:
    if isinstance(expected, re.Pattern):
        return expected.fullmatch(reason) is not None
    return reason == expected


def test_every_outcome_the_rules_can_give_is_a_row() -> None:
    outcomes = _outcomes_in_code()
    assert len(outcomes) >= 15, outcomes  # the walk above found the rulings
    table = {(ruling.reason, ruling.alert, ruling.action) for _row, ruling in all_rulings()}
    for reason, alert, action in sorted(outcomes, key=str):
        assert any(_reason_is(got_reason, reason) and alert == got_alert and action == got_action
                   for got_reason, got_alert, got_action in table), (reason, alert, action)
    # The unexpected-site overlay adds its alert outside any constructor: every kind of alert
    # the rules name must still be the expectation of some row.
    named = {AlertKind[node.attr] for function in FUNCTIONS.values()
             for node in ast.walk(function) if isinstance(node, ast.Attribute)
             and isinstance(node.value, ast.Name) and node.value.id == "AlertKind"}
    assert AlertKind.UNEXPECTED_SITE in named
    assert {alert for _reason, alert, _action in table} >= named


def test_every_reader_role_and_asset_status_appears() -> None:
    roles = {r["reader"]["role"] for r in TABLE["badge_rows"] + TABLE["asset_rows"]}
    statuses = {r["asset"]["status"] for r in TABLE["asset_rows"]}
    assert roles == {role.value for role in ReaderRole}
    assert statuses == {status.value for status in AssetStatus}


def test_the_api_spells_reader_roles_as_the_record_format() -> None:
    """A reader's role is logged (`ledger.core.records`): the API's roles are the format's."""
    from api.models.registry import ReaderRole
    from ledger.core.bounds import READER_ROLES

    assert {role.value for role in ReaderRole} == READER_ROLES
