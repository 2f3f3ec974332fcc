"""The rehearsal's deployment, laid out as docs/deploy.md tells an operator to lay it out.

Five machines, each a network namespace on one private LAN (`tests.faults.netns.Lan`): two
Pis (a reader simulator on a pseudo-terminal and `kitledger-agent` each), the broker
(Mosquitto with TLS and the per-reader ACL file), the API (`kitledger serve`) and a chain node
(anvil booted from the consortium's genesis, as a Besu node would be). PostgreSQL is the
host's, on 127.0.0.1:5432: the API's namespace has a second veth pair to the host
(`SiteNetwork`), and a TCP proxy on the host's end of it forwards to PostgreSQL, so the API
reaches its database as it would a database server on another machine (its own loopback is
its own). The test itself, on the host, reaches the API through that pair as the agency's
administrator would over its network.

Every file here is made by a command or edited from a shipped example in the way
docs/deploy.md says (paths, addresses and ports changed, nothing else); `Operator` runs the
commands in the namespace of the machine the guide runs them on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from tests.faults.netns import Lan, SiteNetwork
from tests.faults.proxy import LoopbackProxy
from tests.fixtures.postgres import PORT, USER
from tests.ledger.chain.anvil_node import anvil_binary
from tests.paths import REPO_ROOT

BIN: Final = Path(sys.executable).parent
PI_FILES: Final = REPO_ROOT / "hardware" / "pi"
AGENT_EXAMPLE: Final = REPO_ROOT / "reader-agent" / "agent.example.toml"
GENERATOR: Final = REPO_ROOT / "deploy" / "besu" / "generate.py"
AGENCY: Final = "north"
SITE: Final = "stores"
CHAIN_ID: Final = 1337
CONTRACT: Final = "0x000000000000000000000000000000000000c0de"
BROKER_PORT: Final = 8883
API_PORT: Final = 8000
CHAIN_PORT: Final = 8545
COMMAND_TIMEOUT_S: Final = 120


@dataclass(frozen=True)
class Desk:
    """One reader and the Pi beside it."""

    reader_id: str
    role: str

    @property
    def machine(self) -> str:
        return f"pi-{self.reader_id}"


DESKS: Final = (Desk("issue-desk", "issue_desk"), Desk("return-desk", "return_desk"))


def edited(text: str, changes: list[tuple[str, str]], name: str) -> str:
    """`text` with each shipped line replaced; a line no longer in the example fails loudly
    (the docs and the example have drifted)."""
    for shipped, here in changes:
        if shipped not in text:
            raise AssertionError(f"{name} no longer has {shipped!r}")
        text = text.replace(shipped, here)
    return text


class Operator:
    """Runs the guide's commands on the machines: each in its namespace, output kept."""

    def __init__(self, lan: Lan, root: Path, env: dict[str, str]) -> None:
        self.lan = lan
        self.root = root
        self.env = env

    def run(self, machine: str | None, *argv: str, env: dict[str, str] | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run `argv` on `machine` (None: the host, an administrator's own machine)."""
        inside = self.lan.prefix(machine) if machine else []
        done = subprocess.run([*inside, *argv], capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT_S, env={**self.env, **(env or {})},
                              cwd=self.root)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(argv[:3])} failed ({done.returncode}): "
                                 f"{done.stderr.strip()[-2000:]}")
        return done

    def kitledger(self, machine: str | None, *argv: str,
                  env: dict[str, str] | None = None) -> dict[str, Any]:
        """A `kitledger` command's JSON verdict (its last stdout line)."""
        done = self.run(machine, str(BIN / "kitledger"), *argv, env=env)
        verdict: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return verdict


