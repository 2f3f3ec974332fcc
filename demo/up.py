"""`kitledger up`: the whole system on one machine, with a scripted day of kit being scanned.

On embedded defaults it makes a fresh run directory (`./var`), starts Mosquitto on a free
loopback port with its queue limits raised, migrates and seeds a SQLite database
(`demo.seed`), runs `kitledger serve` (API, ingest worker, and the anchorer once `serve`
starts it), and, per demo reader, `kitledger-sim` on a pseudo-terminal with `kitledger-agent`
reading it. `--config prod.toml` points the same processes at production parts instead (the
database, broker and chain named in the file; nothing is wiped, the registry is seeded only if
it is empty). It prints the URL and demo logins, streams decisions and alerts as they are
made (`demo.feed`), and on SIGINT/SIGTERM stops every child's process group.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any, Final

from demo.stack import Stack, StackError, free_port, wait_until
from ledger.cli import EXIT_FAILED, EXIT_OK, EXIT_UNUSABLE

BIN: Final = Path(sys.executable).parent
SCENARIOS: Final = Path(__file__).resolve().parent / "scenarios"
"""The demo readers' scripted days, shipped in the package beside this module."""
MOSQUITTO: Final = shutil.which("mosquitto") or "/usr/sbin/mosquitto"

BROKER_CONFIG: Final = """\
listener {port} 127.0.0.1
allow_anonymous true
# mosquitto drops root privileges to "mosquitto" unless told to stay the invoking user.
user {user}
# Durable (docs/running.md, "Broker durability"): queues saved every 10 s, and sized for an
# outage; the agents re-send whatever a crash loses, until the API acknowledges it.
persistence true
persistence_location {data}/
autosave_interval 10
max_queued_messages 1000000
max_queued_bytes 268435456
max_inflight_messages 1000
log_dest file {data}/mosquitto.log
log_type error
log_type warning
log_type notice
log_type information
log_type subscribe
"""


def _api_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=1) as answer:  # noqa: S310
            return bool(answer.status == 200)
    except OSError:
        return False


def _fresh_run_dir(run_dir: Path) -> None:
    """Remove what a previous embedded run left (only the names this module creates)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in ("readers", "mosquitto"):
        shutil.rmtree(run_dir / name, ignore_errors=True)
    for path in run_dir.glob("kitledger.db*"):
        path.unlink()
    for path in run_dir.glob("*.log"):
        path.unlink()


def _start_broker(stack: Stack) -> str:
    if not Path(MOSQUITTO).exists():
        raise StackError("mosquitto is not installed (apt-get install mosquitto)")
    data = stack.run_dir / "mosquitto"
    data.mkdir()
    port = free_port()
    (data / "mosquitto.conf").write_text(
        BROKER_CONFIG.format(port=port, user=getpass.getuser(), data=data))
    stack.spawn("mosquitto", [MOSQUITTO, "-c", str(data / "mosquitto.conf")])

    def listening() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    wait_until("the MQTT broker", listening, stack)
    return f"mqtt://127.0.0.1:{port}"


def _prepare_readers(stack: Stack, mqtt_host: str, mqtt_port: int) -> dict[str, str]:
    """Write each demo agent's config and key; return reader id -> public key (hex)."""
    from demo.seed import DEMO_READERS, agent_config

    keys = {}
    for reader in DEMO_READERS:
        folder = stack.run_dir / "readers" / reader.reader_id
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "agent.toml"
        config.write_text(agent_config(reader, port=str(folder / "tty"), mqtt_host=mqtt_host,
                                       mqtt_port=mqtt_port))
        enrolled = subprocess.run([  # noqa: S603 - our own executable
            str(BIN / "kitledger-agent"), "enroll", "--config",
                                   str(config)], capture_output=True, check=False, env=stack.env)
        if enrolled.returncode != 0:
            raise StackError(f"enrolling {reader.reader_id}: "
                             f"{enrolled.stderr.decode(errors='replace')[-500:]}")
        keys[reader.reader_id] = json.loads(enrolled.stdout)["public_key_hex"]
    return keys


def _start_readers(stack: Stack) -> None:
    from demo.seed import DEMO_READERS

    for reader in DEMO_READERS:
        folder = stack.run_dir / "readers" / reader.reader_id
        tty = folder / "tty"
        stack.spawn(f"sim {reader.reader_id}", [
            str(BIN / "kitledger-sim"), "--scenario", str(SCENARIOS / reader.scenario),
            "--link", str(tty)], log_name=f"sim-{reader.reader_id}")
        wait_until(f"simulated reader {reader.reader_id}", tty.exists, stack)
        stack.spawn(f"agent {reader.reader_id}", [
            str(BIN / "kitledger-agent"), "run", "--config", str(folder / "agent.toml")],
            log_name=f"agent-{reader.reader_id}")


