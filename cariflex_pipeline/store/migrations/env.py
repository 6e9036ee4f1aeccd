"""Alembic environment: runs on the connection handed over by cariflex_pipeline.store.migrate."""

from alembic import context

from cariflex_pipeline.store.migrate import VERSION_TABLE
from cariflex_pipeline.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through cariflex_pipeline.store (python -m cariflex_pipeline.store)")

context.configure(
    connection=connection, target_metadata=metadata, render_as_batch=True, version_table=VERSION_TABLE
)
with context.begin_transaction():
    context.run_migrations()
