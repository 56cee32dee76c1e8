"""grants, exception requests, admin users and actions; event uids on access_events

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

from proxy_addon.audit.models import BigId, UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("access_events") as t:
        t.add_column(sa.Column("event_uid", sa.String(32)))
        t.add_column(sa.Column("related_uid", sa.String(32)))
        t.add_column(sa.Column("grant_id", sa.BigInteger()))
    op.create_index("ix_access_events_event_uid", "access_events", ["event_uid"])
    op.create_index("ix_access_events_related_uid", "access_events", ["related_uid"])
    op.create_table(
        "grants",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("subject_kind", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(255)),
        sa.Column("target_kind", sa.String(16), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("starts_at", UTCDateTime(), nullable=False),
        sa.Column("ends_at", UTCDateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("granted_by", sa.String(255), nullable=False),
        sa.Column("granted_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime()),
        sa.Column("revoked_by", sa.String(255)),
        sa.Column("revoke_reason", sa.Text()),
        sa.Column("request_id", sa.BigInteger()),
    )
    op.create_index("ix_grants_ends_at", "grants", ["ends_at"])
    op.create_table(
        "exception_requests",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("client_ip", sa.String(64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("category", sa.String(64)),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("event_uid", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("decided_by", sa.String(255)),
        sa.Column("decided_at", UTCDateTime()),
        sa.Column("decision_note", sa.Text()),
        sa.Column("grant_id", sa.BigInteger()),
        sa.UniqueConstraint("event_uid", name="uq_exception_requests_event_uid"),
    )
    op.create_index("ix_exception_requests_status", "exception_requests", ["status"])
    op.create_table(
        "admin_users",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(255), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("last_failed_at", UTCDateTime()),
        sa.Column("last_login_at", UTCDateTime()),
        sa.Column("session_version", sa.Integer(), nullable=False),
    )
    op.create_table(
        "admin_actions",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("ts", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.Text()),
        sa.Column("detail", sa.Text()),
        sa.Column("ip", sa.String(64)),
        sa.Column("outcome", sa.String(16), nullable=False),
    )
    op.create_index("ix_admin_actions_ts", "admin_actions", ["ts"])


def downgrade() -> None:
    op.drop_table("admin_actions")
    op.drop_table("admin_users")
    op.drop_table("exception_requests")
    op.drop_table("grants")
    op.drop_index("ix_access_events_related_uid", "access_events")
    op.drop_index("ix_access_events_event_uid", "access_events")
    with op.batch_alter_table("access_events") as t:
        t.drop_column("grant_id")
        t.drop_column("related_uid")
        t.drop_column("event_uid")
