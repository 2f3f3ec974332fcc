"""The registry as CSV: import sites, asset classes, people, readers and assets from a file,
and export any list.

Import is all or nothing. `check_import` reads the file and lists every bad row with its line
number and the reason, writing nothing (the dry run); `run_import` checks again and only if
every row is good registers them all in the caller's one transaction, through the same
functions as the REST routes (`api.registry`), so each registry record reaches the log with
its row. Files are read with Python's `csv` module, bounded in bytes and rows, as UTF-8 (a
byte-order mark is allowed); a NUL byte, another encoding, a header that is not the sheet's
columns, an id or EPC given twice or already registered are all refused with their line.

An export cell that a spreadsheet would run as a formula (it starts with `=`, `+`, `-`, `@`,
a tab or a carriage return) is written with a leading apostrophe, so opening an export never
runs what someone typed into a name.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from pydantic import BaseModel, ValidationError
from sqlmodel import Session, col, select

from api.logstore import claim_log_writer
from api.models.assets import Asset, AssetClass, AssetClassCreate, AssetCreate
from api.models.people import Badge, Person, PersonCreate
from api.models.registry import Reader, ReaderCreate, Site, SiteCreate
from api.registry import (
    RegistryError,
    create_asset,
    create_class,
    create_person,
    create_site,
    register_reader,
)
from api.scoping import own_row
from ledger.core.envelope import key_id, public_key_from_raw

MAX_IMPORT_BYTES: Final = 1024 * 1024
"""A registry file of a force's whole kit list (some thousands of rows) fits in far less."""
MAX_IMPORT_ROWS: Final = 1000
"""Rows registered in one transaction: each asset appends two log entries, and the whole
import holds the registry's lock until it commits. `bench/registry_import.py` measured 28 ms an
asset on PostgreSQL and 10 ms on SQLite (2 shared cores): a full sheet of assets answers in
about 30 s. A larger kit list goes in several files."""
MAX_PROBLEMS: Final = 500
"""Bad rows reported at once; a file with more is wrong throughout."""
FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")
"""What makes a spreadsheet cell a formula (OWASP's list for CSV injection)."""
LIST_SEPARATOR: Final = ";"
"""Between a cell's several values: qualifications, badges, antenna zones."""


class CsvRefused(RegistryError):
    """The file as a whole cannot be read (too large, not UTF-8 text, wrong header)."""


@dataclass(frozen=True, slots=True)
class RowProblem:
    line: int
    reason: str


@dataclass(slots=True)
class ImportCheck:
    """What a dry run found: the good rows (line, parsed record) and every problem."""

    kind: str
    rows: list[tuple[int, BaseModel]]
    problems: list[RowProblem]

    @property
    def ok(self) -> bool:
        return not self.problems and bool(self.rows)


def _list(cell: str) -> list[str]:
    return [v.strip() for v in cell.split(LIST_SEPARATOR) if v.strip()]


def _bool(cell: str, default: bool) -> bool | str:
    """`true`/`false` (any case), empty for the default; anything else is left for the model
    to refuse (its booleans are strict)."""
    lowered = cell.strip().lower()
    if not lowered:
        return default
    return {"true": True, "false": False}.get(lowered, cell)


def _optional(cell: str) -> str | None:
    return cell.strip() or None


def _int_or_text(cell: str) -> int | str | None:
    text = cell.strip()
    if not text:
        return None
    return int(text) if text.isdigit() and len(text) <= 6 else text


def _zones(cell: str) -> dict[str, str]:
    zones = {}
    for pair in _list(cell):
        port, _, zone = pair.partition("=")
        if not port.strip().isdigit() or not zone.strip():
            raise ValueError(f"zone {pair!r} is not port=name")
        zones[port.strip()] = zone.strip()
    return zones


@dataclass(frozen=True, slots=True)
class Sheet:
    """One kind of registry record as CSV: its columns, how a row becomes the REST API's
    create model, and how it is registered."""

    kind: str
    columns: tuple[str, ...]
    parse: Callable[[Mapping[str, str]], BaseModel]
    register: Callable[[Session, str, Any, datetime], object]

    def template(self) -> str:
        """The header line a file must start with."""
        return ",".join(self.columns) + "\r\n"