class Machines:
    """The LAN, the API's link to the host and the database proxy on it."""

    def __init__(self) -> None:
        self.lan = Lan()
        self.db_link: SiteNetwork | None = None
        self.db_proxy: LoopbackProxy | None = None
        self.address: dict[str, str] = {}

    def create(self) -> None:
        self.lan.create()
        for machine in ("broker", "api", "chain", *(d.machine for d in DESKS)):
            self.address[machine] = self.lan.join(machine)
        self.db_link = SiteNetwork(self.lan.namespace("api"))
        self.db_link.create()
        self.db_proxy = LoopbackProxy(PORT, host=self.db_link.host_ip)

    @property
    def api_url(self) -> str:
        """The API as the test (on the host) reaches it: over the API's link to the host."""
        assert self.db_link is not None
        return f"http://{self.db_link.site_ip}:{API_PORT}"

    def database_url(self, name: str) -> str:
        """The URL the API's settings give: the database server across the link."""
        assert self.db_proxy is not None and self.db_link is not None
        return f"postgresql://{USER}@{self.db_link.host_ip}:{self.db_proxy.port}/{name}"

    def destroy(self) -> None:
        if self.db_proxy is not None:
            self.db_proxy.close()
        if self.db_link is not None:
            self.db_link.destroy()
        self.lan.destroy()


def openssl(operator: Operator, folder: Path, *argv: str) -> None:
    operator.run(None, "openssl", *argv)


