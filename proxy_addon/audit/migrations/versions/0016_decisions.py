"""the decision log: every change of what is blocked or allowed, and the
rules files as last recorded (to notice hand edits); the annual reviews

Revision ID: 0016
Revises: 0015
"""
import sqlalchemy as sa
from alembic import op

from proxy_addon.audit.models import BigId, UTCDateTime

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rule_decisions",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("ts", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("role", sa.String(32), nullable=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("path", sa.String(512), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("diff", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("instance", sa.String(64), nullable=True),
    )
    op.create_index("ix_rule_decisions_ts", "rule_decisions", ["ts"])
    op.create_table(
        "rule_files",
        sa.Column("path", sa.String(512), primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "annual_reviews",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("ts", UTCDateTime(), nullable=False),
        sa.Column("period_from", UTCDateTime(), nullable=False),
        sa.Column("period_to", UTCDateTime(), nullable=False),
        sa.Column("slt_member", sa.String(255), nullable=False),
        sa.Column("governor", sa.String(255), nullable=False),
        sa.Column("conclusions", sa.Text(), nullable=False),
        sa.Column("actions", sa.Text(), nullable=True),
        sa.Column("recorded_by", sa.String(255), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("annual_reviews")
    op.drop_table("rule_files")
    op.drop_index("ix_rule_decisions_ts", "rule_decisions")
    op.drop_table("rule_decisions")
