"""Signing in and out of the admin app, and each role's first page.  Failed
attempts are slowed per name and address (``auth.LoginThrottle``); signing
out ends the session everywhere (its version changes)."""

from __future__ import annotations

import math
from typing import Any

from flask import Blueprint, g, redirect, render_template, request, session, url_for
from sqlalchemy.orm import Session

from ..audit.adminlog import record_action
from ..audit.models import AdminUser
from .auth import authenticate
from .context import db, here, ip
from .safety import safe_next

bp = Blueprint("login", __name__)


@bp.get("/login")
def login() -> Any:
    return render_template("login.html")


@bp.post("/login")
def login_post() -> Any:
    name = request.form.get("username", "")[:255]
    wait = here().throttle.wait(name, ip())
    if wait > 0:
        with Session(db()) as s, s.begin():
            record_action(s, name, "login", None, f"refused: {wait:.1f} s to wait", ip(), "throttled")
        return render_template("login.html", error=f"Too many attempts: try again in {math.ceil(wait)} s."), \
            429, {"Retry-After": str(math.ceil(wait))}
    user = authenticate(db(), name, request.form.get("password", ""), ip())
    if user is None:
        here().throttle.failed(name, ip())
        return render_template("login.html", error="Wrong user name or password."), 401
    here().throttle.succeeded(name, ip())
    session.clear()
    session.permanent = True
    session.update(uid=user.id, ver=user.session_version)
    return redirect(safe_next(request.args.get("next", "")) or url_for("login.home"))


@bp.post("/logout")
def logout() -> Any:
    if g.user is not None:
        with Session(db()) as s, s.begin():
            # A new session version ends this session everywhere: the old
            # cookie (signed, so otherwise still valid) no longer signs in.
            user = s.get(AdminUser, g.user.id)
            if user is not None:
                user.session_version = (user.session_version or 1) + 1
            record_action(s, g.user.username, "logout", None, None, ip())
    session.clear()
    return redirect(url_for("login.login"))


@bp.get("/")
def home() -> Any:
    if g.user is None:
        return redirect(url_for("login.login"))
    target = {"headteacher": "granting.requests", "slt": "reports.dashboard", "dsl": "reports.dashboard",
              "technician": "technician.technician"}[g.user.role]
    return redirect(url_for(target))
