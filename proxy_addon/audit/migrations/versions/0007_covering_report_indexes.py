"""covering partial indexes for the reports (replacing 0005/0006's plain ones)

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op


INDEXES = (  # as they were at this revision (0008 replaces them)
    ("ix_access_events_blocks", ("ts", "category", "host", "rule"), "action = 'block'"),
    ("ix_access_events_media", ("ts", "media_seconds", "bytes_out"), "media_seconds IS NOT NULL"),
    ("ix_access_events_search", ("ts", "search_terms"), "search_terms IS NOT NULL"),
    ("ix_access_events_ooh", ("ts", "user"), "out_of_hours = true"),
)

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for name in ("ix_access_events_search_ts", "ix_access_events_media_ts", "ix_access_events_ooh_ts"):
        op.drop_index(name, "access_events")
    for name, cols, where in INDEXES:
        op.create_index(name, "access_events", list(cols), sqlite_where=sa.text(where),
                        postgresql_where=sa.text(where))


def downgrade() -> None:
    for name, _, _ in INDEXES:
        op.drop_index(name, "access_events")
