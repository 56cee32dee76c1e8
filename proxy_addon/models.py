"""The audit database's tables (SQLAlchemy 2.0 typed ORM).

Portable on purpose: the embedded default is SQLite, but a trust or county
points many proxies at one PostgreSQL, so only portable types are used,
timestamps are stored as UTC, and ids are 64-bit where PostgreSQL needs them
(SQLite needs plain INTEGER for its rowid autoincrement).  The schema is
owned by the Alembic migrations in ``migrations/``; these classes must match.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import BigInteger, DateTime, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

BigId = BigInteger().with_variant(Integer, "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the audit log; use UTC")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    pass


class AccessEvent(Base):
    """One access decision: every request, allowed or not."""

    __tablename__ = "access_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime())
    user: Mapped[str] = mapped_column(String(255))
    client_ip: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(16))
    scheme: Mapped[str] = mapped_column(String(16))
    host: Mapped[str] = mapped_column(String(255))
    url: Mapped[str] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(64))
    categories: Mapped[str | None] = mapped_column(String(512))
    action: Mapped[str] = mapped_column(String(32))
    rule: Mapped[str | None] = mapped_column(String(160))
    clause: Mapped[str | None] = mapped_column(String(32))
    matched: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    status_code: Mapped[int | None] = mapped_column(Integer)
    bytes_out: Mapped[int | None] = mapped_column(BigInteger)
    bytes_in: Mapped[int | None] = mapped_column(BigInteger)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    tls: Mapped[str | None] = mapped_column(String(16))
    instance: Mapped[str | None] = mapped_column(String(64))
    config_digest: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (
        Index("ix_access_events_ts", "ts"),
        Index("ix_access_events_user_ts", "user", "ts"),
        Index("ix_access_events_action_ts", "action", "ts"),
        Index("ix_access_events_category_ts", "category", "ts"),
    )


EVENT_COLUMNS = frozenset(c.name for c in AccessEvent.__table__.columns) - {"id"}
