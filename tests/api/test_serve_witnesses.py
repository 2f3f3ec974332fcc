"""`kitledger serve` with witnesses configured, as real processes: a cosigning process starts
beside the anchorer, a live `kitledger witness serve` cosigns the agency log's checkpoint, a
witness that accepts connections but never answers holds nothing up (ingest stores what a
reader publishes meanwhile), and /metrics shows that witness behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, text
from sqlmodel import Session, select

from api.agency_keys import log_key
from api.config import load_settings
from api.db import make_engine
from api.migrate import upgrade
from api.models import AssetClass, IngestedObservation
from api.models.assets import AssetCreate
from api.registry import create_asset
from ledger.core import note
from ledger.core.envelope import key_id, raw_public_key
from tests.api.api_support import register_reader
from tests.fixtures.polling import wait_for
from tests.fixtures.ports import free_port, wait_for_port
from tests.fixtures.processes import descendants
from tests.fixtures.witnesses import keygen, start_witness


def test_serve_collects_cosignatures_without_waiting_for_witnesses(
        tmp_path: Path, mosquitto: object) -> None:
    url = f"sqlite:///{tmp_path / 'served.db'}"
    engine = make_engine(load_settings(database_url=url))
    upgrade(engine)
    desk = register_reader(engine)
    with Session(engine) as session:
        session.add(AssetClass(id="radio", agency_id="north", name="Radio"))
        session.flush()
        create_asset(session, agency_id="north", now=datetime.now(UTC), data=AssetCreate(
            id="R-1", class_id="radio", epc_hex="E28011606000020500000001",
            home_site_id="north-store"))
        session.commit()
    key = log_key(tmp_path / "keys", "north")  # made now, so the witness can be told its vkey
    origin = note.log_origin(key_id(key.public_key()))
    log_vkey = note.NoteVerifier(origin, note.ED25519, raw_public_key(key.public_key())).vkey()
    live = start_witness(tmp_path, "w-live.example", [(origin, log_vkey)])
    _, silent_vkey = keygen(tmp_path, "w-silent.example")
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections (the kernel does), never reads or answers
    witnesses = [{"url": live.url, "vkey": live.vkey},
                 {"url": f"http://127.0.0.1:{silent.getsockname()[1]}", "vkey": silent_vkey}]
    port = free_port()
    env = {**os.environ, "KITLEDGER_MQTT_URL": mosquitto.url,  # type: ignore[attr-defined]
           "KITLEDGER_DATABASE_URL": url, "KITLEDGER_LOG_KEY_DIR": str(tmp_path / "keys"),
           "KITLEDGER_ANCHOR_CHAIN_URL": "none", "KITLEDGER_ANCHOR_INTERVAL_S": "1",
           "KITLEDGER_WITNESSES": json.dumps(witnesses), "KITLEDGER_WITNESS_TIMEOUT_S": "20",
           "KITLEDGER_WITNESS_INTERVAL_S": "1", "KITLEDGER_METRICS_KEY": "m" * 32}
    server = subprocess.Popen([sys.executable, "-m", "ledger.cli", "serve", "--port", str(port),
                               "--ingest-workers", "1"], env=env, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, timeout=30)

        def cosigned() -> bool:
            with engine.connect() as conn:
                return bool(conn.execute(text(
                    "SELECT COUNT(*) FROM checkpoint_cosignature WHERE witness = 'w-live.example'"
                )).scalar())

        assert wait_for(cosigned, timeout=60), "the live witness never cosigned"
        # The silent witness is being waited on (20 s timeout) right now; ingest goes on.
        agent = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        agent.connect("127.0.0.1", mosquitto.port)  # type: ignore[attr-defined]
        agent.loop_start()
        started, stored, seq = time.monotonic(), 0, 0
        while stored == 0 and time.monotonic() - started < 30:
            agent.publish(desk.topic, desk.signed(seq), qos=1).wait_for_publish(5)
            seq += 1
            time.sleep(0.3)
            with Session(engine) as session:
                stored = session.exec(select(func.count()).select_from(IngestedObservation)).one()
        agent.loop_stop()
        assert stored > 0 and time.monotonic() - started < 15
        assert len(descendants(server.pid)) >= 4  # ingest, anchoring, cosigning, tracker
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics",
                            headers={"Authorization": "Bearer " + "m" * 32}).text
        assert 'kitledger_witness_behind_checkpoints{agency="north",witness="w-silent.example"}' \
            in metrics
        behind = next(line for line in metrics.splitlines() if line.startswith(
            'kitledger_witness_behind_checkpoints{agency="north",witness="w-silent.example"}'))
        assert float(behind.rsplit(" ", 1)[1]) >= 1
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=90)
        live.stop()
        silent.close()
    assert server.returncode == 0, err.decode(errors="replace")[-2000:]
    assert b"Traceback" not in err, err.decode(errors="replace")[-2000:]
