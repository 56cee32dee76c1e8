"""reports and data protection: search terms, out-of-hours flag, hash chain, access reviews, anchors

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

from proxy_addon.audit.models import BigId, UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("access_events") as t:
        t.add_column(sa.Column("search_terms", sa.Text()))
        t.add_column(sa.Column("out_of_hours", sa.Boolean()))
        t.add_column(sa.Column("chain", sa.String(80)))
        t.add_column(sa.Column("chain_seq", sa.BigInteger()))
        t.add_column(sa.Column("chain_hash", sa.String(64)))
    op.create_index("ix_access_events_chain_seq", "access_events", ["chain", "chain_seq"])
    op.create_index("ix_access_events_ooh_ts", "access_events", ["out_of_hours", "ts"])
    op.create_index("ix_access_events_grant_ts", "access_events", ["grant_id", "ts"])
    op.create_table(
        "access_reviews",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("ts", UTCDateTime(), nullable=False),
        sa.Column("viewer", sa.String(255), nullable=False),
        sa.Column("viewer_role", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("reference", sa.String(255), nullable=False),
        sa.Column("period_from", UTCDateTime()),
        sa.Column("period_to", UTCDateTime()),
        sa.Column("ip", sa.String(64)),
    )
    op.create_index("ix_access_reviews_subject", "access_reviews", ["subject", "ts"])
    op.create_table(
        "audit_anchors",
        sa.Column("chain", sa.String(80), primary_key=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("purged_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("audit_anchors")
    op.drop_table("access_reviews")
    for ix in ("ix_access_events_grant_ts", "ix_access_events_ooh_ts", "ix_access_events_chain_seq"):
        op.drop_index(ix, "access_events")
    with op.batch_alter_table("access_events") as t:
        for c in ("chain_hash", "chain_seq", "chain", "out_of_hours", "search_terms"):
            t.drop_column(c)
