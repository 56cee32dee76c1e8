"""The admin web app (Flask, server-rendered, no external assets).

Roles: ``headteacher`` grants and revokes exceptions and decides requests;
``technician`` sees check results, list stats and grants (and cannot grant);
``slt`` sees self-reports and requests.  Every POST carries a CSRF token
(Flask-WTF); every action, refused ones included, is an ``admin_actions`` row
with the actor and address.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, abort, flash, g, redirect, render_template, request, session, url_for
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy import Engine as DBEngine
from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from ..audit.adminlog import record_action
from ..audit.models import AccessEvent, AdminAction, AdminUser, ExceptionRequest
from ..classify.engine import Engine
from ..grants.rules import SUBJECT_KINDS, TARGET_KINDS, GrantError
from ..grants.store import create_grant, list_grants, revoke_grant
from ..policy.yamlsource import ConfigError
from .auth import LoginThrottle, authenticate, get_user
from .concerns import register_concerns
from .forms import checked_period, finite_hours
from .listreview import register_list_review
from .review import register_review
from .rules import register_rules

SESSION_HOURS = 8
DURATIONS = [(1, "1 hour"), (4, "4 hours"), (24, "1 day"), (72, "3 days"), (168, "1 week")]


def create_app(db: DBEngine, config_root: Path, secret: bytes, session_hours: float = SESSION_HOURS,
               secure_cookies: bool = False, data: Path | None = None) -> Flask:
    """``data``: the proxies' data folder, whose status files the technician
    page reads (None: that part of the page says it does not know)."""
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=secret,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=session_hours),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=secure_cookies,
        SESSION_COOKIE_NAME="schoolproxy_admin",
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
    )

    throttle = LoginThrottle()

    def engine() -> Engine:
        return Engine.load(config_root)

    def ip() -> str:
        return request.remote_addr or ""

    @app.before_request
    def load_user() -> None:
        g.user = None
        uid = session.get("uid")
        if uid is not None:
            user = get_user(db, uid)
            if user is None or user.disabled or user.session_version != session.get("ver"):
                session.clear()
            else:
                g.user = user

    CSRFProtect(app)  # after load_user, so a refusal can name who was refused

    @app.after_request
    def headers(resp: Any) -> Any:
        resp.headers["Content-Security-Policy"] = "default-src 'self'; style-src 'self' 'unsafe-inline'; form-action 'self'"
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["X-Content-Type-Options"] = "nosniff"
        # same-origin, not no-referrer: over HTTPS Flask-WTF checks that a form
        # came from this site by its Referer; other sites never see it.
        resp.headers["Referrer-Policy"] = "same-origin"
        resp.headers["Cache-Control"] = "no-store"
        return resp

    @app.errorhandler(400)
    def bad_request(e: Any) -> Any:
        return render_template("message.html", title="That did not work",
                               message=getattr(e, "description", None) or "A value in the request is not valid."), 400

    @app.errorhandler(CSRFError)
    def csrf_refused(e: CSRFError) -> Any:
        with Session(db) as s, s.begin():
            record_action(s, g.user.username if g.get("user") else "anonymous", "csrf.refused",
                          request.path, e.description, ip(), "refused")
        return render_template("message.html", title="Form refused",
                               message="This form has expired or did not come from this site. Go back, reload "
                                       "the page and try again."), 400

    def roles(*allowed: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def wrap(view: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(view)
            def inner(*a: Any, **kw: Any) -> Any:
                if g.user is None:
                    return redirect(url_for("login", next=request.path))
                if g.user.role not in allowed:
                    with Session(db) as s, s.begin():
                        record_action(s, g.user.username, "denied", f"{request.method} {request.path}",
                                      f"role {g.user.role} may not do this", ip(), "refused")
                    abort(403)
                return view(*a, **kw)
            return inner
        return wrap

    @app.get("/login")
    def login() -> Any:
        return render_template("login.html")

    @app.post("/login")
    def login_post() -> Any:
        name = request.form.get("username", "")[:255]
        wait = throttle.wait(name, ip())
        if wait > 0:
            with Session(db) as s, s.begin():
                record_action(s, name, "login", None, f"refused: {wait:.1f} s to wait", ip(), "throttled")
            return render_template("login.html", error=f"Too many attempts: try again in {math.ceil(wait)} s."), \
                429, {"Retry-After": str(math.ceil(wait))}
        user = authenticate(db, name, request.form.get("password", ""), ip())
        if user is None:
            throttle.failed(name, ip())
            return render_template("login.html", error="Wrong user name or password."), 401
        throttle.succeeded(name, ip())
        session.clear()
        session.permanent = True
        session.update(uid=user.id, ver=user.session_version)
        return redirect(safe_next(request.args.get("next", "")) or url_for("home"))

    @app.post("/logout")
    def logout() -> Any:
        if g.user is not None:
            with Session(db) as s, s.begin():
                # A new session version ends this session everywhere: the old
                # cookie (signed, so otherwise still valid) no longer signs in.
                user = s.get(AdminUser, g.user.id)
                if user is not None:
                    user.session_version = (user.session_version or 1) + 1
                record_action(s, g.user.username, "logout", None, None, ip())
        session.clear()
        return redirect(url_for("login"))

    @app.get("/")
    def home() -> Any:
        if g.user is None:
            return redirect(url_for("login"))
        target = {"headteacher": "requests", "slt": "dashboard", "dsl": "dashboard",
                  "technician": "technician"}[g.user.role]
        return redirect(url_for(target))

    # -- exception requests --------------------------------------------------------

    @app.get("/requests")
    @roles("headteacher", "slt")
    def requests() -> Any:
        with Session(db) as s:
            pending = s.scalars(select(ExceptionRequest).where(ExceptionRequest.status == "pending")
                                .order_by(ExceptionRequest.created_at)).all()
            decided = s.scalars(select(ExceptionRequest).where(ExceptionRequest.status != "pending")
                                .order_by(ExceptionRequest.decided_at.desc()).limit(20)).all()
            return render_template("requests.html", pending=pending, decided=decided, durations=DURATIONS)

    @app.post("/requests/<int:rid>/grant")
    @roles("headteacher")
    def grant_request(rid: int) -> Any:
        with Session(db) as s:
            req = s.get(ExceptionRequest, rid)
            if req is None or req.status != "pending":
                abort(404)
            user, host, reason = req.user, req.host, req.reason
        note = request.form.get("note", "").strip()
        return grant_from_form(
            "requests", "1", lambda g_: f"Granted: {user} may use {host} until {g_.ends_at:%d %b %Y %H:%M} UTC "
                                        f"(grant {g_.id}).",
            subject_kind="user", subject=user, target_kind="host", target=host,
            reason=f"request {rid}: {reason}" + (f" (note: {note})" if note else ""), request_id=rid)

    @app.post("/requests/<int:rid>/decline")
    @roles("headteacher")
    def decline_request(rid: int) -> Any:
        note = request.form.get("note", "").strip()
        with Session(db) as s, s.begin():
            req = s.get(ExceptionRequest, rid)
            if req is None or req.status != "pending":
                abort(404)
            req.status, req.decided_by, req.decided_at = "declined", g.user.username, datetime.now(timezone.utc)
            req.decision_note = note
            record_action(s, g.user.username, "request.decline", f"request {rid}", note, ip())
        flash(f"Request {rid} declined.", "ok")
        return redirect(url_for("requests"))

    # -- grants ---------------------------------------------------------------------

    @app.get("/grants")
    @roles("headteacher", "technician", "slt")
    def grants() -> Any:
        return render_template("grants.html", grants=list_grants(db), durations=DURATIONS,
                               subject_kinds=SUBJECT_KINDS, target_kinds=TARGET_KINDS,
                               categories=engine().config.categories.values())

    @app.post("/grants")
    @roles("headteacher")
    def grant_new() -> Any:
        f = request.form
        return grant_from_form(
            "grants", "24", lambda g_: f"Grant {g_.id} made, until {g_.ends_at:%d %b %Y %H:%M} UTC.",
            subject_kind=f.get("subject_kind", ""), subject=f.get("subject") or None,
            target_kind=f.get("target_kind", ""), target=f.get("target", ""), reason=f.get("reason", ""))

    def grant_from_form(back: str, default_hours: str, done: Callable[[Any], str], **what: Any) -> Any:
        """Both ways of granting (answering a request, the grants form) refuse
        the same way: the reason on the page, nothing granted."""
        try:
            g_ = create_grant(db, engine(), granted_by=g.user.username, ip=ip(),
                              hours=finite_hours(request.form.get("hours", default_hours)), **what)
        except (GrantError, ValueError, ConfigError) as e:
            flash(f"Not granted: {e}", "error")
        else:
            flash(done(g_), "ok")
        return redirect(url_for(back))

    @app.post("/grants/<int:gid>/revoke")
    @roles("headteacher")
    def grant_revoke(gid: int) -> Any:
        try:
            revoke_grant(db, gid, g.user.username, request.form.get("reason", "").strip() or "revoked", ip())
        except GrantError as e:
            flash(str(e), "error")
        else:
            flash(f"Grant {gid} revoked.", "ok")
        return redirect(url_for("grants"))

    # -- self-reports -----------------------------------------------------------------

    @app.get("/self-reports")
    @roles("slt", "headteacher")
    def self_reports() -> Any:
        blocked = aliased(AccessEvent)
        with Session(db) as s:
            rows = s.execute(
                select(AccessEvent, blocked).outerjoin(blocked, blocked.event_uid == AccessEvent.related_uid)
                .where(AccessEvent.action == "self_report").order_by(AccessEvent.ts.desc()).limit(200)).all()
            return render_template("self_reports.html", rows=rows)

    # -- technician -------------------------------------------------------------------

    @app.get("/technician")
    @roles("technician", "headteacher")
    def technician() -> Any:
        from ..classify.listindex import ListIndex
        from ..policy.loader import check_config

        problems = check_config(config_root)
        stats = None
        try:
            index = ListIndex.open_current(engine().config.index_path)
        except ConfigError:
            index = None
        if index is not None:
            per_cat: dict[str, int] = {}
            for f in index.meta["files"]:
                for c in f["categories"]:
                    per_cat[c] = per_cat.get(c, 0) + f["entries"]
            stats = {"built": index.meta["built"], "entries": index.entries,
                     "categories": sorted(per_cat.items(), key=lambda kv: -kv[1])}
            index.close()
        from ..lists.lockedfeeds import load_states
        from ..monitor.health import read_health

        healths = read_health(data) if data is not None else None
        feeds = load_states(data) if data is not None else {}
        return render_template("technician.html", problems=problems, stats=stats, healths=healths, feeds=feeds,
                               data=data)

    # -- reports ------------------------------------------------------------------------

    @app.get("/dashboard")
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
        for day, cat, n in blocked(db, eng, t0, t1).rows:
            per_day[day] = per_day.get(day, 0) + n
            per_cat[cat] = per_cat.get(cat, 0) + n
        top = top_blocked(db, eng, t0, t1, limit=10).rows
        stream = streaming(db, eng, t0, t1).rows
        ooh: dict[str, float] = {}
        for _person, day, _mins in out_of_hours(db, eng, t0, t1).rows:
            ooh[day] = ooh.get(day, 0) + 1  # how many people, never who
        reports_per_day: dict[str, float] = {}
        for day, _cat, n in sr_report(db, eng, t0, t1).rows:
            reports_per_day[day] = reports_per_day.get(day, 0) + n
        gr = grants_report(db, eng, t0, t1).rows
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

    register_concerns(app, db, engine, roles, ip)
    register_rules(app, db, config_root, engine, roles, ip)
    register_review(app, db, engine, roles, ip)
    register_list_review(app, db, config_root, engine, roles, ip)

    @app.get("/actions")
    @roles("headteacher")
    def actions() -> Any:
        with Session(db) as s:
            rows = s.scalars(select(AdminAction).order_by(AdminAction.id.desc()).limit(200)).all()
            return render_template("actions.html", rows=rows)

    return app


def serve(app: Flask, host: str, port: int, tls_cert: str | None = None, tls_key: str | None = None) -> None:
    """Serve with cheroot (CherryPy's WSGI server: a thread pool, and TLS with
    the school's certificate or the app's own; it leaves the root logger
    alone, so inside the proxy log lines are not printed twice)."""
    from cheroot import wsgi

    server = wsgi.Server((host, port), app, numthreads=8, server_name="schoolproxy-admin")
    if tls_cert:
        from cheroot.ssl.builtin import BuiltinSSLAdapter

        server.ssl_adapter = BuiltinSSLAdapter(tls_cert, tls_key or tls_cert)
    try:
        server.start()
    finally:
        server.stop()


def safe_next(text: str) -> str | None:
    """Where to go after signing in: a path on this site only.  Browsers drop
    tabs and line breaks from URLs and read a backslash as a slash, so
    ``/\t/evil.example`` would be ``//evil.example``: anything with those, a
    scheme or a host is refused."""
    if not text.startswith("/") or any(c.isspace() or ord(c) < 32 or c == "\\" for c in text):
        return None
    parts = urlsplit(text)
    if parts.scheme or parts.netloc or text.startswith("//"):
        return None
    return text
