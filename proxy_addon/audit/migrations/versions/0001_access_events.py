"""access_events: one row per access decision

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

from proxy_addon.audit.models import BigId, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "access_events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("ts", UTCDateTime(), nullable=False),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("client_ip", sa.String(64), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("scheme", sa.String(16), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("category", sa.String(64)),
        sa.Column("categories", sa.String(512)),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("rule", sa.String(160)),
        sa.Column("clause", sa.String(32)),
        sa.Column("matched", sa.Text()),
        sa.Column("reason", sa.Text()),
        sa.Column("status_code", sa.Integer()),
        sa.Column("bytes_out", sa.BigInteger()),
        sa.Column("bytes_in", sa.BigInteger()),
        sa.Column("duration_ms", sa.Integer()),
        sa.Column("tls", sa.String(16)),
        sa.Column("instance", sa.String(64)),
        sa.Column("config_digest", sa.String(32)),
    )
    op.create_index("ix_access_events_ts", "access_events", ["ts"])
    op.create_index("ix_access_events_user_ts", "access_events", ["user", "ts"])
    op.create_index("ix_access_events_action_ts", "access_events", ["action", "ts"])
    op.create_index("ix_access_events_category_ts", "access_events", ["category", "ts"])


def downgrade() -> None:
    op.drop_table("access_events")
