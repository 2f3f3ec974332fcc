"""Who holds an asset, said as such: "person pc-adams", "site HQ property store", "agency
Fire service". People are named by their pseudonymous ids (the log knows only their
commitments; the registry maps them back, for the owning agency's own people only)."""

from __future__ import annotations

from sqlmodel import Session, select

from api.models import Agency, Person, Site
from api.models.assets import HolderKind

KIND_WORDS = {HolderKind.LOCATION.value: "site", HolderKind.PERSON.value: "person",
              HolderKind.AGENCY.value: "agency"}


class Holders:
    """Names of sites and agencies (looked up once each) and of an agency's people by
    commitment, for labelling holders on a page."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._names: dict[tuple[str, str], str] = {}
        self._people: dict[str, dict[str, str]] = {}

    def name(self, kind: str, ref: str) -> str:
        """A site's or agency's name (its id if it has no row); a person's id as is."""
        if kind == HolderKind.PERSON.value:
            return ref
        key = (kind, ref)
        if key not in self._names:
            row: Site | Agency | None = (self._session.get(Site, ref)
                                         if kind == HolderKind.LOCATION.value
                                         else self._session.get(Agency, ref))
            self._names[key] = row.name if row is not None else ref
        return self._names[key]

    def label(self, kind: str, ref: str) -> str:
        """The holder in words, its kind first."""
        return f"{KIND_WORDS.get(kind, kind)} {self.name(kind, ref)}"

    def person(self, agency_id: str, commitment: str) -> str:
        """The person id behind a commitment in agency `agency_id`'s log, or a short form of
        the commitment for someone the agency's registry does not hold."""
        if agency_id not in self._people:
            self._people[agency_id] = {p.commitment: p.id for p in self._session.exec(
                select(Person).where(Person.agency_id == agency_id))}
        return self._people[agency_id].get(commitment, f"person {commitment[:10]}…")
