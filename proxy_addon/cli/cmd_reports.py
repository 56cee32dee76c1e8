"""``schoolproxy report``, ``decisions``, ``review``, ``history``, ``export-subject`` and ``purge``."""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from ..audit.db import open_database
from ..monitor.history import EXPORT_COLUMNS, Concern, ConcernRequired, events, open_history, record_review
from ..monitor.reports import REPORTS, period, render
from ..policy.monitoring import Monitoring, Retention
from .base import add_config_arg, add_db_arg, audit_db, command, load_engine


def _period_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="date_from", default=None, metavar="DATE", help="school-local date or time")
    p.add_argument("--to", dest="date_to", default=None, metavar="DATE", help="school-local date (included) or time")


def _setup_report(p: argparse.ArgumentParser) -> None:
    add_config_arg(p)
    add_db_arg(p)
    p.add_argument("kind", choices=[*sorted(REPORTS), "weekly"])
    _period_args(p)
    p.add_argument("--format", choices=("table", "csv", "html"), default="table")
    p.add_argument("--send", action="store_true", help="weekly: email it now (monitoring.weekly's recipients)")
    p.add_argument("--to-file", type=Path, default=None, metavar="PATH",
                   help="weekly: write the HTML to PATH and the CSV beside it")


@command("report", "aggregate reports for the Senior Leadership Team", _setup_report)
def cmd_report(args: argparse.Namespace) -> int:
    engine = load_engine(args)
    if args.kind == "weekly":
        return _weekly(args, engine)
    t0, t1 = period(args.date_from, args.date_to, engine.config.zone)
    sys.stdout.write(render(REPORTS[args.kind](open_database(audit_db(args)), engine, t0, t1), args.format))
    return 0


def _setup_decisions(p: argparse.ArgumentParser) -> None:
    add_config_arg(p)
    add_db_arg(p)
    _period_args(p)
    p.add_argument("--format", choices=("table", "csv", "html"), default="table",
                   help="table leaves out the diffs; csv and html have them")


@command("decisions", "the decision log: every change of what is blocked or allowed, who, when, the diff, why",
         _setup_decisions)
def cmd_decisions(args: argparse.Namespace) -> int:
    from ..monitor.decisions import decisions_report

    engine = load_engine(args)
    t0, t1 = period(args.date_from, args.date_to, engine.config.zone)
    report = decisions_report(open_database(audit_db(args)), t0, t1, with_diff=args.format != "table")
    sys.stdout.write(render(report, args.format))
    return 0


def _setup_review(p: argparse.ArgumentParser) -> None:
    add_config_arg(p)
    add_db_arg(p)
    _period_args(p)
    p.add_argument("--format", choices=("html", "pdf"), default="html")
    p.add_argument("--output", type=Path, default=None, metavar="PATH",
                   help="where to write it (default: review-FROM-TO.html or .pdf here)")
    p.add_argument("--school", default="", help="the school's name, for the title")


@command("review", "the annual review pack: configuration, decisions, requests, grants, blocks by month, "
         "self-tests, limitations", _setup_review)
def cmd_review(args: argparse.Namespace) -> int:
    from ..monitor.review import review_pack, to_pdf

    engine = load_engine(args)
    t0, t1 = period(args.date_from, args.date_to, engine.config.zone)
    html = review_pack(open_database(audit_db(args)), engine, t0, t1, args.school)
    zone = engine.config.zone
    first, last = t0.astimezone(zone), (t1 - timedelta(microseconds=1)).astimezone(zone)
    out = args.output or Path(f"review-{first:%Y-%m-%d}-{last:%Y-%m-%d}.{args.format}")
    if args.format == "pdf":
        try:
            to_pdf(html, out)
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            print(f"schoolproxy: {e}", file=sys.stderr)
            return 1
    else:
        out.write_text(html, encoding="utf-8")
    print(f"review pack for {first:%Y-%m-%d} to {last:%Y-%m-%d} written to {out}")
    return 0


