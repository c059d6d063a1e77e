"""All configuration, from the environment (prefix ``EQUATOR_``), in one place.

Nested settings use ``__``: journey windows as ``EQUATOR_JOURNEY__SILENCE_DEFAULT=P30D``
(ISO 8601 durations), the ingest API as ``EQUATOR_INGEST__PORT=8000`` and its
sources as JSON::

    EQUATOR_INGEST__SOURCES='[{"name": "pos", "key_hashes": ["sha256:…"],
                               "scopes": ["events:write"]},
                              {"name": "mailer", "webhook_secrets": ["…"]}]'
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from activities.courier import DeliverySettings
from activities.data_keys import CACHE_TTL
from runtime.credentials import Source
from runtime.telemetry import TelemetrySettings
from workflows.config import JourneyConfig
from workflows.events import EventType
from workflows.fanout import FanOutPace


class EventMapping(BaseModel):
    """What a source's named event (a ``track`` of the tracking spec) becomes: an Equator
    event type, its properties read from the spec's as ``service/tracking.py`` says for
    that type, then ``fixed`` set. Configured as the type alone ("purchase") or whole."""

    model_config = ConfigDict(frozen=True)

    type: EventType
    fixed: dict[str, Any] = {}

    @model_validator(mode="before")
    @classmethod
    def _type_alone(cls, value: Any) -> Any:
        return {"type": value} if isinstance(value, str) else value


class TrackingSettings(BaseModel):
    """The tracking spec's endpoints (``/v1/batch``, ``/v1/track``, …)."""

    model_config = ConfigDict(frozen=True)

    # Event names mapped beyond the spec's own, or instead of them:
    # EQUATOR_INGEST__TRACKING__EVENTS='{"Purchase Made": "purchase"}'.
    events: dict[Annotated[str, Field(min_length=1, max_length=200)], EventMapping] = {}


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
    # How long the journey view waits for the journey's own answer before it answers
    # with what the journey last published (a worker down or behind).
    journey_query_timeout: timedelta = timedelta(seconds=2)
    # What a 503 or 429 tells the caller to wait before retrying, in seconds (jittered).
    retry_after: int = Field(default=5, ge=1)
    # Requests worked on at once per process; one that finds no room within the budget
    # is answered 429 instead of queueing.
    max_in_flight: int = Field(default=256, ge=1)
    in_flight_budget: timedelta = timedelta(milliseconds=250)
    tracking: TrackingSettings = TrackingSettings()


class CodecServerSettings(BaseModel):
    """The codec server (`equator codec-server`): the Temporal UI's browser sends it
    payloads to decode, so it answers the UI's origins (CORS) and no other."""

    host: str = "127.0.0.1"
    port: int = Field(default=8081, ge=0, le=65535)
    # The Temporal UI as browsers reach it: the dev server's by default.
    allowed_origins: tuple[str, ...] = ("http://localhost:8233", "http://127.0.0.1:8233")


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


class TemporalTLS(BaseModel):
    """TLS to Temporal (EQUATOR_TEMPORAL_TLS__…): Temporal Cloud, or any cluster that
    serves it. The files are PEM, read when the client connects."""

    model_config = ConfigDict(frozen=True)

    # mTLS: the client's certificate and its private key, both or neither.
    client_cert: Path | None = None
    client_key: Path | None = None
    # The CA that signed the server's certificate, if not one the system trusts.
    server_ca: Path | None = None
    # The name the server's certificate must carry (and the SNI sent), when the
    # address's host is not that name (an IP address, a tunnel).
    server_name: str | None = None
    # Unset: TLS when any setting above or an API key is given. True: TLS with the
    # system's roots and nothing else; false: none (an API key in clear, to a proxy).
    enabled: bool | None = None

    @model_validator(mode="after")
    def _consistent(self) -> TemporalTLS:
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("client_cert and client_key go together (mTLS needs both)")
        given = (self.client_cert, self.server_ca, self.server_name)
        if self.enabled is False and any(value is not None for value in given):
            raise ValueError("enabled is false, yet certificates or a server name are set")
        return self


