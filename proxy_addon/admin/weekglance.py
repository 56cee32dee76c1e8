"""The technician's week at a glance (as Pi-hole's dashboard is for DNS):
requests and blocks an hour over the last day and a day over the last week,
the most-blocked categories, what log-only mode would have blocked, and what is waiting for someone: exception
requests for the headteacher, alerts for the safeguarding lead."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine as DBEngine
from sqlalchemy import func, select

from ..audit.models import ExceptionRequest
from ..classify.engine import Engine
from ..monitor.alertlog import unacknowledged
from ..monitor.charts import bars, hbars
from ..monitor.reports import blocked, traffic_by_hour, would_block

DAY, WEEK = timedelta(days=1), timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Glance:
    requests_day: int
    blocked_day: int
    requests_week: int
    blocked_week: int
    requests_waiting: int
    alerts_waiting: int
    charts: tuple[str, ...]  # inline SVG, escaped by the chart functions
    would_block_week: int = 0  # log-only: requests the rules would have blocked, and were served


def glance(db: DBEngine, engine: Engine, now: datetime) -> Glance:
    zone: ZoneInfo = engine.config.zone
    hours = traffic_by_hour(db, now - WEEK, now)
    first_hour = (now - DAY).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    last_day = [first_hour + timedelta(hours=i) for i in range(24)]
    days: dict[str, list[int]] = {}
    for i in range(7):
        days[(now - timedelta(days=6 - i)).astimezone(zone).strftime("%a %d")] = [0, 0]
    for start, (n, b) in hours.items():
        key = start.astimezone(zone).strftime("%a %d")
        if key in days:
            days[key][0] += n
            days[key][1] += b
    per_cat: dict[str, int] = {}
    for _day, cat, n in blocked(db, engine, now - WEEK, now).rows:
        per_cat[cat] = per_cat.get(cat, 0) + n
    ranked = sorted(per_cat, key=lambda c: -per_cat[c])[:10]
    would: dict[str, int] = {}
    for _day, cat, n in would_block(db, engine, now - WEEK, now).rows:
        would[cat] = would.get(cat, 0) + n
    would_ranked = sorted(would, key=lambda c: -would[c])[:10]
    labels = [h.astimezone(zone).strftime("%H") for h in last_day]
    day_rows = [hours.get(h, (0, 0)) for h in last_day]
    charts = (
        bars("Requests an hour, last 24 hours", labels, [r[0] for r in day_rows], colour="#1d4ed8"),
        bars("Blocked an hour, last 24 hours", labels, [r[1] for r in day_rows], colour="#b3261e"),
        bars("Requests a day, last 7 days", list(days), [v[0] for v in days.values()], colour="#1d4ed8"),
        bars("Blocked a day, last 7 days", list(days), [v[1] for v in days.values()], colour="#b3261e"),
        hbars("Most-blocked categories, last 7 days", ranked, [per_cat[c] for c in ranked]) if ranked else "",
        hbars("Would have been blocked (log-only), last 7 days", would_ranked,
              [would[c] for c in would_ranked]) if would_ranked else "",
    )
    with db.connect() as c:
        waiting = c.execute(select(func.count()).select_from(ExceptionRequest)
                            .where(ExceptionRequest.status == "pending")).scalar_one()
    return Glance(sum(r[0] for r in day_rows), sum(r[1] for r in day_rows), sum(v[0] for v in days.values()),
                  sum(v[1] for v in days.values()), int(waiting), unacknowledged(db, now - timedelta(days=30)),
                  tuple(c for c in charts if c), sum(would.values()))
