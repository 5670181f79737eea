"""Alembic environment: mltrainer always passes its own connection in ``config.attributes``."""

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - the CLI never runs alembic without a connection
    raise RuntimeError("mltrainer migrations run programmatically: pass a connection in config.attributes")

context.configure(connection=connection, target_metadata=None, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
