"""The repository stands alone and its architecture page stays true.

Code, tests and docs never send a reader to notes kept outside the repository (what the code
relies on is written down in `docs/`), and every module or folder `docs/architecture.md` names
exists, so the page cannot drift from the code it maps.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTSIDE = re.compile(
    r"\.\./shared|(?<![\w/-])(?:DESIGN|TOOLCHAIN|STYLE)\.md|(?<![\w/])reader-protocols\.md")
"""Design notes that live beside the repository, not in it (`docs/reader-protocols.md` is ours)."""
SKIPPED = (".lock", ".png", ".json")


def _tracked() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode().split("\0")
    return [ROOT / name for name in listed if name and not name.endswith(SKIPPED)]


def outside_references(files: list[Path], root: Path = ROOT) -> list[str]:
    found = []
    for path in files:
        if not path.is_file() or path == Path(__file__).resolve():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        found += [f"{path.relative_to(root)}:{n}" for n, line in enumerate(text.splitlines(), 1)
                  if OUTSIDE.search(line)]
    return found


def test_nothing_points_outside_the_repository() -> None:
    files = _tracked()
    assert len(files) > 100
    assert outside_references(files) == []


def test_the_check_would_catch_an_outside_reference(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text('"""Framing: see reader-protocols.md section 4."""\n'
                     "# in docs/reader-protocols.md: fine\n"
                     "# the invariants (DESIGN.md)\n"
                     "# ../shared/standards\n")
    assert outside_references([probe], tmp_path) == ["probe.py:1", "probe.py:3", "probe.py:4"]


NAMED = re.compile(r"`((?:api|ledger|reader_agent|demo|hardware|tests|contracts|docs)/[\w./-]*)`")


def named_paths(text: str) -> list[str]:
    """The repository paths (files or folders) a page names in backticks."""
    return sorted(set(NAMED.findall(text)))


def _exists(name: str) -> bool:
    return any((base / name.rstrip("/")).exists() for base in (ROOT, ROOT / "reader-agent"))


def test_every_path_the_architecture_page_names_exists() -> None:
    names = named_paths((ROOT / "docs" / "architecture.md").read_text())
    assert len(names) > 30
    assert [name for name in names if not _exists(name)] == []


def test_a_moved_module_would_be_caught() -> None:
    assert not _exists("api/ingest/verify.py")
    assert named_paths("the checks (`api/ingest/verify.py`) and `ledger/core/`") == [
        "api/ingest/verify.py", "ledger/core/"]
