"""fewer indexes on every insert: chain heads in their own table, uid and grant
indexes partial, the (category, ts) index gone (reports have their own)

Revision ID: 0010
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None
SPARSE = (
    ("ix_access_events_event_uid2", ("event_uid",), "event_uid IS NOT NULL"),
    ("ix_access_events_related_uid2", ("related_uid",), "related_uid IS NOT NULL"),
    ("ix_access_events_grant_ts2", ("grant_id", "ts"), "grant_id IS NOT NULL"),
)


def upgrade() -> None:
    op.create_table(
        "audit_chains",
        sa.Column("chain", sa.String(80), primary_key=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.execute("""
        INSERT INTO audit_chains (chain, seq, hash)
        SELECT e.chain, e.chain_seq, e.chain_hash FROM access_events e
        JOIN (SELECT chain, max(chain_seq) AS seq FROM access_events WHERE chain IS NOT NULL GROUP BY chain) h
          ON e.chain = h.chain AND e.chain_seq = h.seq
    """)
    for name in ("ix_access_events_chain_seq", "ix_access_events_category_ts", "ix_access_events_event_uid",
                 "ix_access_events_related_uid", "ix_access_events_grant_ts"):
        op.drop_index(name, "access_events")
    for name, cols, where in SPARSE:
        op.create_index(name, "access_events", list(cols), sqlite_where=sa.text(where),
                        postgresql_where=sa.text(where))


def downgrade() -> None:
    for name, _, _ in SPARSE:
        op.drop_index(name, "access_events")
    op.create_index("ix_access_events_grant_ts", "access_events", ["grant_id", "ts"])
    op.create_index("ix_access_events_related_uid", "access_events", ["related_uid"])
    op.create_index("ix_access_events_event_uid", "access_events", ["event_uid"])
    op.create_index("ix_access_events_category_ts", "access_events", ["category", "ts"])
    op.create_index("ix_access_events_chain_seq", "access_events", ["chain", "chain_seq"])
    op.drop_table("audit_chains")
