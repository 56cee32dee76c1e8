"""Recording admin actions: who did what, when, from where, and the outcome.

Every grant, revocation, decision on a request, sign-in (failed or not) and
refused attempt is a row in ``admin_actions``, written in the same
transaction as the change it records, so neither exists without the other.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from .models import AdminAction


def record_action(session: Session, actor: str, action: str, target: str | None = None,
                  detail: str | None = None, ip: str | None = None, outcome: str = "ok") -> AdminAction:
    row = AdminAction(ts=datetime.now(timezone.utc), actor=actor, action=action, target=target,
                      detail=detail, ip=ip, outcome=outcome)
    session.add(row)
    return row


def record_refusal(db: Engine, actor: str, action: str, what: str, error: Exception, ip: str | None) -> None:
    """Record a refused attempt in a transaction of its own (the attempt's own rolled back)."""
    with Session(db) as s, s.begin():
        record_action(s, actor, action, what, f"refused: {error}", ip, "refused")
