"""The annual review in the admin app: the SLT member or headteacher
records who carried out the review (an SLT member and a governor), what
they concluded and what the school will change; each later review pack
(``schoolproxy review``) shows it.  Recording it is an admin action too."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from sqlalchemy.orm import Session

from ..audit.adminlog import record_action
from ..monitor.reports import period
from ..monitor.review import record_review, recorded_reviews
from .context import db, engine, ip, roles
from .forms import checked_period

REVIEW_ROLES = ("headteacher", "slt")

bp = Blueprint("review", __name__)


@bp.get("/review")
@roles(*REVIEW_ROLES, "dsl")
def review_page() -> Any:
    return render_template("review.html", reviews=recorded_reviews(db()), can_record=g.user.role in REVIEW_ROLES,
                           zone=engine().config.zone)


@bp.post("/review")
@roles(*REVIEW_ROLES)
def review_record() -> Any:
    f = request.form
    t0, t1 = checked_period(period, f.get("from") or None, f.get("to") or None, engine().config.zone)
    try:
        row = record_review(db(), t0, t1 - timedelta(microseconds=1), f.get("slt_member", ""), f.get("governor", ""),
                            f.get("conclusions", ""), f.get("actions", ""), g.user.username)
    except ValueError as e:
        flash(f"Not recorded: {e}.", "error")
        return render_template("review.html", reviews=recorded_reviews(db()), can_record=True,
                               zone=engine().config.zone), 400
    with Session(db()) as s, s.begin():
        record_action(s, g.user.username, "review.record", f"review {row.id}",
                      f"{row.slt_member} and {row.governor}", ip())
    flash("Recorded: the next review pack shows it.", "ok")
    return redirect(url_for("review.review_page"))
