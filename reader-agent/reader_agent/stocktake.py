"""`kitledger-agent stocktake`: a handheld's offline stocktake, collected now, uploaded later.

    kitledger-agent stocktake collect --protocol r200 --port /dev/rfid0 --device hh-1 \\
        --key hh-1.key --seq-file hh-1.seq --seconds 900 --out walk.json
    kitledger-agent stocktake upload walk.json --api https://api.example --inventory 12

`collect` needs no network: it runs inventory on the serial reader while it is carried round
the store, then signs one observation per tag read (kind `read`, timed at the end of the walk:
the reader counts reads per tag) with the handheld's key, exactly as the agent signs a desk's
reads, and writes the walk to a file: the body `POST /v1/inventories/{id}/upload` takes, with
the handheld's id. Sequence numbers come from `--seq-file` (the next free number; it is moved
past the walk's numbers before the walk is written, so no number is ever signed twice).

`upload` posts the file to the inventory session opened for the handheld, with the API key in
the KITLEDGER_API_KEY environment variable (never on the command line, where `ps` shows it).
The API verifies every read and reconciles the session, or refuses the batch whole.

Each prints one JSON line; exit status 0, 2 for bad arguments or an unusable file, 1 if the
reader failed or the API refused the batch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.core.bounds import MAX_SEQ, is_identifier
from ledger.core.envelope import sign_envelope
from ledger.core.records import Observation, format_time
from reader_agent.commission import API_KEY_ENV, post_json
from reader_agent.drivers import DriverError, ReaderDriver, open_driver
from reader_agent.errors import AgentError
from reader_agent.identity import load_key

MAX_WALK_SECONDS: Final = 4 * 3600
"""A store is walked in well under four hours; longer is a forgotten handheld."""


class StocktakeError(AgentError):
    """The walk could not be collected or uploaded."""


class UnusableWalk(StocktakeError):
    """A walk file `collect` did not write, or one that cannot be read."""


def reserve(seq_file: Path, count: int) -> int:
    """The first of `count` fresh sequence numbers, the file moved past them first."""
    try:
        first = int(seq_file.read_text().strip() or "0") if seq_file.exists() else 0
    except ValueError:
        raise StocktakeError(f"{seq_file} does not hold a sequence number") from None
    if not 0 <= first <= MAX_SEQ - count:
        raise StocktakeError(f"{seq_file}: sequence number {first} is out of range")
    partial = seq_file.with_suffix(seq_file.suffix + ".new")
    partial.write_text(f"{first + count}\n")
    partial.replace(seq_file)  # atomic: a crash leaves the old number or the new one
    return first


def walk(device: str, key: Ed25519PrivateKey, epcs: Sequence[bytes], first_seq: int,
         started: datetime, ended: datetime) -> dict[str, Any]:
    """The upload body of a walk that read `epcs`: each signed as a `read` of `device`."""
    time = format_time(ended)
    observations = [
        sign_envelope(Observation(device=device, seq=first_seq + index, time=time, kind="read",
                                  epc=epc.hex().upper(), antenna=1).to_record(),
                      key).to_bytes().hex()
        for index, epc in enumerate(sorted(epcs))]
    return {"reader": device, "started_at": started.isoformat(),
            "ended_at": ended.isoformat(), "observations": observations}


def collect(options: argparse.Namespace) -> dict[str, Any]:
    key = load_key(options.key)  # before the walk: a wrong key is found before, not after
    opened = open_driver(options.protocol, options.port, baudrate=options.baudrate)
    if not isinstance(opened, ReaderDriver):  # an LLRP reader stands still: not a handheld
        opened.close()
        raise StocktakeError(f"{options.protocol} is a fixed reader, not a handheld's")
    started = datetime.now(UTC)
    try:
        counts = opened.survey(options.seconds)
    finally:
        opened.close()
        opened.release()
    ended = datetime.now(UTC)
    first = reserve(options.seq_file, len(counts))
    body = walk(options.device, key, list(counts), first, started, ended)
    options.out.write_text(json.dumps(body) + "\n")
    return {"tags": len(counts), "reads": sum(counts.values()), "first_seq": first,
            "last_seq": first + len(counts) - 1, "out": str(options.out)}


def upload(options: argparse.Namespace, key: str) -> dict[str, Any]:
    try:
        body = json.loads(options.walk.read_text())
        batch = {name: body[name] for name in ("started_at", "ended_at", "observations")}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UnusableWalk(f"{options.walk} is not a walk `collect` wrote: {exc}") from None
    done = post_json(options.api, f"/v1/inventories/{options.inventory}/upload", key, batch,
                     "the walk", StocktakeError)
    return {"inventory": done.get("id"), "status": done.get("status"),
            "counts": done.get("counts"), "leaf_index": done.get("leaf_index")}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kitledger-agent stocktake",
                                     description="A handheld's offline stocktake.")
    actions = parser.add_subparsers(dest="action", required=True)
    take = actions.add_parser("collect", help="read the store now, sign, write the walk")
    take.add_argument("--protocol", required=True, help="the handheld's reader family")
    take.add_argument("--port", required=True, help="serial port, e.g. /dev/rfid0")
    take.add_argument("--baudrate", type=int, default=115_200)
    take.add_argument("--device", required=True, help="the handheld's reader id")
    take.add_argument("--key", type=Path, required=True, help="the handheld's key file")
    take.add_argument("--seq-file", type=Path, required=True,
                      help="holds the next free sequence number (made if missing)")
    take.add_argument("--seconds", type=float, required=True, help="how long to read")
    take.add_argument("--out", type=Path, required=True, help="the walk file to write")
    send = actions.add_parser("upload", help=f"post a walk (API key in ${API_KEY_ENV})")
    send.add_argument("walk", type=Path)
    send.add_argument("--api", required=True, help="the API's URL")
    send.add_argument("--inventory", type=int, required=True,
                      help="the session opened for the handheld (POST /v1/inventories)")
    return parser


def main(argv: Sequence[str]) -> int:
    parser = _parser()
    options = parser.parse_args(list(argv))
    key = os.environ.get(API_KEY_ENV, "")
    if options.action == "collect" and not 0 < options.seconds <= MAX_WALK_SECONDS:
        parser.error(f"--seconds must be within 0..{MAX_WALK_SECONDS}")
    if options.action == "collect" and not is_identifier(options.device):
        parser.error("--device must be the handheld's reader id (printable ASCII)")
    if options.action == "upload" and not key:
        parser.error(f"upload needs the API key in ${API_KEY_ENV}")
    try:
        result = collect(options) if options.action == "collect" else upload(options, key)
    except UnusableWalk as exc:
        print(f"kitledger-agent stocktake {options.action}: {exc}", file=sys.stderr)
        return 2
    except (AgentError, DriverError) as exc:
        print(f"kitledger-agent stocktake {options.action}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0
