"""Registry CSV import benchmark: `python bench/registry_import.py [DATABASE_URL]` prints the
time of a dry run and of an import of a full sheet of assets (`MAX_IMPORT_ROWS` rows).

Each imported asset goes through `api.registry.create_asset` as a REST registration does: its
EPC checked free, its row, its tag's registry record and its genesis custody event appended to
the agency's log, all in the one transaction of the import. The default database is a fresh
SQLite file; pass a PostgreSQL URL (an empty database it may migrate) to measure that.
`MAX_IMPORT_ROWS` is chosen from these figures, so that an import answers within a page's
patience (docs/web.md gives them).
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, datetime

from sqlmodel import Session

from api.config import load_settings
from api.db import make_engine
from api.migrate import upgrade
from api.models import Agency, Site
from api.registry_csv import MAX_IMPORT_ROWS, check_import, run_import

CLASS_SHEET = b"id,name,required_qualification,loan_days,dual_signoff,disposal_final\nc,C,,,,\n"


def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    engine = make_engine(load_settings(database_url=url))
    upgrade(engine)
    now = datetime.now(UTC)
    sheet = ("id,class_id,epc_hex,epc_uri,home_site_id\n" + "".join(
        f"x-{i},c,E280{i:020X},,st\n" for i in range(MAX_IMPORT_ROWS))).encode()
    with Session(engine) as session:
        session.add(Agency(id="bench", name="Bench"))
        session.flush()
        session.add(Site(id="st", agency_id="bench", name="Store"))
        session.commit()
        assert run_import(session, agency_id="bench", kind="classes", data=CLASS_SHEET,
                          now=now).ok
        session.commit()
        start = time.perf_counter()
        assert check_import(session, agency_id="bench", kind="assets", data=sheet).ok
        session.rollback()
        dry = time.perf_counter() - start
        start = time.perf_counter()
        assert run_import(session, agency_id="bench", kind="assets", data=sheet, now=now).ok
        session.commit()
        full = time.perf_counter() - start
    engine.dispose()
    print(f"{engine.dialect.name}: {MAX_IMPORT_ROWS} assets, {len(sheet) // 1024} KiB: "
          f"dry run {dry:.2f} s, import {full:.2f} s ({1000 * full / MAX_IMPORT_ROWS:.1f} ms "
          "an asset)")


if __name__ == "__main__":
    main()
