"""Who holds an asset, said as such: "person pc-adams", "site HQ property store", "agency
Fire service". A person holding an asset is named by their pseudonymous id, as the asset row
holds it (the log knows only their commitment; `api.web.timeline` maps those back).

Site and person ids are per agency: a holder is named with the agency it is of (an asset's
`holder_agency_id`: a borrower's, for kit shared with it), and one of another agency than the
page's reader's says whose it is ("person pc-1 of Fire service")."""

from __future__ import annotations

from sqlmodel import Session

from api.models import Agency, Asset, Site
from api.models.assets import HolderKind
from api.scoping import own_row

KIND_WORDS = {HolderKind.LOCATION.value: "site", HolderKind.PERSON.value: "person",
              HolderKind.AGENCY.value: "agency"}


class Holders:
    """Names of sites and agencies, each looked up once, for labelling holders on a page
    shown to agency `viewer`."""

    def __init__(self, session: Session, viewer: str) -> None:
        self._session = session
        self._viewer = viewer
        self._names: dict[tuple[str, str, str], str] = {}

    def name(self, kind: str, ref: str, agency: str) -> str:
        """A site's name (agency `agency`'s site `ref`) or an agency's name (its id if it has
        no row); a person's id as is."""
        if kind == HolderKind.PERSON.value:
            return ref
        key = (kind, agency if kind == HolderKind.LOCATION.value else "", ref)
        if key not in self._names:
            row: Site | Agency | None = (own_row(self._session, Site, agency, ref)
                                         if kind == HolderKind.LOCATION.value
                                         else self._session.get(Agency, ref))
            self._names[key] = row.name if row is not None else ref
        return self._names[key]

    def site(self, agency: str, site_id: str) -> str:
        """Agency `agency`'s site `site_id` by its name."""
        return self.name(HolderKind.LOCATION.value, site_id, agency)

    def agency(self, agency: str) -> str:
        """An agency by its name."""
        return self.name(HolderKind.AGENCY.value, agency, agency)

    def label(self, kind: str, ref: str, agency: str) -> str:
        """The holder in words, its kind first; a site or person of agency `agency`, which is
        named too if it is not the viewer's."""
        words = f"{KIND_WORDS.get(kind, kind)} {self.name(kind, ref, agency)}"
        if kind != HolderKind.AGENCY.value and agency != self._viewer:
            words += f" of {self.agency(agency)}"
        return words

    def of(self, asset: Asset) -> str:
        """Who holds `asset`, in words."""
        return self.label(asset.holder_kind, asset.holder_ref, asset.holder_agency_id)
