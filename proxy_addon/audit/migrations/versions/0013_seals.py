"""forward-secure seals of each instance's chains; tombstones keep their
action and a digest of what was erased

Revision ID: 0013
Revises: 0012
"""
import sqlalchemy as sa
from alembic import op

from proxy_addon.audit.models import BigId

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_seals",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("instance", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("idx", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("ts", sa.String(40), nullable=False),
        sa.Column("heads", sa.Text(), nullable=False),
        sa.Column("prev", sa.String(64), nullable=False),
        sa.Column("mac", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_seals_instance", "audit_seals", ["instance", "id"])
    op.add_column("access_events", sa.Column("purged", sa.String(100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("access_events") as t:
        t.drop_column("purged")
    op.drop_index("ix_audit_seals_instance", "audit_seals")
    op.drop_table("audit_seals")
