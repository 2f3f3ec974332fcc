"""Who holds an asset, said as such: "person pc-adams", "site HQ property store", "agency
Fire service". A person holding an asset is named by their pseudonymous id, as the asset row
holds it (the log knows only their commitment; `api.web.timeline` maps those back)."""

from __future__ import annotations

from sqlmodel import Session

from api.models import Agency, Site
from api.models.assets import HolderKind

KIND_WORDS = {HolderKind.LOCATION.value: "site", HolderKind.PERSON.value: "person",
              HolderKind.AGENCY.value: "agency"}


class Holders:
    """Names of sites and agencies, each looked up once, for labelling holders on a page."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._names: dict[tuple[str, str], str] = {}

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
