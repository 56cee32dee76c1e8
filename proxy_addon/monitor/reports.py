"""Reports for the Senior Leadership Team, from the audit log.

Aggregates only, except ``out-of-hours`` (which lists the people whose use
outside their working hours passed the rules' threshold with no grant to
cover it: the policy asks for prior approval of significant out-of-hours use).
One person's history is not a report: see ``history``.

Each report is one or two indexed queries grouped by the hour in SQL, then
folded into the school's local days in Python, so that a day means a school
day whatever the UTC offset and the database does little work; each answers
within two seconds on ten million events in SQLite (scripts/bench_reports.py).
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine as DBEngine
from sqlalchemy import String, and_, cast, func, literal_column, or_, select, text
from sqlalchemy.orm import Session

from ..audit.models import BLOCKS, MEDIA, OUT_OF_HOURS, SEARCHES, SELF_REPORTS, WOULD_BLOCK, AccessEvent, Grant
from ..classify.engine import Engine

E = AccessEvent


@dataclass
class Report:
    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    note: str = ""


def _hour(col: Any) -> Any:
    """The UTC hour of a timestamp as text, on SQLite and PostgreSQL alike.
    The positions are literals, not bound parameters: PostgreSQL must see the
    GROUP BY expression as the very one selected (with parameters it sees
    ``$1, $2`` against ``$3, $4`` and refuses the query)."""
    return func.substr(cast(col, String), literal_column("1"), literal_column("13"))


def _local_day(hour_text: str, zone: ZoneInfo) -> str:
    t = datetime.strptime(hour_text[:13], "%Y-%m-%d %H").replace(tzinfo=timezone.utc)
    return t.astimezone(zone).strftime("%Y-%m-%d")


def where(condition: str) -> Any:
    """A report index's condition, verbatim (see ``models.REPORT_INDEXES``)."""
    return text(f"access_events.{condition}")


def between(t0: datetime, t1: datetime) -> Any:
    return and_(E.ts >= t0, E.ts < t1)


def _count_by_day(db: DBEngine, engine: Engine, key: Any, *where: Any) -> list[list[Any]]:
    """[day, key, count] rows: counted by the hour in SQL, folded into school days here."""
    with db.connect() as c:
        rows = c.execute(select(_hour(E.ts), key, func.count()).where(*where).group_by(_hour(E.ts), key)).all()
    days: dict[tuple[str, str], int] = defaultdict(int)
    for hour, k, n in rows:
        days[(_local_day(hour, engine.config.zone), k or "(none)")] += n
    return [[d, k, n] for (d, k), n in sorted(days.items())]


def traffic_by_hour(db: DBEngine, t0: datetime, t1: datetime) -> dict[datetime, tuple[int, int]]:
    """Requests and blocked requests in each UTC hour (the hour's start) of
    [t0, t1): for the technician's week at a glance.  Each count reads one
    index (``ts``; the blocks' partial index), never the table."""
    with db.connect() as c:
        every: dict[str, int] = {h: n for h, n in c.execute(
            select(_hour(E.ts), func.count()).where(between(t0, t1)).group_by(_hour(E.ts)))}
        blocks: dict[str, int] = {h: n for h, n in c.execute(
            select(_hour(E.ts), func.count()).where(where(BLOCKS), between(t0, t1)).group_by(_hour(E.ts)))}
    hours: dict[datetime, tuple[int, int]] = {}
    for hour, n in every.items():
        start = datetime.strptime(hour[:13], "%Y-%m-%d %H").replace(tzinfo=timezone.utc)
        hours[start] = (int(n), int(blocks.get(hour, 0)))
    return hours


def blocked(db: DBEngine, engine: Engine, t0: datetime, t1: datetime) -> Report:
    return Report("Blocked attempts by category and day", ["day", "category", "attempts"],
                  _count_by_day(db, engine, E.category, where(BLOCKS), between(t0, t1)))


def _top_sites(db: DBEngine, condition: str, t0: datetime, t1: datetime, limit: int) -> list[list[Any]]:
    """[site, category, attempts] for the rows of a report index's ``condition``, most first."""
    with db.connect() as c:
        rows = c.execute(select(E.host, E.category, func.count().label("n")).where(where(condition), between(t0, t1))
                         .group_by(E.host, E.category).order_by(func.count().desc()).limit(limit)).all()
    return [[h, c or "(none)", n] for h, c, n in rows]


