"""The Pi's systemd unit, checked as systemd and the kernel would: `systemd-analyze security`
rates it OK (exposure at most 2.5), `systemd-analyze verify` finds nothing wrong, and the agent
run with exactly the unit's user, primary group, supplementary groups and umask (through
`setpriv`, as systemd's exec would) against the README's file layout reads its config and opens
the serial device.

The layout is the README's: /etc/kitledger 0750 root:kitledger, agent.toml 0640
root:kitledger, /var/lib/kitledger 0700 owned by the agent's user (StateDirectory=), the reader
a tty of group dialout with mode 0660 (the udev rule). It is built under a throwaway root; the
users and groups the test needs are made for it, under unique names, and removed after. The
serial device is a pty served by the reader simulator, owned root:dialout 0660 like
/dev/ttyUSB0. A run with the old unit's credentials (Group=dialout) shows the failure the
issue reported: the config cannot be read.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

from hardware.simulator import ReaderSimulator, Scenario, TagSpec
from tests.fixtures.mosquitto import MosquittoBroker
from tests.paths import REPO_ROOT
from tests.reader_agent.agent_support import Subscriber

UNIT: Final = REPO_ROOT / "hardware" / "pi" / "kitledger-agent.service"
EXAMPLE: Final = REPO_ROOT / "reader-agent" / "agent.example.toml"
MAX_EXPOSURE: Final = 2.5
"""systemd-analyze's "OK" band ends at 2.5 (below: "SAFE"; above: "MEDIUM" and worse)."""
RADIO: Final = bytes.fromhex("3474257BF40000000000162E")
VENV: Final = Path(sys.executable).parent.parent
TOPIC: Final = "kitledger/v1/metpolice/hq-stores/stores-desk-1/#"


def _systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    return found


def _directive(text: str, name: str) -> list[str]:
    return [line.split("=", 1)[1].strip() for line in text.splitlines()
            if line.startswith(f"{name}=")]


API_UNIT: Final = REPO_ROOT / "deploy" / "kitledger-api.service"


@pytest.mark.parametrize("unit", [UNIT, API_UNIT], ids=["agent", "api"])
def test_the_unit_is_hardened_to_ok(unit: Path) -> None:
    """The Pi's agent unit, and the API's (`deploy/`), both rate OK."""
    result = subprocess.run(
        [_systemd_analyze(), "security", "--offline=true", "--no-pager", unit.name],
        capture_output=True, text=True, timeout=120, cwd=unit.parent, check=False)
    found = re.search(rf"Overall exposure level for {re.escape(unit.name)}: ([0-9.]+) (\w+)",
                      result.stdout)
    assert found, result.stdout[-2000:] + result.stderr[-2000:]
    print(found.group(0))  # shown with -s: the figure for the closing note
    assert float(found.group(1)) <= MAX_EXPOSURE and found.group(2) in ("OK", "SAFE")


def test_every_relaxed_setting_is_explained_in_the_unit() -> None:
    result = subprocess.run(
        [_systemd_analyze(), "security", "--offline=true", "--no-pager", UNIT.name],
        capture_output=True, text=True, timeout=120, cwd=UNIT.parent, check=False)
    relaxed = {line.split()[1].split("=")[0] for line in result.stdout.splitlines()
               if line.startswith("✗")}
    header = "\n".join(line for line in UNIT.read_text().splitlines() if line.startswith("#"))
    # IPAddressDeny is explained with IPAddressAllow; RestrictAddressFamilies as AF_INET.
    explained = {name for name in relaxed if name in header or {
        "IPAddressDeny": "IPAddressAllow", "RestrictAddressFamilies": "AF_INET",
        "RootDirectory": "RootDirectory"}.get(name, "\0") in header}
    assert relaxed and explained == relaxed, relaxed - explained


def test_the_unit_verifies(tmp_path: Path) -> None:
    """`systemd-analyze verify` with ExecStart pointing at this checkout's installed agent
    (it checks the executable exists); any complaint about the unit fails the test."""
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/opt/kitledger/venv", str(VENV)))
    result = subprocess.run([_systemd_analyze(), "verify", str(unit)], capture_output=True,
                            text=True, timeout=120, check=False)
    complaints = [line for line in (result.stdout + result.stderr).splitlines()
                  if UNIT.name in line]
    assert result.returncode == 0 and complaints == [], result.stdout + result.stderr


