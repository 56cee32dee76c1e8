"""The audit database's tables (SQLAlchemy 2.0 typed ORM).

Portable on purpose: the embedded default is SQLite, but a trust or county
points many proxies at one PostgreSQL, so only portable types are used,
timestamps are stored as UTC, and ids are 64-bit where PostgreSQL needs them
(SQLite needs plain INTEGER for its rowid autoincrement).  The schema is
owned by the Alembic migrations in ``migrations/``; these classes must match.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import BigInteger, Boolean, DateTime, Float, Index, Integer, String, Text, UniqueConstraint, text
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


BLOCKS, MEDIA, SEARCHES, OUT_OF_HOURS, SELF_REPORTS, WOULD_BLOCK = (
    "action = 'block'", "media_seconds IS NOT NULL", "search_terms IS NOT NULL", "out_of_hours = true",
    "action = 'self_report'", "action = 'would-block'")
REPORT_INDEXES = (
    # (name, columns, partial WHERE): every column a report reads is in its index.
    ("ix_access_events_blocks2", ("ts", "category", "host", "rule", "action"), BLOCKS),
    ("ix_access_events_media2", ("ts", "media_seconds", "bytes_out"), MEDIA),
    ("ix_access_events_search2", ("ts", "search_terms"), SEARCHES),
    ("ix_access_events_ooh2", ("ts", "user", "out_of_hours"), OUT_OF_HOURS),
    ("ix_access_events_self_reports", ("ts", "category", "action"), SELF_REPORTS),
    ("ix_access_events_would_block", ("ts", "category", "host", "action"), WOULD_BLOCK),  # log-only (0019)
)
SPARSE_INDEXES = (
    ("ix_access_events_event_uid2", ("event_uid",), "event_uid IS NOT NULL"),
    ("ix_access_events_related_uid2", ("related_uid",), "related_uid IS NOT NULL"),
    ("ix_access_events_grant_ts2", ("grant_id", "ts"), "grant_id IS NOT NULL"),
)
"""The reports' queries use these WHERE texts verbatim (``reports.where``):
SQLite uses a partial index only when the query repeats its condition with
literal values, not bound parameters."""


class Base(DeclarativeBase):
    pass


class AccessEvent(Base):
    """One access decision: every request, allowed or not."""

    __tablename__ = "access_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime())
    user: Mapped[str] = mapped_column(String(255))
    client_ip: Mapped[str] = mapped_column(String(64))
    device: Mapped[str | None] = mapped_column(String(255))  # its name: devices table, DHCP lease or reverse DNS
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
    event_uid: Mapped[str | None] = mapped_column(String(32))  # names a block event on its page
    related_uid: Mapped[str | None] = mapped_column(String(32))  # e.g. the block a self-report is about
    grant_id: Mapped[int | None] = mapped_column(BigInteger)  # allowed only because of this grant
    media_seconds: Mapped[float | None] = mapped_column(Float)  # streamed media time in this transfer
    throttle_bps: Mapped[int | None] = mapped_column(BigInteger)  # the rate it was held to, bits a second
    throttled_ms: Mapped[int | None] = mapped_column(Integer)  # how long the throttle held it back
    search_terms: Mapped[str | None] = mapped_column(Text)  # what was searched for, if a search
    out_of_hours: Mapped[bool | None] = mapped_column(Boolean)  # outside the person's working hours
    mode: Mapped[str | None] = mapped_column(String(16))  # how the device reached the proxy: transparent, ...
    enforced: Mapped[bool | None] = mapped_column(Boolean)  # False: log-only, the action was not carried out
    chain: Mapped[str | None] = mapped_column(String(80))  # tamper evidence: which hash chain
    chain_seq: Mapped[int | None] = mapped_column(BigInteger)  # position in that chain
    chain_hash: Mapped[str | None] = mapped_column(String(64))  # sha256 of the previous hash and this row
    purged: Mapped[str | None] = mapped_column(String(100))  # a tombstone: "<its action> <digest of what was erased>"

    __table_args__ = (
        # Every index costs every insert (ten thousand a minute in a big school),
        # so only ts and (user, ts) cover all rows; the rest are partial and cost
        # nothing for the rows they leave out.
        Index("ix_access_events_ts", "ts"),
        *(Index(name, *cols, sqlite_where=text(where), postgresql_where=text(where))
          for name, cols, where in SPARSE_INDEXES),
        # Covering partial indexes: each report reads its rows from one small
        # index, never the table (ten million events; see reports.py).
        *(Index(name, *cols, sqlite_where=text(where), postgresql_where=text(where)) for name, cols, where in REPORT_INDEXES),
        Index("ix_access_events_user_ts", "user", "ts"),
    )


class MediaUsage(Base):
    """Media each person streamed each (school-local) day, shared by every
    proxy instance so that a daily budget is one budget."""

    __tablename__ = "media_usage"

    user: Mapped[str] = mapped_column(String(255), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD, school time
    seconds: Mapped[float] = mapped_column(Float)
    bytes: Mapped[int] = mapped_column(BigInteger)


class AccessReview(Base):
    """Every view or export of one person's history, with the concern that
    justified it (policy 6.3.1: only "when a legitimate concern has been raised")."""

    __tablename__ = "access_reviews"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime())
    viewer: Mapped[str] = mapped_column(String(255))
    viewer_role: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(32))  # view | export | subject_access
    reason: Mapped[str] = mapped_column(Text)
    reference: Mapped[str] = mapped_column(String(255))
    period_from: Mapped[datetime | None] = mapped_column(UTCDateTime())
    period_to: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ip: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (Index("ix_access_reviews_subject", "subject", "ts"),)


class Interception(Base):
    """An order to decrypt one person's electronic correspondence (webmail,
    messaging: categories marked ``correspondence: true``), which the policy
    says "will only be intercepted in exceptional circumstances" (6.3.1): who
    asked, for which recorded concern, from when until when."""

    __tablename__ = "interceptions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    subject: Mapped[str] = mapped_column(String(255))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str] = mapped_column(Text)
    reference: Mapped[str] = mapped_column(String(255))
    ordered_by: Mapped[str] = mapped_column(String(255))
    ordered_role: Mapped[str] = mapped_column(String(32))
    review_id: Mapped[int] = mapped_column(BigInteger)  # its access_reviews row (kind 'intercept')
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_by: Mapped[str | None] = mapped_column(String(255))

    __table_args__ = (Index("ix_interceptions_ends_at", "ends_at"),)


class NoticeAck(Base):
    """Someone (a person, or a device by its address) acknowledged the
    acceptable-use notice ("I understand")."""

    __tablename__ = "notice_acks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime())
    subject: Mapped[str] = mapped_column(String(255))  # the person, or the address with per: device
    user: Mapped[str] = mapped_column(String(255))
    client_ip: Mapped[str] = mapped_column(String(64))
    instance: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (Index("ix_notice_acks_ts", "ts"),)


class RuleDecision(Base):
    """One change of what is blocked or allowed, and why (the DfE standard:
    "documenting decisions on what is blocked or allowed and why"): made in
    the admin app, by hand in a rules file, by a list update, or a grant."""

    __tablename__ = "rule_decisions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(255))
    role: Mapped[str | None] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(32))  # app | hand edit | list update | baseline
    path: Mapped[str | None] = mapped_column(String(512))  # the file changed, relative to the configuration
    summary: Mapped[str] = mapped_column(Text)
    diff: Mapped[str | None] = mapped_column(Text)  # unified diff of the file
    reason: Mapped[str | None] = mapped_column(Text)
    instance: Mapped[str | None] = mapped_column(String(64))  # the proxy that noticed a hand edit

    __table_args__ = (Index("ix_rule_decisions_ts", "ts"),)


class RuleFile(Base):
    """A rules file as last recorded in the decision log: a file whose
    content differs from this was edited since (by hand, if no decision says
    otherwise)."""

    __tablename__ = "rule_files"

    path: Mapped[str] = mapped_column(String(512), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AnnualReview(Base):
    """The school's own record of a review of its filtering and monitoring
    (the DfE standards: reviewed at least once every academic year, and "record
    the results of the review"): who carried it out and what they concluded.
    Each review pack shows the reviews recorded before it."""

    __tablename__ = "annual_reviews"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime())
    period_from: Mapped[datetime] = mapped_column(UTCDateTime())
    period_to: Mapped[datetime] = mapped_column(UTCDateTime())
    slt_member: Mapped[str] = mapped_column(String(255))
    governor: Mapped[str] = mapped_column(String(255))
    conclusions: Mapped[str] = mapped_column(Text)
    actions: Mapped[str | None] = mapped_column(Text)  # what the school will change
    recorded_by: Mapped[str] = mapped_column(String(255))


class AuditSeal(Base):
    """A forward-secure seal (``audit.seal``): the heads of one instance's
    chains at a moment, MACed with a key that evolves one-way after each
    seal, and chained to the seal before."""

    __tablename__ = "audit_seals"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    instance: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(16))
    idx: Mapped[int] = mapped_column(BigInteger)  # the key's epoch
    kind: Mapped[str] = mapped_column(String(8))  # open | seal | close | resume
    ts: Mapped[str] = mapped_column(String(40))  # ISO text: MACed exactly as written
    heads: Mapped[str] = mapped_column(Text)  # "chain seq hash" lines
    prev: Mapped[str] = mapped_column(String(64))
    mac: Mapped[str] = mapped_column(String(64))

    __table_args__ = (Index("ix_audit_seals_instance", "instance", "id"),)


class AuditChainHead(Base):
    """The last position and hash of each chain, written with every batch: where
    a writer resumes, and how ``audit verify`` notices rows removed from the end."""

    __tablename__ = "audit_chains"

    chain: Mapped[str] = mapped_column(String(80), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    journaled: Mapped[int | None] = mapped_column(BigInteger)  # the writer's journal position, for replay


class AuditAnchor(Base):
    """Where a hash chain resumes after ``purge`` removed its oldest rows."""

    __tablename__ = "audit_anchors"

    chain: Mapped[str] = mapped_column(String(80), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    purged_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Grant(Base):
    """A filter-bypass exception granted by the Headteacher (policy 6.3.1)."""

    __tablename__ = "grants"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    subject_kind: Mapped[str] = mapped_column(String(16))  # user | group | everyone
    subject: Mapped[str | None] = mapped_column(String(255))
    target_kind: Mapped[str] = mapped_column(String(16))  # host | url | category | download
    target: Mapped[str] = mapped_column(Text)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str] = mapped_column(Text)
    granted_by: Mapped[str] = mapped_column(String(255))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_by: Mapped[str | None] = mapped_column(String(255))
    revoke_reason: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_grants_ends_at", "ends_at"),)


class ExceptionRequest(Base):
    """A member of staff asking, from a block page, for an exception."""

    __tablename__ = "exception_requests"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    user: Mapped[str] = mapped_column(String(255))
    client_ip: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(Text)
    host: Mapped[str] = mapped_column(String(255))
    category: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    event_uid: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | granted | declined
    decided_by: Mapped[str | None] = mapped_column(String(255))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decision_note: Mapped[str | None] = mapped_column(Text)
    grant_id: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (UniqueConstraint("event_uid", name="uq_exception_requests_event_uid"),
                      Index("ix_exception_requests_status", "status"))


class AdminUser(Base):
    __tablename__ = "admin_users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(255), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(32))  # technician | headteacher | slt
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    last_failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    session_version: Mapped[int] = mapped_column(Integer, default=1)


class AdminAction(Base):
    """Every action taken in the admin app (or by the CLI on its behalf)."""

    __tablename__ = "admin_actions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[str | None] = mapped_column(Text)
    ip: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16), default="ok")  # ok | refused | failed

    __table_args__ = (Index("ix_admin_actions_ts", "ts"),)


class PageVerdict(Base):
    """What a site's landing page said when the proxy first saw the site
    (``firstsight``): fetched by the proxy itself, with nothing of anyone's,
    scored with the page rules; later requests to the registered domain,
    HTTPS tunnels included, use it until it expires.  One row a domain, the
    latest fetch; the technician's answer in ``lists review`` becomes a
    school list entry."""

    __tablename__ = "page_verdicts"

    domain: Mapped[str] = mapped_column(String(255), primary_key=True)  # registered domain
    url: Mapped[str] = mapped_column(Text)  # the page fetched (after redirects within the domain)
    category: Mapped[str | None] = mapped_column(String(64))  # None: the page crossed no threshold
    score: Mapped[int] = mapped_column(Integer, default=0)
    terms: Mapped[str | None] = mapped_column(Text)  # what scored, as the page check describes it
    outcome: Mapped[str] = mapped_column(String(32))  # judged | no page | too slow | refused | failed
    detail: Mapped[str | None] = mapped_column(Text)
    bytes_read: Mapped[int] = mapped_column(Integer, default=0)
    elapsed_ms: Mapped[int] = mapped_column(Integer, default=0)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    instance: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (Index("ix_page_verdicts_fetched_at", "fetched_at"),)


class AlertRecord(Base):
    """An alert as it was raised and what became of it: whom it named, why,
    whether the email or webhook went out, and who in the school has
    acknowledged it.  The safeguarding lead's Alerts page reads these, so an
    alert is never only an email that may have gone astray."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime())
    user: Mapped[str] = mapped_column(String(255))
    client_ip: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))  # category | search | circumvention | system
    severity: Mapped[str] = mapped_column(String(16))  # high | technician
    category: Mapped[str | None] = mapped_column(String(64))
    title: Mapped[str | None] = mapped_column(String(255))
    term: Mapped[str | None] = mapped_column(String(255))  # the safeguarding term a search contained
    delivered: Mapped[str] = mapped_column(String(255))  # what was sent, or why nothing was
    instance: Mapped[str | None] = mapped_column(String(64))
    acknowledged_by: Mapped[str | None] = mapped_column(String(255))
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ack_note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_alerts_ts", "ts"),)


EVENT_COLUMNS = frozenset(c.name for c in AccessEvent.__table__.columns) - {"id"}


def column_widths() -> dict[str, int]:
    """The width of each text column of an access event that has one."""
    return {c.name: c.type.length for c in AccessEvent.__table__.columns
            if isinstance(c.type, String) and c.type.length}
