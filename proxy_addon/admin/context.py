"""What every admin page shares: the audit database, the rules folder and
the engine for it (loaded once and again only when the rules change), the
proxies' data folder, who is signed in and from where, and the role check.
``create_app`` puts one ``AdminContext`` on the app; pages reach it through
the functions here, so each page module is a plain Blueprint, not a closure."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import abort, current_app, g, redirect, request, url_for
from sqlalchemy import Engine as DBEngine
from sqlalchemy.orm import Session

from ..audit.adminlog import record_action
from ..classify.engine import Engine
from ..policy.reloader import Signature, signature
from .auth import LoginThrottle

View = Callable[..., Any]


class RulesCache:
    """The engine for the rules folder: loaded again only when a rules or
    list file changes (a stat of each, not a parse).  Rules that fail to
    load raise ``ConfigError`` each time they are asked for, as before."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._engine: Engine | None = None
        self._signature: Signature | None = None
        self._lock = threading.Lock()

    def get(self) -> Engine:
        watched = self._engine.watched_files if self._engine is not None else ()
        now = signature(self.root, watched)
        engine = self._engine
        if engine is not None and now == self._signature:
            return engine
        with self._lock:
            if self._engine is not None and self._signature == now:
                return self._engine
            engine = Engine.load(self.root)
            self._engine, self._signature = engine, signature(self.root, engine.watched_files)
            return engine


@dataclass
class AdminContext:
    db: DBEngine
    config_root: Path
    data: Path | None  # the proxies' data folder (status and health files), if known
    rules: RulesCache
    throttle: LoginThrottle = field(default_factory=LoginThrottle)


def here() -> AdminContext:
    context: AdminContext = current_app.extensions["schoolproxy"]
    return context


def db() -> DBEngine:
    return here().db


def config_root() -> Path:
    return here().config_root


def engine() -> Engine:
    return here().rules.get()


def ip() -> str:
    return request.remote_addr or ""


def roles(*allowed: str) -> Callable[[View], View]:
    """Only signed-in people with one of these roles; a refusal is recorded."""
    def wrap(view: View) -> View:
        @functools.wraps(view)
        def inner(*a: Any, **kw: Any) -> Any:
            if g.user is None:
                return redirect(url_for("login.login", next=request.path))
            if g.user.role not in allowed:
                with Session(db()) as s, s.begin():
                    record_action(s, g.user.username, "denied", f"{request.method} {request.path}",
                                  f"role {g.user.role} may not do this", ip(), "refused")
                abort(403)
            return view(*a, **kw)
        return inner
    return wrap
