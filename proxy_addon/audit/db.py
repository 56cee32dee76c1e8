"""Opening the audit database and bringing its schema up to date.

Any SQLAlchemy URL works.  SQLite gets WAL mode (readers never block the
writer thread) and a busy timeout; its directory is created.  Migrations run
through Alembic at start-up; on PostgreSQL they hold an advisory lock so that
many proxy instances starting together migrate once; on SQLite a lock file
beside the database does the same for the processes of one machine (the
proxy, and the Squid front end's helper, log daemon and page server, which
start together).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

DEFAULT_AUDIT_DB = "sqlite:///logs/audit.sqlite"
MIGRATIONS = Path(__file__).parent / "migrations"
_MIGRATION_LOCK = 0x5C4001  # arbitrary, constant: the advisory lock's key


def default_audit_db() -> str:
    return os.environ.get("SCHOOLPROXY_AUDIT_DB") or DEFAULT_AUDIT_DB


def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
    cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def make_engine(url: str) -> Engine:
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(u, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(u, pool_pre_ping=True)


def detached(db: Engine, query: Any) -> list[Any]:
    """The ORM objects a query selects, detached from their session so the
    caller can read them after it closes."""
    with Session(db) as s:
        rows = list(s.scalars(query))
        s.expunge_all()
        return rows


def migrate(engine: Engine) -> None:
    """Create or upgrade the schema to the newest revision (quietly: a line a
    revision at every start would bury what a technician needs to read)."""
    logging.getLogger("alembic").setLevel(logging.WARNING)
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with _sqlite_lock(engine), engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    refresh_statistics(engine)


@contextlib.contextmanager
def _sqlite_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate-lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def refresh_statistics(engine: Engine) -> None:
    """Keep SQLite's planner statistics fresh (cheaply: a sampled ANALYZE, only
    where they are stale) so it picks the reports' partial indexes.  PostgreSQL's
    autovacuum does this itself."""
    if engine.dialect.name == "sqlite":
        with engine.begin() as conn:
            conn.exec_driver_sql("PRAGMA analysis_limit=1000")
            conn.exec_driver_sql("PRAGMA optimize")


def open_database(url: str) -> Engine:
    engine = make_engine(url)
    migrate(engine)
    return engine
