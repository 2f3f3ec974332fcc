"""API clients are managed, through `kitledger api-client` (a real process) and the admin REST
API: create, list, rotate, revoke, expire. Revoked, rotated-out and expired keys are refused;
no listing ever shows a key or its hash; an agency's admin sees only its own clients."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from tests.security.conftest import SECRET, Service

KITLEDGER = str(Path(sys.executable).parent / "kitledger")


def _command(engine: Engine, *args: str) -> tuple[int, dict[str, Any]]:
    """Run `kitledger api-client ...` on the test database; its exit code and JSON verdict."""
    url = engine.url.render_as_string(hide_password=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KITLEDGER_")}
    env["KITLEDGER_SECRET_KEY"] = SECRET
    done = subprocess.run([KITLEDGER, "api-client", args[0], "--database-url", url, *args[1:]],
                          capture_output=True, text=True, env=env, timeout=60, check=False)
    return done.returncode, json.loads(done.stdout.strip().splitlines()[-1])


def _works(service: Service, key: str) -> int:
    return int(service.client.get("/v1/assets", headers={"Authorization": f"Bearer {key}"}
                                  ).status_code)


def test_the_command_creates_lists_rotates_revokes_and_expires(service: Service) -> None:
    code, made = _command(service.engine, "create", "--agency", "north", "--name", "scanner",
                          "--scopes", "assets:read", "--expires-in-days", "30")
    assert code == 0 and made["key"].startswith(f"kl_{made['client_id']}_")
    assert made["client"]["expires_at"] is not None
    assert _works(service, made["key"]) == 200
    code, listed = _command(service.engine, "list", "--agency", "north")
    assert code == 0
    mine = [c for c in listed["clients"] if c["id"] == made["client_id"]]
    assert len(mine) == 1 and mine[0]["name"] == "scanner"
    assert all(c["agency_id"] == "north" for c in listed["clients"])
    assert made["key"] not in json.dumps(listed) and "key_hash" not in json.dumps(listed)

    code, rotated = _command(service.engine, "rotate", made["client_id"])
    assert code == 0 and rotated["key"] != made["key"]
    assert rotated["client"]["rotated_at"] is not None
    assert _works(service, made["key"]) == 401 and _works(service, rotated["key"]) == 200

    code, expired = _command(service.engine, "expire", made["client_id"])
    assert code == 0 and expired["client"]["expires_at"] is not None
    assert _works(service, rotated["key"]) == 401

    code, other = _command(service.engine, "create", "--agency", "north", "--scopes",
                           "assets:read")
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert _command(service.engine, "expire", other["client_id"], "--at", later)[0] == 0
    assert _works(service, other["key"]) == 200  # not yet
    code, revoked = _command(service.engine, "revoke", other["client_id"])
    assert code == 0 and revoked["client"]["revoked_at"] is not None
    assert _works(service, other["key"]) == 401


def test_the_command_refuses_unknown_clients_scopes_and_times(service: Service) -> None:
    for args in (("rotate", "0123456789abcdef"), ("revoke", "nope"),
                 ("create", "--agency", "north", "--scopes", "root"),
                 ("create", "--agency", "north", "--expires-in-days", "0"),
                 ("create", "--agency", "north", "--at", "tomorrow"),
                 ("expire", "nope", "--at", "2030-01-01T00:00:00")):  # no offset: ambiguous
        code, verdict = _command(service.engine, *args)
        assert (code, verdict["verdict"]) == (2, "unusable"), args


def test_the_admin_api_manages_its_agencys_clients(service: Service) -> None:
    made = service.call("all", "POST", "/v1/api-clients",
                        json={"name": "desk tablet", "scopes": ["assets:read"]})
    assert made.status_code == 201, made.text
    key, client_id = made.json()["key"], made.json()["client"]["id"]
    assert _works(service, key) == 200
    listed = service.call("all", "GET", "/v1/api-clients").json()
    assert client_id in {c["id"] for c in listed}
    assert {c["agency_id"] for c in listed} == {"north"}
    assert key not in json.dumps(listed) and "key_hash" not in json.dumps(listed)

    rotated = service.call("all", "POST", f"/v1/api-clients/{client_id}/rotate").json()
    assert _works(service, key) == 401 and _works(service, rotated["key"]) == 200
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert service.call("all", "POST", f"/v1/api-clients/{client_id}/expire",
                        json={"at": soon}).status_code == 200
    assert _works(service, rotated["key"]) == 200
    assert service.call("all", "POST", f"/v1/api-clients/{client_id}/expire").status_code == 200
    assert _works(service, rotated["key"]) == 401
    assert service.call("all", "POST", f"/v1/api-clients/{client_id}/revoke").json()[
        "revoked_at"] is not None
    past = service.call("all", "POST", "/v1/api-clients", json={
        "name": "born expired", "scopes": ["assets:read"],
        "expires_at": (datetime.now(UTC) - timedelta(seconds=1)).isoformat()})
    assert past.status_code == 201 and _works(service, past.json()["key"]) == 401


def test_the_admin_api_is_for_admins_of_the_same_agency(service: Service) -> None:
    north_client = service.call("all", "GET", "/v1/api-clients").json()[0]["id"]
    for action in ("rotate", "revoke", "expire"):  # south's admin: as if unknown
        answer = service.call("south", "POST", f"/v1/api-clients/{north_client}/{action}")
        assert answer.status_code == 404, action
    assert north_client not in {c["id"] for c in service.call(
        "south", "GET", "/v1/api-clients").json()}
    for who in ("assets", "webhooks", "none"):
        assert service.call(who, "GET", "/v1/api-clients").status_code == 403
        assert service.call(who, "POST", "/v1/api-clients", json={
            "name": "x", "scopes": ["admin"]}).status_code == 403
    for body in ({"name": "x", "scopes": []}, {"name": "x", "scopes": ["root"]},
                 {"name": "", "scopes": ["admin"]}, {"name": "x" * 10_000, "scopes": ["admin"]},
                 {"name": "x", "scopes": ["admin"], "expires_at": "2030-01-01T00:00:00"}):
        assert service.call("all", "POST", "/v1/api-clients", json=body).status_code == 422


def test_openapi_declares_the_key_scheme(service: Service) -> None:
    document = service.client.get("/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    assert schemes == {"apiKey": {"type": "http", "scheme": "bearer",
                                  "bearerFormat": "kl_<client id>_<secret>",
                                  "description": schemes["apiKey"]["description"]}}
    assert document["paths"]["/v1/assets"]["get"]["security"] == [{"apiKey": []}]
    assert "security" not in document["paths"]["/healthz"]["get"]
