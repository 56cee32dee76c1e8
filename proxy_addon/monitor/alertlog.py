"""The alerts table: every alert the filter raised, what was delivered for
it, and who acknowledged it.  Written after delivery by the proxy; read by
the Alerts page, the technician's home and ``report alerts``."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timezone

from sqlalchemy import Engine as DBEngine
from sqlalchemy import func, insert, select, update

from ..audit.models import AlertRecord
from .alerts import Alert


@dataclass(frozen=True, slots=True)
class AlertRow:
    id: int
    ts: datetime
    user: str
    client_ip: str
    kind: str
    severity: str
    category: str | None
    title: str | None
    term: str | None
    delivered: str
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    ack_note: str | None

    @property
    def what(self) -> str:
        """The alert in a phrase, as the email says it (never an address)."""
        if self.kind == "search":
            return f"search including the safeguarding term '{self.term}'"
        if self.kind == "category":
            return f"attempt to reach a site in '{self.title or self.category}'"
        if self.kind == "circumvention":
            return f"attempt to get round the filter: {self.title}"
        return f"the web filter itself: {self.title}"


def keep(db: DBEngine, batch: list[Alert], outcomes: list[str], instance: str | None) -> None:
    with db.begin() as c:
        c.execute(insert(AlertRecord), [
            {"ts": a.ts, "user": a.user[:255], "client_ip": a.client_ip[:64], "kind": a.kind, "severity": a.severity,
             "category": a.category, "title": (a.title or None) and a.title[:255], "term": (a.term or None) and
             a.term[:255], "delivered": got[:255], "instance": instance}
            for a, got in zip(batch, outcomes)])


def recent(db: DBEngine, since: datetime, limit: int = 200, safeguarding_only: bool = False) -> list[AlertRow]:
    """Newest first; ``safeguarding_only`` leaves out the filter's own
    problems and circumvention notes meant for the technician."""
    q = select(AlertRecord).where(AlertRecord.ts >= since)
    if safeguarding_only:
        q = q.where(AlertRecord.kind != "system", AlertRecord.severity == "high")
    with db.connect() as c:
        rows = c.execute(q.order_by(AlertRecord.ts.desc(), AlertRecord.id.desc()).limit(limit)).mappings().all()
    return [AlertRow(**{f.name: r[f.name] for f in fields(AlertRow)}) for r in rows]


def get_alert(db: DBEngine, alert_id: int) -> AlertRow | None:
    with db.connect() as c:
        r = c.execute(select(AlertRecord).where(AlertRecord.id == alert_id)).mappings().first()
    return None if r is None else AlertRow(**{f.name: r[f.name] for f in fields(AlertRow)})


def unacknowledged(db: DBEngine, since: datetime) -> int:
    q = select(func.count()).select_from(AlertRecord).where(
        AlertRecord.ts >= since, AlertRecord.acknowledged_at.is_(None), AlertRecord.kind != "system",
        AlertRecord.severity == "high")
    with db.connect() as c:
        return int(c.execute(q).scalar_one())


def acknowledge(db: DBEngine, alert_id: int, by: str, note: str) -> bool:
    """False if there is no such alert or it was acknowledged already."""
    with db.begin() as c:
        done = c.execute(update(AlertRecord).where(AlertRecord.id == alert_id, AlertRecord.acknowledged_at.is_(None))
                         .values(acknowledged_by=by[:255], acknowledged_at=datetime.now(timezone.utc),
                                 ack_note=note or None))
    return bool(done.rowcount)
