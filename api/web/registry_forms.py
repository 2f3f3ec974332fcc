"""The registry's forms: register a site, asset class, person, reader or asset, revoke a
reader, retire a person, change an asset's home store or URI, and import any of them from a
CSV file.

Every form goes through the same functions as the REST API (`api.registry`), so what they
register is logged in the same transaction, and needs the same scope as the REST route:
`assets:write` for assets, `admin` for the rest. A form's fields are the CSV sheet's columns
(`api.registry_csv.SHEETS`) and are parsed and checked by the same code as an imported row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Final

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
from api.models.assets import Asset, AssetUpdate
from api.models.clients import Scope
from api.models.people import Person
from api.models.registry import Reader, ReaderRole, Site
from api.problems import Problem
from api.registry import RegistryError, revoke_reader, update_asset
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
from api.scoping import owned_asset
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


def _register(session: Session, agency_id: str, kind: str, values: dict[str, str]) -> str:
    """Register one record from a form's values; returns what is wrong, or "" once done."""
    sheet = SHEETS[kind]
    try:
        record = sheet.parse(values)
    except ValidationError as exc:
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'form'}: {e['msg']}"
                         for e in exc.errors()[:3])
    except ValueError as exc:
        return str(exc)
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


@router.post("/readers/{reader_id}/revoke")
async def revoke(reader_id: ReaderId, request: Request, session: SessionDep,
                 user: CurrentUser) -> Response:
    """Revoke a reader (as `POST /v1/readers/{id}/revoke`): its messages are refused from now."""
    await signed_form(request, user, Scope.ADMIN)
    reader = session.get(Reader, reader_id)
    if reader is None or reader.agency_id != user.caller.agency_id:
        raise HTTPException(404, "no such reader")
    revoke_reader(session, reader=reader, now=utcnow())
    session.commit()
    return RedirectResponse(f"/web/registry/readers?done={reader.id}", status_code=303)


@router.post("/people/{person_id}/retire")
async def retire_person(person_id: ReaderId, request: Request, session: SessionDep,
                        user: CurrentUser) -> Response:
    """Retire a person (as `POST /v1/people/{id}/retire`), with the form's reason; refused
    (409, naming the items) while they hold kit."""
    form = await signed_form(request, user, Scope.ADMIN)
    person = session.get(Person, person_id)
    if person is None or person.agency_id != user.caller.agency_id:
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


def _edit_page(request: Request, user: WebUser, asset: Asset, values: dict[str, str],
               error: str | None = None) -> Response:
    return page(request, "registry_edit.html", status_code=422 if error else 200, user=user,
                listing=LISTINGS["assets"], listings=LISTINGS, asset=asset, fields=EDIT_FIELDS,
                values=values, error=error)


@router.get("/assets/{asset_id}/edit", response_class=HTMLResponse)
def edit_asset(asset_id: AssetId, request: Request, session: SessionDep,
               user: CurrentUser) -> Response:
    """The form changing an owned asset's home store or URI (as `PATCH /v1/assets/{id}`)."""
    _writable("assets", user)
    asset = owned_asset(session, user.caller, asset_id)
    return _edit_page(request, user, asset, {"home_site_id": asset.home_site_id,
                                             "epc_uri": asset.epc_uri or ""})


@router.post("/assets/{asset_id}/edit", response_class=HTMLResponse)
async def save_asset(asset_id: AssetId, request: Request, session: SessionDep,
                     user: CurrentUser) -> Response:
    """Save the asset's form through `api.registry.update_asset`, as the REST route does."""
    _writable("assets", user)
    form = await signed_form(request, user, Scope.ASSETS_WRITE)
    asset = owned_asset(session, user.caller, asset_id)
    values = {f.name: form.get(f.name, "").strip() for f in EDIT_FIELDS}
    site = session.get(Site, values["home_site_id"])
    if site is None or site.agency_id != user.caller.agency_id:
        return _edit_page(request, user, asset, values, "site is not one of your agency's")
    try:
        data = AssetUpdate(home_site_id=values["home_site_id"],
                           epc_uri=values["epc_uri"] or None)
        update_asset(session, asset=asset, data=data, now=utcnow())
        session.commit()
    except (ValidationError, RegistryError) as exc:
        session.rollback()
        reason = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        return _edit_page(request, user, asset, values, reason)
    return RedirectResponse(f"/web/registry/assets?done={asset.id}", status_code=303)
