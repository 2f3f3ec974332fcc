"""Enrolment as docs/deploy.md describes it: `kitledger-agent enroll` makes the signing key and
the TLS key on the device (mode 0600) and prints only public values and a certificate request;
the agency's `kitledger reader-ca issue` turns the record into a certificate; the agent then
connects to a real Mosquitto that requires client certificates from that CA. No private key is
printed or copied: the agent uses the key file `enroll` left where agent.toml says."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from reader_agent.agent import ReaderAgent
from reader_agent.config import load_config

from tests.fixtures.mosquitto import MosquittoBroker
from tests.fixtures.ports import free_port
from tests.reader_agent.agent_support import ListSource, Subscriber, wait_for
from tests.reader_agent.test_tls import delivered, running
from tests.reader_agent.tls_support import make_pki

BIN = Path(sys.executable).parent


def _run(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, timeout=60,
                          check=False)


def test_enroll_issue_and_connect_with_the_devices_own_tls_key(
        write_config: Callable[..., Path], tmp_path: Path,
        subscriber_factory: Callable[..., Subscriber]) -> None:
    server = make_pki(tmp_path / "broker-pki")  # the broker's own certificate and its CA
    ca = tmp_path / "agency-ca"
    assert _run("kitledger", "reader-ca", "init", "--dir", str(ca), "--name",
                "testforce readers").returncode == 0
    port, plain = free_port(), free_port()
    (tmp_path / "mosquitto").mkdir()
    broker = MosquittoBroker(tmp_path / "mosquitto", plain, listeners=(
        f"per_listener_settings true\nlistener {plain} 127.0.0.1\nallow_anonymous true\n"
        f"listener {port} 127.0.0.1\ncafile {ca / 'ca.pem'}\ncertfile {server.server_cert}\n"
        f"keyfile {server.server_key}\nrequire_certificate true\n"
        "use_identity_as_username true\nallow_anonymous true\n"))
    config = write_config(mqtt_port=port)
    tls = (f'tls_ca = "{server.ca}"\ntls_cert = "certs/desk-1.crt"\n'
           'tls_key = "keys/reader-tls.key"\n')
    config.write_text(config.read_text().replace('client_id = "agent-desk-1"\n',
                                                 f'client_id = "agent-desk-1"\n{tls}'))
    enrolled = _run("kitledger-agent", "enroll", "--config", str(config))
    assert enrolled.returncode == 0, enrolled.stderr
    record = json.loads(enrolled.stdout)
    assert b"PRIVATE" not in enrolled.stdout + enrolled.stderr
    tls_key = tmp_path / "keys" / "reader-tls.key"
    assert stat.S_IMODE(os.stat(tls_key).st_mode) == 0o600
    again = json.loads(_run("kitledger-agent", "enroll", "--config", str(config)).stdout)
    assert again["tls_key_fingerprint"] == record["tls_key_fingerprint"]  # made once
    (tmp_path / "enrollment.json").write_bytes(enrolled.stdout)
    (tmp_path / "certs").mkdir()
    issued = _run("kitledger", "reader-ca", "issue", "--dir", str(ca),
                  str(tmp_path / "enrollment.json"), "--out", str(tmp_path / "certs" /
                                                                  "desk-1.crt"))
    assert issued.returncode == 0, issued.stderr
    assert json.loads(issued.stdout)["key_fingerprint"] == record["tls_key_fingerprint"]
    broker.start()
    try:
        sub = subscriber_factory(plain)
        agent = ReaderAgent(load_config(config), source=ListSource([1, 2, 3]))
        with running(agent):
            assert wait_for(lambda: len(delivered(sub, agent)) == 3, 20), agent.health(0.0)
    finally:
        broker.kill()


def test_enroll_without_a_tls_key_prints_no_request(write_config: Callable[..., Path]) -> None:
    done = _run("kitledger-agent", "enroll", "--config", str(write_config()))
    assert done.returncode == 0 and "tls_csr_pem" not in json.loads(done.stdout)


def test_a_tls_key_others_may_read_is_refused(write_config: Callable[..., Path],
                                              tmp_path: Path) -> None:
    config = write_config()
    config.write_text(config.read_text().replace(
        'client_id = "agent-desk-1"\n', 'client_id = "agent-desk-1"\ntls_ca = "ca.pem"\n'
        'tls_cert = "reader.crt"\ntls_key = "reader-tls.key"\n'))
    (tmp_path / "reader-tls.key").write_bytes(b"-----BEGIN PRIVATE KEY-----\n")
    os.chmod(tmp_path / "reader-tls.key", 0o644)
    done = _run("kitledger-agent", "enroll", "--config", str(config))
    assert done.returncode == 3
    [line] = done.stderr.decode().splitlines()
    assert line.startswith("kitledger-agent enroll: key file") and "mode 0644" in line
