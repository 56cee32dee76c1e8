"""What every admin page shares: the audit database, the rules folder and
the engine for it (loaded once and again only when the rules change), the
proxies' data folder, who is signed in and from where, and the role check.
``create_app`` puts one ``AdminContext`` on the app; pages reach it through
the functions here, so each page module is a plain Blueprint, not a closure."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from flask import abort, current_app, g, redirect, request, url_for
from sqlalchemy import Engine as DBEngine
from sqlalchemy.orm import Session

from ..audit.adminlog import record_action
from ..classify.engine import Engine
from ..policy.reloader import Signature, signature
from ..policy.yamlsource import ConfigError
from .auth import LoginThrottle

View = Callable[..., Any]
log = logging.getLogger(__name__)


class RulesCache:
    """The engine for the rules folder: loaded again only when a rules or
    list file changes (a stat of each, not a parse).  Rules that fail to
    load leave the last good ones in force here, as in the proxies, and
    ``problem`` says so on every page until the files are fixed; only when
    no rules have ever loaded does ``get`` raise ``ConfigError``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._engine: Engine | None = None
        self._signature: Signature | None = None
        self._lock = threading.Lock()
        self.problem: str | None = None  # why the rules on disk are not the ones in force
        self.loaded_at: datetime | None = None  # when the rules in force were loaded

    def get(self) -> Engine:
        watched = self._engine.watched_files if self._engine is not None else ()
        now = signature(self.root, watched)
        engine = self._engine
        if engine is not None and now == self._signature:
            return engine
        with self._lock:
            if self._engine is not None and self._signature == now:
                return self._engine
            try:
                engine = Engine.load(self.root)
            except ConfigError as e:
                if self._engine is None:
                    raise
                self._signature = now  # not tried again until the files change again
                self.problem = str(e)
                log.warning("schoolproxy admin: the rules on disk have problems; the rules loaded at %s stay "
                            "in force:\n%s", self.loaded_at, e)
                return self._engine
            self._engine, self._signature = engine, signature(self.root, engine.watched_files)
            self.problem, self.loaded_at = None, datetime.now(timezone.utc)
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


def when(ts: datetime | None, fmt: str = "%d %b %Y %H:%M") -> str:
    """A time from the database shown in the school's time zone, as the block
    pages and reports show it (the zone is named in each table's heading)."""
    if ts is None:
        return ""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    return ts.astimezone(here().rules.get().config.zone).strftime(fmt)
