"""The admin web app (Flask, server-rendered, no external assets), one
Blueprint per area: signing in (``login``), the headteacher's exceptions
(``granting``), reports for the SLT and safeguarding lead (``reportpages``),
the technician's page (``technician``), rules and the decision log
(``rulepages``), the list review (``listreview``), the annual review
(``reviewpages``), the safeguarding lead's alerts (``alertpages``) and the
pages opened only for a recorded concern (``concerns``).

Roles: ``headteacher`` grants and revokes exceptions and decides requests;
``technician`` sees check results, list stats and grants (and cannot grant);
``slt`` sees self-reports and requests.  Every POST carries a CSRF token
(Flask-WTF); every action, refused ones included, is an ``admin_actions`` row
with the actor and address.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask, g, render_template, request, session
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy import Engine as DBEngine
from sqlalchemy.orm import Session

from ..audit.adminlog import record_action
from . import alertpages, concerns, granting, listreview, login, reportpages, reviewpages, rulepages, technician
from .auth import get_user
from .context import AdminContext, RulesCache, db, here, ip, when

SESSION_HOURS = 8
BLUEPRINTS = (login.bp, alertpages.bp, granting.bp, reportpages.bp, technician.bp, concerns.bp, rulepages.bp, reviewpages.bp,
              listreview.bp)


def create_app(db_engine: DBEngine, config_root: Path, secret: bytes, session_hours: float = SESSION_HOURS,
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
    app.extensions["schoolproxy"] = AdminContext(db_engine, config_root, data, RulesCache(config_root))
    app.before_request(load_user)
    CSRFProtect(app)  # after load_user, so a refusal can name who was refused
    app.after_request(headers)
    app.context_processor(rules_in_force)
    app.add_template_filter(when)
    app.register_error_handler(400, bad_request)
    app.register_error_handler(CSRFError, csrf_refused)
    for bp in BLUEPRINTS:
        app.register_blueprint(bp)
    return app


def load_user() -> None:
    g.user = None
    uid = session.get("uid")
    if uid is not None:
        user = get_user(db(), uid)
        if user is None or user.disabled or user.session_version != session.get("ver"):
            session.clear()
        else:
            g.user = user


def rules_in_force() -> dict[str, Any]:
    """Every page says when the rules on disk are broken and which ones stand
    in, and names the school's time zone."""
    rules = here().rules
    zone = rules.get().config.zone
    named = {"zone_name": getattr(zone, "key", str(zone))}
    if rules.problem is None or g.get("user") is None:
        return {"rules_problem": None, "rules_loaded_at": None, **named}
    return {"rules_problem": rules.problem, **named,
            "rules_loaded_at": rules.loaded_at.astimezone(zone).strftime("%d %b %Y %H:%M %Z") if rules.loaded_at else "?"}


def headers(resp: Any) -> Any:
    resp.headers["Content-Security-Policy"] = "default-src 'self'; style-src 'self' 'unsafe-inline'; form-action 'self'"
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    # same-origin, not no-referrer: over HTTPS Flask-WTF checks that a form
    # came from this site by its Referer; other sites never see it.
    resp.headers["Referrer-Policy"] = "same-origin"
    resp.headers["Cache-Control"] = "no-store"
    return resp


def bad_request(e: Any) -> Any:
    return render_template("message.html", title="That did not work",
                           message=getattr(e, "description", None) or "A value in the request is not valid."), 400


def csrf_refused(e: CSRFError) -> Any:
    with Session(db()) as s, s.begin():
        record_action(s, g.user.username if g.get("user") else "anonymous", "csrf.refused",
                      request.path, e.description, ip(), "refused")
    return render_template("message.html", title="Form refused",
                           message="This form has expired or did not come from this site. Go back, reload "
                                   "the page and try again."), 400


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
