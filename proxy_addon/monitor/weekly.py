"""The weekly monitoring report (the DfE standards: "weekly monitoring
reports highlighting incidents"), for the designated safeguarding lead and
the SLT: incidents (locked-list and safeguarding-category hits, searches
for safeguarding terms, attempts to
get round the filter, self-reports, use outside working hours above the
threshold, new grants), blocked attempts by category and day (charts), the
most-blocked sites, what changed in the rules (the decision log) and which
rules were in force.  Aggregates and incident
references only: a person's wider history still needs a recorded concern.

Sent as an HTML email (charts inline, a CSV attached) by ``schoolproxy
report weekly --send``, or by the proxy itself at the rules' day and time
(``monitoring.weekly``); ``--to-file PATH`` writes the HTML and the CSV.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from html import escape
from typing import Any

from sqlalchemy import Engine as DBEngine
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ..audit.adminlog import record_action
from ..audit.models import BLOCKS, AdminAction
from ..audit.models import AccessEvent as E
from ..classify.engine import Engine
from ..policy.monitoring import Monitoring
from . import reports
from .alerts import send_message
from .charts import bars, hbars
from .decisions import as_rows, decisions
from .searchterms import flagged


@dataclass
class Weekly:
    subject: str
    html: str
    csv: str
    text: str


def _table(title: str, columns: list[str], rows: list[list[Any]], empty: str) -> str:
    if not rows:
        return f"<h2>{escape(title)}</h2><p>{escape(empty)}</p>"
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in r) + "</tr>" for r in rows)
    return (f'<h2>{escape(title)}</h2><table border="1" cellpadding="4" cellspacing="0">'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def _safeguarding_searches(rows: Sequence[Any], watch: frozenset[str]) -> list[tuple[str, int, int, int]]:
    """(term, searches, first event, last event) for each safeguarding term
    searched for: the term and event numbers, never the person or the search."""
    seen: dict[str, list[int]] = {}
    for event_id, terms in rows:
        for term in flagged(terms, watch):
            seen.setdefault(term, []).append(event_id)
    return [(t, len(ids), min(ids), max(ids)) for t, ids in sorted(seen.items())]


@dataclass(frozen=True, slots=True)
class Pilot:
    """Log-only mode's part of the report: what would have been blocked."""

    total: int
    per_cat: dict[str, int]
    scope: str  # who the rules are only recorded for, now
    html: str


def _pilot(db: DBEngine, engine: Engine, t0: datetime, t1: datetime) -> Pilot:
    settings = engine.config.settings
    scope = ("log-only for everyone now" if not settings.enforce else
             f"log-only now for {', '.join(settings.log_only_groups)}" if settings.log_only_groups else
             "enforced now")
    per_cat: dict[str, int] = defaultdict(int)
    for _day, cat, n in reports.would_block(db, engine, t0, t1).rows:
        per_cat[cat] += n
    if not per_cat:
        return Pilot(0, {}, scope, "")
    sites = reports.top_would_block(db, engine, t0, t1, limit=15).rows
    ranked = sorted(per_cat, key=lambda k: -per_cat[k])
    html = (f"<h2>Log-only: what the rules would have blocked</h2><p>{escape(scope.capitalize())}. These requests "
            "were served; use them to tune the rules before they are enforced.</p>"
            + _table("Would have been blocked, by category", ["category", "attempts"],
                     [[k, per_cat[k]] for k in ranked], "")
            + _table("Sites that would have been blocked", ["site", "category", "attempts"], sites, ""))
    return Pilot(sum(per_cat.values()), dict(per_cat), scope, html)