def top_blocked(db: DBEngine, engine: Engine, t0: datetime, t1: datetime, limit: int = 20) -> Report:
    return Report("Most-blocked sites", ["site", "category", "attempts"], _top_sites(db, BLOCKS, t0, t1, limit))


def would_block(db: DBEngine, engine: Engine, t0: datetime, t1: datetime) -> Report:
    """Log-only mode: what the rules would have blocked, and did not."""
    return Report("Would have been blocked (log-only) by category and day", ["day", "category", "attempts"],
                  _count_by_day(db, engine, E.category, where(WOULD_BLOCK), between(t0, t1)))


def top_would_block(db: DBEngine, engine: Engine, t0: datetime, t1: datetime, limit: int = 20) -> Report:
    """Log-only mode: the sites that would have been blocked most, to tune the rules by."""
    return Report("Sites that would have been blocked (log-only)", ["site", "category", "attempts"],
                  _top_sites(db, WOULD_BLOCK, t0, t1, limit))


def streaming(db: DBEngine, engine: Engine, t0: datetime, t1: datetime) -> Report:
    with db.connect() as c:
        rows = c.execute(select(_hour(E.ts), func.sum(E.media_seconds), func.sum(E.bytes_out), func.count())
                         .where(where(MEDIA), between(t0, t1)).group_by(_hour(E.ts))).all()
    days: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
    for hour, secs, nbytes, n in rows:
        d = days[_local_day(hour, engine.config.zone)]
        d[0] += secs or 0
        d[1] += nbytes or 0
        d[2] += n
    return Report("Streaming by day", ["day", "minutes", "MB", "media transfers"],
                  [[d, round(v[0] / 60, 1), round(v[1] / 1e6, 1), v[2]] for d, v in sorted(days.items())])


def out_of_hours(db: DBEngine, engine: Engine, t0: datetime, t1: datetime) -> Report:
    """Active minutes (minutes with any request) outside the person's working
    hours, per person and day, above the threshold, without a covering grant."""
    from ..policy.monitoring import Monitoring

    mon: Monitoring = engine.config.sections.monitoring or Monitoring()
    minute = func.substr(cast(E.ts, String), 1, 16)
    with db.connect() as c:
        rows = c.execute(select(E.user, minute).where(where(OUT_OF_HOURS), between(t0, t1))
                         .group_by(E.user, minute)).all()
        grants = c.execute(select(Grant.subject_kind, Grant.subject, Grant.starts_at, Grant.ends_at)
                           .where(Grant.target_kind == "out-of-hours", Grant.revoked_at.is_(None),
                                  Grant.starts_at < t1, Grant.ends_at > t0)).all()
    zone = engine.config.zone
    active: dict[tuple[str, str], int] = defaultdict(int)
    for user, m in rows:
        t = datetime.strptime(m, "%Y-%m-%d %H:%M").replace(tzinfo=timezone.utc)
        if not any(_grant_covers(g, user, engine, t) for g in grants):
            active[(user, t.astimezone(zone).strftime("%Y-%m-%d"))] += 1
    threshold = mon.out_of_hours_threshold / 60
    hits = [[u, d, n] for (u, d), n in sorted(active.items()) if n > threshold]
    return Report("Use outside working hours above the threshold", ["person", "day", "active minutes"], hits,
                  f"threshold {threshold:g} minutes a day; use covered by an out-of-hours grant is left out")


def _grant_covers(g: Any, user: str, engine: Engine, t: datetime) -> bool:
    starts, ends = g.starts_at, g.ends_at
    if starts.tzinfo is None:
        starts, ends = starts.replace(tzinfo=timezone.utc), ends.replace(tzinfo=timezone.utc)
    if not starts <= t < ends:
        return False
    if g.subject_kind == "everyone":
        return True
    if g.subject_kind == "user":
        return g.subject == user
    return g.subject in engine.config.groups_of(user)


def grants(db: DBEngine, engine: Engine, t0: datetime, t1: datetime) -> Report:
    with db.connect() as c:
        uses = dict(c.execute(select(E.grant_id, func.count()).where(E.grant_id.is_not(None), between(t0, t1))
                              .group_by(E.grant_id)).all())
    with Session(db) as s:  # whole Grant objects need a Session; a Core connection returns their columns
        rows = s.scalars(select(Grant).where(Grant.starts_at < t1, Grant.ends_at > t0).order_by(Grant.id)).all()
    out = []
    for g in rows:
        who = g.subject_kind + (f" {g.subject}" if g.subject else "")
        state = "revoked" if g.revoked_at else ("active" if g.ends_at > datetime.now(timezone.utc) else "ended")
        until = g.ends_at.replace(tzinfo=g.ends_at.tzinfo or timezone.utc).astimezone(engine.config.zone)
        out.append([g.id, who, f"{g.target_kind} {g.target}", until.strftime("%Y-%m-%d %H:%M %Z"), state,
                    uses.get(g.id, 0), g.granted_by])
    return Report("Grants and their use", ["grant", "who", "what", "until", "state", "requests allowed", "by"],
                  out)


