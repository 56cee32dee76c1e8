"""The headteacher's exceptions: answering staff's requests and granting or
revoking access directly.  Both ways of granting refuse the same way (the
reason on the page, nothing granted); every grant, refusal and revocation is
recorded (``grants.store``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..audit.adminlog import record_action
from ..audit.models import ExceptionRequest
from ..grants.rules import SUBJECT_KINDS, TARGET_KINDS, GrantError
from ..grants.store import create_grant, list_grants, revoke_grant
from ..policy.yamlsource import ConfigError
from .context import db, engine, ip, roles, when
from .forms import finite_hours

DURATIONS = [(1, "1 hour"), (4, "4 hours"), (24, "1 day"), (72, "3 days"), (168, "1 week")]
bp = Blueprint("granting", __name__)


@bp.get("/requests")
@roles("headteacher", "slt")
def requests() -> Any:
    with Session(db()) as s:
        pending = s.scalars(select(ExceptionRequest).where(ExceptionRequest.status == "pending")
                            .order_by(ExceptionRequest.created_at)).all()
        decided = s.scalars(select(ExceptionRequest).where(ExceptionRequest.status != "pending")
                            .order_by(ExceptionRequest.decided_at.desc()).limit(20)).all()
        return render_template("requests.html", pending=pending, decided=decided, durations=DURATIONS)


@bp.post("/requests/<int:rid>/grant")
@roles("headteacher")
def grant_request(rid: int) -> Any:
    with Session(db()) as s:
        req = s.get(ExceptionRequest, rid)
        if req is None or req.status != "pending":
            abort(404)
        user, host, reason = req.user, req.host, req.reason
    note = request.form.get("note", "").strip()
    return grant_from_form(
        "granting.requests", "1", lambda g_: f"Granted: {user} may use {host} until {when(g_.ends_at, '%d %b %Y %H:%M %Z')} "
                                    f"(grant {g_.id}).",
        subject_kind="user", subject=user, target_kind="host", target=host,
        reason=f"request {rid}: {reason}" + (f" (note: {note})" if note else ""), request_id=rid)


@bp.post("/requests/<int:rid>/decline")
@roles("headteacher")
def decline_request(rid: int) -> Any:
    note = request.form.get("note", "").strip()
    with Session(db()) as s, s.begin():
        req = s.get(ExceptionRequest, rid)
        if req is None or req.status != "pending":
            abort(404)
        req.status, req.decided_by, req.decided_at = "declined", g.user.username, datetime.now(timezone.utc)
        req.decision_note = note
        record_action(s, g.user.username, "request.decline", f"request {rid}", note, ip())
    flash(f"Request {rid} declined.", "ok")
    return redirect(url_for("granting.requests"))

# -- grants ---------------------------------------------------------------------


@bp.get("/grants")
@roles("headteacher", "technician", "slt")
def grants() -> Any:
    return render_template("grants.html", grants=list_grants(db()), durations=DURATIONS,
                           subject_kinds=SUBJECT_KINDS, target_kinds=TARGET_KINDS,
                           categories=engine().config.categories.values())


@bp.post("/grants")
@roles("headteacher")
def grant_new() -> Any:
    f = request.form
    return grant_from_form(
        "granting.grants", "24", lambda g_: f"Grant {g_.id} made, until {when(g_.ends_at, '%d %b %Y %H:%M %Z')}.",
        subject_kind=f.get("subject_kind", ""), subject=f.get("subject") or None,
        target_kind=f.get("target_kind", ""), target=f.get("target", ""), reason=f.get("reason", ""))


def grant_from_form(back: str, default_hours: str, done: Callable[[Any], str], **what: Any) -> Any:
    """Both ways of granting (answering a request, the grants form) refuse
    the same way: the reason on the page, nothing granted."""
    try:
        g_ = create_grant(db(), engine(), granted_by=g.user.username, ip=ip(),
                          hours=finite_hours(request.form.get("hours", default_hours)), **what)
    except (GrantError, ValueError, ConfigError) as e:
        flash(f"Not granted: {e}", "error")
    else:
        flash(done(g_), "ok")
    return redirect(url_for(back))


@bp.post("/grants/<int:gid>/revoke")
@roles("headteacher")
def grant_revoke(gid: int) -> Any:
    try:
        revoke_grant(db(), gid, g.user.username, request.form.get("reason", "").strip(), ip())
    except GrantError as e:
        flash(str(e), "error")
    else:
        flash(f"Grant {gid} revoked.", "ok")
    return redirect(url_for("granting.grants"))
