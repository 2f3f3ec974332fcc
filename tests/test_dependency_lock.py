"""requirements/*.lock against pyproject.toml, offline: each lock was resolved from the
pyproject it sits beside (the digest in its header), pins every requirement of its extra to one
version inside the requirement's range with hashes, admits no pre-release but the allowed ones,
and `make setup` installed exactly the dev lock. Each check is also shown failing on an edited
pyproject or lock."""

from __future__ import annotations

import importlib.util
import re
import sys
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).parents[1]
PYPROJECT = ROOT / "pyproject.toml"

BETA_ONLY = frozenset({"eth-tester", "py-evm"})
"""The only pre-releases a lock may hold: projects that have never published anything else
(web3's `EthereumTesterProvider`, the embedded chain, needs them). Once one of them publishes
a release, `make lock` picks it and this set must shrink (checked below)."""


def _lock_script() -> ModuleType:
    """scripts/lock.py, which writes the locks: its digest and its list of locks are the
    ones checked here."""
    spec = importlib.util.spec_from_file_location("kitledger_lock", ROOT / "scripts" / "lock.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while decorating
    spec.loader.exec_module(module)
    return module


LOCK = _lock_script()


@dataclass(frozen=True)
class Pin:
    version: Version
    hashes: tuple[str, ...]


def parse_lock(text: str) -> tuple[str | None, dict[str, Pin]]:
    """The digest a lock names in its header, and its pins by canonical name."""
    digest = None
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        if line.startswith(LOCK.DIGEST_PREFIX):
            digest = line.removeprefix(LOCK.DIGEST_PREFIX).strip()
        if line.lstrip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            logical.append(pending.strip())
            pending = ""
    pins: dict[str, Pin] = {}
    for entry in logical:
        requirement = Requirement(entry.split(" --hash=")[0])
        (spec,) = requirement.specifier
        assert spec.operator == "==", f"not an exact pin: {entry}"
        hashes = tuple(re.findall(r"--hash=sha256:([0-9a-f]{64})\b", entry))
        pins[canonicalize_name(requirement.name)] = Pin(Version(spec.version), hashes)
    return digest, pins


def _target(platform: str) -> dict[str, str]:
    """Marker values of the lock's target: CPython 3.11 on Linux, the lock's machine."""
    return {"python_version": LOCK.PYTHON_VERSION, "python_full_version": "3.11.0",
            "platform_machine": platform.split("-")[0], "sys_platform": "linux",
            "platform_system": "Linux", "os_name": "posix", "implementation_name": "cpython",
            "platform_python_implementation": "CPython", "extra": ""}


def required(pyproject: dict[str, Any], extra: str | None) -> list[Requirement]:
    """What a lock must satisfy: the build requirements and pip for the build lock; else the
    project's dependencies and the extra's, the project's own extras (`kitledger[agent]`)
    followed."""
    if extra is None:
        return [Requirement(text) for text in ["pip", *pyproject["build-system"]["requires"]]]
    project = pyproject["project"]
    extras = project.get("optional-dependencies", {})
    found = [Requirement(text) for text in project.get("dependencies", [])]
    todo, seen = [extra], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for requirement in map(Requirement, extras[name]):
            if canonicalize_name(requirement.name) == canonicalize_name(project["name"]):
                todo.extend(requirement.extras)
            else:
                found.append(requirement)
    return found


def lock_problems(pyproject: dict[str, Any], lock_text: str, extra: str | None,
                  platform: str) -> list[str]:
    """Every way the lock fails its pyproject; empty when it matches."""
    digest, pins = parse_lock(lock_text)
    problems = []
    if digest != LOCK.dependency_digest(pyproject):
        problems.append("resolved from other pyproject dependencies: run `make lock`")
    target = _target(platform)
    for requirement in required(pyproject, extra):
        if requirement.marker is not None and not requirement.marker.evaluate(target):
            continue
        pin = pins.get(canonicalize_name(requirement.name))
        if pin is None:
            problems.append(f"{requirement.name} is not pinned")
        elif not requirement.specifier.contains(pin.version, prereleases=True):
            problems.append(f"{requirement.name}=={pin.version} is outside {requirement}")
    for name, pin in sorted(pins.items()):
        if not pin.hashes:
            problems.append(f"{name}=={pin.version} has no hash")
        if (pin.version.is_prerelease or pin.version.is_devrelease) and name not in BETA_ONLY:
            problems.append(f"{name}=={pin.version} is a pre-release")
    return problems


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))


def _text(name: str) -> str:
    return (ROOT / "requirements" / name).read_text(encoding="utf-8")


@pytest.mark.parametrize("lock", LOCK.LOCKS, ids=lambda lock: lock.name)
def test_each_lock_matches_pyproject(pyproject: dict[str, Any], lock: Any) -> None:
    _, pins = parse_lock(_text(lock.name))
    assert len(pins) >= len(required(pyproject, lock.extra))  # the parse found the pins
    assert lock_problems(pyproject, _text(lock.name), lock.extra, lock.platform) == []