def self_reports(db: DBEngine, engine: Engine, t0: datetime, t1: datetime) -> Report:
    return Report("Self-reported accidental access", ["day", "category", "reports"],
                  _count_by_day(db, engine, E.category, where(SELF_REPORTS), between(t0, t1)))


def searches(db: DBEngine, engine: Engine, t0: datetime, t1: datetime, limit: int = 50) -> Report:
    from ..policy.monitoring import Monitoring
    from .searchterms import flagged

    mon: Monitoring = engine.config.sections.monitoring or Monitoring()
    with db.connect() as c:
        rows = c.execute(select(E.search_terms, func.count()).where(where(SEARCHES), between(t0, t1))
                         .group_by(E.search_terms).order_by(func.count().desc())).all()
    flagged_counts: dict[str, int] = defaultdict(int)
    for terms, n in rows:
        for t in flagged(terms or "", mon.safeguarding_terms):
            flagged_counts[t] += n
    out = [[t, n, "safeguarding term"] for t, n in sorted(flagged_counts.items(), key=lambda kv: -kv[1])]
    out += [[terms, n, ""] for terms, n in rows[:limit]]
    return Report("Searches", ["search (engine: terms)", "times", "flag"], out,
                  "safeguarding terms first, then the most frequent searches; who searched is in a person's "
                  "history, opened only for a recorded concern")


def circumvention(db: DBEngine, engine: Engine, t0: datetime, t1: datetime) -> Report:
    circ_cats = [c.id for c in engine.config.categories.values() if c.circumvention]
    return Report("Attempts to get round the filter", ["day", "kind", "attempts"],
                  _count_by_day(db, engine, E.rule, where(BLOCKS), between(t0, t1),
                                or_(E.rule.like("circumvention:%"), E.category.in_(circ_cats))))


REPORTS: dict[str, Callable[[DBEngine, Engine, datetime, datetime], Report]] = {
    "blocked": blocked, "top-blocked": top_blocked, "streaming": streaming, "out-of-hours": out_of_hours,
    "grants": grants, "self-reports": self_reports, "searches": searches, "circumvention": circumvention,
    "would-block": would_block, "top-would-block": top_would_block,
}


def render(report: Report, fmt: str) -> str:
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(report.columns)
        w.writerows(report.rows)
        return buf.getvalue()
    if fmt == "html":
        head = "".join(f"<th>{escape(str(c))}</th>" for c in report.columns)
        body = "".join("<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in r) + "</tr>" for r in report.rows)
        note = f"<p>{escape(report.note)}</p>" if report.note else ""
        return (f'<!doctype html><meta charset="utf-8"><title>{escape(report.title)}</title>'
                f"<h1>{escape(report.title)}</h1>{note}<table><thead><tr>{head}</tr></thead><tbody>{body}"
                f"</tbody></table>")
    widths = [max(len(str(c)), *(len(str(r[i])) for r in report.rows)) if report.rows else len(str(c))
              for i, c in enumerate(report.columns)]
    lines = [report.title, "  ".join(str(c).ljust(w) for c, w in zip(report.columns, widths))]
    lines += ["  ".join(str(v).ljust(w) for v, w in zip(r, widths)) for r in report.rows]
    if report.note:
        lines.append(f"({report.note})")
    return "\n".join(lines) + "\n"


def period(text_from: str | None, text_to: str | None, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """``--from``/``--to`` as school-local dates or times (the end day included); default: the last 30 days."""
    def parse(text: str) -> datetime:
        t = datetime.fromisoformat(text)
        return t if t.tzinfo else t.replace(tzinfo=zone)

    now = datetime.now(timezone.utc)
    t1 = parse(text_to) if text_to else now
    if text_to and len(text_to) == 10:
        t1 += timedelta(days=1)
    t0 = parse(text_from) if text_from else t1 - timedelta(days=30)
    return t0.astimezone(timezone.utc), t1.astimezone(timezone.utc)
