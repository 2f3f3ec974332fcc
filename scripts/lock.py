"""Writes the dependency locks in requirements/ from pyproject.toml (run as `make lock`).

Each lock pins every distribution its set-up installs to one version with the sha256 of each of
that version's files, so `pip install --require-hashes -r <lock>` installs the same bytes on
every machine. uv resolves (`uv pip compile`): it resolves for a named Python and platform
rather than for the machine it runs on, so the Raspberry Pi's lock can be made on a developer's
x86 machine. Installing from a lock needs only pip.

Each lock opens with the digest of the pyproject sections it was resolved from
(`dependency_digest`); tests/test_dependency_lock.py recomputes it, so a dependency edited in
pyproject.toml without `make lock` fails the tests.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

ROOT: Final = Path(__file__).resolve().parents[1]
PYPROJECT: Final = ROOT / "pyproject.toml"
LOCK_DIR: Final = ROOT / "requirements"
PYTHON_VERSION: Final = "3.11"
DIGEST_PREFIX: Final = "# pyproject-dependencies-sha256: "
REGENERATE: Final = "make lock"


@dataclass(frozen=True, slots=True)
class Lock:
    """One lock file: what it is for, which pyproject requirements, and for which platform."""

    name: str
    purpose: str
    extra: str | None
    platform: str


LOCKS: Final = (
    # dev.lock first: the others are resolved within its pins (`_compile`).
    Lock("dev.lock", "`make setup`: the dev extra (agent, server and the test tools)",
         "dev", "x86_64-manylinux_2_28"),
    Lock("build.lock", "pip and the build backend (`pip install --no-build-isolation -e .`)",
         None, "x86_64-manylinux_2_28"),
    Lock("server.lock", "a server: the server extra (with the agent's), without the test tools",
         "server", "x86_64-manylinux_2_28"),
    Lock("agent.lock", "a reader's Raspberry Pi (64-bit OS): the agent extra",
         "agent", "aarch64-manylinux_2_28"),
    Lock("audit.lock", "an auditor's machine: the audit extra (verify --rpc, report, epcis)",
         "audit", "x86_64-manylinux_2_28"),
)
TESTED: Final = "dev.lock"
"""The lock the tests run on; every other lock holds the same version of each package they
share, so a server or a Pi runs what `make test` tested."""


def dependency_digest(pyproject: dict[str, Any]) -> str:
    """sha256 of the pyproject sections a lock depends on, independent of their formatting:
    the build requirements, requires-python, the dependencies and every extra."""
    project = pyproject["project"]
    sections = {
        "build-system.requires": pyproject["build-system"]["requires"],
        "requires-python": project.get("requires-python"),
        "dependencies": project.get("dependencies", []),
        "optional-dependencies": project.get("optional-dependencies", {}),
    }
    canonical = json.dumps(sections, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _compile(uv: str, lock: Lock, pyproject: dict[str, Any], workdir: Path,
             upgrade: bool) -> str:
    """`uv pip compile` for one lock; its body, without uv's own header. uv keeps each pin of
    the current lock that still satisfies pyproject, unless `upgrade`."""
    output = workdir / lock.name
    if (LOCK_DIR / lock.name).exists():
        shutil.copyfile(LOCK_DIR / lock.name, output)
    command = [uv, "pip", "compile", "--quiet", "--no-header", "--generate-hashes",
               "--python-version", PYTHON_VERSION, "--python-platform", lock.platform,
               "--output-file", lock.name]
    if upgrade:
        command.append("--upgrade")
    if lock.name != TESTED:
        tested = (LOCK_DIR / TESTED).read_text(encoding="utf-8")
        (workdir / "tested.txt").write_text(
            "\n".join(re.findall(r"^[A-Za-z0-9._-]+==\S+", tested, re.MULTILINE)) + "\n")
        command += ["--constraint", "tested.txt"]
    if lock.extra is None:
        # pip itself is locked here too: the set-up upgrades the venv's pip from this file.
        (workdir / "build.in").write_text(
            "\n".join(["pip", *pyproject["build-system"]["requires"]]) + "\n")
        command.append("build.in")
    else:
        command += [str(PYPROJECT), "--extra", lock.extra]
    # The command is uv and fixed options; its only inputs are the project's own files.
    run = subprocess.run(command, cwd=workdir, capture_output=True, text=True)  # noqa: S603
    if run.returncode != 0:
        raise SystemExit(f"uv pip compile for requirements/{lock.name} failed:\n{run.stderr}")
    body = output.read_text(encoding="utf-8")
    # Annotations name the inputs as given: keep them free of scratch and checkout paths.
    return (body.replace("-r build.in", "pyproject.toml [build-system]")
            .replace("-c tested.txt", f"-c requirements/{TESTED}")
            .replace(f"({PYPROJECT})", "(pyproject.toml)"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uv", default=shutil.which("uv", path=str(Path(sys.executable).parent))
                        or shutil.which("uv"), help="the uv executable (default: the venv's)")
    parser.add_argument("--upgrade", action="store_true",
                        help="move every pin to the newest release pyproject allows")
    args = parser.parse_args()
    if not args.uv:
        parser.error("uv not found: run `make setup` first (the dev extra installs it)")
    pyproject = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    digest = dependency_digest(pyproject)
    LOCK_DIR.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        for lock in LOCKS:
            body = _compile(args.uv, lock, pyproject, Path(scratch), args.upgrade)
            header = (f"# {lock.purpose}.\n"
                      f"# Python {PYTHON_VERSION}, {lock.platform}; regenerate with `{REGENERATE}`"
                      " (uv pip compile), never by hand.\n"
                      f"{DIGEST_PREFIX}{digest}\n")
            path = LOCK_DIR / lock.name
            # An unchanged lock keeps its timestamp, so `make setup` does not rebuild the venv.
            if path.exists() and path.read_text(encoding="utf-8") == header + body:
                print(f"requirements/{lock.name} unchanged")
                continue
            path.write_text(header + body, encoding="utf-8")
            print(f"wrote requirements/{lock.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
