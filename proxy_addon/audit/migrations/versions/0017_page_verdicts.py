"""page verdicts: what a site's landing page said when the proxy first saw it

Revision ID: 0017
Revises: 0016
"""
import sqlalchemy as sa
from alembic import op

from proxy_addon.audit.models import UTCDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "page_verdicts",
        sa.Column("domain", sa.String(255), primary_key=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("category", sa.String(64), nullable=True),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("terms", sa.Text(), nullable=True),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("bytes_read", sa.Integer(), nullable=False),
        sa.Column("elapsed_ms", sa.Integer(), nullable=False),
        sa.Column("fetched_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("instance", sa.String(64), nullable=True),
    )
    op.create_index("ix_page_verdicts_fetched_at", "page_verdicts", ["fetched_at"])


def downgrade() -> None:
    op.drop_index("ix_page_verdicts_fetched_at", "page_verdicts")
    op.drop_table("page_verdicts")
