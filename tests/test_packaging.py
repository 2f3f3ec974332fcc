"""What `pip install kitledger[...]` puts on a server or a Pi: the built wheel carries every
file the code reads besides its Python (templates, static files, the contract's ABI, the
migrations' template, the demo's scenarios), not only what an editable checkout happens to have
beside it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PACKAGES = ("api", "ledger", "demo", "reader-agent/reader_agent", "hardware")


DATA_SUFFIXES = (".html", ".j2", ".css", ".js", ".json", ".mako", ".typed")
"""What the code reads from its own packages: templates, static files, the contract's ABI,
the migrations' template, the type marker. (The Pi's set-up files and example configs under
hardware/ and reader-agent/ are copied by hand, not installed.)"""


def _tracked_data_files() -> list[str]:
    """The packages' tracked data files, as wheel paths (the agent's package sits at the top
    of the wheel, not under reader-agent/)."""
    listed = subprocess.run(["git", "ls-files", "--", *PACKAGES], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.split()
    return [path.removeprefix("reader-agent/") for path in listed
            if path.endswith(DATA_SUFFIXES)]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    """The wheel built from the checkout's files alone, as from a clean clone: a build in the
    checkout itself also ships whatever its kitledger.egg-info/SOURCES.txt lists."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, check=True, capture_output=True, text=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file():  # not one deleted but not yet committed
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--wheel-dir", str(out), str(source)], check=True, capture_output=True)
    (built,) = out.glob("kitledger-*.whl")
    with zipfile.ZipFile(built) as archive:
        yield archive


def test_wheel_carries_every_tracked_data_file_of_the_packages(wheel: zipfile.ZipFile) -> None:
    wanted = _tracked_data_files()
    assert "api/alembic/script.py.mako" in wanted  # the listing found the data files
    assert "ledger/chain/artifacts/CustodyAnchor.json" in wanted
    assert sorted(set(wanted) - set(wheel.namelist())) == []


def test_wheel_carries_the_migrations_and_every_package(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    migrations = sorted(p.relative_to(ROOT).as_posix()
                        for p in (ROOT / "api" / "alembic" / "versions").glob("*.py"))
    assert migrations
    assert sorted(set(migrations) - names) == []
    for package in ("api/__init__.py", "ledger/__init__.py", "reader_agent/__init__.py",
                    "hardware/__init__.py", "demo/__init__.py", "ledger/verify/__init__.py"):
        assert package in names


def test_wheel_carries_the_demo_and_its_scenarios(wheel: zipfile.ZipFile) -> None:
    """`kitledger up` from an installed wheel: the orchestrator and every scenario a demo
    reader plays, read from the package, not from a checkout's folder."""
    from demo.seed import DEMO_READERS

    names = set(wheel.namelist())
    scenarios = sorted(f"demo/scenarios/{reader.scenario}" for reader in DEMO_READERS)
    tracked = sorted(p.relative_to(ROOT).as_posix()
                     for p in (ROOT / "demo" / "scenarios").glob("*.toml"))
    assert scenarios == tracked
    assert sorted(set(scenarios) - names) == []
    modules = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "demo").glob("*.py"))
    assert "demo/up.py" in modules
    assert sorted(set(modules) - names) == []


def test_wheel_declares_the_command_parts(wheel: zipfile.ZipFile) -> None:
    """The `kitledger` dispatcher finds its subcommands through the wheel's entry points."""
    (points,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    text = wheel.read(points).decode()
    assert "[kitledger.commands]" in text
    for value in ("ledger.commands.verify:register", "api.commands:register",
                  "demo.up:register"):
        assert value in text


def test_wheel_installs_the_pi_with_the_agent_extra(wheel: zipfile.ZipFile) -> None:
    """`pip install 'kitledger-*.whl[agent]'` (docs/deploy.md) brings the serial, MQTT, GPIO and
    LLRP libraries and nothing of the server; the agency's `reader-ca` needs no extra at all."""
    (metadata,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    requires = [line.removeprefix("Requires-Dist: ")
                for line in wheel.read(metadata).decode().splitlines()
                if line.startswith("Requires-Dist: ")]
    agent = sorted(re.split("[<>=]", r)[0] for r in requires if r.endswith('extra == "agent"'))
    assert agent == ["bitstring", "gpiozero", "paho-mqtt", "pyllrp", "pyserial"]
    assert "Provides-Extra: agent" in wheel.read(metadata).decode()
    (points,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    assert "reader-ca = ledger.commands.reader_ca:register" in wheel.read(points).decode()