def broker_pki(operator: Operator, folder: Path, broker_ip: str) -> None:
    """docs/deploy.md, "The broker's certificates": the broker CA, the broker's certificate
    (its name and address) and the API's client certificate (common name kitledger-api)."""
    folder.mkdir(mode=0o700)
    ca_key, ca = str(folder / "broker-ca.key"), str(folder / "broker-ca.pem")
    openssl(operator, folder, "req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-keyout", ca_key, "-out", ca, "-days", "3650",
            "-subj", "/CN=North Police broker CA")
    for name, subject, extension in (
            ("broker", "/CN=broker.north.example",
             f"subjectAltName=DNS:broker.north.example,IP:{broker_ip}\n"
             "extendedKeyUsage=serverAuth\n"),
            ("api", "/CN=kitledger-api", "extendedKeyUsage=clientAuth\n")):
        key, request = str(folder / f"{name}.key"), str(folder / f"{name}.csr")
        (folder / f"{name}.ext").write_text(extension)
        openssl(operator, folder, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", key, "-out", request, "-subj", subject)
        openssl(operator, folder, "x509", "-req", "-in", request, "-CA", ca, "-CAkey", ca_key,
                "-CAcreateserial", "-days", "825", "-extfile", str(folder / f"{name}.ext"),
                "-out", str(folder / f"{name}.crt"))


def broker_config(folder: Path, pki: Path, readers_ca: Path) -> Path:
    """The shipped broker configuration and ACL file, as the guide installs them."""
    (folder / "data").mkdir(parents=True)
    clients_ca = folder / "clients-ca.pem"
    clients_ca.write_text(readers_ca.read_text() + (pki / "broker-ca.pem").read_text())
    acl = folder / "kitledger.acl"
    acl.write_text((PI_FILES / "mosquitto-kitledger.acl.example").read_text())
    conf = folder / "mosquitto.conf"
    example = PI_FILES / "mosquitto-tls.conf.example"
    conf.write_text(edited(example.read_text(), [
        ("cafile /etc/mosquitto/ca/ca.pem\n", f"cafile {clients_ca}\n"),
        ("certfile /etc/mosquitto/certs/broker.crt\n", f"certfile {pki / 'broker.crt'}\n"),
        ("keyfile /etc/mosquitto/certs/broker.key\n", f"keyfile {pki / 'broker.key'}\n"),
        ("acl_file /etc/mosquitto/kitledger.acl\n", f"acl_file {acl}\n"),
        ("persistence_location /var/lib/mosquitto/\n",
         f"persistence_location {folder / 'data'}/\n"),
    ], example.name) + f"user root\nlog_dest file {folder / 'mosquitto.log'}\n")
    return conf


def network_toml(validator_ip: str, node_public_key: str, admin: str) -> str:
    """deploy/besu/README.md's network.toml for a consortium of one validator."""
    return "\n".join([
        f"chain_id = {CHAIN_ID}", f'admin = "{admin}"', "", "[[validators]]",
        'name = "north"', f'host = "{validator_ip}"', f'public_key = "{node_public_key}"', ""])


def anvil_command(folder: Path, address: str) -> list[str]:
    """The chain node, a Besu node's stand-in: anvil with the genesis' chain id and free gas,
    its state kept across restarts (`--state`). anvil refuses `--init genesis.json` with a
    state file, so a fresh node takes the genesis' accounts over RPC (`GENESIS_LOADER`)."""
    return [str(anvil_binary()), "--host", address, "--port", str(CHAIN_PORT), "--silent",
            "--chain-id", str(CHAIN_ID), "--gas-price", "0", "--block-base-fee-per-gas", "0",
            "--block-time", "0.5", "--state", str(folder / "state.json"),
            "--state-interval", "1"]


GENESIS_LOADER: Final = """
import json, sys, urllib.request
url, genesis = sys.argv[1], json.load(open(sys.argv[2]))
def call(method, *params):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    answer = json.load(urllib.request.urlopen(request, timeout=10))
    if "error" in answer:
        sys.exit(f"{method}: {answer['error']}")
for address, account in genesis["alloc"].items():
    call("anvil_setBalance", address, account.get("balance", "0x0"))
    if "code" in account:
        call("anvil_setCode", address, account["code"])
    for slot, value in account.get("storage", {}).items():
        call("anvil_setStorageAt", address, slot, value)
"""
"""Run on the chain node's machine: the genesis' `alloc` (the contract, its admin role) into
a fresh anvil."""


def agent_config(desk: Desk, folder: Path, broker_ip: str, tty: Path) -> str:
    """agent.example.toml as the guide fills it in (before `api_key`, which comes later)."""
    text = AGENT_EXAMPLE.read_text()
    start, end = text.index("[indicator]"), text.index("# [portal]")
    text = text[:start] + text[end:]  # no GPIO on this Pi: decisions are logged
    return edited(text, [
        ('id = "stores-desk-1"', f'id = "{desk.reader_id}"'),
        ('agency = "metpolice"', f'agency = "{AGENCY}"'),
        ('site = "hq-stores"', f'site = "{SITE}"'),
        ('role = "issue_desk"', f'role = "{desk.role}"'),
        ('port = "/dev/rfid0"', f'port = "{tty}"'),
        ('key_file = "/var/lib/kitledger/reader.key"', f'key_file = "{folder}/reader.key"'),
        ('path = "/var/lib/kitledger/outbox.db"', f'path = "{folder}/outbox.db"'),
        ('host = "broker.example.org"', f'host = "{broker_ip}"'),
        ('tls_ca = "/etc/kitledger/ca.pem"', f'tls_ca = "{folder}/ca.pem"'),
        ('tls_cert = "/etc/kitledger/reader.crt"', f'tls_cert = "{folder}/reader.crt"'),
        ('tls_key = "/var/lib/kitledger/reader-tls.key"',
         f'tls_key = "{folder}/reader-tls.key"'),
        ("health_interval_s = 30", "health_interval_s = 5"),
    ], AGENT_EXAMPLE.name)


def api_config(folder: Path, database_url: str, broker_ip: str, chain_ip: str) -> str:
    """docs/deploy.md's /etc/kitledger/api.toml, for this layout."""
    return "\n".join([
        'environment = "production"',
        f'database_url = "{database_url}"',
        f'mqtt_url = "mqtts://{broker_ip}:{BROKER_PORT}"',
        f'mqtt_tls_ca = "{folder}/broker-ca.pem"',
        f'mqtt_tls_cert = "{folder}/api.crt"',
        f'mqtt_tls_key = "{folder}/api.key"',
        f'mqtt_share_group = "ingest-{os.urandom(8).hex()}"',
        'node_id = "api1"',
        f'log_key_dir = "{folder}/keys"',
        f'anchor_chain_url = "http://{chain_ip}:{CHAIN_PORT}"',
        f"anchor_chain_id = {CHAIN_ID}",
        f'anchor_contract = "{CONTRACT}"',
        "anchor_gas_price = 0",
        "anchor_interval_s = 2",
        ""])
