"""Schema migrations, on SQLite and Postgres: a fresh database migrates to head, the
models match the migrations, and migrating again changes nothing."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from activities.store import Store


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, SQLModel.metadata))


def _version(connection: Connection) -> str:
    return str(MigrationContext.configure(connection).get_current_revision())


async def test_a_fresh_database_migrates_to_head_and_matches_the_models(store: Store) -> None:
    # The `store` fixture has migrated an empty database already.
    async with store.engine.connect() as connection:
        tables = set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
        assert await connection.run_sync(_differences) == []
        version = await connection.run_sync(_version)
    assert set(SQLModel.metadata.tables) | {"alembic_version"} == tables
    assert version != "None"

    await store.migrate()  # again: a no-op
    async with store.engine.connect() as connection:
        assert await connection.run_sync(_version) == version