class EncryptionSettings(BaseModel):
    """Payloads sent to Temporal encrypted under per-customer data keys, which these
    master keys wrap (README, Customer data held safely). No master keys: encryption off.

    EQUATOR_ENCRYPTION__MASTER_KEYS='{"2026-11": "<base64 of 32 random bytes>"}' and
    EQUATOR_ENCRYPTION__ACTIVE_MASTER_KEY=2026-11 (`equator new-master-key` prints both)."""

    model_config = ConfigDict(frozen=True)

    # By id. The active one wraps new data keys; the others still unwrap the data keys
    # they wrapped before a rotation.
    master_keys: dict[str, SecretStr] = {}
    active_master_key: str | None = None
    # How long a process keeps a data key it has read: an erased customer's history stays
    # readable in a process that read a key of theirs at most this long after shredding.
    key_cache_ttl: timedelta = Field(
        default=CACHE_TTL, ge=timedelta(seconds=1), le=timedelta(hours=1)
    )

    @field_validator("master_keys")
    @classmethod
    def _aes_256(cls, keys: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for key_id, value in keys.items():
            if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", key_id):
                raise ValueError(f"key id {key_id!r}: 1-64 of letters, digits, '.', '_', '-'")
            try:
                size = len(base64.b64decode(value.get_secret_value(), validate=True))
            except binascii.Error:
                raise ValueError(f"key {key_id!r} is not base64") from None
            if size != 32:
                raise ValueError(f"key {key_id!r} is {size} bytes, not 32 (AES-256)")
        return keys

    @model_validator(mode="after")
    def _active_is_known(self) -> EncryptionSettings:
        if self.master_keys and self.active_master_key not in self.master_keys:
            raise ValueError(
                f"EQUATOR_ENCRYPTION__ACTIVE_MASTER_KEY={self.active_master_key} names none "
                f"of EQUATOR_ENCRYPTION__MASTER_KEYS ({', '.join(sorted(self.master_keys))})"
            )
        if not self.master_keys and self.active_master_key is not None:
            raise ValueError(
                "EQUATOR_ENCRYPTION__ACTIVE_MASTER_KEY is set, EQUATOR_ENCRYPTION__MASTER_KEYS "
                "is empty"
            )
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.master_keys)

    def key_bytes(self) -> dict[str, bytes]:
        return {
            key_id: base64.b64decode(value.get_secret_value())
            for key_id, value in self.master_keys.items()
        }


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="EQUATOR_", env_nested_delimiter="__", extra="ignore"
    )

    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    # Temporal Cloud's API key (sent as a bearer token; TLS is on unless told otherwise).
    temporal_api_key: SecretStr | None = None
    temporal_tls: TemporalTLS = TemporalTLS()
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
    # The provider per channel name and the courier's pace, e.g.
    # EQUATOR_DELIVERY__CHANNELS='{"email": {"kind": "smtp", "host": "smtp.example",
    #   "from_address": "news@shop.example"}, "sms": {"kind": "webhook", "url": …,
    #   "secret": …}}', EQUATOR_DELIVERY__INTERVAL=PT1S (README, Deliver messages).
    delivery: DeliverySettings = DeliverySettings()
    # What the CLI and the demo call: the ingest API, with this key (default: the local
    # key `equator run` keeps in data/api-key).
    api_url: str = "http://127.0.0.1:8000"
    api_key: SecretStr | None = None
    # Payload encryption: EQUATOR_ENCRYPTION__MASTER_KEYS, __ACTIVE_MASTER_KEY.
    encryption: EncryptionSettings = EncryptionSettings()
    # EQUATOR_CODEC_SERVER__HOST, __PORT, __ALLOWED_ORIGINS (JSON list).
    codec_server: CodecServerSettings = CodecServerSettings()
