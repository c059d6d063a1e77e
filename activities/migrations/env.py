"""Alembic environment: migrations run on the connection `Store.migrate` hands over, or,
from the `alembic` command line (writing a new migration), on ``EQUATOR_DATABASE_URL``."""

from __future__ import annotations

import asyncio
import os
from typing import Any, Literal

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

from activities.store import Cents, UtcDateTime

target_metadata = SQLModel.metadata


def render_item(kind: str, item: Any, autogen: Any) -> str | Literal[False]:
    """Write column types as plain SQLAlchemy types, so that a migration never imports
    the application code (which will have moved on by the time it runs)."""
    if kind != "type":
        return False
    if isinstance(item, Cents):
        return "sa.BigInteger()"
    if isinstance(item, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    if isinstance(item, AutoString):
        return f"sa.String(length={item.length})"
    return False


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_item=render_item,
        # SQLite alters a table by copying it; batch mode does that for us.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_from_url(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(run)
    await engine.dispose()


given: Connection | None = context.config.attributes.get("connection")
if given is not None:
    run(given)
else:
    url = os.environ.get("EQUATOR_DATABASE_URL")
    if not url:
        raise SystemExit("set EQUATOR_DATABASE_URL to the database to compare the models with")
    asyncio.run(run_from_url(url))
