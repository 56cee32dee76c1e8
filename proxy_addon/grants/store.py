"""Grants in the audit database: creating, revoking, listing, and the active
snapshot the proxy polls.  Every change is recorded in ``admin_actions`` in
the same transaction."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import Engine as DBEngine
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..audit.adminlog import record_action, record_refusal
from ..audit.db import detached
from ..audit.models import ExceptionRequest, Grant
from ..classify.engine import Engine
from ..urls.normalize import make_target
from .rules import SUBJECT_KINDS, ActiveGrant, GrantError, GrantRules, check_new_grant, grant_window, make_active


def load_active(db: DBEngine, now: datetime) -> tuple[ActiveGrant, ...]:
    """Grants not revoked and not yet over (including ones starting soon)."""
    with Session(db) as s:
        rows = s.scalars(select(Grant).where(Grant.revoked_at.is_(None), Grant.ends_at > now,
                                             Grant.starts_at <= now + timedelta(days=1))).all()
        return tuple(make_active(r) for r in rows)


def _categories_of(engine: Engine):
    def categories(entry):
        target = make_target("http", entry.host, None, entry.path or "/")
        return {m.category for m in engine.matches(target) if m.category}
    return categories


def create_grant(db: DBEngine, engine: Engine, *, subject_kind: str, subject: str | None, target_kind: str,
                 target: str, reason: str, granted_by: str, ip: str | None = None,
                 starts_at: datetime | None = None, ends_at: datetime | None = None, hours: float | None = None,
                 request_id: int | None = None, now: datetime | None = None) -> Grant:
    """Make a grant, or raise GrantError; either way the attempt is recorded."""
    now = now or datetime.now(timezone.utc)
    rules: GrantRules = engine.config.sections.grants or GrantRules()
    what = f"{target_kind}:{target} for {subject_kind}{':' + subject if subject else ''}"
    try:
        if subject_kind not in SUBJECT_KINDS:
            raise GrantError(f"unknown subject kind {subject_kind!r}")
        if subject_kind != "everyone" and not (subject or "").strip():
            raise GrantError(f"a {subject_kind} grant needs a name")
        if subject_kind == "group" and subject not in engine.config.groups:
            raise GrantError(f"unknown group {subject!r}")
        if not reason.strip():
            raise GrantError("a grant needs a reason")
        normalised = check_new_grant(engine.config, target_kind, target.strip(), _categories_of(engine))
        start, end = grant_window(rules, now, starts_at, ends_at, hours)
    except GrantError as e:
        record_refusal(db, granted_by, "grant.create", what, e, ip)
        raise
    with Session(db) as s, s.begin():
        grant = Grant(subject_kind=subject_kind, subject=subject if subject_kind != "everyone" else None,
                      target_kind=target_kind, target=normalised, starts_at=start, ends_at=end,
                      reason=reason.strip(), granted_by=granted_by, granted_at=now, request_id=request_id)
        s.add(grant)
        s.flush()
        record_action(s, granted_by, "grant.create", f"grant {grant.id}: {what}",
                      f"until {end.isoformat(timespec='minutes')}; reason: {reason.strip()}", ip)
        if request_id is not None:
            req = s.get(ExceptionRequest, request_id)
            if req is not None:
                req.status, req.decided_by, req.decided_at, req.grant_id = "granted", granted_by, now, grant.id
        s.expunge(grant)
        return grant


def revoke_grant(db: DBEngine, grant_id: int, by: str, reason: str, ip: str | None = None) -> Grant:
    """End a grant now; the reason is required, as the grant's was (the
    decision log and the annual review show both)."""
    if not reason.strip():
        refused = GrantError("a reason is required to revoke a grant")
        record_refusal(db, by, "grant.revoke", f"grant {grant_id}", refused, ip)
        raise refused
    now = datetime.now(timezone.utc)
    with Session(db) as s, s.begin():
        grant = s.get(Grant, grant_id)
        if grant is not None and grant.revoked_at is None:
            grant.revoked_at, grant.revoked_by, grant.revoke_reason = now, by, reason
            record_action(s, by, "grant.revoke", f"grant {grant_id}", reason, ip)
            s.flush()
            s.expunge(grant)
            return grant
    error = GrantError(f"no active grant {grant_id}")
    record_refusal(db, by, "grant.revoke", f"grant {grant_id}", error, ip)
    raise error


def list_grants(db: DBEngine, now: datetime | None = None, active_only: bool = True) -> list[Grant]:
    now = now or datetime.now(timezone.utc)
    q = select(Grant).order_by(Grant.id.desc())
    if active_only:
        q = q.where(Grant.revoked_at.is_(None), Grant.ends_at > now)
    return detached(db, q)
