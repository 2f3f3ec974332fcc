"""The part of the custody rules a bundle can be held to: which reader role each action needs,
where it leaves the asset, and which actions a class's dual sign-off governs.

`api.custody.rules` decides custody with these tables, and `ledger.verify` checks logged events
against them with the registry records the log holds, so the API and the auditor cannot read
the rules differently. Pure data: the ledger never imports the API.
"""

from __future__ import annotations

from typing import Final

ISSUE_ROLES: Final = frozenset({"issue_desk"})
"""Readers at which a tag read, with a badge session open, checks kit out."""

RETURN_ROLES: Final = frozenset({"return_desk", "locker"})
"""Readers at which a tag read checks kit in (or back from loan) at the reader's site."""

DESK_ROLES: Final = ISSUE_ROLES | RETURN_ROLES
"""Readers at which a staff badge opens a session."""

ROLES_FOR_ACTION: Final = {"check_out": ISSUE_ROLES, "check_in": RETURN_ROLES,
                           "loan_return": RETURN_ROLES}
"""The reader roles that may make each action the rules derive from a read. The other actions
(register, transfer, loan_out, dispose) are made through the API, not by a reader."""

AT_READER_SITE: Final = frozenset({"check_in", "loan_return"})
"""Actions that leave the asset at the location of the reader that read it back in."""

DUAL_SIGNOFF_ACTIONS: Final = frozenset({"check_out"})
"""Actions that need two distinct authorisers when the asset's class asks for dual sign-off."""

DUAL_SIGNOFF_PEOPLE: Final = 2
"""Distinct authorisers dual sign-off takes."""

MANUAL_ROLES: Final = {"check_out": ISSUE_ROLES, "check_in": RETURN_ROLES,
                       "transfer": DESK_ROLES}
"""The actions an officer may enter by hand at a desk (a tag that will not read, a reader
down) and the roles of the desk each is entered at: a check-out at an issue desk, a check-in at
a return desk or locker, a hand-over between people at any desk. A manual event cites no reads;
when the asset's class asks for dual sign-off, a supervisor co-signs every manual action (not
only a check-out), since no read backs the officer's word."""