def weekly(db: DBEngine, engine: Engine, t0: datetime, t1: datetime) -> Weekly:
    cfg = engine.config
    mon: Monitoring = cfg.sections.monitoring or Monitoring()
    locked = [c.id for c in cfg.categories.values() if c.locked]
    safeguarding = [c.id for c in cfg.categories.values() if (c.alert or c.id in mon.alert_categories)
                    and not c.locked]
    with db.connect() as c:
        def hits(cats: list[str]) -> list[Any]:
            if not cats:
                return []
            return list(c.execute(select(E.category, func.count(), func.min(E.id), func.max(E.id))
                             .where(reports.where(BLOCKS), reports.between(t0, t1), E.category.in_(cats))
                             .group_by(E.category)).all())
        locked_hits, safe_hits = hits(locked), hits(safeguarding)
        searched = _safeguarding_searches(c.execute(select(E.id, E.search_terms).where(
            reports.between(t0, t1), E.search_terms.is_not(None))).all(), mon.safeguarding_terms)
        digests = c.execute(select(E.config_digest, func.min(E.ts), func.count())
                            .where(reports.between(t0, t1), E.config_digest.is_not(None))
                            .group_by(E.config_digest).order_by(func.min(E.ts))).all()
    blocked = reports.blocked(db, engine, t0, t1).rows
    per_day: dict[str, int] = defaultdict(int)
    per_cat: dict[str, int] = defaultdict(int)
    for day, cat, n in blocked:
        per_day[day] += n
        per_cat[cat] += n
    circumvention = reports.circumvention(db, engine, t0, t1).rows
    self_reports = reports.self_reports(db, engine, t0, t1).rows
    ooh = reports.out_of_hours(db, engine, t0, t1).rows
    new_grants = reports.grants(db, engine, t0, t1).rows
    # never the names of locked-list sites in an email (they are referenced by event number above)
    top = [r for r in reports.top_blocked(db, engine, t0, t1, limit=10 + len(locked)).rows if r[1] not in locked][:10]
    pilot = _pilot(db, engine, t0, t1)
    changes = as_rows(decisions(db, t0, t1))
    zone = cfg.zone
    span = f"{t0.astimezone(zone):%d %b %Y} to {t1.astimezone(zone):%d %b %Y}"
    incidents = [
        ["locked lists (IWF, CTIRU)", sum(n for _, n, _, _ in locked_hits),
         "; ".join(f"{cat}: events {a}-{b}" for cat, _, a, b in locked_hits)],
        ["safeguarding categories", sum(n for _, n, _, _ in safe_hits),
         "; ".join(f"{cat} x{n} (events {a}-{b})" for cat, n, a, b in safe_hits)],
        ["searches for safeguarding terms", sum(n for _, n, _, _ in searched),
         "; ".join(f"'{term}' x{n} (events {a}-{b})" for term, n, a, b in searched)],
        ["attempts to get round the filter", sum(r[2] for r in circumvention), ""],
        ["self-reported accidents", sum(r[2] for r in self_reports), ""],
        ["people above the out-of-hours threshold (person-days)", len(ooh), ""],
        ["grants in force", len(new_grants), ""],
    ]
    if pilot.total or not cfg.settings.enforce or cfg.settings.log_only_groups:
        incidents.append(["would have been blocked, and were not (log-only)", pilot.total, pilot.scope])
    days, ranked = sorted(per_day), sorted(per_cat, key=lambda k: -per_cat[k])
    charts = (bars("Blocked attempts a day", [d[5:] for d in days], [per_day[d] for d in days])
              + hbars("Blocked attempts by category", ranked[:12], [per_cat[k] for k in ranked[:12]]))
    html = "".join([
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Weekly filtering report</title></head>'
        '<body style="font-family:sans-serif;max-width:760px">',
        f"<h1>Weekly filtering and monitoring report</h1><p>{escape(span)} ({escape(str(zone))}). Aggregates and "
        "incident references only: event numbers can be looked up in the admin app; a person's wider history "
        "is opened only for a recorded concern.</p>",
        _table("Incidents", ["what", "count", "references"], incidents, ""),
        charts,
        _table("Blocked attempts by category", ["category", "attempts"], [[k, per_cat[k]] for k in ranked],
               "No blocked attempts."),
        _table("Most-blocked sites", ["site", "category", "attempts"], top, "No blocked attempts."),
        pilot.html,
        _table("Attempts to get round the filter", ["day", "kind", "attempts"], circumvention, "None."),
        _table("Use outside working hours above the threshold", ["person", "day", "active minutes"], ooh, "None."),
        _table("Grants in force", ["grant", "who", "what", "until", "state", "requests allowed", "by"],
               new_grants, "None."),
        _table("What changed in the rules (the decision log; diffs in the admin app)",
               ["when", "who", "how", "what", "why"],
               [[r["when"], r["who"], r["how"], r["what"], r["why"]] for r in changes], "No changes."),
        _table("Rules in force", ["rules digest", "first seen", "requests"],
               [[d, t.astimezone(zone).strftime("%d %b %H:%M"), n] for d, t, n in digests], "No traffic."),
        "</body></html>"])
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["section", "key", "value"])
    w.writerows(["incident", what, n] for what, n, _ in incidents)
    w.writerows(["blocked by category", k, v] for k, v in sorted(per_cat.items()))
    w.writerows(["blocked by day", k, v] for k, v in sorted(per_day.items()))
    w.writerows(["most-blocked site", f"{h} ({cat})", n] for h, cat, n in top)
    w.writerows(["would have been blocked (log-only)", k, v] for k, v in sorted(pilot.per_cat.items()))
    w.writerows(["rules change", f"{r['when']} {r['who']} ({r['how']})", f"{r['what']}: {r['why']}"] for r in changes)
    text = "\n".join([f"Weekly filtering and monitoring report, {span}.", ""]
                     + [f"- {what}: {n}" for what, n, _ in incidents]
                     + ["", "The HTML part has the charts and tables; the CSV is attached."])
    return Weekly(f"Weekly filtering report: {span}", html, buf.getvalue(), text)


def email_message(report: Weekly, sender: str, to: tuple[str, ...], day: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, ", ".join(to), report.subject
    msg.set_content(report.text)
    msg.add_alternative(report.html, subtype="html")
    msg.add_attachment(report.csv.encode(), maintype="text", subtype="csv", filename=f"weekly-{day}.csv")
    return msg


def send_weekly(db: DBEngine, mon: Monitoring, report: Weekly, day: str, by: str) -> None:
    """Email the report to the weekly recipients and record that it was sent."""
    assert mon.weekly is not None and mon.email is not None
    send_message(mon.email, email_message(report, mon.email.sender, mon.weekly.to, day))
    with Session(db) as s, s.begin():
        record_action(s, by, "report.weekly", day, f"sent to {', '.join(mon.weekly.to)}")


def claim_week(db: DBEngine, week: str, instance: str) -> bool:
    """One weekly report per week however many instances run: the first to
    record its claim sends it."""
    with Session(db) as s, s.begin():
        if s.scalar(select(func.count()).select_from(AdminAction).where(
                AdminAction.action == "report.weekly.claim", AdminAction.target == week)):
            return False
        record_action(s, instance, "report.weekly.claim", week)
        return True


def release_week(db: DBEngine, week: str) -> None:
    """A claimed week whose report could not be sent: let the next try claim it."""
    with Session(db) as s, s.begin():
        s.execute(delete(AdminAction).where(AdminAction.action == "report.weekly.claim", AdminAction.target == week))
