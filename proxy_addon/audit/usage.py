"""Media usage per person per day, in the shared database.

Added to with one atomic upsert per finished media transfer, so several proxy
instances serving one person add up to one total, and read when a media
transfer starts.
"""

from __future__ import annotations

from sqlalchemy import Engine as DBEngine
from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from .models import MediaUsage


def get_usage(db: DBEngine, user: str, day: str) -> tuple[float, int]:
    with Session(db) as s:
        row = s.get(MediaUsage, (user, day))
        return (row.seconds, row.bytes) if row is not None else (0.0, 0)


def add_usage(db: DBEngine, user: str, day: str, seconds: float, nbytes: int) -> None:
    values = {"user": user, "day": day, "seconds": seconds, "bytes": nbytes}
    with db.begin() as conn:
        name = conn.dialect.name
        if name in ("sqlite", "postgresql"):
            from sqlalchemy.dialects import postgresql, sqlite

            stmt = (sqlite.insert if name == "sqlite" else postgresql.insert)(MediaUsage).values(**values)
            conn.execute(stmt.on_conflict_do_update(index_elements=["user", "day"], set_={
                "seconds": MediaUsage.seconds + stmt.excluded.seconds,
                "bytes": MediaUsage.bytes + stmt.excluded.bytes}))
            return
        done = conn.execute(update(MediaUsage).where(MediaUsage.user == user, MediaUsage.day == day)
                            .values(seconds=MediaUsage.seconds + seconds, bytes=MediaUsage.bytes + nbytes))
        if not done.rowcount:
            conn.execute(insert(MediaUsage).values(**values))
