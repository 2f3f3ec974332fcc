"""The API service's `kitledger` subcommands: `migrate`, `serve`, `api-client`, `account`
(`api.account_commands`), `export` and `answers-key`.

Registered as the `server` part of the entry-point group `kitledger.commands`. Only argparse is
imported at module load; SQLAlchemy, Alembic and FastAPI are imported inside `run`, so
`kitledger --help` and the other subcommands start fast and work on an install without the
`server` extra.

Failures are `CommandError`s (`ledger.cli`): one line on stderr saying what failed and what to
do, the JSON verdict on stdout, the documented exit code. A read-only command (`export`,
`api-client`) opens only a database that exists and has been migrated: it never creates an
empty SQLite file, and says to run `kitledger migrate` instead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger.cli import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_UNUSABLE,
    CommandError,
    emit,
)

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from api.config import Settings

SCOPE_NAMES = ("assets:read", "assets:write", "custody:write", "audit:read", "webhooks:write",
               "admin")
"""The scopes `--scopes` takes (api.models.clients.Scope, named here so --help needs no
import of the server's models)."""
MAX_EXPIRY_DAYS = 3650
"""Ten years: a longer expiry is a typo for "never", which is leaving --expires-in-days out."""

DATABASE_TODO = ("check --database-url (or KITLEDGER_DATABASE_URL, or database_url in the "
                 "--config file) and that the database server is running")
"""What to do about a database that cannot be reached or used."""


def _settings_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML settings file (else KITLEDGER_CONFIG)")
    parser.add_argument("--database-url", help="override KITLEDGER_DATABASE_URL")


def _settings(args: argparse.Namespace) -> Settings:
    from api.config import load_settings
    from api.errors import ConfigError

    overrides = {"database_url": args.database_url} if args.database_url else {}
    try:
        return load_settings(args.config, **overrides)
    except ConfigError as exc:
        raise CommandError(f"unusable settings: {exc}",
                           "fix the --config file or the KITLEDGER_* variables",
                           EXIT_UNUSABLE, "unusable") from None


def _shown_url(settings: Settings) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(settings.sqlalchemy_url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "(an unparsable URL)"


def _first_line(exc: BaseException) -> str:
    text = str(exc.args[0]) if exc.args else type(exc).__name__
    return " ".join(text.split("\n", 1)[0].split())[:200]


@contextmanager
def database(settings: Settings, *, existing: bool) -> Iterator[Engine]:
    """An engine for the settings' database, every database failure made one CommandError.
    `existing`: the database must exist and be migrated (read-only and bootstrap commands),
    so a mistyped path is named instead of created empty."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    from api.db import make_engine
    from api.errors import MigrationError
    from api.migrate import current_revision

    shown = _shown_url(settings)
    try:
        url = make_url(settings.sqlalchemy_url)
    except (ArgumentError, ValueError):
        raise CommandError(f"the database URL {shown} cannot be parsed", DATABASE_TODO,
                           EXIT_UNUSABLE, "unusable") from None
    if existing and url.get_backend_name() == "sqlite" and url.database not in (
            None, "", ":memory:") and not Path(url.database).is_file():
        raise CommandError(f"no database at {url.database}",
                           "run `kitledger migrate` to create it, or point --database-url "
                           "(or KITLEDGER_DATABASE_URL) at the existing one",
                           EXIT_UNUSABLE, "unusable")
    engine = make_engine(settings)
    try:
        if existing and current_revision(engine) is None:
            raise CommandError(f"the database {shown} has no kitledger tables",
                               "run `kitledger migrate` first", EXIT_UNUSABLE, "unusable")
        yield engine
    except (MigrationError, SQLAlchemyError) as exc:
        raise CommandError(f"the database {shown} failed: {_first_line(exc)}", DATABASE_TODO,
                           EXIT_UNREACHABLE, "failed") from None
    finally:
        engine.dispose()


def run_migrate(args: argparse.Namespace) -> int:
    from api.migrate import backfill, current_revision, head_revision, upgrade
    from ledger.progress import progress_spinner

    settings = _settings(args)
    with database(settings, existing=False) as engine:
        before = current_revision(engine)
        with progress_spinner(f"migrating from {before or 'an empty database'}"):
            upgrade(engine, args.revision)
        after = current_revision(engine)
        # Registry rows older than the registry records get theirs once (`api.registry_log`).
        backfilled = backfill(engine) if after == head_revision(engine) else 0
    emit({"verdict": "ok", "from": before, "to": after, "registry_records": backfilled})
    return EXIT_OK


def run_serve(args: argparse.Namespace) -> int:
    from api.config import listen_problem, secret_problem
    from api.serve import MAX_WORKERS, ServeOptions, serve

    overrides = {"database_url": args.database_url} if args.database_url else {}
    for name in ("workers", "ingest_workers"):
        if not 0 <= getattr(args, name) <= MAX_WORKERS or (name == "workers" and not args.workers):
            option = f"--{name.replace('_', '-')}"
            raise CommandError(f"{option} out of range",
                               f"give {option} from {0 if name != 'workers' else 1} to "
                               f"{MAX_WORKERS}", EXIT_UNUSABLE, "unusable")
    settings = _settings(args)  # refuse bad settings before forking anything
    if (problem := listen_problem(settings, args.host)) is not None:
        raise CommandError(problem, "set KITLEDGER_SECRET_KEY (32+ random characters) or listen "
                           "on loopback in development", EXIT_UNUSABLE, "unusable")
    if secret_problem(settings.secret_key.get_secret_value()) is not None:
        print(f"kitledger serve: WARNING: {settings.environment} with a placeholder secret; "
              f"listening on {args.host} only. Set KITLEDGER_SECRET_KEY (32+ random chars) "
              "before serving anyone else.", file=sys.stderr, flush=True)
    if args.config is not None:
        import os

        os.environ["KITLEDGER_CONFIG"] = str(args.config)
    serve(ServeOptions(args.host, args.port, args.workers, args.ingest_workers, overrides))
    return EXIT_OK


def _parse_time(value: str) -> Any:
    from datetime import datetime

    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("give the time with its offset (Z or +HH:MM)")
    return moment


def _client_view(client: Any) -> dict[str, object]:
    from api.models import ApiClientPublic

    return ApiClientPublic.model_validate(client, from_attributes=True).model_dump(mode="json")


def run_api_client(args: argparse.Namespace) -> int:
    """`kitledger api-client create|list|rotate|revoke|expire` (`api.client_admin`)."""
    from datetime import timedelta

    from sqlmodel import Session

    from api import client_admin
    from api.auth import create_api_client
    from api.db import utcnow
    from api.models import Agency, ApiClient, Scope

    now = utcnow()
    try:
        scopes = [Scope(s) for s in args.scopes.split(",") if s] if args.action == "create" else []
        at = _parse_time(args.at) if getattr(args, "at", None) else now
        if getattr(args, "expires_in_days", None) is not None:
            if not 0 < args.expires_in_days <= MAX_EXPIRY_DAYS:
                raise ValueError(f"--expires-in-days must be 1..{MAX_EXPIRY_DAYS}")
            at = now + timedelta(days=args.expires_in_days)
    except ValueError as exc:
        raise CommandError(str(exc), "give --scopes from: " + ",".join(SCOPE_NAMES) + "; times "
                           "in RFC 3339 with an offset", EXIT_UNUSABLE, "unusable") from None
    settings = _settings(args)
    secret = settings.secret_key.get_secret_value()
    with database(settings, existing=True) as engine, Session(engine) as session:
        if args.action == "list":
            emit({"verdict": "ok", "clients": [
                _client_view(c) for c in client_admin.list_clients(session, args.agency)]})
            return EXIT_OK
        if args.action == "create":
            if session.get(Agency, args.agency) is None:
                session.add(Agency(id=args.agency, name=args.agency_name or args.agency))
                session.flush()
            expires = at if (args.at or args.expires_in_days is not None) else None
            made, key = create_api_client(
                session, agency_id=args.agency, name=args.name, scopes=scopes,
                server_secret=secret, now=now, expires_at=expires)
            session.commit()
            # The key is shown once, here, to the operator who asked for it.
            emit({"verdict": "ok", "client_id": made.id, "agency": args.agency, "key": key,
                  "scopes": sorted(s.value for s in scopes), "client": _client_view(made)})
            return EXIT_OK
        client = session.get(ApiClient, args.client_id)
        if client is None:
            raise CommandError(f"no API client {args.client_id!r}",
                               "see `kitledger api-client list`", EXIT_UNUSABLE, "unusable")
        answer: dict[str, object] = {"verdict": "ok"}
        if args.action == "rotate":
            answer["key"] = client_admin.rotate(session, client, secret, now)
        elif args.action == "revoke":
            client_admin.revoke(session, client, now)
        else:
            client_admin.expire(session, client, at, now)
        session.commit()
        emit({**answer, "client": _client_view(client)})
        return EXIT_OK


def run_export(args: argparse.Namespace) -> int:
    """Write the audit bundle `GET /v1/audit/bundles` would answer, as agency `--agency`."""
    from sqlmodel import Session

    from api.auth import Caller
    from api.bundle_requests import (
        MAX_ASSET_PARAM_CHARS,
        BundleScopeError,
        export_requested_bundle,
    )
    from api.bundles import MAX_BUNDLE_ASSETS, BundleUnavailable
    from api.db import utcnow
    from api.models import Agency, Scope
    from ledger.progress import progress_spinner

    values = [*(args.asset or []), args.site or "", args.start or "", args.end or ""]
    if len(args.asset or []) > MAX_BUNDLE_ASSETS or any(
            len(v) > MAX_ASSET_PARAM_CHARS for v in values):
        raise CommandError(
            f"at most {MAX_BUNDLE_ASSETS} --asset of {MAX_ASSET_PARAM_CHARS} chars",
            "export fewer assets at a time, or by --site", EXIT_UNUSABLE, "unusable")
    settings = _settings(args)
    # The operator exports as the agency's auditor would: same scoping, same bundle.
    caller = Caller("kitledger-export", args.agency, frozenset({Scope.AUDIT_READ.value}))
    with database(settings, existing=True) as engine, progress_spinner(
            f"exporting {args.agency}'s bundle") as _spinner, Session(engine) as session:
        if session.get(Agency, args.agency) is None:
            raise CommandError(f"no agency {args.agency!r}",
                               "give the id of an agency this server holds",
                               EXIT_UNUSABLE, "unusable")
        try:
            exported = export_requested_bundle(
                session, caller, assets=args.asset, site=args.site, start=args.start,
                end=args.end, now=utcnow(), since_size=args.since_size)
        except BundleScopeError as exc:
            raise CommandError(str(exc), "give one of --asset, --site or --start/--end",
                               EXIT_UNUSABLE, "unusable") from None
        except BundleUnavailable as exc:
            raise CommandError(str(exc), "wait for the next anchored checkpoint, or export "
                               "without --since-size", EXIT_FAILED, "failed") from None
    try:
        _write_atomically(args.out, exported.body)
    except OSError as exc:
        raise CommandError(f"cannot write {args.out}: {exc.strerror or type(exc).__name__}",
                           "choose a writable --out path", EXIT_FAILED, "failed") from None
    emit({"verdict": "ok", "out": str(args.out), "agency": exported.owner,
          "assets": len(exported.asset_ids), "bytes": len(exported.body)})
    return EXIT_OK


def run_tiles_export(args: argparse.Namespace) -> int:
    """Write `--agency`'s log as static tiles under `--out` (`api.tiles.export_tiles`)."""
    from sqlmodel import Session

    from api.models import Agency
    from api.tiles import NoCheckpointNote, export_tiles
    from ledger.core.tiles import TileError

    settings = _settings(args)
    with database(settings, existing=True) as engine, Session(engine) as session:
        if session.get(Agency, args.agency) is None:
            raise CommandError(f"no agency {args.agency!r}",
                               "give the id of an agency this server holds",
                               EXIT_UNUSABLE, "unusable")
        try:
            size, written = export_tiles(session, args.agency, settings.log_key_dir, args.out)
        except NoCheckpointNote as exc:
            raise CommandError(str(exc), "wait for the log's first signed checkpoint and "
                               "check log_key_dir", EXIT_FAILED, "failed") from None
        except TileError as exc:
            raise CommandError(str(exc), "the log cannot be written as tiles; report it",
                               EXIT_FAILED, "failed") from None
        except OSError as exc:
            raise CommandError(f"cannot write under {args.out}: "
                               f"{exc.strerror or type(exc).__name__}",
                               "choose a writable --out directory", EXIT_FAILED,
                               "failed") from None
    emit({"verdict": "ok", "agency": args.agency, "out": str(args.out), "size": size,
          "files": written})
    return EXIT_OK


def _write_atomically(path: Path, body: bytes) -> None:
    """A reader of `path` sees the old file or the whole new one, never half a bundle."""
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(body)
    partial.replace(path)


def register(subparsers: Any) -> None:
    """Add `migrate`, `serve`, `api-client`, `export` and `answers-key` to the `kitledger`
    parser."""
    migrate = subparsers.add_parser("migrate", help="apply the API database migrations "
                                    "(creates the database if it does not exist)")
    _settings_arguments(migrate)
    migrate.add_argument("--revision", default="head", help="target revision (default: head)")
    migrate.set_defaults(run=run_migrate)
    serve = subparsers.add_parser("serve", help="run the API and its MQTT ingest workers")
    _settings_arguments(serve)
    serve.add_argument("--host", default="127.0.0.1", help="listen address (default loopback)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="HTTP worker processes")
    serve.add_argument("--ingest-workers", type=int, default=1,
                       help="MQTT ingest processes (0: HTTP only)")
    serve.set_defaults(run=run_serve)
    _register_api_client(subparsers)
    from api.account_commands import register_account

    register_account(subparsers, _settings_arguments)
    from api.person_commands import register_person

    register_person(subparsers, _settings_arguments)
    export = subparsers.add_parser(
        "export", help="write an agency's audit bundle (as GET /v1/audit/bundles) to a file")
    _settings_arguments(export)
    export.add_argument("--agency", required=True, help="the agency exporting (its log)")
    export.add_argument("--asset", action="append", help="asset id (repeatable)")
    export.add_argument("--site", help="every asset the log places at this site (its latest "
                        "event at the newest checkpoint leaves it there)")
    export.add_argument("--start", help="assets with events logged from this RFC 3339 UTC "
                        "time (the checkpoints bracketing the range decide)...")
    export.add_argument("--end", help="...up to (excluding) this one, at most the newest "
                        "checkpoint's time")
    export.add_argument("--since-size", type=int, metavar="N",
                        help="checkpoints start at size N (the auditor's last verified one)")
    export.add_argument("--out", type=Path, required=True, help="bundle file to write")
    export.set_defaults(run=run_export)
    answers = subparsers.add_parser(
        "answers-key", help="print an agency's answers public key, for its readers' "
        "[mqtt] api_key (made on first use)")
    _settings_arguments(answers)
    answers.add_argument("--agency", required=True, help="agency id")
    answers.set_defaults(run=run_answers_key)
    identity = subparsers.add_parser(
        "anchoring-identity", help="print an agency's log id and anchorer address, for the "
        "consortium admin's `kitledger consortium enroll` (keys made on first use)")
    _settings_arguments(identity)
    identity.add_argument("--agency", required=True, help="agency id")
    identity.set_defaults(run=run_anchoring_identity)
    tiles = subparsers.add_parser(
        "tiles", help="an agency's log as C2SP tlog-tiles static files")
    actions = tiles.add_subparsers(dest="tiles_command", required=True,
                                   parser_class=type(tiles))
    tiles_export = actions.add_parser(
        "export", help="write the log's tiles, entry bundles and signed checkpoint to a "
        "directory any web server can publish (docs/audit-bundle.md)")
    _settings_arguments(tiles_export)
    tiles_export.add_argument("--agency", required=True, help="the agency whose log to write")
    tiles_export.add_argument("--out", type=Path, required=True,
                              help="directory to write into (created; full tiles kept)")
    tiles_export.set_defaults(run=run_tiles_export)


def run_answers_key(args: argparse.Namespace) -> int:
    """Print the public half of `--agency`'s answers key (`api.agency_keys.answers_key`): the
    value of `[mqtt] api_key` in each of its readers' agent.toml."""
    from api.agency_keys import LogKeyError, answers_key
    from ledger.core.envelope import key_id, raw_public_key

    settings = _settings(args)
    try:
        public = answers_key(settings.log_key_dir, args.agency).public_key()
    except LogKeyError as exc:
        raise CommandError(str(exc), "check log_key_dir and its permissions", EXIT_UNUSABLE,
                           "unusable") from None
    emit({"verdict": "ok", "agency": args.agency, "api_key": raw_public_key(public).hex(),
          "kid": key_id(public)})
    return EXIT_OK


def run_anchoring_identity(args: argparse.Namespace) -> int:
    """Print what the consortium admin needs to enrol `--agency`: its log id (the log key's
    id) and its anchorer account's address; and the log's public key, which auditors pin in
    their trust file. Only public values; the keys stay in log_key_dir."""
    from api.agency_keys import LogKeyError, anchoring_secret, log_key, log_key_id
    from ledger.chain.consortium import local_account

    settings = _settings(args)
    try:
        key = log_key(settings.log_key_dir, args.agency)
        log_id = log_key_id(key)
        secret = anchoring_secret(settings.log_key_dir, args.agency)
    except LogKeyError as exc:
        raise CommandError(str(exc), "check log_key_dir and its permissions", EXIT_UNUSABLE,
                           "unusable") from None
    emit({"verdict": "ok", "agency": args.agency, "log": log_id,
          "log_public_key": key.public_key().public_bytes_raw().hex(),
          "account": local_account(secret).address})
    return EXIT_OK


def _register_api_client(subparsers: Any) -> None:
    """`api-client` and its actions; every action prints one JSON verdict."""
    client = subparsers.add_parser(
        "api-client", help="manage agencies' API clients: create, list, rotate, revoke, expire")
    actions = client.add_subparsers(dest="action", required=True,
                                    parser_class=type(client))
    create = actions.add_parser("create", help="a new client (and its agency if new); prints "
                                "its key, once")
    _settings_arguments(create)
    create.add_argument("--agency", required=True, help="agency id")
    create.add_argument("--agency-name", help="name when creating the agency")
    create.add_argument("--name", default="api client", help="who uses this key")
    create.add_argument("--scopes", default="assets:read",
                        help="comma-separated: " + ",".join(SCOPE_NAMES))
    expiry = create.add_mutually_exclusive_group()
    expiry.add_argument("--expires-in-days", type=int, help="refuse the key after N days")
    expiry.add_argument("--at", metavar="TIME", help="refuse the key from this RFC 3339 time")
    listing = actions.add_parser("list", help="clients (never their keys), revoked ones too")
    _settings_arguments(listing)
    listing.add_argument("--agency", help="only this agency's clients")
    for name, text in (("rotate", "a new key (printed once); the old one stops now"),
                       ("revoke", "refuse the client's key from now on"),
                       ("expire", "refuse the client's key from --at (default: now)")):
        action = actions.add_parser(name, help=text)
        _settings_arguments(action)
        action.add_argument("client_id", help="the client id (the hex after kl_ in its key)")
        if name == "expire":
            action.add_argument("--at", metavar="TIME", help="RFC 3339 time (default: now)")
    client.set_defaults(run=run_api_client)
