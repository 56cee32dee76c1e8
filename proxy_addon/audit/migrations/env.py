"""Alembic environment: always given a connection by ``db.migrate``."""

from alembic import context

from proxy_addon.audit.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
