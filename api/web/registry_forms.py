"""The registry's forms: register a site, asset class, person, reader or asset, revoke a
reader (after a confirmation page), retire a person, change an asset's home store or URI, a
class's name or custody policy, a person's qualifications or whether they are active, a site's
name, and import any of them from a CSV file.

Every form goes through the same functions as the REST API (`api.registry`), so what they
register is logged in the same transaction, and needs the same scope as the REST route:
`assets:write` for assets, `admin` for the rest. A form's fields are the CSV sheet's columns
(`api.registry_csv.SHEETS`) and are parsed and checked by the same code as an imported row;
a change form for a class, person or site parses its fields the same way and saves them
through `api.registry.update_class`, `update_person` and `update_site`, as the REST API's
`PATCH` routes do (a changed class policy is logged in the same transaction).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Final

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from api.custody.corrections import PersonHoldsKit
from api.custody.corrections import retire_person as retire
from api.custody.transfers import CustodyRefused
from api.db import utcnow
from api.deps import SessionDep
from api.models.assets import Asset, AssetClass, AssetClassCreate, AssetClassUpdate, AssetUpdate
from api.models.clients import Scope
from api.models.people import Person, PersonCreate, PersonUpdate
from api.models.registry import Reader, ReaderRole, Site, SiteCreate, SiteUpdate
from api.problems import Problem
from api.registry import (
    RegistryError,
    revoke_reader,
    update_asset,
    update_class,
    update_person,
    update_site,
)
from api.registry_csv import (
    MAX_IMPORT_BYTES,
    MAX_IMPORT_ROWS,
    SHEETS,
    CsvRefused,
    ImportCheck,
    check_import,
    check_records,
    run_import,
)
from api.routes.property_room import Reason
from api.scoping import agency_row, own_row, owned_asset
from api.web.registry_lists import LISTINGS, Listing, listing_for
from api.web.session import (
    CurrentUser,
    PageForbidden,
    WebUser,
    check_form_token,
    check_origin,
    signed_form,
)
from api.web.templating import page
from ledger.core.bounds import ID_PATTERN, MAX_ID_CHARS

router = APIRouter(prefix="/web/registry", include_in_schema=False)

MAX_UPLOAD_BYTES: Final = MAX_IMPORT_BYTES + 16 * 1024
"""The file plus the form's token and the multipart framing."""

ReaderId = Annotated[str, Path(max_length=MAX_ID_CHARS, pattern=ID_PATTERN)]
AssetId = Annotated[str, Path(max_length=MAX_ID_CHARS, pattern=ID_PATTERN)]


@dataclass(frozen=True, slots=True)
class FormField:
    name: str
    label: str
    hint: str = ""
    options: tuple[str, ...] = ()
    default: str = ""
    required: bool = False


YES_NO: Final = ("false", "true")
FIELDS: Final = {
    "sites": (FormField("id", "Id", "letters, digits, . _ : -", required=True),
              FormField("name", "Name", required=True)),
    "classes": (FormField("id", "Id", "letters, digits, . _ : -", required=True),
                FormField("name", "Name", required=True),
                FormField("required_qualification", "Qualification needed", "optional"),
                FormField("loan_days", "Loan period (days)", "optional, 1 to 3650"),
                FormField("dual_signoff", "Two people sign off", options=YES_NO,
                          default="false"),
                FormField("disposal_final", "Disposal is final", options=YES_NO,
                          default="true")),
    "people": (FormField("id", "Id (pseudonymous)", "a collar number, never a name",
                         required=True),
               FormField("qualifications", "Qualifications", "separated by ;"),
               FormField("badges", "Badge EPCs", "hex, separated by ;"),
               FormField("active", "Active", options=YES_NO, default="true")),
    "readers": (FormField("id", "Device id", "as the agent's enroll printed it",
                          required=True),
                FormField("site_id", "Site", required=True),
                FormField("role", "Role", options=tuple(ReaderRole), required=True),
                FormField("public_key", "Public key", "64 hex digits, from enroll",
                          required=True),
                FormField("zones", "Antenna zones", "port=zone, separated by ;")),
    "assets": (FormField("id", "Id", "letters, digits, . _ : -", required=True),
               FormField("class_id", "Class", required=True),
               FormField("epc_hex", "EPC (hex)", "upper-case hex, whole 16-bit words",
                         required=True),
               FormField("epc_uri", "EPC URI", "optional: derived from a GS1 EPC"),
               FormField("home_site_id", "Home store (site)", required=True)),
}


