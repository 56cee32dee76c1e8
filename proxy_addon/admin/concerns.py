"""The admin app's pages that open something private, each only for a
recorded concern: one person's history (``/history``) and the exceptional
decryption of one person's correspondence (``/interceptions``).  The record
(``access_reviews``, ``admin_actions``) is written before anything is shown
or changed; a refusal is recorded too."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from sqlalchemy.orm import Session

from ..audit.adminlog import record_action
from ..monitor.history import EXPORT_COLUMNS, Concern, ConcernRequired, open_history
from ..monitor.interception import list_interceptions, order_interception, revoke_interception
from ..monitor.reports import period
from ..policy.monitoring import Monitoring
from .context import db, engine, ip, roles, when
from .forms import checked_period, file_part, finite_hours

ALL_ROLES = ("headteacher", "dsl", "slt", "technician")

bp = Blueprint("concerns", __name__)


def monitoring() -> Monitoring:
    return engine().config.sections.monitoring or Monitoring()


def concern() -> Concern:
    f = request.form
    return Concern(g.user.username, g.user.role, f.get("reason", ""), f.get("reference", ""), ip())


@bp.get("/history")
@roles(*ALL_ROLES)
def history_form() -> Any:
    return render_template("history.html", allowed=g.user.role in monitoring().history_roles, rows=None)


@bp.post("/history")
@roles(*ALL_ROLES)
def history_view() -> Any:
    f = request.form
    subject = f.get("subject", "").strip()
    t0, t1 = checked_period(period, f.get("from") or None, f.get("to") or None, engine().config.zone)
    export = f.get("export") == "csv"
    why = concern()
    allowed = monitoring().history_roles
    try:
        rows = open_history(db(), why, subject, allowed, t0, t1, "export" if export else "view")
    except ConcernRequired as e:
        with Session(db()) as s, s.begin():
            record_action(s, g.user.username, "history.refused", subject, str(e), ip(), "refused")
        return render_template("history.html", allowed=g.user.role in allowed, rows=None, error=str(e)), 403
    if export:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow([*EXPORT_COLUMNS, "self_reported"])
        for r in rows:
            w.writerow([r[c] if r[c] is not None else "" for c in [*EXPORT_COLUMNS, "self_reported"]])
        return buf.getvalue(), 200, {"Content-Type": "text/csv; charset=utf-8",
                                     "Content-Disposition": f'attachment; filename="history-{file_part(subject)}.csv"'}
    return render_template("history.html", allowed=True, rows=rows, subject=subject, concern=why)


def interceptions_page(error: str | None = None, status: int = 200) -> Any:
    mon = monitoring()
    rows = list_interceptions(db(), active_only=False)[:100]
    return render_template("interceptions.html", rows=rows, now=datetime.now(timezone.utc), error=error,
                           allowed=g.user.role in mon.interception_roles, max_days=mon.interception_max_days,
                           tls=engine().config.settings.tls), status


@bp.get("/interceptions")
@roles("headteacher", "dsl")
def interceptions() -> Any:
    return interceptions_page()


@bp.post("/interceptions")
@roles("headteacher", "dsl")
def interception_order() -> Any:
    try:
        o = order_interception(db(), concern(), request.form.get("subject", ""),
                               finite_hours(request.form.get("hours", "")), monitoring())
    except ConcernRequired as e:
        return interceptions_page(str(e), 403)
    flash(f"Interception {o.id}: {o.subject}'s webmail and messaging are decrypted until "
          f"{when(o.ends_at, '%d %b %Y %H:%M %Z')}.")
    return redirect(url_for("concerns.interceptions"))


@bp.post("/interceptions/<int:order_id>/revoke")
@roles("headteacher", "dsl")
def interception_revoke(order_id: int) -> Any:
    try:
        revoke_interception(db(), order_id, g.user.username, request.form.get("reason", "") or "ended", ip())
    except ConcernRequired as e:
        return interceptions_page(str(e), 404)
    flash(f"Interception {order_id} ended.")
    return redirect(url_for("concerns.interceptions"))