def test_the_dev_lock_holds_agent_and_server_and_the_tools(pyproject: dict[str, Any]) -> None:
    names = {canonicalize_name(r.name) for r in required(pyproject, "dev")}
    assert {"pyserial", "fastapi", "web3", "pytest", "uv", "cryptography"} <= names
    assert names <= set(parse_lock(_text("dev.lock"))[1])


def test_the_server_lock_leaves_the_test_tools_out() -> None:
    server = set(parse_lock(_text("server.lock"))[1])
    assert {"fastapi", "web3", "pyserial"} <= server
    assert not {"pytest", "playwright", "mypy", "ruff", "uv", "schemathesis"} & server


def test_pre_releases_are_only_the_beta_only_projects() -> None:
    held = {name for lock in LOCK.LOCKS
            for name, pin in parse_lock(_text(lock.name))[1].items()
            if pin.version.is_prerelease or pin.version.is_devrelease}
    assert held == BETA_ONLY


@pytest.mark.parametrize("name", ["build.lock", "server.lock", "agent.lock", "audit.lock"])
def test_every_lock_holds_the_tested_versions(name: str) -> None:
    """A server or a Pi runs the versions `make test` ran; build.lock and dev.lock go into one
    venv, where a package at two versions would leave it matching neither."""
    assert name != LOCK.TESTED
    pins, tested = parse_lock(_text(name))[1], parse_lock(_text(LOCK.TESTED))[1]
    shared = set(pins) & set(tested)
    assert "packaging" in shared if name == "build.lock" else "cryptography" in shared
    assert {n: pins[n].version for n in shared} == {n: tested[n].version for n in shared}


def test_the_venv_is_the_dev_lock() -> None:
    """`make setup` installed every pin at its version (a venv left from before a re-lock, or
    one made with a plain `pip install -e .[dev]`, fails here)."""
    _, pins = parse_lock(_text(LOCK.TESTED))
    installed = {name: metadata.version(name) for name in pins}
    assert installed == {name: str(pin.version) for name, pin in pins.items()}


# The checks failing: each edit below is one a real mistake would make.

def _edited(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


def _fastapi_pin(text: str) -> str:
    match = re.search(r"^fastapi==\S+", text, re.MULTILINE)
    assert match is not None
    return match.group(0)


def test_a_missing_pin_is_caught(pyproject: dict[str, Any]) -> None:
    text = _text("dev.lock")
    without = re.sub(r"^fastapi==.*?(?=^\S)", "", text, count=1, flags=re.MULTILINE | re.DOTALL)
    assert "fastapi==" not in without
    assert lock_problems(pyproject, without, "dev", "x86_64") == ["fastapi is not pinned"]


def test_a_pin_outside_the_range_is_caught(pyproject: dict[str, Any]) -> None:
    text = _text("dev.lock")
    old = _edited(text, _fastapi_pin(text), "fastapi==0.99.0")
    assert lock_problems(pyproject, old, "dev", "x86_64") == [
        "fastapi==0.99.0 is outside fastapi>=0.115"]


def test_a_pre_release_or_an_unhashed_pin_is_caught(pyproject: dict[str, Any]) -> None:
    text = _text("agent.lock")
    beta = _edited(text, "pyserial==3.5 \\", "pyserial==3.6b1 \\")
    assert lock_problems(pyproject, beta, "agent", "aarch64") == [
        "pyserial==3.6b1 is a pre-release"]
    unhashed = re.sub(r"^(pyserial==3\.5) \\\n(\s+--hash=\S+ \\\n)*\s+--hash=\S+$", r"\1",
                      text, count=1, flags=re.MULTILINE)
    assert lock_problems(pyproject, unhashed, "agent", "aarch64") == [
        "pyserial==3.5 has no hash"]


def test_a_dependency_edited_without_relocking_is_caught(pyproject: dict[str, Any]) -> None:
    edited = {**pyproject, "project": {**pyproject["project"], "optional-dependencies": {
        **pyproject["project"]["optional-dependencies"],
        "agent": [*pyproject["project"]["optional-dependencies"]["agent"], "smbus2>=0.4"]}}}
    assert lock_problems(edited, _text("agent.lock"), "agent", "aarch64") == [
        "resolved from other pyproject dependencies: run `make lock`",
        "smbus2 is not pinned"]
    narrowed = {**pyproject, "project": {**pyproject["project"], "dependencies": [
        "rfc8785>=0.1.4", "cryptography>=99"]}}
    assert lock_problems(narrowed, _text("agent.lock"), "agent", "aarch64")[1:] == [
        f"cryptography=={parse_lock(_text('agent.lock'))[1]['cryptography'].version}"
        " is outside cryptography>=99"]