SHEETS: Final = {s.kind: s for s in (
    Sheet("sites", ("id", "name"),
          lambda r: SiteCreate(id=r["id"], name=r["name"]),
          lambda s, a, d, now: create_site(s, agency_id=a, data=d)),
    Sheet("classes", ("id", "name", "required_qualification", "loan_days", "dual_signoff",
                      "disposal_final"),
          lambda r: AssetClassCreate.model_validate({
              "id": r["id"], "name": r["name"],
              "required_qualification": _optional(r["required_qualification"]),
              "loan_days": _int_or_text(r["loan_days"]),
              "dual_signoff": _bool(r["dual_signoff"], False),
              "disposal_final": _bool(r["disposal_final"], True)}),
          lambda s, a, d, now: create_class(s, agency_id=a, data=d, now=now)),
    Sheet("people", ("id", "qualifications", "badges", "active"),
          lambda r: PersonCreate.model_validate({
              "id": r["id"], "qualifications": _list(r["qualifications"]),
              "badges": _list(r["badges"]), "active": _bool(r["active"], True)}),
          lambda s, a, d, now: create_person(s, agency_id=a, data=d, now=now)),
    Sheet("readers", ("id", "site_id", "role", "public_key", "zones"),
          lambda r: ReaderCreate.model_validate({
              "id": r["id"], "site_id": r["site_id"], "role": r["role"].strip(),
              "public_key": r["public_key"].strip(), "zones": _zones(r["zones"])}),
          lambda s, a, d, now: register_reader(s, agency_id=a, data=d, now=now)),
    Sheet("assets", ("id", "class_id", "epc_hex", "epc_uri", "home_site_id"),
          lambda r: AssetCreate.model_validate({
              "id": r["id"], "class_id": r["class_id"], "epc_hex": r["epc_hex"].strip(),
              "epc_uri": _optional(r["epc_uri"]), "home_site_id": r["home_site_id"]}),
          lambda s, a, d, now: create_asset(s, agency_id=a, data=d, now=now)),
)}


def _text(data: bytes) -> str:
    """The file as text: bounded, UTF-8 (a byte-order mark is dropped), no NUL byte."""
    if len(data) > MAX_IMPORT_BYTES:
        raise CsvRefused(f"file is larger than {MAX_IMPORT_BYTES // 1024} KiB")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise CsvRefused("file is UTF-16: save it as CSV UTF-8")
    if b"\x00" in data:
        line = data[:data.index(b"\x00")].count(b"\n") + 1
        raise CsvRefused(f"line {line}: a NUL byte: this is not a text file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise CsvRefused(f"line {line}: not UTF-8 text: save the file as CSV UTF-8") from None


def _records(sheet: Sheet, text: str) -> Iterator[tuple[int, dict[str, str] | str]]:
    """(line, row as column -> cell) for each data row, or (line, why it cannot be read)."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [h.strip().lower() for h in next(reader, [])]
    except csv.Error as exc:
        raise CsvRefused(f"line 1: {exc}") from None
    if sorted(header) != sorted(sheet.columns) or len(set(header)) != len(header):
        raise CsvRefused(f"line 1: the header must be the columns {','.join(sheet.columns)} "
                         f"(found {','.join(header)[:200] or 'nothing'})")
    line = reader.line_num + 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield line, str(exc)
            return  # the reader cannot resync after a broken quote
        if any(c.strip() for c in cells):
            if len(cells) != len(header):
                yield line, f"{len(cells)} cells where the header has {len(header)}"
            else:
                yield line, dict(zip(header, cells, strict=True))
        line = reader.line_num + 1


def _reason(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'row'}: {e['msg']}"
                     for e in exc.errors()[:3])


def _parse(sheet: Sheet, data: bytes) -> ImportCheck:
    check = ImportCheck(sheet.kind, [], [])
    for line, record in _records(sheet, _text(data)):
        if len(check.rows) + len(check.problems) >= MAX_IMPORT_ROWS:
            raise CsvRefused(f"more than {MAX_IMPORT_ROWS} rows: split the file")
        if isinstance(record, str):
            check.problems.append(RowProblem(line, record))
            continue
        try:
            check.rows.append((line, sheet.parse(record)))
        except ValidationError as exc:
            check.problems.append(RowProblem(line, _reason(exc)))
        except ValueError as exc:
            check.problems.append(RowProblem(line, str(exc)))
    return check


class _Seen:
    """Values already used, in the file (with the line) or in the database."""

    def __init__(self, what: str, existing: Iterable[str]) -> None:
        self.what = what
        self.existing = set(existing)
        self.lines: dict[str, int] = {}

    def clash(self, value: str, line: int) -> str | None:
        if value in self.lines:
            return f"{self.what} {value} is also on line {self.lines[value]}"
        self.lines[value] = line
        if value in self.existing:
            return f"{self.what} {value} is already registered"
        return None


def _existing_ids(session: Session, agency_id: str, kind: str,
                  ids: Sequence[str]) -> Iterable[str]:
    """The `ids` already taken: within the agency for its own records (sites, classes, people,
    assets), across agencies for readers (a reader's id is its device's, global)."""
    if not ids:
        return ()
    table: Any = {"sites": Site, "classes": AssetClass, "people": Person, "readers": Reader,
                  "assets": Asset}[kind]
    query = select(table.id).where(col(table.id).in_(ids))
    if table is not Reader:
        query = query.where(table.agency_id == agency_id)
    return session.exec(query).all()


def _taken_epcs(session: Session, agency_id: str, epcs: Sequence[str]) -> set[str]:
    """The `epcs` already the agency's asset tags or badges (another agency's are its own)."""
    if not epcs:
        return set()
    return {*session.exec(select(Asset.epc_hex).where(
                Asset.agency_id == agency_id, col(Asset.epc_hex).in_(epcs))).all(),
            *session.exec(select(Badge.epc_hex).where(
                Badge.agency_id == agency_id, col(Badge.epc_hex).in_(epcs))).all()}


def _refs_problem(session: Session, agency_id: str, record: Any) -> str | None:
    """A class or site the row names that is not one of the agency's."""
    refs: tuple[tuple[str, Any, str], ...] = (
        ("class_id", AssetClass, "asset class"), ("site_id", Site, "site"),
        ("home_site_id", Site, "site"))
    for field, table, what in refs:
        ref = getattr(record, field, None)
        if ref is None:
            continue
        if own_row(session, table, agency_id, ref) is None:
            return f"{what} {ref} is not one of your agency's"
    return None


