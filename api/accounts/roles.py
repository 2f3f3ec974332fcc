"""The staff roles and the scopes each one holds: the only place roles are defined.

A role is a named set of the existing scopes (`api.models.clients.Scope`); pages and REST
routes check scopes, never roles, so a signed-in person may do exactly what an API key with
the same scopes may do. docs/accounts.md lists this table for operators.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from api.models.clients import Scope


class StaffRole(StrEnum):
    READ_ONLY = "read-only"
    AUDITOR = "auditor"
    STORES_OFFICER = "stores-officer"
    SUPERVISOR = "supervisor"
    AGENCY_ADMIN = "agency-admin"


ROLE_SCOPES: Final[dict[StaffRole, frozenset[Scope]]] = {
    # Looks: the agency page and the desk, nothing changed, no audit trail.
    StaffRole.READ_ONLY: frozenset({Scope.ASSETS_READ}),
    # Reads custody timelines, bundles and court reports; changes nothing.
    StaffRole.AUDITOR: frozenset({Scope.ASSETS_READ, Scope.AUDIT_READ}),
    # Runs the desk: issues, takes back, transfers and lends kit.
    StaffRole.STORES_OFFICER: frozenset({Scope.ASSETS_READ, Scope.CUSTODY_WRITE}),
    # A stores officer who also keeps the registry and reads the audit trail.
    StaffRole.SUPERVISOR: frozenset({Scope.ASSETS_READ, Scope.ASSETS_WRITE,
                                     Scope.CUSTODY_WRITE, Scope.AUDIT_READ}),
    # Everything, accounts, API clients and webhooks included.
    StaffRole.AGENCY_ADMIN: frozenset(Scope),
}

ROLE_PRECEDENCE: Final = (StaffRole.AGENCY_ADMIN, StaffRole.SUPERVISOR,
                          StaffRole.STORES_OFFICER, StaffRole.AUDITOR, StaffRole.READ_ONLY)
"""When a person's provider groups map to several roles, the first of these among them wins."""


def scopes_of(role: str) -> frozenset[str]:
    """The scope names `role` holds; an unknown role (a row from a newer version) holds none."""
    try:
        return frozenset(s.value for s in ROLE_SCOPES[StaffRole(role)])
    except ValueError:
        return frozenset()


def strongest(roles: set[StaffRole]) -> StaffRole | None:
    """The role of `ROLE_PRECEDENCE` first among `roles`, or None for none."""
    return next((r for r in ROLE_PRECEDENCE if r in roles), None)
