"""All configuration, from the environment (prefix ``EQUATOR_``), in one place.

Journey windows nest under ``EQUATOR_JOURNEY__``: for example
``EQUATOR_JOURNEY__SILENCE_DEFAULT=P30D`` or ``EQUATOR_JOURNEY__RESPONSE_WINDOW=PT10S``
(ISO 8601 durations, or seconds).
"""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

from workflows.config import JourneyConfig


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="EQUATOR_", env_nested_delimiter="__", extra="ignore"
    )

    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    task_queue: str = "equator-journeys"
    # SQLite file by default; postgresql+asyncpg://user@host/db for Postgres.
    database_url: str = "sqlite+aiosqlite:///data/equator.db"
    # Where `equator run` keeps the dev server's SQLite file.
    data_dir: str = "data"
    ui_port: int = 8233
    journey: JourneyConfig = JourneyConfig()