def _writable(kind: str, user: WebUser) -> Listing:
    listing = listing_for(kind, user)
    if not user.caller.may(listing.write_scope):
        raise PageForbidden(listing.write_scope)
    return listing


def _form_page(request: Request, user: WebUser, listing: Listing, values: dict[str, str],
               error: str | None = None) -> Response:
    return page(request, "registry_form.html", status_code=422 if error else 200, user=user,
                listing=listing, listings=LISTINGS, fields=FIELDS[listing.kind],
                values=values, error=error)


@router.get("/{kind}/new", response_class=HTMLResponse)
def new_record(kind: str, request: Request, user: CurrentUser) -> Response:
    """The empty form for one record."""
    listing = _writable(kind, user)
    return _form_page(request, user, listing, {f.name: f.default for f in FIELDS[kind]})


def _edit_kind(kind: str, user: WebUser) -> RecordEdit:
    edit = RECORD_EDITS.get(kind)
    if edit is None:
        raise HTTPException(404, "no such registry form")
    _writable(kind, user)
    return edit


def _reasons(exc: ValueError) -> str:
    """What a form's values broke, in words (the first three fields of a validation error)."""
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'form'}: {e['msg']}"
                         for e in exc.errors()[:3])
    return str(exc)


def _register(session: Session, agency_id: str, kind: str, values: dict[str, str]) -> str:
    """Register one record from a form's values; returns what is wrong, or "" once done."""
    sheet = SHEETS[kind]
    try:
        record = sheet.parse(values)
    except ValueError as exc:
        return _reasons(exc)
    problems = check_records(session, agency_id=agency_id, kind=kind, rows=[(1, record)])
    if problems:
        return problems[0].reason
    try:
        sheet.register(session, agency_id, record, utcnow())
        session.commit()
    except (RegistryError, IntegrityError) as exc:
        session.rollback()
        return str(exc) if isinstance(exc, RegistryError) else "it conflicts with a record " \
            "registered meanwhile"
    return ""


@router.post("/{kind}/new", response_class=HTMLResponse)
async def create_record(kind: str, request: Request, session: SessionDep,
                        user: CurrentUser) -> Response:
    """Register one record through the same function as the REST API."""
    listing = _writable(kind, user)
    form = await signed_form(request, user, listing.write_scope)
    values = {f.name: form.get(f.name, "") for f in FIELDS[kind]}
    error = _register(session, user.caller.agency_id, kind, values)
    if error:
        return _form_page(request, user, listing, values, error)
    return RedirectResponse(f"/web/registry/{kind}?done={values['id']}", status_code=303)


def _own_reader(session: Session, user: WebUser, reader_id: str) -> Reader:
    reader = session.get(Reader, reader_id)
    if reader is None or reader.agency_id != user.caller.agency_id:
        raise HTTPException(404, "no such reader")
    return reader


def _revoke_page(request: Request, user: WebUser, reader: Reader,
                 error: str | None = None) -> Response:
    return page(request, "registry_revoke.html", status_code=422 if error else 200, user=user,
                listing=LISTINGS["readers"], listings=LISTINGS, reader=reader, error=error)


@router.get("/readers/{reader_id}/revoke", response_class=HTMLResponse)
def confirm_revoke(reader_id: ReaderId, request: Request, session: SessionDep,
                   user: CurrentUser) -> Response:
    """The Revoke button's second step: what revoking does, and a box to tick."""
    _writable("readers", user)
    return _revoke_page(request, user, _own_reader(session, user, reader_id))


