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
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import Engine as Database

from ..classify.engine import Engine
from ..classify.pageverdicts import PageVerdicts
from ..classify.reload import reloaded
from ..grants.rules import ActiveGrant
from ..grants.store import load_active
from ..lists.pagestore import load_current
from ..policy.reloader import Signature

log = logging.getLogger(__name__)


class RulesInForce:
    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.db: Database | None = None
        self.grants: tuple[ActiveGrant, ...] = ()
        self.pages = PageVerdicts()  # what first-seen sites' landing pages said
        self.secret = b""
        self.instance = ""
        self.clock_offset = 0.0  # seconds the clock is moved (tests of times of day)
        self.signature: Signature | None = None  # the rules files as last loaded

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
        if self.db is None:
            return
        try:
            self.grants = load_active(self.db, self.now())
        except Exception as e:  # noqa: BLE001 - the database may be briefly unreachable
            log.warning("schoolproxy: could not reload grants (%s); keeping the last %d",
                        type(e).__name__, len(self.grants))

    def refresh_pages(self) -> None:
        """The page verdicts in force now (fetched by any proxy sharing the
        database); while it cannot be reached, the last ones stay."""
        if self.db is None:
            return
        try:
            self.pages = load_current(self.db, self.now())
        except Exception as e:  # noqa: BLE001 - the database may be briefly unreachable
            log.warning("schoolproxy: could not reload page verdicts (%s); keeping the last %d",
                        type(e).__name__, len(self.pages))

    def changed_rules(self, root: Path) -> Engine | None:
        """The rules under ``root`` if their files changed and they load, else
        None; the caller puts them in force (after warming what they need)."""
        assert self.engine is not None
        engine, self.signature = reloaded(root, self.engine, self.signature)
        return engine
