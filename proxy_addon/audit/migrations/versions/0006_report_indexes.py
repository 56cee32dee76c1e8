"""partial indexes for the search and streaming reports

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for name, col in (("ix_access_events_search_ts", "search_terms"), ("ix_access_events_media_ts", "media_seconds")):
        where = sa.text(f"{col} IS NOT NULL")
        op.create_index(name, "access_events", ["ts"], sqlite_where=where, postgresql_where=where)


def downgrade() -> None:
    op.drop_index("ix_access_events_media_ts", "access_events")
    op.drop_index("ix_access_events_search_ts", "access_events")
