"""The rules, grants and record in force now, for any front end.

Each front end keeps one ``RulesInForce`` (the mitmproxy addon extends it
with what it tracks per connection) and refreshes it on its own schedule:
the addon on its event loop (``proxy.upkeep``), the Squid helper on a thread
(``squid.helperruntime``).  The engine and the grants are swapped by single
assignments, so a request never sees half of a reload; rules that fail to
load leave the ones in force in force.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sized
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Engine as Database

from ..classify.engine import Engine
from ..classify.pageverdicts import PageVerdict, PageVerdicts
from ..classify.reload import reloaded
from ..grants.rules import ActiveGrant
from ..grants.store import load_active
from ..lists.pagestore import load_current, load_since
from ..policy.reloader import Signature

log = logging.getLogger(__name__)
T = TypeVar("T", bound=Sized)
PAGES_RELOAD = timedelta(minutes=10)


class RulesInForce:
    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.db: Database | None = None
        self.grants: tuple[ActiveGrant, ...] = ()
        self.pages = PageVerdicts()  # what first-seen sites' landing pages said
        self._pages_loaded: datetime | None = None  # when all of them were last read
        self.secret = b""
        self.instance = ""
        self.clock_offset = 0.0  # seconds the clock is moved (tests of times of day)
        self.signature: Signature | None = None  # the rules files as last loaded
        self.rules_since = datetime.now(timezone.utc)  # when the rules in force were loaded
        self.rules_problem: str | None = None  # why the files on disk cannot be used, while they cannot

    def now(self) -> datetime:
        now = datetime.now(timezone.utc)
        return now + timedelta(seconds=self.clock_offset) if self.clock_offset else now

    def database(self) -> Database:
        """The audit database, for what cannot be done without it."""
        if self.db is None:
            raise RuntimeError("no audit database is open")
        return self.db

    def refresh_grants(self) -> None:
        """The grants in force now; while the database cannot be reached, the
        last ones stay (a revoked grant stops at the next successful poll)."""
        self.grants = self._reloaded(load_active, self.grants, "grants")

    def refresh_pages(self) -> None:
        """The page verdicts in force now (fetched by any proxy sharing the
        database): those fetched since the newest one held, and all of them
        again every ``PAGES_RELOAD`` (which lets the expired go); while the
        database cannot be reached, the last ones stay."""
        now = self.now()
        newest = self.pages.newest()
        if newest is None or self._pages_loaded is None or now - self._pages_loaded > PAGES_RELOAD:
            self.pages = self._reloaded(load_current, self.pages, "page verdicts")
            self._pages_loaded = now
        else:
            none: tuple[PageVerdict, ...] = ()
            fresh = self._reloaded(lambda db, at: load_since(db, newest, at), none, "page verdicts")
            self.pages = self.pages.with_these(fresh)

    def _reloaded(self, load: Callable[[Database, datetime], T], last: T, what: str) -> T:
        if self.db is None:
            return last
        try:
            return load(self.db, self.now())
        except Exception as e:  # noqa: BLE001 - the database may be briefly unreachable
            log.warning("schoolproxy: could not reload %s (%s); keeping the last %d",
                        what, type(e).__name__, len(last))
            return last

    def changed_rules(self, root: Path) -> Engine | None:
        """The rules under ``root`` if their files changed and they load, else
        None; the caller puts them in force (after warming what they need)."""
        assert self.engine is not None
        look = reloaded(root, self.engine, self.signature)
        self.signature = look.signature
        if look.engine is not None:
            self.rules_since, self.rules_problem = datetime.now(timezone.utc), None
        elif look.problem is not None:
            self.rules_problem = look.problem
        return look.engine
