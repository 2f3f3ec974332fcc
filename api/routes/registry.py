"""Registry routes (scope `admin`): the caller agency's sites, readers, asset classes, people."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from api.custody.corrections import DELETED_REASON, retire_person
from api.custody.transfers import CustodyRefused
from api.db import utcnow
from api.deps import Admin, SessionDep
from api.models.assets import AssetClass, AssetClassCreate, AssetClassPublic, AssetClassUpdate
from api.models.people import Person, PersonCreate, PersonPublic, PersonUpdate
from api.models.registry import (
    Reader,
    ReaderCreate,
    ReaderPublic,
    Site,
    SiteCreate,
    SitePublic,
    SiteUpdate,
)
from api.problems import Problem, not_found
from api.registry import (
    RegistryError,
    create_class,
    create_person,
    register_reader,
    revoke_reader,
    update_class,
    update_person,
    update_site,
)
from api.registry import create_site as register_site
from api.routes.paging import After, IdPath, Limit, Page, page_of
from api.routes.property_room import retirement_refused
from api.scoping import agency_row, own_row

router = APIRouter(prefix="/v1", tags=["registry"])


def _commit(session: Session, what: str) -> None:
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Problem(409, "conflict", f"{what} conflicts with an existing record") from None


def _own_site(session: Session, agency_id: str, site_id: str) -> Site:
    site = own_row(session, Site, agency_id, site_id)
    if site is None:
        raise Problem(422, "unknown-site", "site is not one of your agency's sites")
    return site


@router.post("/sites", status_code=status.HTTP_201_CREATED, response_model=SitePublic)
def create_site(data: SiteCreate, session: SessionDep, caller: Admin) -> Site:
    """Create a site (store, station, vehicle) of the caller's agency."""
    site = register_site(session, agency_id=caller.agency_id, data=data)
    _commit(session, "site")
    return site


@router.patch("/sites/{site_id}", response_model=SitePublic)
def change_site(site_id: IdPath, data: SiteUpdate, session: SessionDep, caller: Admin) -> Site:
    """Rename a site of the caller's agency."""
    site = agency_row(session, Site, caller.agency_id, site_id, "site")
    update_site(session, site=site, data=data)
    _commit(session, "site")
    return site


@router.get("/sites", response_model=Page[SitePublic])
def list_sites(session: SessionDep, caller: Admin, limit: Limit = 50,
               after: After = None) -> Page[Site]:
    """The caller agency's sites."""
    query = select(Site).where(Site.agency_id == caller.agency_id)
    if after:
        query = query.where(col(Site.id) > after)
    rows = list(session.exec(query.order_by(col(Site.id)).limit(limit + 1)))
    return page_of(rows, limit, "id")


@router.post("/readers", status_code=status.HTTP_201_CREATED, response_model=ReaderPublic)
def create_reader(data: ReaderCreate, session: SessionDep, caller: Admin) -> Reader:
    """Register a reader from what its agent's `enroll` printed."""
    _own_site(session, caller.agency_id, data.site_id)
    reader = register_reader(session, agency_id=caller.agency_id, data=data, now=utcnow())
    _commit(session, "reader")
    return reader


@router.get("/readers", response_model=Page[ReaderPublic])
def list_readers(session: SessionDep, caller: Admin, limit: Limit = 50,
                 after: After = None) -> Page[Reader]:
    """The caller agency's readers."""
    query = select(Reader).where(Reader.agency_id == caller.agency_id)
    if after:
        query = query.where(col(Reader.id) > after)
    return page_of(list(session.exec(query.order_by(col(Reader.id)).limit(limit + 1))), limit,
                   "id")


@router.post("/readers/{reader_id}/revoke", response_model=ReaderPublic)
def revoke(reader_id: IdPath, session: SessionDep, caller: Admin) -> Reader:
    """Revoke a reader: its messages are refused from now on."""
    reader = session.get(Reader, reader_id)
    if reader is None or reader.agency_id != caller.agency_id:
        raise not_found("reader")
    revoke_reader(session, reader=reader, now=utcnow())
    session.commit()
    return reader


@router.post("/asset-classes", status_code=status.HTTP_201_CREATED,
             response_model=AssetClassPublic)
def create_asset_class(data: AssetClassCreate, session: SessionDep, caller: Admin
                       ) -> AssetClass:
    """Create an asset class and its custody policy (logged: `api.registry_log`)."""
    asset_class = create_class(session, agency_id=caller.agency_id, data=data, now=utcnow())
    _commit(session, "asset class")
    return asset_class


@router.patch("/asset-classes/{class_id}", response_model=AssetClassPublic)
def change_asset_class(class_id: IdPath, data: AssetClassUpdate, session: SessionDep,
                       caller: Admin) -> AssetClass:
    """Rename a class or change its custody policy (a changed policy is logged as a new
    class-policy record; null clears the qualification or the loan period)."""
    asset_class = agency_row(session, AssetClass, caller.agency_id, class_id, "asset class")
    update_class(session, asset_class=asset_class, data=data, now=utcnow())
    _commit(session, "asset class")
    return asset_class


@router.get("/asset-classes", response_model=Page[AssetClassPublic])
def list_classes(session: SessionDep, caller: Admin, limit: Limit = 50,
                 after: After = None) -> Page[AssetClass]:
    """The caller agency's asset classes."""
    query = select(AssetClass).where(AssetClass.agency_id == caller.agency_id)
    if after:
        query = query.where(col(AssetClass.id) > after)
    return page_of(list(session.exec(query.order_by(col(AssetClass.id)).limit(limit + 1))),
                   limit, "id")


@router.post("/people", status_code=status.HTTP_201_CREATED, response_model=PersonPublic)
def create(data: PersonCreate, session: SessionDep, caller: Admin) -> Person:
    """Register a person (pseudonymous id, badges, qualifications)."""
    try:
        person = create_person(session, agency_id=caller.agency_id, data=data, now=utcnow())
    except (RegistryError, IntegrityError):
        session.rollback()
        raise Problem(409, "conflict",
                      "person or badge already registered, or a badge is an asset's EPC") from None
    _commit(session, "person")
    return person


@router.get("/people/{person_id}", response_model=PersonPublic)
def get_person(person_id: IdPath, session: SessionDep, caller: Admin) -> Person:
    """One person of the caller's agency."""
    return agency_row(session, Person, caller.agency_id, person_id, "person")


@router.patch("/people/{person_id}", response_model=PersonPublic)
def change_person(person_id: IdPath, data: PersonUpdate, session: SessionDep,
                  caller: Admin) -> Person:
    """Change a person's qualifications or whether they may take kit."""
    person = agency_row(session, Person, caller.agency_id, person_id, "person")
    try:
        update_person(session, person=person, data=data)
    except RegistryError as exc:
        raise Problem(409, "person-erased", str(exc)) from None
    _commit(session, "person")
    return person


@router.delete("/people/{person_id}", status_code=status.HTTP_204_NO_CONTENT,
               response_class=Response,
               responses={409: {"description": "the person holds kit (`holding`)"}})
def erase(person_id: IdPath, session: SessionDep, caller: Admin) -> Response:
    """Erase a person: they are retired in the log (once) and their commitment's opening and
    badges go; the log stays verifiable. Refused while they hold kit."""
    person = agency_row(session, Person, caller.agency_id, person_id, "person")
    try:
        retire_person(session, person=person, reason=DELETED_REASON, erase=True, now=utcnow())
    except CustodyRefused as exc:
        return retirement_refused(session, exc)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