@router.post("/readers/{reader_id}/revoke", response_class=HTMLResponse)
async def revoke(reader_id: ReaderId, request: Request, session: SessionDep,
                 user: CurrentUser) -> Response:
    """Revoke a reader (as `POST /v1/readers/{id}/revoke`) once the confirmation box is
    ticked: its messages are refused from now, and it cannot be undone."""
    form = await signed_form(request, user, Scope.ADMIN)
    reader = _own_reader(session, user, reader_id)
    if form.get("confirm") != "yes":
        return _revoke_page(request, user, reader, "tick the box to confirm")
    revoke_reader(session, reader=reader, now=utcnow())
    session.commit()
    return RedirectResponse(f"/web/registry/readers?done={reader.id}", status_code=303)


@router.post("/people/{person_id}/retire")
async def retire_person(person_id: ReaderId, request: Request, session: SessionDep,
                        user: CurrentUser) -> Response:
    """Retire a person (as `POST /v1/people/{id}/retire`), with the form's reason; refused
    (409, naming the items) while they hold kit."""
    form = await signed_form(request, user, Scope.ADMIN)
    person = own_row(session, Person, user.caller.agency_id, person_id)
    if person is None:
        raise HTTPException(404, "no such person")
    try:
        reason = TypeAdapter(Reason).validate_python(form.get("reason", "").strip())
        retire(session, person=person, reason=reason, erase=False, now=utcnow())
    except ValidationError:
        raise Problem(422, "validation", "a reason is 1 to 200 printable ASCII characters"
                      ) from None
    except CustodyRefused as exc:
        session.rollback()
        held = exc.asset_ids if isinstance(exc, PersonHoldsKit) else []
        raise Problem(409, "custody-refused",
                      f"{exc}: {', '.join(held)}" if held else str(exc)) from None
    session.commit()
    return RedirectResponse(f"/web/registry/people?done={person.id}", status_code=303)


