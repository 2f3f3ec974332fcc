"""The dependency direction: the reader agent never pulls in the API or the chain client;
and each part's imports are installed by the extra that part is installed with.

A Raspberry Pi installs only the `agent` extra, so an import of `api`, `ledger.chain`, web3 or
FastAPI from `reader_agent` would break it in the field. Checked two ways: statically over every
module's imports, and by importing every module in a fresh interpreter and looking at
`sys.modules`. An auditor installs `kitledger[audit]` and a server `kitledger[server]`: every
library the ledger, the API or the demo imports must come with its extra, not only with the
`dev` extra the tests run under.
"""

from __future__ import annotations

import importlib.metadata as metadata
import json
import subprocess
import sys
from pathlib import Path
from typing import Final

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.ledger.import_scan import imported_modules
from tests.paths import REPO_ROOT

ROOT = REPO_ROOT
AGENT = ROOT / "reader-agent" / "reader_agent"
FORBIDDEN = ("api", "ledger.chain", "web3", "eth_tester", "fastapi", "sqlmodel", "sqlalchemy")


def _forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def _imports(path: Path) -> list[str]:
    """The absolute module names `path` imports."""
    return imported_modules(path)


def test_agent_sources_import_nothing_forbidden() -> None:
    offenders = []
    files = sorted(AGENT.rglob("*.py"))
    assert files, "reader_agent has no modules?"
    for path in files:
        offenders += [f"{path.relative_to(ROOT)}: {n}" for n in _imports(path) if _forbidden(n)]
    assert offenders == []


OURS = frozenset({"api", "ledger", "reader_agent", "hardware", "demo"})
OPTIONAL = frozenset({"nacl"})
"""Imported only inside `try: ... except ImportError` (libsodium in
`ledger.core.ed25519`, which the audit and server extras install)."""


def _installed_with(extras: frozenset[str]) -> set[str]:
    """The distributions `pip install kitledger[extras]` brings, by their installed metadata
    (this environment's markers): kitledger's requirements, theirs, and so on."""
    found: set[str] = set()
    todo = [("kitledger", extras)]
    while todo:
        name, wanted = todo.pop()
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue  # required only where this environment's markers say otherwise
        for text in requires:
            requirement = Requirement(text)
            marker = requirement.marker
            if marker is not None and not any(
                    marker.evaluate({"extra": extra}) for extra in wanted | {""}):
                continue
            key = canonicalize_name(requirement.name)
            if key != "kitledger":  # itself with other extras: walked again, never listed
                if key in found:
                    continue
                found.add(key)
            todo.append((key, frozenset(requirement.extras)))
    return found


def _unprovided(sources: list[Path], extras: frozenset[str]) -> list[str]:
    """The third-party imports of `sources` that `kitledger[extras]` does not install."""
    provided = _installed_with(extras)
    distributions = metadata.packages_distributions()
    missing = []
    for path in sources:
        for name in _imports(path):
            top = name.partition(".")[0]
            if top in sys.stdlib_module_names or top in OURS | OPTIONAL or top == "__future__":
                continue
            if not any(canonicalize_name(d) in provided for d in distributions.get(top, [])):
                shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
                missing.append(f"{shown}: {name}")
    return missing


@pytest.mark.parametrize(("part", "extras"), [
    ("ledger/core", frozenset()),
    ("reader-agent/reader_agent", frozenset({"agent"})),
    ("ledger", frozenset({"audit"})),
    ("api", frozenset({"server"})),
    ("demo", frozenset({"server"})),
])
def test_every_library_a_part_imports_comes_with_its_extra(
    part: str, extras: frozenset[str],
) -> None:
    sources = sorted((ROOT / part).rglob("*.py"))
    assert sources, part
    assert _unprovided(sources, extras) == []


