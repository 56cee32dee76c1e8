"""The safeguarding lead's Alerts page (``/alerts``): every alert the filter
raised in the last 30 days, what was delivered for it (or that nothing
was, because no destination is set), and who acknowledged it.  The hour of
the person's browsing around an alert opens only for a recorded concern,
as their history does (``monitor.history``)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from sqlalchemy.orm import Session

from ..audit.adminlog import record_action
from ..monitor.alertlog import acknowledge, get_alert, recent
from ..monitor.history import ConcernRequired, open_history
from .concerns import concern, monitoring
from .context import db, engine, ip, roles

ALERT_ROLES = ("dsl", "headteacher")
DAYS = 30
CONTEXT = timedelta(minutes=30)  # either side of the alert: an hour

bp = Blueprint("alerts", __name__)


def _page(context: dict[str, Any] | None = None, error: str | None = None, status: int = 200) -> Any:
    since = datetime.now(timezone.utc) - timedelta(days=DAYS)
    rows = recent(db(), since, limit=500)
    zone = engine().config.zone
    return render_template("alerts.html", rows=rows, zone=zone, days=DAYS, context=context, error=error,
                           destination=_destination()), status


def _destination() -> str | None:
    """Where alerts go, or None when nowhere (the page says so first)."""
    alerts = monitoring()
    where = []
    if alerts.email is not None:
        where.append("email to " + ", ".join(alerts.email.to))
    if alerts.webhook:
        where.append("a webhook")
    return " and ".join(where) or None


@bp.get("/alerts")
@roles(*ALERT_ROLES)
def alerts_page() -> Any:
    return _page()


@bp.post("/alerts/<int:alert_id>/acknowledge")
@roles(*ALERT_ROLES)
def alert_acknowledge(alert_id: int) -> Any:
    note = request.form.get("note", "").strip()[:2000]
    done = acknowledge(db(), alert_id, g.user.username, note)
    with Session(db()) as s, s.begin():
        record_action(s, g.user.username, "alert.acknowledge", str(alert_id), note, ip(),
                      "ok" if done else "refused")
    flash("Acknowledged." if done else "That alert was acknowledged already.", "ok" if done else "error")
    return redirect(url_for("alerts.alerts_page"))


@bp.post("/alerts/<int:alert_id>/context")
@roles(*ALERT_ROLES)
def alert_context(alert_id: int) -> Any:
    alert = get_alert(db(), alert_id)
    if alert is None or alert.kind == "system":
        return _page(error="No such alert about a person.", status=404)
    why = concern()
    try:
        rows = open_history(db(), why, alert.user, monitoring().history_roles, alert.ts - CONTEXT, alert.ts + CONTEXT)
    except ConcernRequired as e:
        with Session(db()) as s, s.begin():
            record_action(s, g.user.username, "history.refused", alert.user, str(e), ip(), "refused")
        return _page(error=str(e), status=403)
    return _page(context={"alert": alert, "rows": rows, "concern": why})
