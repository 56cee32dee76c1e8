"""What the SLT, the safeguarding lead and the headteacher read: the
dashboard (counts and charts, never names), the self-reports of blocks
reached by accident, and the record of every admin action."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template, request
from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from ..audit.models import AccessEvent, AdminAction
from .context import db, engine, roles
from .forms import checked_period

bp = Blueprint("reports", __name__)


@bp.get("/self-reports")
@roles("slt", "headteacher")
def self_reports() -> Any:
    blocked = aliased(AccessEvent)
    with Session(db()) as s:
        rows = s.execute(
            select(AccessEvent, blocked).outerjoin(blocked, blocked.event_uid == AccessEvent.related_uid)
            .where(AccessEvent.action == "self_report").order_by(AccessEvent.ts.desc()).limit(200)).all()
        return render_template("self_reports.html", rows=rows)


@bp.get("/dashboard")
@roles("slt", "headteacher", "dsl")
def dashboard() -> Any:
    from ..monitor.charts import bars, hbars
    from ..monitor.reports import blocked, out_of_hours, period, streaming, top_blocked
    from ..monitor.reports import grants as grants_report
    from ..monitor.reports import self_reports as sr_report

    eng = engine()
    t0, t1 = checked_period(period, request.args.get("from"), request.args.get("to"), eng.config.zone)
    per_day: dict[str, float] = {}
    per_cat: dict[str, float] = {}
    for day, cat, n in blocked(db(), eng, t0, t1).rows:
        per_day[day] = per_day.get(day, 0) + n
        per_cat[cat] = per_cat.get(cat, 0) + n
    top = top_blocked(db(), eng, t0, t1, limit=10).rows
    stream = streaming(db(), eng, t0, t1).rows
    ooh: dict[str, float] = {}
    for _person, day, _mins in out_of_hours(db(), eng, t0, t1).rows:
        ooh[day] = ooh.get(day, 0) + 1  # how many people, never who
    reports_per_day: dict[str, float] = {}
    for day, _cat, n in sr_report(db(), eng, t0, t1).rows:
        reports_per_day[day] = reports_per_day.get(day, 0) + n
    gr = grants_report(db(), eng, t0, t1).rows
    charts = {
        "blocked": bars("Blocked attempts a day", [d[5:] for d in per_day], list(per_day.values())),
        "categories": hbars("Blocked attempts by category", list(per_cat), list(per_cat.values())),
        "top": hbars("Most-blocked sites", [r[0] for r in top], [r[2] for r in top]),
        "streaming": bars("Streaming minutes a day", [r[0][5:] for r in stream], [r[1] for r in stream],
                          " min", colour="#0f766e"),
        "ooh": bars("People above the out-of-hours threshold", [d[5:] for d in ooh], list(ooh.values()),
                    colour="#9a3412"),
        "self_reports": bars("Self-reported accidents a day", [d[5:] for d in reports_per_day],
                             list(reports_per_day.values()), colour="#6d28d9"),
    }
    active = [r for r in gr if r[4] == "active"]
    return render_template("dashboard.html", charts=charts, t0=t0, t1=t1, zone=eng.config.zone,
                           grants_active=len(active), grant_uses=sum(r[5] for r in gr),
                           total_blocked=int(sum(per_day.values())))


@bp.get("/actions")
@roles("headteacher")
def actions() -> Any:
    with Session(db()) as s:
        rows = s.scalars(select(AdminAction).order_by(AdminAction.id.desc()).limit(200)).all()
        return render_template("actions.html", rows=rows)
