"""`kitledger person retire`: retire (and optionally erase) a registry person from the command
line, through the same function as `POST /v1/people/{id}/retire` and `DELETE /v1/people/{id}`
(`api.custody.corrections.retire_person`), so the `person-retired` record is logged in the
same transaction. Refused, exit 1, while the person holds kit: the verdict names the items.
"""

from __future__ import annotations

import argparse
from typing import Any

from ledger.cli import EXIT_FAILED, EXIT_OK, EXIT_UNUSABLE, CommandError, emit


def run_person(args: argparse.Namespace) -> int:
    """`kitledger person retire AGENCY PERSON --reason WHY [--erase]`."""
    from pydantic import TypeAdapter, ValidationError
    from sqlmodel import Session

    from api.commands import _settings, database
    from api.custody import corrections
    from api.custody.transfers import CustodyRefused
    from api.db import utcnow
    from api.models.people import Person
    from api.routes.property_room import Reason
    from api.scoping import own_row

    try:
        reason = TypeAdapter(Reason).validate_python(args.reason)
    except ValidationError:
        raise CommandError("--reason is 1 to 200 printable ASCII characters",
                           "give a shorter --reason, without control characters") from None
    settings = _settings(args)
    with database(settings, existing=True) as engine, Session(engine) as session:
        person = own_row(session, Person, args.agency, args.person)
        if person is None:
            raise CommandError(f"agency {args.agency!r} has no person {args.person!r}",
                               "check the agency and person ids", EXIT_UNUSABLE, "unusable")
        try:
            corrections.retire_person(session, person=person, reason=reason, erase=args.erase,
                                      now=utcnow())
        except CustodyRefused as exc:
            session.rollback()
            held = exc.asset_ids if isinstance(exc, corrections.PersonHoldsKit) else []
            shown = f"{exc}: {', '.join(held)}" if held else str(exc)
            raise CommandError(shown, "check the items in or hand them over first",
                               EXIT_FAILED, "refused") from None
        session.commit()
        emit({"verdict": "ok", "agency": args.agency, "person": person.id,
              "erased": args.erase, "commitment": person.commitment})
        return EXIT_OK


def register_person(subparsers: Any, settings_arguments: Any) -> None:
    """`person retire`, printing one JSON verdict."""
    person = subparsers.add_parser("person", help="registry people: retire (and erase) one")
    actions = person.add_subparsers(dest="action", required=True, parser_class=type(person))
    retire = actions.add_parser("retire", help="retire a person (logged); refused while they "
                                "hold kit")
    settings_arguments(retire)
    retire.add_argument("agency", help="the person's agency id")
    retire.add_argument("person", help="the person's id")
    retire.add_argument("--reason", required=True, help="why, as logged (printable ASCII)")
    retire.add_argument("--erase", action="store_true",
                        help="also erase their personal data (as DELETE /v1/people/{id})")
    person.set_defaults(run=run_person)