def test_extra_check_would_catch_a_library_only_the_tests_install(tmp_path: Path) -> None:
    module = tmp_path / "uses_pytest.py"
    module.write_text("import json\nfrom api import app\nimport pytest\nimport fastapi\n")
    assert _unprovided([module], frozenset({"server"})) == [f"{module}: pytest"]
    assert _unprovided([module], frozenset({"agent"})) == [f"{module}: pytest",
                                                           f"{module}: fastapi"]
    assert _unprovided([module], frozenset({"dev"})) == []


def test_importing_every_agent_module_loads_nothing_forbidden() -> None:
    script = """
import importlib, json, pkgutil, sys
import reader_agent
for info in pkgutil.walk_packages(reader_agent.__path__, "reader_agent."):
    if not info.name.endswith("__main__"):
        importlib.import_module(info.name)
print(json.dumps(sorted(sys.modules)))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    )
    loaded = json.loads(out.stdout)
    assert "reader_agent" in loaded
    assert [m for m in loaded if _forbidden(m)] == []


def test_checker_would_catch_a_violation() -> None:
    assert _forbidden("ledger.chain.client")
    assert _forbidden("web3")
    assert not _forbidden("ledger.core.envelope")
    assert not _forbidden("apiary")


TABLE_REACHES = ("__table__", "metadata.tables[")
"""The ways to reach a model's Core `Table` other than `api.db.table`, which is the one way."""


def _reaches_table_directly(path: Path, root: Path = ROOT) -> list[str]:
    return [f"{path.relative_to(root)}:{number}"
            for number, line in enumerate(path.read_text().splitlines(), start=1)
            if any(reach in line for reach in TABLE_REACHES)]


def test_tables_are_reached_one_way() -> None:
    allowed = ROOT / "api" / "db" / "tables.py"
    files = [p for folder in ("api", "ledger", "bench", "tests", "hardware")
             for p in sorted((ROOT / folder).rglob("*.py"))
             if p != allowed and p != Path(__file__)]
    assert files
    offenders = [hit for path in files for hit in _reaches_table_directly(path)]
    assert offenders == []


def test_table_reach_check_would_catch_one(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("import x\nROWS = Asset.__table__\n")
    assert _reaches_table_directly(probe, tmp_path) == ["probe.py:2"]


LAYERS: Final = {
    "api/custody": ("api.ingest",),
    "api/logstore.py": ("api.custody", "api.ingest"),
}
"""Ingest -> custody -> log store: each part (a package or a module) and what it must never
import, so that the parts can be read, and changed, from the bottom up."""


def _imported_names(path: Path) -> list[str]:
    """What `path` imports, each `from package import name` also as `package.name`."""
    return imported_modules(path, with_names=True)


def _layer_violations(root: Path, layers: dict[str, tuple[str, ...]]) -> list[str]:
    offenders = []
    for part, below in layers.items():
        start = root / part
        files = sorted(start.rglob("*.py")) if start.is_dir() else [start]
        assert files and all(f.exists() for f in files), part
        for path in files:
            bad = {name for name in _imported_names(path)
                   if any(name == b or name.startswith(b + ".") for b in below)}
            # `from api.ingest.checks import Verified` is one offence, not two.
            offenders += [f"{path.relative_to(root)}: {name}" for name in sorted(bad)
                          if name.rpartition(".")[0] not in bad]
    return offenders


def test_dependencies_run_from_ingest_to_custody_to_the_log_store() -> None:
    assert _layer_violations(ROOT, LAYERS) == []


def test_layer_check_would_catch_an_upward_import(tmp_path: Path) -> None:
    custody = tmp_path / "api" / "custody"
    custody.mkdir(parents=True)
    (custody / "ruling.py").write_text(
        "from api.ingest.checks import Verified\nfrom api.custody import reads\n")
    (custody / "late.py").write_text("def f() -> None:\n    from api import ingest\n")
    (tmp_path / "api" / "logstore.py").write_text("import api.custody.events\n")
    assert sorted(_layer_violations(tmp_path, LAYERS)) == [
        "api/custody/late.py: api.ingest",
        "api/custody/ruling.py: api.ingest.checks",
        "api/logstore.py: api.custody.events",
    ]
