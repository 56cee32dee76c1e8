"""Page verdicts in the audit database: written by the proxy that fetched
the page, read by every proxy and helper that shares the database (so a
site fetched by one worker is judged by all), and listed for the technician
(``lists review``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine as Database
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ..audit.models import PageVerdict as Row
from ..classify.pageverdicts import PageVerdict, PageVerdicts


def save(db: Database, v: PageVerdict, *, detail: str | None, bytes_read: int, elapsed_ms: int,
         instance: str | None) -> None:
    """The latest fetch of a domain replaces the one before."""
    with Session(db) as s, s.begin():
        row = s.get(Row, v.domain) or Row(domain=v.domain)
        row.url, row.category, row.score, row.terms, row.outcome = v.url, v.category, v.score, v.terms, v.outcome
        row.detail, row.bytes_read, row.elapsed_ms = detail, bytes_read, elapsed_ms
        row.fetched_at, row.expires_at, row.instance = v.fetched_at, v.expires_at, instance
        s.add(row)


_COLUMNS = (Row.domain, Row.url, Row.category, Row.score, Row.terms, Row.outcome, Row.fetched_at, Row.expires_at)


def _verdicts(db: Database, *where: Any) -> tuple[PageVerdict, ...]:
    """Plain rows, not ORM objects: a week of a school's new sites is tens of
    thousands of them."""
    with db.connect() as c:
        return tuple(PageVerdict(d, u, cat, sc, t or "", o, f, e)
                     for d, u, cat, sc, t, o, f, e in c.execute(select(*_COLUMNS).where(*where)))


def load_current(db: Database, now: datetime) -> PageVerdicts:
    """The verdicts not yet expired."""
    return PageVerdicts(_verdicts(db, Row.expires_at > now))


def load_since(db: Database, since: datetime, now: datetime) -> tuple[PageVerdict, ...]:
    """The verdicts fetched since ``since`` (at or after: a verdict written
    in the same instant is read twice, never missed) and not expired."""
    return _verdicts(db, Row.fetched_at >= since, Row.expires_at > now)


def recent(db: Database, limit: int = 200, blocking_only: bool = False) -> list[Row]:
    """The latest fetches, newest first (for the technician's review)."""
    q = select(Row).order_by(Row.fetched_at.desc()).limit(limit)
    if blocking_only:
        q = q.where(Row.category.is_not(None))
    with Session(db) as s:
        return list(s.scalars(q))


def purge_expired(db: Database, now: datetime) -> int:
    """Verdicts past their expiry are erased (the site is fetched again when
    next seen); how many."""
    with db.begin() as c:
        return c.execute(delete(Row).where(Row.expires_at <= now)).rowcount or 0
