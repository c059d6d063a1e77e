"""All configuration, from the environment (prefix ``EQUATOR_``), in one place.

Nested settings use ``__``: journey windows as ``EQUATOR_JOURNEY__SILENCE_DEFAULT=P30D``
(ISO 8601 durations, or seconds), the ingest API as ``EQUATOR_INGEST__PORT=8000`` and its
sources as JSON::

    EQUATOR_INGEST__SOURCES='[{"name": "pos", "key_hashes": ["sha256:…"],
                               "scopes": ["events:write"]},
                              {"name": "mailer", "webhook_secrets": ["…"]}]'
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from runtime.credentials import Source
from runtime.telemetry import TelemetrySettings
from workflows.config import JourneyConfig
from workflows.fanout import FanOutPace


class IngestSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    # Who may send events. `equator run` adds a `local` source when none is configured.
    sources: tuple[Source, ...] = ()
    # Larger bodies are refused with 413 before they are read; 500 events fit easily.
    max_body_bytes: int = Field(default=1_048_576, ge=1_024)
    # Clocks drift; an event further ahead than this is an error, not a drift.
    max_future_skew: timedelta = timedelta(minutes=15)
    # A webhook signature older (or newer) than this is refused as a possible replay.
    signature_tolerance: timedelta = timedelta(minutes=5)
    # How long one call to Temporal may take before the API answers 503.
    temporal_timeout: timedelta = timedelta(seconds=5)
    # What a 503 tells the caller to wait before retrying, in seconds.
    retry_after: int = Field(default=5, ge=1)


class CampaignSettings(BaseModel):
    # The calendar `equator campaigns sync` applies (EQUATOR_CAMPAIGNS__FILE).
    file: Path = Path("campaigns.toml")
    # EQUATOR_CAMPAIGNS__FAN_OUT__RATE, EQUATOR_CAMPAIGNS__FAN_OUT__PAGE_SIZE.
    fan_out: FanOutPace = FanOutPace()


class WorkerSettings(BaseModel):
    # Journeys a worker keeps in memory (about 80-100 KiB each, docs/PERFORMANCE.md);
    # one not cached replays its run's history when it next has work.
    max_cached_journeys: int = Field(default=1_000, ge=1)
    # Offers that learn draw from this seed (each draw its own, named by customer and
    # engagement), so that a simulation is repeatable; unset, they draw from entropy.
    offer_seed: int | None = None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="EQUATOR_", env_nested_delimiter="__", extra="ignore"
    )

    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    task_queue: str = "equator-journeys"
    # SQLite file by default; postgresql+asyncpg://user@host/db for Postgres.
    database_url: str = "sqlite+aiosqlite:///data/equator.db"
    # Where `equator run` keeps the dev server's SQLite file and the local API key.
    data_dir: Path = Path("data")
    ui_port: int = 8233
    journey: JourneyConfig = JourneyConfig()
    ingest: IngestSettings = IngestSettings()
    # Traces (EQUATOR_TELEMETRY__OTLP_ENDPOINT, __CONSOLE_TRACES) and the Prometheus
    # endpoint (EQUATOR_TELEMETRY__METRICS_ADDRESS=127.0.0.1:9464).
    telemetry: TelemetrySettings = TelemetrySettings()
    # The campaign calendar and its fan-outs.
    campaigns: CampaignSettings = CampaignSettings()
    # EQUATOR_WORKER__MAX_CACHED_JOURNEYS.
    worker: WorkerSettings = WorkerSettings()
    # What the CLI and the demo call: the ingest API, with this key (default: the local
    # key `equator run` keeps in data/api-key).
    api_url: str = "http://127.0.0.1:8000"
    api_key: SecretStr | None = None
