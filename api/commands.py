"""The API service's `kitledger` subcommands: `migrate`, `serve`, `api-client` and `export`.

Registered as the `server` part of the entry-point group `kitledger.commands`. Only argparse is
imported at module load; SQLAlchemy, Alembic and FastAPI are imported inside `run`, so
`kitledger --help` and the other subcommands start fast and work on an install without the
`server` extra.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ledger.cli import EXIT_FAILED, EXIT_OK, EXIT_UNUSABLE, emit


def _settings_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML settings file (else KITLEDGER_CONFIG)")
    parser.add_argument("--database-url", help="override KITLEDGER_DATABASE_URL")


def run_migrate(args: argparse.Namespace) -> int:
    from api.config import load_settings
    from api.db import make_engine
    from api.errors import ConfigError, MigrationError
    from api.migrate import backfill, current_revision, head_revision, upgrade

    overrides = {"database_url": args.database_url} if args.database_url else {}
    try:
        settings = load_settings(args.config, **overrides)
    except ConfigError as exc:
        emit({"verdict": "unusable", "reason": str(exc)})
        return EXIT_UNUSABLE
    engine = make_engine(settings)
    try:
        before = current_revision(engine)
        upgrade(engine, args.revision)
        after = current_revision(engine)
        backfilled = backfill(engine) if after == head_revision(engine) else 0
    except MigrationError as exc:
        emit({"verdict": "failed", "reason": str(exc)})
        return EXIT_FAILED
    finally:
        engine.dispose()
    emit({"verdict": "ok", "from": before, "to": after, "registry_records": backfilled})
    return EXIT_OK


def run_serve(args: argparse.Namespace) -> int:
    from api.config import load_settings
    from api.errors import ConfigError
    from api.serve import MAX_WORKERS, ServeOptions, serve

    overrides = {"database_url": args.database_url} if args.database_url else {}
    for name in ("workers", "ingest_workers"):
        if not 0 <= getattr(args, name) <= MAX_WORKERS or (name == "workers" and not args.workers):
            emit({"verdict": "unusable", "reason": f"--{name.replace('_', '-')} out of range"})
            return EXIT_UNUSABLE
    try:
        load_settings(args.config, **overrides)  # refuse bad settings before forking anything
    except ConfigError as exc:
        emit({"verdict": "unusable", "reason": str(exc)})
        return EXIT_UNUSABLE
    if args.config is not None:
        import os

        os.environ["KITLEDGER_CONFIG"] = str(args.config)
    serve(ServeOptions(args.host, args.port, args.workers, args.ingest_workers, overrides))
    return EXIT_OK


def run_api_client(args: argparse.Namespace) -> int:
    from sqlmodel import Session

    from api.auth import create_api_client
    from api.config import load_settings
    from api.db import make_engine, utcnow
    from api.errors import ConfigError
    from api.models import Agency, Scope

    try:
        settings = load_settings(args.config, **(
            {"database_url": args.database_url} if args.database_url else {}))
        scopes = [Scope(s) for s in args.scopes.split(",") if s]
    except (ConfigError, ValueError) as exc:
        emit({"verdict": "unusable", "reason": str(exc)})
        return EXIT_UNUSABLE
    engine = make_engine(settings)
    with Session(engine) as session:
        if session.get(Agency, args.agency) is None:
            session.add(Agency(id=args.agency, name=args.agency_name or args.agency))
            session.flush()
        client, key = create_api_client(
            session, agency_id=args.agency, name=args.name, scopes=scopes,
            server_secret=settings.secret_key.get_secret_value(), now=utcnow())
        session.commit()
        client_id = client.id
    engine.dispose()
    # The key is shown once, here, to the operator who asked for it; only its hash is stored.
    emit({"verdict": "ok", "client_id": client_id, "agency": args.agency, "key": key,
          "scopes": sorted(s.value for s in scopes)})
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
    from api.config import load_settings
    from api.db import make_engine, utcnow
    from api.errors import ConfigError
    from api.models import Agency, Scope

    values = [*(args.asset or []), args.site or "", args.start or "", args.end or ""]
    if len(args.asset or []) > MAX_BUNDLE_ASSETS or any(
            len(v) > MAX_ASSET_PARAM_CHARS for v in values):
        emit({"verdict": "unusable",
              "reason": f"at most {MAX_BUNDLE_ASSETS} --asset of {MAX_ASSET_PARAM_CHARS} chars"})
        return EXIT_UNUSABLE
    try:
        settings = load_settings(args.config, **(
            {"database_url": args.database_url} if args.database_url else {}))
    except ConfigError as exc:
        emit({"verdict": "unusable", "reason": str(exc)})
        return EXIT_UNUSABLE
    # The operator exports as the agency's auditor would: same scoping, same bundle.
    caller = Caller("kitledger-export", args.agency, frozenset({Scope.AUDIT_READ.value}))
    engine = make_engine(settings)
    try:
        with Session(engine) as session:
            if session.get(Agency, args.agency) is None:
                emit({"verdict": "unusable", "reason": f"no agency {args.agency!r}"})
                return EXIT_UNUSABLE
            exported = export_requested_bundle(
                session, caller, assets=args.asset, site=args.site, start=args.start,
                end=args.end, now=utcnow(), since_size=args.since_size)
    except BundleScopeError as exc:
        emit({"verdict": "unusable", "reason": str(exc)})
        return EXIT_UNUSABLE
    except BundleUnavailable as exc:
        emit({"verdict": "failed", "reason": str(exc)})
        return EXIT_FAILED
    finally:
        engine.dispose()
    try:
        _write_atomically(args.out, exported.body)
    except OSError as exc:
        emit({"verdict": "failed", "reason": f"cannot write {args.out}: {type(exc).__name__}"})
        return EXIT_FAILED
    emit({"verdict": "ok", "out": str(args.out), "agency": exported.owner,
          "assets": len(exported.asset_ids), "bytes": len(exported.body)})
    return EXIT_OK


def _write_atomically(path: Path, body: bytes) -> None:
    """A reader of `path` sees the old file or the whole new one, never half a bundle."""
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(body)
    partial.replace(path)


def register(subparsers: Any) -> None:
    """Add `migrate`, `serve`, `api-client` and `export` to the `kitledger` parser."""
    migrate = subparsers.add_parser("migrate", help="apply the API database migrations")
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
    client = subparsers.add_parser(
        "api-client", help="create an agency's API client (and the agency if new); prints its key"
    )
    _settings_arguments(client)
    client.add_argument("--agency", required=True, help="agency id")
    client.add_argument("--agency-name", help="name when creating the agency")
    client.add_argument("--name", default="api client", help="who uses this key")
    client.add_argument("--scopes", default="assets:read",
                        help="comma-separated: assets:read,assets:write,custody:write,"
                             "audit:read,admin")
    client.set_defaults(run=run_api_client)
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