def _setup_history(p: argparse.ArgumentParser) -> None:
    add_config_arg(p)
    add_db_arg(p)
    p.add_argument("user", help="whose history")
    p.add_argument("--reason", default="", help="the concern that justifies opening it (required)")
    p.add_argument("--reference", default="", help="the concern's reference, e.g. a safeguarding log number (required)")
    p.add_argument("--by", required=True, help="who is looking")
    p.add_argument("--role", required=True, help="their role (the rules' monitoring.history_roles must name it)")
    _period_args(p)
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")


def _print_events(rows: list[dict], fmt: str) -> None:
    cols = [*EXPORT_COLUMNS, "self_reported"]
    if fmt == "json":
        print(json.dumps(rows, default=str, indent=1))
        return
    w = csv.writer(sys.stdout, delimiter="," if fmt == "csv" else "\t")
    w.writerow(cols)
    for r in rows:
        w.writerow([r[c] if r[c] is not None else "" for c in cols])


@command("history", "one person's history, for a recorded concern only", _setup_history)
def cmd_history(args: argparse.Namespace) -> int:
    engine = load_engine(args)
    mon: Monitoring = engine.config.sections.monitoring or Monitoring()
    t0, t1 = period(args.date_from, args.date_to, engine.config.zone) if (args.date_from or args.date_to) else (None, None)
    try:
        rows = open_history(open_database(audit_db(args)), Concern(args.by, args.role, args.reason, args.reference,
                                                                   "cli"), args.user, mon.history_roles, t0, t1,
                            kind="view" if args.format == "table" else "export")
    except ConcernRequired as e:
        print(f"schoolproxy: refused: {e}", file=sys.stderr)
        return 1
    _print_events(rows, args.format)
    return 0


def _setup_export(p: argparse.ArgumentParser) -> None:
    add_db_arg(p)
    p.add_argument("user")
    p.add_argument("--reference", required=True, help="the subject access request's reference")
    p.add_argument("--by", required=True, help="who is producing the export")
    p.add_argument("--format", choices=("csv", "json"), default="csv")


@command("export-subject", "a person's own events, for a subject access request (recorded)", _setup_export)
def cmd_export_subject(args: argparse.Namespace) -> int:
    db = open_database(audit_db(args))
    record_review(db, Concern(args.by, "data-protection", "subject access request", args.reference, "cli"),
                  args.user, "subject_access", None, None, None)
    _print_events(events(db, args.user, None, None, limit=10_000_000), args.format)
    return 0


def _setup_purge(p: argparse.ArgumentParser) -> None:
    add_config_arg(p)
    add_db_arg(p)


@command("purge", "delete what is past its retention period (the proxy also does this daily)", _setup_purge)
def cmd_purge(args: argparse.Namespace) -> int:
    from ..audit.retention import purge

    engine = load_engine(args)
    result = purge(open_database(audit_db(args)), engine.config.sections.retention or Retention())
    print(f"purged: {result}")
    return 0



def _weekly(args: argparse.Namespace, engine: Any) -> int:
    from ..monitor.weekly import send_weekly, weekly

    zone = engine.config.zone
    if args.date_from or args.date_to:
        t0, t1 = period(args.date_from, args.date_to, zone)
    else:
        t1 = datetime.now(timezone.utc)
        t0 = t1 - timedelta(days=7)
    db = open_database(audit_db(args))
    report = weekly(db, engine, t0, t1)
    if args.to_file:
        args.to_file.write_text(report.html, encoding="utf-8")
        args.to_file.with_suffix(".csv").write_text(report.csv, encoding="utf-8")
        print(f"written: {args.to_file} and {args.to_file.with_suffix('.csv')}")
    if args.send:
        mon: Monitoring = engine.config.sections.monitoring or Monitoring()
        if mon.weekly is None or mon.email is None:
            print("schoolproxy: no recipients: give monitoring.weekly.to (and alerts.email) in the rules",
                  file=sys.stderr)
            return 1
        send_weekly(db, mon, report, t1.astimezone(zone).strftime("%Y-%m-%d"), "cli")
        print(f"sent to {', '.join(mon.weekly.to)}")
    if not args.to_file and not args.send:
        print(report.text)
    return 0