@router.get("/{kind}/import", response_class=HTMLResponse)
def import_form(kind: str, request: Request, user: CurrentUser) -> Response:
    """The upload form, with the sheet's columns."""
    listing = _writable(kind, user)
    return page(request, "registry_import.html", user=user, listing=listing,
                listings=LISTINGS, sheet=SHEETS[kind], check=None, error=None, imported=False,
                max_rows=MAX_IMPORT_ROWS, max_kib=MAX_IMPORT_BYTES // 1024)


@router.get("/{kind}/template.csv")
def import_template(kind: str, user: CurrentUser) -> Response:
    """An empty sheet: the header line a file must start with."""
    listing_for(kind, user)
    return Response(SHEETS[kind].template(), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{kind}-template.csv"'})


async def _upload(request: Request, user: WebUser, scope: Scope) -> tuple[bytes, bool]:
    """The uploaded file and whether it is to be imported (else a dry run); bounded before it
    is read, and only with the session's token."""
    check_origin(request)
    length = request.headers.get("content-length", "")
    if not length.isdigit() or int(length) > MAX_UPLOAD_BYTES:
        raise CsvRefused(f"the upload must be a file of at most {MAX_IMPORT_BYTES // 1024} KiB")
    async with request.form(max_files=1, max_fields=3, max_part_size=4096) as form:
        check_form_token(form, user)
        if not user.caller.may(scope):
            raise PageForbidden(scope)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise CsvRefused("choose a CSV file to upload")
        data = await upload.read(MAX_IMPORT_BYTES + 1)
        return data, form.get("mode") == "import"


@router.post("/{kind}/import", response_class=HTMLResponse)
async def import_file(kind: str, request: Request, session: SessionDep,
                      user: CurrentUser) -> Response:
    """Check an uploaded sheet (dry run) or import it: all rows or none."""
    listing = _writable(kind, user)
    check: ImportCheck | None = None
    error, imported = None, False
    try:
        data, wanted = await _upload(request, user, listing.write_scope)
        if wanted:
            check = run_import(session, agency_id=user.caller.agency_id, kind=kind, data=data,
                               now=utcnow())
            if check.ok:
                session.commit()
                imported = True
            else:
                session.rollback()
        else:
            check = check_import(session, agency_id=user.caller.agency_id, kind=kind, data=data)
            session.rollback()
    except CsvRefused as exc:
        session.rollback()
        error = str(exc)
    except (RegistryError, IntegrityError):
        session.rollback()
        error = "a row conflicts with a record registered meanwhile: nothing was imported"
    bad = error is not None or (check is not None and not check.ok)
    return page(request, "registry_import.html", status_code=422 if bad else 200, user=user,
                listing=listing, listings=LISTINGS, sheet=SHEETS[kind], check=check,
                error=error, imported=imported, max_rows=MAX_IMPORT_ROWS,
                max_kib=MAX_IMPORT_BYTES // 1024)



EDIT_FIELDS: Final = (FormField("home_site_id", "Home store (site)", required=True),
                      FormField("epc_uri", "EPC URI", "derived from a GS1 EPC; else optional"))


def _edit_page(request: Request, user: WebUser, kind: str, record_id: str, about: str,
               fields: tuple[FormField, ...], values: dict[str, str],
               error: str | None = None) -> Response:
    return page(request, "registry_edit.html", status_code=422 if error else 200, user=user,
                listing=LISTINGS[kind], listings=LISTINGS, record_id=record_id, about=about,
                fields=fields, values=values, error=error)


def _asset_page(request: Request, user: WebUser, asset: Asset, values: dict[str, str],
                error: str | None = None) -> Response:
    return _edit_page(request, user, "assets", asset.id,
                      f"EPC {asset.epc_hex}, class {asset.class_id}. Custody (who holds it) "
                      "changes at the readers, not here.", EDIT_FIELDS, values, error)


@router.get("/assets/{asset_id}/edit", response_class=HTMLResponse)
def edit_asset(asset_id: AssetId, request: Request, session: SessionDep,
               user: CurrentUser) -> Response:
    """The form changing an owned asset's home store or URI (as `PATCH /v1/assets/{id}`)."""
    _writable("assets", user)
    asset = owned_asset(session, user.caller, asset_id)
    return _asset_page(request, user, asset, {"home_site_id": asset.home_site_id,
                                              "epc_uri": asset.epc_uri or ""})


@router.post("/assets/{asset_id}/edit", response_class=HTMLResponse)
async def save_asset(asset_id: AssetId, request: Request, session: SessionDep,
                     user: CurrentUser) -> Response:
    """Save the asset's form through `api.registry.update_asset`, as the REST route does."""
    _writable("assets", user)
    form = await signed_form(request, user, Scope.ASSETS_WRITE)
    asset = owned_asset(session, user.caller, asset_id)
    values = {f.name: form.get(f.name, "").strip() for f in EDIT_FIELDS}
    if own_row(session, Site, user.caller.agency_id, values["home_site_id"]) is None:
        return _asset_page(request, user, asset, values, "site is not one of your agency's")
    try:
        data = AssetUpdate(home_site_id=values["home_site_id"],
                           epc_uri=values["epc_uri"] or None)
        update_asset(session, asset=asset, data=data, now=utcnow())
        session.commit()
    except (ValidationError, RegistryError) as exc:
        session.rollback()
        reason = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        return _asset_page(request, user, asset, values, reason)
    return RedirectResponse(f"/web/registry/assets?done={asset.id}", status_code=303)


@dataclass(frozen=True, slots=True)
class RecordEdit:
    """How a class, person or site is changed by form: its row, the fields shown (a subset of
    its CSV sheet's columns), the form values of a row, and the save, which parses the values
    with the sheet's own parser (the rest of the row filled in from the stored record) and
    calls the registry function the `PATCH` route calls."""

    table: type[AssetClass] | type[Person] | type[Site]
    about: str
    fields: tuple[FormField, ...]
    values: Callable[[Any], dict[str, str]]
    save: Callable[[Session, Any, dict[str, str]], object]


def _by_name(kind: str, *names: str) -> tuple[FormField, ...]:
    return tuple(f for f in FIELDS[kind] if f.name in names)


def _save_class(session: Session, row: AssetClass, values: dict[str, str]) -> None:
    parsed = SHEETS["classes"].parse({**values, "id": row.id,
                                      "disposal_final": str(row.disposal_final).lower()})
    assert isinstance(parsed, AssetClassCreate)
    update_class(session, asset_class=row, now=utcnow(), data=AssetClassUpdate(
        name=parsed.name, required_qualification=parsed.required_qualification,
        loan_days=parsed.loan_days, dual_signoff=parsed.dual_signoff))


def _save_person(session: Session, row: Person, values: dict[str, str]) -> None:
    parsed = SHEETS["people"].parse({**values, "id": row.id, "badges": ""})
    assert isinstance(parsed, PersonCreate)
    update_person(session, person=row, data=PersonUpdate(
        qualifications=parsed.qualifications, active=parsed.active))


def _save_site(session: Session, row: Site, values: dict[str, str]) -> None:
    parsed = SHEETS["sites"].parse({**values, "id": row.id})
    assert isinstance(parsed, SiteCreate)
    update_site(session, site=row, data=SiteUpdate(name=parsed.name))


RECORD_EDITS: Final[dict[str, RecordEdit]] = {
    "classes": RecordEdit(
        AssetClass, "A changed policy (qualification, loan period, two people signing off) "
        "is logged as a new class-policy record and holds from the next decision. Whether "
        "disposal is final is set when the class is registered.",
        _by_name("classes", "name", "required_qualification", "loan_days", "dual_signoff"),
        lambda c: {"name": c.name, "required_qualification": c.required_qualification or "",
                   "loan_days": "" if c.loan_days is None else str(c.loan_days),
                   "dual_signoff": str(bool(c.dual_signoff)).lower()},
        _save_class),
    "people": RecordEdit(
        Person, "Badges are registered with the person; an inactive person may take no kit.",
        _by_name("people", "qualifications", "active"),
        lambda p: {"qualifications": ";".join(p.qualifications),
                   "active": str(bool(p.active)).lower()},
        _save_person),
    "sites": RecordEdit(Site, "Custody events name the site by its id, which stays.",
                        _by_name("sites", "name"), lambda s: {"name": s.name}, _save_site),
}


@router.get("/{kind}/{record_id}/edit", response_class=HTMLResponse)
def edit_record(kind: str, record_id: AssetId, request: Request, session: SessionDep,
                user: CurrentUser) -> Response:
    """The change form of one of the agency's classes, people or sites."""
    edit = _edit_kind(kind, user)
    row = agency_row(session, edit.table, user.caller.agency_id, record_id, kind)
    return _edit_page(request, user, kind, record_id, edit.about, edit.fields,
                      edit.values(row))


@router.post("/{kind}/{record_id}/edit", response_class=HTMLResponse)
async def save_record(kind: str, record_id: AssetId, request: Request, session: SessionDep,
                      user: CurrentUser) -> Response:
    """Save a class, person or site through the registry function its `PATCH` route calls."""
    edit = _edit_kind(kind, user)
    form = await signed_form(request, user, Scope.ADMIN)
    row = agency_row(session, edit.table, user.caller.agency_id, record_id, kind)
    values = {f.name: form.get(f.name, "").strip() for f in edit.fields}
    try:
        edit.save(session, row, values)
        session.commit()
    except ValueError as exc:  # a ValidationError or RegistryError: nothing saved
        session.rollback()
        return _edit_page(request, user, kind, record_id, edit.about, edit.fields, values,
                          _reasons(exc))
    return RedirectResponse(f"/web/registry/{kind}?done={record_id}", status_code=303)