def test_the_units_primary_group_is_the_one_that_reads_the_config() -> None:
    """The README gives /etc/kitledger and agent.toml to group kitledger: that must be the
    service's primary group (Group=), and the serial port's group a supplementary one."""
    text = UNIT.read_text()
    readme = (REPO_ROOT / "hardware" / "pi" / "README.md").read_text()
    config_group = re.search(r"install -d -m 0750 -o root -g (\S+) /etc/kitledger", readme)
    assert config_group, "the README no longer makes /etc/kitledger"
    assert _directive(text, "User") == ["kitledger"]
    assert _directive(text, "Group") == [config_group.group(1)]
    assert "dialout" in " ".join(_directive(text, "SupplementaryGroups")).split()


# -- running under the unit's credentials ----------------------------------------------------


@dataclass
class Account:
    """The unit's user and groups as made on this machine: unit name -> local name and id."""

    user: str
    uid: int
    gid: int
    groups: dict[str, int]
    made_users: list[str]
    made_groups: list[str]


def _need_root_tools() -> None:
    if os.geteuid() != 0:
        pytest.skip("making users and running under them needs root")
    for tool in ("setpriv", "useradd", "userdel", "groupadd", "groupdel"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")


@pytest.fixture
def account() -> Iterator[Account]:
    """The unit's User= with its own group (as `adduser --system --group` makes), and its
    SupplementaryGroups=: dialout as it exists on Debian, any other made for the test."""
    _need_root_tools()
    tag = secrets.token_hex(3)
    user = f"klt-{tag}"
    made_users: list[str] = []
    made_groups: list[str] = []
    try:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--shell", "/usr/sbin/nologin", user], check=True, capture_output=True)
        made_users.append(user)
        groups: dict[str, int] = {}
        for name in " ".join(_directive(UNIT.read_text(), "SupplementaryGroups")).split():
            try:
                groups[name] = grp.getgrnam(name).gr_gid
            except KeyError:
                local = f"klg-{tag}-{name}"[:32]
                subprocess.run(["groupadd", "--system", local], check=True,
                               capture_output=True)
                made_groups.append(local)
                groups[name] = grp.getgrnam(local).gr_gid
        entry = pwd.getpwnam(user)
        yield Account(user, entry.pw_uid, entry.pw_gid, groups, made_users, made_groups)
    finally:
        for name in made_users:
            subprocess.run(["userdel", name], check=False, capture_output=True)
        for name in made_groups:
            subprocess.run(["groupdel", name], check=False, capture_output=True)


@dataclass
class Layout:
    root: Path
    config: Path
    state: Path
    device: Path


def _agent_toml(layout: Layout, broker_port: int) -> str:
    """The documented example, with this root's paths, the test broker and no TLS."""
    text = EXAMPLE.read_text()
    text = text.replace('"/dev/rfid0"', f'"{layout.device}"')
    text = text.replace('"/var/lib/kitledger/', f'"{layout.state}/')
    text = re.sub(r'(?m)^(tls_ca|tls_cert|tls_key) = .*\n', "", text)
    text = text.replace('host = "broker.example.org"', 'host = "127.0.0.1"')
    return text.replace("port = 8883", f"port = {broker_port}")


@pytest.fixture
def layout(account: Account) -> Iterator[Layout]:
    root = Path(tempfile.mkdtemp(prefix="kitledger-pi-", dir="/tmp"))
    os.chmod(root, 0o755)  # like /: anyone may pass through
    etc, state = root / "etc" / "kitledger", root / "var" / "lib" / "kitledger"
    (root / "dev").mkdir(mode=0o755)
    etc.mkdir(parents=True)
    os.chmod(root / "etc", 0o755)
    state.parent.mkdir(parents=True)
    os.chmod(root / "var", 0o755)
    os.chmod(state.parent, 0o755)
    state.mkdir(mode=0o700)
    os.chown(state, account.uid, account.gid)  # StateDirectory=kitledger
    os.chown(etc, 0, account.gid)
    os.chmod(etc, 0o750)  # install -d -m 0750 -o root -g kitledger /etc/kitledger
    try:
        yield Layout(root, etc / "agent.toml", state, root / "dev" / "rfid0")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _write_config(layout: Layout, account: Account, broker_port: int) -> None:
    layout.config.write_text(_agent_toml(layout, broker_port))
    os.chown(layout.config, 0, account.gid)
    os.chmod(layout.config, 0o640)  # install -m 0640 -g kitledger agent.toml


def _give_device_to_dialout(sim: ReaderSimulator, account: Account) -> None:
    """What the udev rule does to the reader's tty: GROUP="dialout", MODE="0660"."""
    device = os.path.realpath(sim.port_path)
    os.chown(device, 0, account.groups["dialout"])
    os.chmod(device, 0o660)


OLD_UNIT_CREDENTIALS: Final = "User=kitledger\nGroup=dialout\n"
"""What the unit said before: the serial port's group as the primary one, and no other."""

UMASK: Final = 0o077
"""The unit's UMask=, given to setpriv's process (setpriv keeps the umask it inherits)."""


def _as_unit(account: Account, primary_gid: int, groups: list[int],
             *args: str) -> list[str]:
    """The command line systemd's exec amounts to for this unit: user, primary group,
    supplementary groups, no capabilities, no new privileges (UMask= is the caller's)."""
    chosen = ["--groups", ",".join(map(str, groups))] if groups else ["--clear-groups"]
    return ["setpriv", "--reuid", str(account.uid), "--regid", str(primary_gid), *chosen,
            "--inh-caps=-all",
            "--no-new-privs", "--", *args]


def _credentials(unit: str, account: Account) -> tuple[int, list[int]]:
    """The unit's Group= and SupplementaryGroups= as this machine's ids: the README's group
    `kitledger` is the one `adduser --system --group kitledger` made with the user."""
    def gid(name: str) -> int:
        if name == "kitledger":
            return account.gid
        return account.groups[name] if name in account.groups else grp.getgrnam(name).gr_gid

    [primary] = _directive(unit, "Group")
    extra = " ".join(_directive(unit, "SupplementaryGroups")).split()
    return gid(primary), [gid(name) for name in extra]


def _exec_start(layout: Layout) -> list[str]:
    [line] = _directive(UNIT.read_text(), "ExecStart")
    line = line.replace("/opt/kitledger/venv", str(VENV))
    return line.replace("/etc/kitledger/agent.toml", str(layout.config)).split()


def test_the_agent_runs_under_the_units_user_and_groups(
        account: Account, layout: Layout, mosquitto: MosquittoBroker) -> None:
    _write_config(layout, account, mosquitto.port)
    primary, groups = _credentials(UNIT.read_text(), account)
    scenario = Scenario(tags=(TagSpec(RADIO, {1: -50}),), protocol="thingmagic",
                        reads_per_second=50)
    subscriber = Subscriber(mosquitto.port, TOPIC, "pi-unit-subscriber")
    environment = {"PATH": "/usr/bin:/bin", "HOME": str(layout.state),
                   "GPIOZERO_PIN_FACTORY": "mock", "PYTHONWARNINGS": "ignore"}
    with ReaderSimulator(scenario=scenario, link_path=layout.device) as sim:
        _give_device_to_dialout(sim, account)
        agent = subprocess.Popen(_as_unit(account, primary, groups, *_exec_start(layout)),
                                 cwd=layout.state, env=environment, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, umask=UMASK)
        try:
            # The reader was configured through the device (region EU from agent.toml) and
            # its reads left the Pi as signed envelopes.
            delivered = subscriber.wait_for(lambda: bool(subscriber.envelopes()), 60)
            configured = sim.model.region
        finally:
            agent.terminate()
            _out, err = agent.communicate(timeout=30)
            subscriber.close()
    assert delivered, err.decode(errors="replace")[-3000:]
    assert configured != 0
    assert agent.returncode == 0, err.decode(errors="replace")[-3000:]
    for name in ("reader.key", "outbox.db"):
        info = (layout.state / name).stat()
        assert (info.st_uid, info.st_mode & 0o077) == (account.uid, 0), name


def test_the_old_units_group_cannot_read_the_config(
        account: Account, layout: Layout, mosquitto: MosquittoBroker) -> None:
    """Group=dialout with no kitledger group, as the unit once said: the README's 0640
    root:kitledger config is unreadable, and the agent says so in one line."""
    _write_config(layout, account, mosquitto.port)
    primary, groups = _credentials(OLD_UNIT_CREDENTIALS, account)
    result = subprocess.run(
        _as_unit(account, primary, groups, *_exec_start(layout)),
        capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"},
        cwd=layout.state, check=False, umask=UMASK)
    assert result.returncode == 2
    assert "cannot read config" in result.stderr and "Permission denied" in result.stderr
    assert "Traceback" not in result.stderr
