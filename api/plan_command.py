"""`kitledger plan`: a pool's sizing table and what-ifs on the command line, as
`GET /v1/planning/pools` answers them (`api.planning.report`).

The operator plans as the agency that runs `--site` would (`--agency` names it where more than
one agency has a site of that id: ids are per agency): its own sites and class, and with
`--with-site` of another agency only what that agency shares with it (`--with-class` names
that agency's class, `--with-agency` the agency where several others have that site id). It
prints a plain-text table (or, with `--json`, the endpoint's answer as the verdict).
Nothing is written.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING, Any

from ledger.cli import EXIT_OK, EXIT_UNUSABLE, CommandError, emit

if TYPE_CHECKING:
    from sqlmodel import Session


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from None


def register_plan(subparsers: Any, settings_arguments: Callable[[Any], None]) -> None:
    """Add `plan` to the `kitledger` parser (nothing of the server imported: `kitledger
    --help` works without the server extra; the bounds are checked, and named, when it runs)."""
    plan = subparsers.add_parser(
        "plan", help="how many items a store's pool needs: sizing table and what-ifs from "
        "its history (docs/planning.md)")
    settings_arguments(plan)
    plan.add_argument("--site", required=True, help="the store (its agency plans)")
    plan.add_argument("--agency", help="the agency whose --site it is (where more than one "
                      "agency has a site of that id)")
    plan.add_argument("--class", dest="class_id", required=True, help="the asset class")
    plan.add_argument("--from", dest="first", required=True, type=_day,
                      help="first day of history (YYYY-MM-DD, UTC)")
    plan.add_argument("--to", dest="last", required=True, type=_day,
                      help="last day of history, included")
    plan.add_argument("--target", type=float, default=0.99,
                      help="share of requests met at once to reach (default 0.99)")
    plan.add_argument("--with-site", action="append", default=[],
                      help="pool with this site too (repeatable); another agency's site "
                      "brings only what that agency shares")
    plan.add_argument("--with-class", help="the other agency's class, with its --with-site")
    plan.add_argument("--with-agency", help="the agency whose --with-site it is (where more "
                      "than one other agency has a site of that id)")
    plan.add_argument("--runs", type=int, default=20, help="simulated runs (default 20)")
    plan.add_argument("--seed", type=int, default=0, help="simulation seed")
    plan.add_argument("--max-items", type=int,
                      help="largest pool searched (default: the most the server plans)")
    plan.add_argument("--json", action="store_true", help="print the endpoint's JSON answer")
    plan.set_defaults(run=run_plan)


def _holders(session: Session, site_id: str, agency_id: str | None = None,
             besides: str | None = None) -> list[str]:
    """The agencies that have a site `site_id` (only `agency_id`, if given; not `besides`)."""
    from sqlmodel import col, select

    from api.models import Site

    query = select(Site.agency_id).where(Site.id == site_id)
    if agency_id is not None:
        query = query.where(Site.agency_id == agency_id)
    if besides is not None:
        query = query.where(Site.agency_id != besides)
    return list(session.exec(query.order_by(col(Site.agency_id))))


def _one(holders: list[str], option: str, site_id: str) -> str:
    if len(holders) > 1:
        raise CommandError(f"{len(holders)} agencies have a site {site_id!r}",
                           f"name the agency with {option}", EXIT_UNUSABLE, "unusable")
    return holders[0]


def run_plan(args: argparse.Namespace) -> int:
    from sqlmodel import Session

    from api.commands import _settings, database
    from api.models import Site
    from api.planning import report
    from api.problems import Problem
    from api.scoping import own_row

    settings = _settings(args)
    with database(settings, existing=True) as engine, Session(engine) as session:
        holders = _holders(session, args.site, args.agency)
        if not holders:
            raise CommandError(f"no site {args.site!r}", "give the id of a store this server "
                               "holds", EXIT_UNUSABLE, "unusable")
        agency_id = _one(holders, "--agency", args.site)
        sites, other = [args.site], None
        for site_id in args.with_site:
            if own_row(session, Site, agency_id, site_id) is not None:
                sites.append(site_id)
            else:  # another agency's (or none): only what it shares, 404 otherwise
                others = _holders(session, site_id, args.with_agency, besides=agency_id)
                other = _one(others, "--with-agency", site_id) if others else site_id
        request = report.PlanRequest(
            agency_id, tuple(sites), args.class_id, args.first, args.last,
            target=args.target, runs=args.runs, seed=args.seed, with_agency=other,
            with_class=args.with_class if other is not None else None,
            max_items=report.MAX_ITEMS if args.max_items is None else args.max_items,
            zone=settings.planning_time_zone)
        try:
            plan = report.plan_json(report.plan_pool(session, report.checked(session, request)))
        except Problem as exc:
            raise CommandError(str(exc.detail), "check --site, --class, --with-site and "
                               "--with-class, and the bounds in --help", EXIT_UNUSABLE,
                               "unusable") from None
    if args.json:
        emit({"verdict": "ok", "plan": plan})
    else:
        print(plan_text(plan))
    return EXIT_OK


def _pct(figure: dict[str, float] | None) -> str:
    """A share with its interval, to 0.01 %: a pool at 98.97 % does not meet 99 %, and
    "99.0 %" would say it does."""
    if figure is None:
        return "-"
    return f"{figure['value']:.2%} ({figure['low']:.2%}-{figure['high']:.2%})"


def _size(row: dict[str, Any] | None) -> str:
    return "none up to the largest size" if row is None else str(row["items"])


def plan_text(plan: dict[str, Any]) -> str:
    """The plan as plain text: what the pool is, its demand, the sizing table, the what-ifs."""
    pool, demand = plan["pool"], plan["demand"]
    loan_h = demand["loan"]["mean_s"]["value"] / 3600
    lines = [
        f"Pool: {pool['class_id']} at {', '.join(pool['site_ids'])} "
        f"({', '.join(pool['agency_ids'])}), {pool['items']} items; "
        f"history {pool['from']} to {pool['to']}",
        f"Demand: {demand['requests']} requests ({demand['unmet']} told none in store, "
        f"{demand['no_shows']} of {demand['bookings']} bookings not collected), "
        f"{demand['mean_rate_per_h']:.2f} an hour; mean loan {loan_h:.1f} h "
        f"({demand['loan']['family']}); out of service {demand['out_of_service_share']:.1%}",
        "",
        f"{'Items':>5}  {'Met at once (95 % interval)':<28}  {'Refused':<28}  Utilisation",
    ]
    for row in plan["sizing"]:
        mark = " <- today" if row["items"] == pool["items"] else ""
        if plan["smallest"] is not None and row["items"] == plan["smallest"]["items"]:
            mark += f" <- smallest meeting {plan['target']:.1%}"
        lines.append(f"{row['items']:>5}  {_pct(row['met_at_once']):<28}  "
                     f"{_pct(row['refused']):<28}  {row['utilisation']['value']:.1%}{mark}")
    lines += ["", f"Smallest pool meeting {plan['target']:.1%}: {_size(plan['smallest'])}; "
              f"today's {pool['items']} meet {_pct((plan['today'] or {}).get('met_at_once'))}",
              "What if:"]
    for what in plan["what_ifs"]:
        if what["key"] == "pooling":
            separate = " + ".join(_size(r) for r in what["separate"])
            lines.append(f"  {what['label']}: {_size(what['smallest'])} items instead of "
                         f"{separate} apart (saves {what['saving']})")
        else:
            lines.append(f"  {what['label']}: {_size(what['smallest'])} items needed; "
                         f"today's pool meets {_pct((what['today'] or {}).get('met_at_once'))}")
    return "\n".join(lines)