def _epcs_of(record: Any) -> list[str]:
    if isinstance(record, AssetCreate):
        return [record.epc_hex]
    if isinstance(record, PersonCreate):
        return list(record.badges)
    return []


def _reader_key_problem(session: Session, record: Any, keys: _Seen, line: int) -> str | None:
    if not isinstance(record, ReaderCreate):
        return None
    try:
        kid = key_id(public_key_from_raw(bytes.fromhex(record.public_key)))
    except ValueError:
        return "public_key is not an Ed25519 public key"
    if session.exec(select(Reader.id).where(Reader.key_id == kid)).first() is not None:
        return "public_key is already another reader's"
    return keys.clash(kid, line)


def check_import(session: Session, *, agency_id: str, kind: str, data: bytes) -> ImportCheck:
    """The dry run: parse `data` as a `kind` sheet and check each row against the file and the
    registry. Writes nothing. Raise `CsvRefused` if the file as a whole cannot be read."""
    check = _parse(SHEETS[kind], data)
    problems = check_records(session, agency_id=agency_id, kind=kind, rows=check.rows)
    bad = {p.line for p in problems}
    check.rows = [(line, r) for line, r in check.rows if line not in bad]
    check.problems = sorted([*check.problems, *problems], key=lambda p: p.line)[:MAX_PROBLEMS]
    return check


def check_records(session: Session, *, agency_id: str, kind: str,
                  rows: Sequence[tuple[int, Any]]) -> list[RowProblem]:
    """What is wrong with parsed `rows` (line, record) against each other and the registry:
    an id or EPC given twice or already registered, a class or site not the agency's, a
    reader key that is not a key or is taken. Writes nothing."""
    records = [r for _, r in rows]
    ids = _Seen("id", _existing_ids(session, agency_id, kind, [r.id for r in records]))
    epcs = _Seen("EPC", _taken_epcs(session, agency_id,
                                    [e for r in records for e in _epcs_of(r)]))
    keys = _Seen("reader key id", ())
    problems = []
    for line, record in rows:
        problem = (ids.clash(record.id, line)
                   or next((p for e in _epcs_of(record) if (p := epcs.clash(e, line))), None)
                   or _refs_problem(session, agency_id, record)
                   or _reader_key_problem(session, record, keys, line))
        if problem:
            problems.append(RowProblem(line, problem))
    return problems


def run_import(session: Session, *, agency_id: str, kind: str, data: bytes,
               now: datetime) -> ImportCheck:
    """Check the file and, only if every row is good, register every row in this transaction
    (the caller commits, or rolls back on an exception). Returns the check either way."""
    # Claimed before anything is read: no registration elsewhere can take an id or EPC
    # between the check and the writes.
    claim_log_writer(session, now, [agency_id], registry=True)
    check = check_import(session, agency_id=agency_id, kind=kind, data=data)
    if not check.ok:
        return check
    register = SHEETS[kind].register
    for _, record in check.rows:
        register(session, agency_id, record, now)
        session.flush()
    return check


def _safe(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def export_csv(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A CSV document of `rows` under `columns`, every formula-looking cell neutralised."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    writer.writerows([_safe(v) for v in row] for row in rows)
    return out.getvalue()