def _prepare_database(settings: Any, stack: Stack, weeks: int = 0) -> dict[str, str]:
    """Migrate, seed an empty registry (with `weeks` of store history before today,
    `demo.history`), and make demo logins (agency -> key)."""
    from sqlmodel import Session

    from api.db import make_engine
    from api.migrate import upgrade
    from api.models import Agency
    from demo.seed import DEMO_AGENCY, demo_logins, seed_registry

    mqtt = settings.mqtt_host, settings.mqtt_port
    keys = _prepare_readers(stack, *mqtt)
    engine = make_engine(settings)
    try:
        upgrade(engine)
        with Session(engine) as session:
            if session.get(Agency, DEMO_AGENCY) is None:
                seed_registry(session, keys)
                if weeks:
                    from api.db import utcnow
                    from demo.history import fill_history

                    fill_history(session, weeks, now=utcnow())
            if settings.environment != "development":
                return {}  # demo keys hold every scope: never outside development
            return demo_logins(session, settings.secret_key.get_secret_value(),
                               settings.environment)
    finally:
        engine.dispose()


def up(args: argparse.Namespace) -> int:
    from api.config import load_settings
    from api.errors import ConfigError
    from demo.feed import DecisionFeed

    run_dir: Path = args.run_dir.resolve()
    env = dict(os.environ)
    if args.config is None:
        _fresh_run_dir(run_dir)
        env.update(KITLEDGER_DATABASE_URL=f"sqlite:///{run_dir / 'kitledger.db'}",
                   KITLEDGER_SECRET_KEY=os.urandom(24).hex(),
                   KITLEDGER_ENVIRONMENT="development")
        # The embedded run's keys live with its data, not in whatever folder it was started from.
        env.setdefault("KITLEDGER_LOG_KEY_DIR", str(run_dir / "keys"))
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        env["KITLEDGER_CONFIG"] = str(args.config.resolve())
    stack = Stack(run_dir, env)
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    try:
        if args.config is None:
            env["KITLEDGER_MQTT_URL"] = _start_broker(stack)
        try:
            settings = load_settings(args.config, **{
                k.removeprefix("KITLEDGER_").lower(): v for k, v in env.items()
                if k in ("KITLEDGER_DATABASE_URL", "KITLEDGER_MQTT_URL", "KITLEDGER_SECRET_KEY",
                         "KITLEDGER_ENVIRONMENT")})
        except ConfigError as exc:
            print(f"kitledger up: {exc}", file=sys.stderr)
            return EXIT_UNUSABLE
        logins = _prepare_database(settings, stack, args.history_weeks)
        url = f"http://{args.host}:{args.port}"
        stack.spawn("api", [str(BIN / "kitledger"), "serve", "--host", args.host,
                            "--port", str(args.port)])
        # Ready means every ingest worker has subscribed (`api.broker_status`): the broker
        # keeps no messages for a shared subscription that does not exist yet, and an agent
        # holding its PUBACK would never send them again.
        wait_until("the API", lambda: _api_ready(url), stack)
        if not args.no_readers:
            _start_readers(stack)
        _announce(url, logins, run_dir)
        feed = DecisionFeed(settings)
        while not stopping.wait(0.5):
            for line in feed.poll():
                print(line, flush=True)
            if (dead := stack.dead_child()) is not None:
                print(f"kitledger up: {dead} stopped unexpectedly; see {run_dir}", flush=True)
                return EXIT_FAILED
        print("stopping...", flush=True)
        return EXIT_OK
    except StackError as exc:
        print(f"kitledger up: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        stack.stop()


def _announce(url: str, logins: dict[str, str], run_dir: Path) -> None:
    # Demo keys are printed once, like `kitledger api-client` does; they are made fresh on
    # every run and only the keyed hash is stored.
    print(f"kitledger is up: {url}/web/", flush=True)
    for agency, key in logins.items():
        print(f"  sign in as {agency}: {key}", flush=True)
    if not logins:
        print("  no demo logins outside development: make keys with "
              "`kitledger api-client create`", flush=True)
    print(f"  API docs {url}/docs; logs and data in {run_dir}; Ctrl-C stops everything",
          flush=True)


def register(subparsers: Any) -> None:
    """Add `up` to the `kitledger` parser."""
    parser = subparsers.add_parser(
        "up", help="run broker, API, anchorer and simulated readers with a scripted demo day")
    parser.add_argument("--config", type=Path,
                        help="TOML settings naming production parts (default: embedded)")
    parser.add_argument("--run-dir", type=Path, default=Path("var"),
                        help="where logs, keys and the embedded database go (default ./var)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--no-readers", action="store_true",
                        help="start no simulated readers (an empty, live system)")
    parser.add_argument("--history-weeks", type=history_weeks, default=0, metavar="N",
                        help="fill a fresh demo store with N weeks of history before today "
                        "(for pool planning, docs/planning.md; at most 26)")
    parser.set_defaults(run=up)


def history_weeks(value: str) -> int:
    """`--history-weeks`: a whole number of weeks, 0 (none) to `MAX_HISTORY_WEEKS`."""
    from demo.history import MAX_HISTORY_WEEKS

    try:
        weeks = int(value)
    except ValueError:
        weeks = -1
    if not 0 <= weeks <= MAX_HISTORY_WEEKS:
        raise argparse.ArgumentTypeError(f"weeks are 0 to {MAX_HISTORY_WEEKS}")
    return weeks
