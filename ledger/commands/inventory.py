"""`kitledger inventory redraw`: draw a logged inventory's sample again and hold the agency's
lists to the log.

The auditor gives an audit bundle (check it first with `kitledger verify`), the leaf of the
`inventory-taken` record (the report prints it), and the inventory as the agency's API gave it
(`GET /v1/inventories/{id}`: its population, the items looked for and the five lists). The
command checks that the population is the one the record commits to, draws the sample again
from the logged seed (`ledger.core.sampling.draw`; a full count looks for every item), that it
is the list the agency looked for, and that the lists are the ones the record commits to.
Prints one JSON verdict; exits 0 when all of this holds, 1 when something does not, 2 for
unusable input.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ledger.cli import EXIT_FAILED, EXIT_OK, EXIT_UNUSABLE, emit, say_error
from ledger.core.bundle_parse import parse_bundle
from ledger.core.encoding import parse_record
from ledger.core.errors import LedgerError
from ledger.core.records import INVENTORY_TAKEN, RegistryRecord
from ledger.core.sampling import RECONCILED, SamplingError, draw, list_hash, reconciliation_hash
from ledger.verify.sources import read_bundle

TODO = "give the bundle, the record's leaf (from the report) and the API's inventory answer"


class Unusable(ValueError):
    """Input the command cannot judge."""


def _record(bundle_path: str, leaf: int) -> RegistryRecord:
    bundle = parse_bundle(read_bundle(bundle_path))
    for item in bundle.registry:
        if item.leaf_index == leaf:
            record = RegistryRecord.from_record(parse_record(item.record))
            if record.kind != INVENTORY_TAKEN:
                raise Unusable(f"the record at leaf {leaf} is a {record.kind}, not an "
                               f"{INVENTORY_TAKEN}")
            return record
    raise Unusable(f"the bundle holds no registry record at leaf {leaf}")


def _ids(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) and item.isascii()
                                              for item in value):
        raise Unusable(f"{name} must be a list of ids")
    return value


def _mismatch(record: RegistryRecord, inventory: dict[str, Any]) -> str | None:
    """What the agency's inventory and the record disagree on, or None."""
    population = _ids(inventory.get("population"), "population")
    looked_for = _ids(inventory.get("looked_for"), "looked_for")
    lists = inventory.get("lists")
    if not isinstance(lists, dict) or set(lists) != set(RECONCILED):
        raise Unusable(f"lists must hold {', '.join(RECONCILED)}")
    shown = {name: _ids(lists[name], name) for name in RECONCILED}
    if list_hash(population).hex() != record.get("population_hash"):
        return "the population is not the one the record commits to"
    seed = record.get("seed")
    drawn = (sorted(set(population)) if seed is None
             else draw(bytes.fromhex(seed), population, int(record.get("sample"))))
    if drawn != sorted(looked_for) or drawn != sorted(shown["expected"]):
        return (f"the seed draws {len(drawn)} items that are not the ones the agency looked "
                "for")
    if reconciliation_hash(shown).hex() != record.get("lists"):
        return "the lists are not the ones the record commits to"
    return None


def run(args: argparse.Namespace) -> int:
    try:
        record = _record(args.bundle, args.leaf)
        inventory = json.loads(Path(args.inventory).read_text(encoding="utf-8"))
        if not isinstance(inventory, dict):
            raise Unusable("the inventory file must hold a JSON object")
        reason = _mismatch(record, inventory)
    except (Unusable, OSError, ValueError, LedgerError, SamplingError) as err:
        emit({"verdict": "unusable", "reason": str(err)})
        say_error("kitledger inventory redraw", str(err), TODO)
        return EXIT_UNUSABLE
    facts = {"leaf": args.leaf, "site": record.get("site"), "mode": record.get("mode"),
             "sample": record.get("sample"), "seed": record.get("seed")}
    if reason is not None:
        emit({"verdict": "invalid", **facts, "reason": reason})
        return EXIT_FAILED
    emit({"verdict": "valid", **facts})
    return EXIT_OK


def register(subparsers: Any) -> None:
    """Add `inventory redraw` to the `kitledger` parser."""
    inventory = subparsers.add_parser("inventory", help="check a logged inventory's sample")
    actions = inventory.add_subparsers(dest="inventory_action", required=True,
                                       parser_class=type(inventory))
    redraw = actions.add_parser("redraw", help="draw the sample again from the logged seed "
                                "and hold the agency's lists to the record")
    redraw.add_argument("bundle", help="audit bundle holding the record (verify it first)")
    redraw.add_argument("--leaf", required=True, type=int,
                        help="the inventory-taken record's leaf (the report prints it)")
    redraw.add_argument("--inventory", required=True,
                        help="the agency's inventory: GET /v1/inventories/{id} saved as JSON")
    redraw.set_defaults(run=run)
