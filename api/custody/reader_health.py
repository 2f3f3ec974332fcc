"""Alerts about readers' health: raised from the stored latest health, resolved when healthy.

Run periodically by the one process elected for it (`api.roles.Role.READER_HEALTH`); the
database also allows only one open alert of each reader kind per reader (the partial unique
index `ix_alert_open_reader_kind`), so even two scans overlapping across an election change
cannot raise one twice (the second one's transaction fails and the next round finds the
alert open).

What raises what, from each active reader's `reader_health` row:

- `reader_down`: its agent said "offline" (a clean stop or its Last Will), or no health has
  come for the timeout, or the agent says the RFID reader itself is disconnected;
- `antenna_fault`: the agent reports antennas down (LLRP readers report their antennas);
- `disk_low`: the agent's disk is low, full or read-only;
- `outbox_full`: the agent's outbox is past its alarm level (the API is not taking its rows);
- `reader_overheat`: a reader that is up reports a temperature at or above the limit
  (`reader_temperature_alert_c`); resolved once it reports `OVERHEAT_HYSTERESIS_C` below the
  limit, so a reader hovering at the limit raises one alert, not one a scan. A reader that is
  down has no fresh temperature and raises only `reader_down`.

Each is resolved when its condition clears. A reader that has never reported health has no
row and raises nothing: a reader registered ahead of its installation is not down. Health is
unsigned, so these alerts are operational hints and never custody evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import update
from sqlmodel import Session, col, select

from api import webhook_outbox
from api.custody.rules import AlertKind
from api.db import table
from api.models.custody import READER_ALERT_KINDS, Alert
from api.models.health import ReaderHealth
from api.models.registry import Reader, ReaderStatus

_ALERTS = table(Alert)

DISK_TROUBLE: Final = frozenset({"low", "full", "read_only"})
"""Agent disk states (`reader_agent.disk.DiskState`) that raise `disk_low`."""
DEFAULT_TEMPERATURE_LIMIT_C: Final = 70.0
"""Below the throttling point of the modules that report a temperature (a ThingMagic module
throttles its transmitter when hot, status 0x0504): a warning before reads suffer."""
OVERHEAT_HYSTERESIS_C: Final = 5.0


@dataclass(frozen=True, slots=True)
class ScanResult:
    raised: int
    resolved: int


def reader_problems(health: ReaderHealth, now: datetime, timeout_s: float,
                    *, trust_silence: bool = True,
                    temperature_limit_c: float = DEFAULT_TEMPERATURE_LIMIT_C,
                    hot_already: bool = False) -> dict[AlertKind, str]:
    """The alert kinds `health` calls for, each with its detail; `trust_silence` False when
    the listener has not been up for the timeout (silence then says nothing about readers);
    `hot_already` when its overheat alert is open (it stays until the reader cools)."""
    problems: dict[AlertKind, str] = {}
    if health.online is False:
        problems[AlertKind.READER_DOWN] = "agent offline (its status topic)"
    elif trust_silence and (health.seen_at is None
                            or now - health.seen_at > timedelta(seconds=timeout_s)):
        problems[AlertKind.READER_DOWN] = f"no health message for over {timeout_s:g} s"
    elif health.reader_connected is False:
        problems[AlertKind.READER_DOWN] = "agent reports the RFID reader disconnected"
    limit = temperature_limit_c - (OVERHEAT_HYSTERESIS_C if hot_already else 0.0)
    if (AlertKind.READER_DOWN not in problems and health.temperature_c is not None
            and health.temperature_c >= limit):
        problems[AlertKind.READER_OVERHEAT] = (
            f"reader at {health.temperature_c:.0f} °C (limit {temperature_limit_c:g} °C)")
    if health.antennas_down:
        problems[AlertKind.ANTENNA_FAULT] = f"{health.antennas_down} antenna(s) down"
    if health.disk_state in DISK_TROUBLE:
        problems[AlertKind.DISK_LOW] = f"agent disk {health.disk_state}"
    if health.outbox_alarm:
        problems[AlertKind.OUTBOX_FULL] = (
            f"agent outbox holds {health.outbox_depth} of {health.outbox_max} rows")
    return problems


def scan_reader_health(session: Session, now: datetime, timeout_s: float,
                       *, trust_silence: bool = True,
                       temperature_limit_c: float = DEFAULT_TEMPERATURE_LIMIT_C) -> ScanResult:
    """Raise the reader alerts now called for and not open, resolve the open ones no longer
    called for; in the session's transaction (the caller commits)."""
    rows = session.exec(
        select(ReaderHealth).join(Reader, col(Reader.id) == col(ReaderHealth.reader_id))
        .where(Reader.status == ReaderStatus.ACTIVE)).all()
    open_alerts = {(a.reader_id, a.kind): a.id for a in session.exec(
        select(Alert).where(col(Alert.kind).in_(READER_ALERT_KINDS),
                            col(Alert.resolved_at).is_(None)))}
    wanted = {(h.reader_id, kind): (h, detail) for h in rows
              for kind, detail in reader_problems(
                  h, now, timeout_s, trust_silence=trust_silence,
                  temperature_limit_c=temperature_limit_c,
                  hot_already=(h.reader_id, AlertKind.READER_OVERHEAT.value) in open_alerts,
              ).items()}
    stale = [alert_id for key, alert_id in open_alerts.items() if key not in wanted]
    if stale:
        session.connection().execute(
            update(_ALERTS).where(_ALERTS.c.id.in_(stale)).values(resolved_at=now))
    raised = webhook_outbox.raise_alerts(session, [
        {"agency_id": health.agency_id, "kind": kind.value, "asset_id": None,
         "reader_id": health.reader_id, "site_id": health.site_id, "detail": detail,
         "created_at": now, "resolved_at": None}
        for (reader_id, kind), (health, detail) in sorted(wanted.items())
        if (reader_id, kind.value) not in open_alerts
    ])
    return ScanResult(raised=raised, resolved=len(stale))
