"""`kitledger-agent stocktake`: a handheld collects a walk from the simulated serial reader over
a real pty, offline, signs it with its own key into a file, and uploads it later to the real API
over HTTP, which reconciles the session; sequence numbers are never reused, a walk sent twice is
refused, and a broken walk file or a missing key is refused before anything is sent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from reader_agent.identity import create_key
from reader_agent.stocktake import StocktakeError, reserve
from sqlmodel import Session

from api import registry as api_registry
from api.app import create_app
from api.auth import create_api_client
from api.config import load_settings
from api.db import make_engine
from api.migrate import upgrade
from api.models import Agency, Scope, Site
from api.models.assets import AssetClassCreate, AssetCreate
from api.models.people import PersonCreate
from api.models.registry import ReaderCreate, ReaderRole
from hardware.simulator import ReaderSimulator, Scenario, TagSpec
from ledger.core.envelope import raw_public_key
from tests.fixtures.live_app import served

AGENT = str(Path(sys.executable).parent / "kitledger-agent")
SECRET = "s" * 40
TAGS = {"R-1": "E28011606000020500000001", "R-2": "E28011606000020500000002",
        "R-3": "E28011606000020500000003"}
STRAY = "E28011606000020500000077"


class Handheld:
    def __init__(self, url: str, key: str, key_file: Path, seq_file: Path) -> None:
        self.url, self.key, self.key_file, self.seq_file = url, key, key_file, seq_file

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, self.url + path, timeout=10,
                             headers={"Authorization": f"Bearer {self.key}"}, **kwargs)

    def agent(self, *args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KITLEDGER_API_KEY": self.key if key is None else key}
        return subprocess.run([AGENT, "stocktake", *args], capture_output=True, text=True,
                              timeout=60, env=env, check=False)

    def collect(self, sim: ReaderSimulator, out: Path) -> subprocess.CompletedProcess[str]:
        return self.agent("collect", "--protocol", sim.protocol, "--port", sim.port_path,
                          "--device", "hh-1", "--key", str(self.key_file), "--seq-file",
                          str(self.seq_file), "--seconds", "0.5", "--out", str(out))

    def open(self) -> int:
        opened = self.call("POST", "/v1/inventories", json={
            "site": "north-store", "reader": "hh-1", "officer": "bob"})
        assert opened.status_code == 201, opened.text
        return int(opened.json()["id"])


@pytest.fixture
def handheld(tmp_path: Path) -> Iterator[Handheld]:
    """The API served on SQLite: north's store with three radios, bob, and handheld hh-1
    registered with the key `create_key` made for it."""
    settings = load_settings(environment="test", secret_key=SECRET, log_key_dir=tmp_path / "k",
                             database_url=f"sqlite:///{tmp_path / 'api.db'}")
    engine = make_engine(settings)
    upgrade(engine)
    key_file = tmp_path / "hh-1.key"
    device_key = create_key(key_file)
    now = datetime.now(UTC)
    with Session(engine) as session:
        session.add(Agency(id="north", name="North"))
        session.flush()
        session.add(Site(id="north-store", agency_id="north", name="Store"))
        session.flush()
        api_registry.register_reader(session, agency_id="north", now=now, data=ReaderCreate(
            id="hh-1", site_id="north-store", role=ReaderRole.HANDHELD, zones={"1": "walk"},
            public_key=raw_public_key(device_key.public_key()).hex()))
        api_registry.create_class(session, agency_id="north", now=now,
                                  data=AssetClassCreate(id="radio", name="Radio"))
        session.flush()
        api_registry.create_person(session, agency_id="north", now=now,
                                   data=PersonCreate(id="bob"))
        for asset, epc in TAGS.items():
            api_registry.create_asset(session, agency_id="north", now=now, data=AssetCreate(
                id=asset, class_id="radio", epc_hex=epc, home_site_id="north-store"))
        _, key = create_api_client(session, agency_id="north", name="handheld",
                                   scopes=[Scope.CUSTODY_WRITE, Scope.ASSETS_READ],
                                   server_secret=SECRET, now=now)
        session.commit()
    with served(create_app(settings, engine)) as url:
        yield Handheld(url, key, key_file, tmp_path / "hh-1.seq")
    engine.dispose()


def _store(*epcs: str) -> Scenario:
    return Scenario(tags=tuple(TagSpec(bytes.fromhex(epc), {1: -45}) for epc in epcs),
                    protocol="r200", reads_per_second=200)


def test_a_walk_collected_offline_is_uploaded_and_reconciled(handheld: Handheld,
                                                             tmp_path: Path) -> None:
    inventory = handheld.open()
    walk = tmp_path / "walk.json"
    with ReaderSimulator(scenario=_store(TAGS["R-1"], TAGS["R-2"], STRAY)) as sim:
        collected = handheld.collect(sim, walk)
    assert collected.returncode == 0, collected.stderr
    summary = json.loads(collected.stdout)
    assert (summary["tags"], summary["first_seq"], summary["last_seq"]) == (3, 0, 2)
    assert handheld.seq_file.read_text() == "3\n"
    assert len(json.loads(walk.read_text())["observations"]) == 3
    sent = handheld.agent("upload", str(walk), "--api", handheld.url, "--inventory",
                          str(inventory))
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout)["counts"] == {"expected": 3, "found": 2, "missing": 1,
                                                 "unexpected": 0, "unknown": 1}
    assert handheld.key not in sent.stdout + sent.stderr
    lists = handheld.call("GET", f"/v1/inventories/{inventory}").json()["lists"]
    assert (lists["missing"], lists["unknown"]) == (["R-3"], [STRAY])

    # The same walk sent to the next session: it was read before that session opened.
    again = handheld.agent("upload", str(walk), "--api", handheld.url, "--inventory",
                           str(handheld.open()))
    assert again.returncode == 1 and "must start after the session opened" in again.stderr
    # A new walk takes the next numbers.
    with ReaderSimulator(scenario=_store(TAGS["R-3"])) as sim:
        second = handheld.collect(sim, tmp_path / "second.json")
    assert json.loads(second.stdout)["first_seq"] == 3


def test_bad_walks_keys_and_arguments_are_refused(handheld: Handheld, tmp_path: Path) -> None:
    inventory = handheld.open()
    broken = tmp_path / "broken.json"
    broken.write_text('{"observations": []}')
    answer = handheld.agent("upload", str(broken), "--api", handheld.url, "--inventory",
                            str(inventory))
    assert answer.returncode == 2 and "is not a walk" in answer.stderr
    no_key = handheld.agent("upload", str(broken), "--api", handheld.url, "--inventory",
                            str(inventory), key="")
    assert no_key.returncode == 2 and "KITLEDGER_API_KEY" in no_key.stderr
    with ReaderSimulator(scenario=_store(TAGS["R-1"])) as sim:
        missing_key = handheld.agent(
            "collect", "--protocol", "r200", "--port", sim.port_path, "--device", "hh-1",
            "--key", str(tmp_path / "nope.key"), "--seq-file", str(handheld.seq_file),
            "--seconds", "0.2", "--out", str(tmp_path / "w.json"))
        assert missing_key.returncode == 1 and not (tmp_path / "w.json").exists()
        bad_device = handheld.agent(
            "collect", "--protocol", "r200", "--port", sim.port_path, "--device", "hh 1",
            "--key", str(handheld.key_file), "--seq-file", str(handheld.seq_file),
            "--seconds", "0.2", "--out", str(tmp_path / "w.json"))
        assert bad_device.returncode == 2
    assert not handheld.seq_file.exists()  # nothing reserved by a refused collect
    ftp = handheld.agent("upload", str(broken), "--api", "ftp://x", "--inventory", "1")
    assert ftp.returncode == 2  # the broken file first; a good one to ftp:
    handheld.seq_file.write_text("not a number\n")
    with pytest.raises(StocktakeError):
        reserve(handheld.seq_file, 3)
    handheld.seq_file.write_text(f"{2**53 - 2}\n")
    with pytest.raises(StocktakeError):
        reserve(handheld.seq_file, 3)
