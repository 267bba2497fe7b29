"""Alembic environment: run with a connection passed in config.attributes (see vram.web.storage.migrate)."""

from alembic import context

from vram.web.storage import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    from sqlalchemy import create_engine

    from vram.web.settings import Settings

    connection = create_engine(Settings.from_env().resolved_database_url()).connect()

context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
