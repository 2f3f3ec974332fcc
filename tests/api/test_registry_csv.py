"""CSV import of the registry (`api.registry_csv`) on SQLite and PostgreSQL: every bad row
reported with its line and reason, nothing written until every row is good, the whole file in
one transaction with its registry records in the log, and hostile files refused."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine
from sqlmodel import Session, col, func, select

from api.models import Agency, Asset, AssetClass, Person, Reader, Site
from api.models.custody import RegistryRecordRow
from api.registry_csv import (
    MAX_IMPORT_BYTES,
    MAX_IMPORT_ROWS,
    CsvRefused,
    check_import,
    export_csv,
    run_import,
)
from ledger.core.encoding import parse_record
from ledger.core.envelope import raw_public_key
from ledger.core.records import RegistryRecord

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
CLASSES = (b"id,name,required_qualification,loan_days,dual_signoff,disposal_final\r\n"
           b"radio,Radio,,7,false,true\r\n"
           b"taser,Taser,taser,1,true,\r\n")


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine) as opened:
        opened.add_all([Agency(id="north", name="North"), Agency(id="south", name="South")])
        opened.flush()
        opened.add_all([Site(id="north-store", agency_id="north", name="Store"),
                        Site(id="south-store", agency_id="south", name="Store")])
        opened.commit()
        yield opened


def _import(session: Session, kind: str, data: bytes) -> list[tuple[int, str]]:
    check = run_import(session, agency_id="north", kind=kind, data=data, now=NOW)
    if check.ok:
        session.commit()
    else:
        session.rollback()
    return [(p.line, p.reason) for p in check.problems]


def _count(session: Session, table: type) -> int:
    return session.exec(select(func.count()).select_from(table)).one()


def _logged_kinds(session: Session) -> list[str]:
    rows = session.exec(select(RegistryRecordRow).where(RegistryRecordRow.agency_id == "north")
                        .order_by(col(RegistryRecordRow.leaf_index)))
    return [RegistryRecord.from_record(parse_record(bytes(r.record))).kind for r in rows]


def test_import_classes_then_assets_logs_each_in_one_go(session: Session) -> None:
    assert _import(session, "classes", CLASSES) == []
    taser = session.get(AssetClass, ("north", "taser"))
    assert taser is not None and taser.dual_signoff and taser.disposal_final
    assert taser.required_qualification == "taser" and taser.loan_days == 1
    assets = ("id,class_id,epc_hex,epc_uri,home_site_id\n"
              + "".join(f"radio-{i},radio,E2800000000000000000{i:04X},,north-store\n"
                        for i in range(1, 4))).encode()
    assert _import(session, "assets", assets) == []
    assert _count(session, Asset) == 3
    kinds = _logged_kinds(session)
    assert kinds.count("class-policy") == 2 and kinds.count("asset-registered") == 3


def test_dry_run_reports_every_bad_row_and_writes_nothing(session: Session) -> None:
    assert _import(session, "classes", CLASSES) == []
    session.add(Site(id="other", agency_id="south", name="Not ours"))
    session.commit()
    before = _logged_kinds(session)
    data = ("\ufeffid,class_id,epc_hex,epc_uri,home_site_id\n"  # a BOM is fine
            "good-1,radio,E28000000000000000000001,,north-store\n"
            "bad id,radio,E28000000000000000000002,,north-store\n"  # 3: id spelling
            "dup,radio,E28000000000000000000003,,north-store\n"
            "dup,radio,E28000000000000000000004,,north-store\n"  # 5: id twice
            "epc-twice,radio,E28000000000000000000001,,north-store\n"  # 6: EPC twice
            "no-class,nope,E28000000000000000000005,,north-store\n"  # 7
            "their-site,radio,E28000000000000000000006,,other\n"  # 8: another agency's
            "short,radio\n"  # 9
            '"multi\nline",radio,E28000000000000000000007,,north-store\n'  # 10, two lines
            "lower,radio,e28000000000000000000008,,north-store\n"  # 12: lower-case hex
            ).encode()
    check = check_import(session, agency_id="north", kind="assets", data=data)
    assert [p.line for p in check.problems] == [3, 5, 6, 7, 8, 9, 10, 12]
    reasons = {p.line: p.reason for p in check.problems}
    assert "id" in reasons[3] and "also on line 4" in reasons[5]
    assert reasons[6] == "EPC E28000000000000000000001 is also on line 2"
    assert "asset class nope" in reasons[7] and "site other" in reasons[8]
    assert "2 cells" in reasons[9]
    # The import refuses the same file whole: the good rows are not written either.
    assert [line for line, _ in _import(session, "assets", data)] == [3, 5, 6, 7, 8, 9, 10, 12]
    assert _count(session, Asset) == 0 and _logged_kinds(session) == before


def test_rows_clashing_with_registered_records_are_refused(session: Session) -> None:
    assert _import(session, "classes", CLASSES) == []
    assert _import(session, "people", b"id,qualifications,badges,active\n"
                                      b"pc-1,taser;firearms,E2800000000000000000BBBB,true\n") == []
    person = session.get(Person, ("north", "pc-1"))
    assert person is not None and person.qualifications == ["taser", "firearms"]
    again = _import(session, "classes", CLASSES)
    assert again == [(2, "id radio is already registered"), (3, "id taser is already registered")]
    badge_as_asset = (b"id,class_id,epc_hex,epc_uri,home_site_id\n"
                      b"r-9,radio,E2800000000000000000BBBB,,north-store\n")
    assert _import(session, "assets", badge_as_asset) == [
        (2, "EPC E2800000000000000000BBBB is already registered")]
    people = (b"id,qualifications,badges,active\n"
              b"pc-2,,E2800000000000000000BBBB,true\n"  # a taken badge
              b"pc-3,,,yes\n")  # "yes" is not a boolean: true or false
    assert _import(session, "people", people) == [
        (2, "EPC E2800000000000000000BBBB is already registered"),
        (3, "active: Input should be a valid boolean")]


def test_readers_and_sites_import_with_zones_and_keys(session: Session) -> None:
    key = raw_public_key(Ed25519PrivateKey.generate().public_key()).hex()
    assert _import(session, "sites", b"id,name\nvan-1,Van one\n") == []
    data = (f"id,site_id,role,public_key,zones\n"
            f"desk-1,north-store,issue_desk,{key},1=counter;2=shelf\n").encode()
    assert _import(session, "readers", data) == []
    reader = session.get(Reader, "desk-1")
    assert reader is not None and reader.zones == {"1": "counter", "2": "shelf"}
    assert "reader-registered" in _logged_kinds(session)
    bad = (f"id,site_id,role,public_key,zones\n"
           f"desk-2,north-store,issue_desk,{key},\n"  # the same key again
           f"desk-3,north-store,teleporter,{'0' * 64},\n"  # an unknown role
           f"desk-4,van-1,portal,{key[:-2]},1=door\n"  # a short key
           f"desk-5,van-1,portal,{'ab' * 32},door\n").encode()  # zones not port=name
    problems = dict(_import(session, "readers", bad))
    assert sorted(problems) == [2, 3, 4, 5]
    assert problems[2] == "public_key is already another reader's"
    assert "port=name" in problems[5]


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "header must be the columns"),
    (b"name,id,extra\n", "header must be the columns"),
    (b"id,id\n", "header must be the columns"),
    (b"\xff\xfei\x00d\x00", "UTF-16"),
    (b"id,name\nok,fine\nnul,\x00\n", "line 3: a NUL byte"),
    (b"id,name\nok,caf\xe9\n", "line 2: not UTF-8"),
    (b"id,name\n" + b"x" * MAX_IMPORT_BYTES, "larger than"),
])
def test_hostile_files_are_refused_whole(session: Session, data: bytes, reason: str) -> None:
    with pytest.raises(CsvRefused, match=reason):
        check_import(session, agency_id="north", kind="sites", data=data)
    with pytest.raises(CsvRefused):
        run_import(session, agency_id="north", kind="sites", data=data, now=NOW)
    session.rollback()
    assert _count(session, Site) == 2


def test_too_many_rows_and_a_broken_quote(session: Session) -> None:
    rows = "".join(f"s{i},S\n" for i in range(MAX_IMPORT_ROWS + 1))
    with pytest.raises(CsvRefused, match="more than"):
        check_import(session, agency_id="north", kind="sites", data=f"id,name\n{rows}".encode())
    check = check_import(session, agency_id="north", kind="sites",
                         data=b'id,name\ns1,"open quote\ns2,x\n')
    assert not check.ok and check.problems[0].line == 2
    empty = check_import(session, agency_id="north", kind="sites", data=b"id,name\n\n")
    assert not empty.ok and empty.problems == []  # no rows is not an import


def test_export_neutralises_formulas_and_round_trips() -> None:
    hostile = ["=cmd|' /C calc'!A0", "+1", "-2", "@SUM(A1)", "\tx", "\rx", "plain", None, 7]
    text = export_csv(["a"] * len(hostile), [hostile])
    row = list(csv.reader(io.StringIO(text)))[1]
    assert row == ["'=cmd|' /C calc'!A0", "'+1", "'-2", "'@SUM(A1)", "'\tx", "'\rx", "plain",
                   "", "7"]
