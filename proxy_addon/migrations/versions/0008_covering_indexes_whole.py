"""report indexes that hold every column their queries read, including the
partial condition's own column, so SQLite answers from the index alone

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

from proxy_addon.models import REPORT_INDEXES

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None
OLD = ("ix_access_events_blocks", "ix_access_events_media", "ix_access_events_search", "ix_access_events_ooh")


def upgrade() -> None:
    for name in OLD:
        op.drop_index(name, "access_events")
    for name, cols, where in REPORT_INDEXES:
        op.create_index(name, "access_events", list(cols), sqlite_where=sa.text(where),
                        postgresql_where=sa.text(where))


def downgrade() -> None:
    for name, _, _ in REPORT_INDEXES:
        op.drop_index(name, "access_events")
