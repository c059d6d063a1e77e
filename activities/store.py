"""The customer store: tables and the engine, the same code on SQLite and Postgres.

SQLite (aiosqlite) is the embedded default; Postgres runs through asyncpg. Money is kept
as integer cents and times as UTC, so both databases give back exactly what was stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    LargeBinary,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy import false as sa_false
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession


class Cents(TypeDecorator[Decimal]):
    """A money amount stored as integer cents."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> int | None:
        return None if value is None else int((value * 100).to_integral_value())

    def process_result_value(self, value: int | None, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value) / 100


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime, stored as UTC (SQLite keeps no offset of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: store times with an offset")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _money(**kwargs: Any) -> Any:
    return Field(sa_type=Cents, **kwargs)


def _time(**kwargs: Any) -> Any:
    return Field(sa_type=UtcDateTime, **kwargs)


def utcnow() -> datetime:
    return datetime.now(UTC)


def customer_digest(customer_id: str) -> str:
    """How the tombstones and the audit name a customer: not the id, which the erasure
    removes everywhere else. It is a pseudonym, not anonymity: whoever knows an id can
    compute its digest, which is what lets the ingest recognise an erased customer."""
    return hashlib.sha256(f"equator/customer:{customer_id}".encode()).hexdigest()


class Customer(SQLModel, table=True):
    """The single customer view; the profile columns mirror ``workflows.profile.Profile``."""

    customer_id: str = Field(primary_key=True, max_length=128)
    first_seen_at: datetime = _time()
    updated_at: datetime = _time()
    lifetime_value: Decimal = _money(default=Decimal(0))
    order_count: int = 0
    purchase_times: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    last_activity_at: datetime | None = _time(default=None)
    categories: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    consent: dict[str, bool] = Field(default_factory=dict, sa_column=Column(JSON))
    timezone: str | None = Field(default=None, max_length=64)
    home_store: str | None = Field(default=None, max_length=128)
    # Existing rows start at 0 when the column arrives (migration 0003).
    loyalty_points: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    location: str | None = Field(default=None, max_length=64)
    preferred_channels: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    first_purchase_at: datetime | None = _time(default=None)
    # Derived when events are recorded, for whoever reads the store.
    last_purchase_at: datetime | None = _time(default=None)
    median_purchase_gap_days: float | None = None
    cohort: str | None = Field(default=None, max_length=16)
    email: str | None = Field(default=None, max_length=254)
    # The programmes whose control group the customer is in (workflows/holdout.py), as
    # the journey last drew them; None until it first has.
    held_back_from: list[str] | None = Field(default=None, sa_column=Column(JSON))


class LedgerEvent(SQLModel, table=True):
    """Append-only: every event a journey applied, once. Event ids are unique per
    customer, as the journey's own dedupe window counts them."""

    __tablename__ = "event_ledger"

    customer_id: str = Field(primary_key=True, max_length=128)
    event_id: str = Field(primary_key=True, max_length=128)
    source: str | None = Field(default=None, max_length=64)
    type: str = Field(max_length=32)
    occurred_at: datetime = _time()
    recorded_at: datetime = _time()
    properties: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    application_id: str = Field(max_length=64)


class IngestReceipt(SQLModel, table=True):
    """An event the ingest API handed to Temporal: what makes a resend a duplicate.
    The digest of the event as received tells an exact resend from a reused id."""

    __tablename__ = "ingest_receipt"
    # Who an event id belongs to, without the customer (a refund names only its order).
    __table_args__ = (Index("ix_ingest_receipt_event_id", "event_id"),)

    customer_id: str = Field(primary_key=True, max_length=128)
    event_id: str = Field(primary_key=True, max_length=128)
    source: str = Field(max_length=64)
    digest: str = Field(max_length=64)
    received_at: datetime = _time()


class Engagement(SQLModel, table=True):
    """What a journey sent, at what cost. The key makes a retried send a no-op."""

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(unique=True, max_length=256)
    customer_id: str = Field(index=True, max_length=128)
    cause: str = Field(max_length=32)
    ladder_run_id: str = Field(max_length=64)
    step: int
    step_name: str = Field(max_length=128)
    channel: str = Field(max_length=32)
    offer_id: str | None = Field(default=None, max_length=64)
    cost: Decimal = _money()
    # Indexed for the report's ``--since``.
    sent_at: datetime = _time(index=True)
    # Whether it led to a response within its window: responded, no_response, converted.
    outcome: str | None = Field(default=None, max_length=16)
    outcome_at: datetime | None = _time(default=None)
    # A ghost: the customer was in the programme's control group, nothing was delivered.
    held_back: bool = Field(default=False, sa_column_kwargs={"server_default": sa_false()})
    # A learned choice (``workflows/bandit.py``): the decision ("silence/an offer") and the
    # cohort whose counts chose ``offer_id``.
    decision: str | None = Field(default=None, max_length=64)
    arm_cohort: str | None = Field(default=None, max_length=16)


class EngagementCredit(SQLModel, table=True):
    """A purchase credited to an engagement (the programme's last touch before it, within
    the attribution window): the engagement recovered the customer, and brought
    ``amount``. Keyed by engagement and event, so a retried filing adds nothing."""

    __tablename__ = "engagement_credit"

    idempotency_key: str = Field(primary_key=True, max_length=256)
    event_id: str = Field(primary_key=True, max_length=128)
    amount: Decimal = _money()
    at: datetime = _time(index=True)


class OfferArm(SQLModel, table=True):
    """What one offer achieved at one decision for one cohort: the counts Thompson
    sampling draws from, kept as sends and recoveries happen (treated sends only)."""

    __tablename__ = "offer_arm"

    decision: str = Field(primary_key=True, max_length=64)
    cohort: str = Field(primary_key=True, max_length=16)
    offer_id: str = Field(primary_key=True, max_length=64)
    sent: int = 0
    recovered: int = 0


class WalletEntry(SQLModel, table=True):
    """An offer the customer holds: issued with an engagement, redeemed by an event."""

    __tablename__ = "wallet_offer"

    id: int | None = Field(default=None, primary_key=True)
    customer_id: str = Field(index=True, max_length=128)
    offer_id: str = Field(max_length=64)
    kind: str = Field(max_length=16)
    category: str | None = Field(default=None, max_length=64)
    engagement_key: str = Field(unique=True, max_length=256)
    issued_at: datetime = _time()
    expires_at: datetime = _time()
    redeemed_at: datetime | None = _time(default=None)
    redeemed_by_event: str | None = Field(default=None, max_length=128)


class OutboxMessage(SQLModel, table=True):
    """Every engagement sent, written in the transaction that records it: the audit
    record of every send and the queue the courier (``activities/courier.py``) delivers
    from. Its delivery state moves ``pending`` → ``delivered`` (a provider accepted it),
    ``failed`` (every channel refused it for good, or stayed down past its policy) or
    ``no_channel`` (no provider is configured for its channel or a fallback: the row is
    the delivery, for a relay or a person, as before providers existed)."""

    __tablename__ = "outbox"
    # The courier's claim: due pending rows, oldest due first.
    __table_args__ = (Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(unique=True, max_length=256)
    customer_id: str = Field(index=True, max_length=128)
    # The channel the journey chose; ``channel_used`` is the one tried now (pending) or
    # that delivered, a fallback when the journey's was refused.
    channel: str = Field(max_length=32)
    content_key: str = Field(max_length=128)
    offer_id: str | None = Field(default=None, max_length=64)
    created_at: datetime = _time()
    status: str = Field(default="pending", max_length=16)
    channel_used: str | None = Field(default=None, max_length=32)
    # Attempts on ``channel_used``: its policy counts them; a fallback starts at 0.
    attempts: int = 0
    # The channels given up on, in order.
    tried: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    next_attempt_at: datetime | None = _time(default=None)
    # A courier's lease: no other takes the row before ``claimed_until``.
    claimed_until: datetime | None = _time(default=None)
    claimed_by: str | None = Field(default=None, max_length=128)
    # The provider's reference for the accepted message (an SMTP queue id, a response id).
    provider_ref: str | None = Field(default=None, max_length=256)
    last_error: str | None = Field(default=None, max_length=512)
    delivered_at: datetime | None = _time(default=None)


class CampaignContactRecord(SQLModel, table=True):
    """What a calendared campaign came to for one customer: the first decision (sent,
    suppressed or failed) stands, so a retried or replayed filing changes nothing; a
    purchase afterwards marks it converted. The key leads with the campaign, so one
    campaign's results are read from the primary key's index."""

    __tablename__ = "campaign_contact"

    campaign: str = Field(primary_key=True, max_length=64)
    customer_id: str = Field(primary_key=True, max_length=128)
    # sent | suppressed | failed
    outcome: str = Field(max_length=16)
    # Why it was suppressed (the contact policy's answer), when it was.
    reason: str | None = Field(default=None, max_length=256)
    channel: str | None = Field(default=None, max_length=32)
    content_key: str | None = Field(default=None, max_length=128)
    decided_at: datetime = _time()
    converted_at: datetime | None = _time(default=None)


class DataKey(SQLModel, table=True):
    """A customer's data key (``activities/data_keys.py``), wrapped by a master key: the
    payloads of their journey in Temporal are encrypted under it, so deleting it makes
    that history unreadable. Customer "*" owns the key of every other workflow."""

    __tablename__ = "data_key"
    # One key per generation: processes creating a customer's key at once agree on one.
    __table_args__ = (UniqueConstraint("customer_id", "generation"),)

    # Opaque and random: what a payload's metadata names.
    key_id: str = Field(primary_key=True, max_length=32)
    customer_id: str = Field(max_length=128)
    # The newest encrypts new payloads. A customer's first key is 1 (a re-key would add
    # the next); shredding deletes them all, so a customer who comes back starts again at
    # 1, with a new key under a new id.
    generation: int
    master_key_id: str = Field(max_length=64)
    wrapped: bytes = Field(sa_type=LargeBinary)
    created_at: datetime = _time()
    # Set by the erasure: the run of the journey that erased the customer. The key is
    # deleted once that run has ended (which may need the key until then).
    erased_in_run: str | None = Field(default=None, max_length=64, index=True)


class ErasedCustomer(SQLModel, table=True):
    """A tombstone: a customer was erased. The ingest refuses their events from then on
    (unless the source says they came back), and writes no receipt for one that raced
    the erasure. Named by a digest (``activities/erasure.py``), not by the id."""

    __tablename__ = "erased_customer"

    customer_digest: str = Field(primary_key=True, max_length=64)
    erased_at: datetime = _time()
    request_id: str = Field(max_length=128)
    # When their data keys were shredded (encryption on): a customer who comes back waits
    # until no process can still hold one (``service/ingest.py``).
    shredded_at: datetime | None = _time(default=None)


class AuditEntry(SQLModel, table=True):
    """Who did what to a customer or their journey, when, and how it came out: every
    erasure and every operator action (``activities/audit.py``). It names the customer
    by digest, holds no personal data, and so outlives the customer's erasure."""

    __tablename__ = "audit_entry"

    id: int | None = Field(default=None, primary_key=True)
    # Makes a retried filing a no-op: the request's id and what is recorded of it.
    entry_key: str = Field(unique=True, max_length=192)
    at: datetime = _time(index=True)
    # Who: the API key's source, or the operator's handle (over Temporal, as given).
    actor: str = Field(max_length=64)
    # How it came: ``api`` or ``temporal`` (the CLI, the Temporal UI).
    via: str = Field(max_length=16)
    # What: ``customer.erase``, ``journey.pause``, ``journey.start_ladder``, …
    action: str = Field(max_length=32)
    customer_digest: str = Field(index=True, max_length=64)
    request_id: str = Field(max_length=128)
    # accepted, applied, erased, refused, not_found
    outcome: str = Field(max_length=16)
    # The system's words, never an operator's free text (which may name the customer).
    detail: str = Field(default="", max_length=256)


class FeedOutage(SQLModel, table=True):
    """A stretch in which events could not reach the journeys: the ingest found Temporal
    unreachable, no ingest process was up, or ops say a source was out. A journey about
    to flatline asks for these, so that an outage is not taken for silence
    (``activities/feed.py``)."""

    __tablename__ = "feed_outage"

    id: int | None = Field(default=None, primary_key=True)
    started_at: datetime = _time(index=True)
    # Null while it lasts.
    ended_at: datetime | None = _time(default=None)
    cause: str = Field(max_length=256)


class IngestHeartbeat(SQLModel, table=True):
    """Each ingest process's last sign of life, every ``HEARTBEAT_EVERY``: when none is
    recent, no process takes events, and the feed is out."""

    __tablename__ = "ingest_heartbeat"

    process_id: str = Field(primary_key=True, max_length=64)
    seen_at: datetime = _time(index=True)


class AnonymousIdentity(SQLModel, table=True):
    """An anonymous visitor (the tracking spec's ``anonymousId``) known to be a customer,
    once an ``identify`` or an ``alias`` said so: their later events go to the customer."""

    __tablename__ = "anonymous_identity"

    anonymous_id: str = Field(primary_key=True, max_length=128)
    customer_id: str = Field(index=True, max_length=128)
    source: str = Field(max_length=64)
    linked_at: datetime = _time()


class AnonymousEvent(SQLModel, table=True):
    """A tracked message of a visitor not yet known as a customer, held until one is
    (then it goes to their journey) or until it expires."""

    __tablename__ = "anonymous_event"

    anonymous_id: str = Field(primary_key=True, max_length=128)
    message_id: str = Field(primary_key=True, max_length=128)
    source: str = Field(max_length=64)
    # The message as received, and when it happened (the spec's time, corrected).
    message: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    occurred_at: datetime = _time()
    held_at: datetime = _time(index=True)


MIGRATIONS = Path(__file__).parent / "migrations"
# An arbitrary key for Postgres's advisory lock: "equator" in ASCII, as an integer.
_MIGRATION_LOCK = int.from_bytes(b"equator", "big")


def _upgrade_to_head(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


# A connection that only reads: on SQLite its transaction begins deferred, so it takes
# no write lock (WAL lets readers run beside the writer).
_READ_ONLY = "equator_read_only"


# How hard SQLite syncs a commit to disk (``?synchronous=off`` on the URL). FULL, the
# default, loses no committed write to a power cut; OFF is for a store nobody keeps
# (a simulation's), where the sync under the writers' lock is most of a write.
_SYNCHRONOUS = ("off", "normal", "full", "extra")


def _sqlite_serialised_writes(engine: AsyncEngine, synchronous: str) -> None:
    """Take SQLite's write lock when a transaction begins, not half-way through, so
    concurrent activities queue on the busy timeout instead of failing to upgrade."""

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Any) -> None:
        read_only = connection.get_execution_options().get(_READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


class _WritersFileLock:
    """SQLite's write lock across processes (the API, the worker, the CLI on one file),
    taken in turn on a lock file beside the database. SQLite's own busy handler sleeps
    and retries, up to 100 ms at a time: under load a writer of another process waited
    seconds for a lock free most of the time. A lock file wakes the next writer as soon
    as the last one lets go."""

    def __init__(self, database: Path) -> None:
        self._fd = os.open(f"{database}.writers", os.O_RDWR | os.O_CREAT, 0o600)

    @asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        # Waited for in a thread, so the event loop runs on. A caller cancelled while it
        # waits must not leave the lock held once the thread gets it.
        taking = asyncio.ensure_future(asyncio.to_thread(fcntl.flock, self._fd, fcntl.LOCK_EX))
        try:
            await asyncio.shield(taking)
        except asyncio.CancelledError:
            taking.add_done_callback(lambda _: fcntl.flock(self._fd, fcntl.LOCK_UN))
            raise
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._fd)


# OSError covers the builtin TimeoutError; PoolTimeout is SQLAlchemy's wait for a connection.
_UNREACHABLE = (OperationalError, InterfaceError, PoolTimeout, OSError)


def unreachable(error: BaseException) -> bool:
    """Whether ``error`` says the store could not be reached or answer in time, rather
    than refusing what it was asked."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, _UNREACHABLE)


class Store:
    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        synchronous = str(parsed.query.get("synchronous", "full")).lower()
        if self.dialect == "sqlite":
            if synchronous not in _SYNCHRONOUS:
                raise ValueError(f"synchronous={synchronous} in {url!r}: one of {_SYNCHRONOUS}")
            parsed = parsed.difference_update_query(["synchronous"])
            if parsed.database:
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        self.engine = create_async_engine(parsed, pool_pre_ping=self.dialect != "sqlite")
        # SQLite has one writer at a time. Writers of this process take turns here, in
        # order, and processes on the lock file, rather than in SQLite's busy handler,
        # which sleeps and retries.
        self._writer_turn: asyncio.Lock | contextlib.nullcontext[None] = contextlib.nullcontext()
        self._writers_file: _WritersFileLock | None = None
        if self.dialect == "sqlite":
            _sqlite_serialised_writes(self.engine, synchronous)
            self._writer_turn = asyncio.Lock()
            if parsed.database and parsed.database != ":memory:":
                self._writers_file = _WritersFileLock(Path(parsed.database))
        self._sessions = async_sessionmaker(
            self.engine, class_=AsyncSession, expire_on_commit=False
        )

    async def migrate(self) -> None:
        """Bring the schema to the newest migration (``activities/migrations``). Every
        worker and API process calls this on start; on Postgres an advisory lock makes
        concurrent starts take turns, on SQLite the write lock does."""
        async with self._turn(), self.engine.begin() as connection:
            if self.dialect == "postgresql":
                await connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
            await connection.run_sync(_upgrade_to_head)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        async with self._turn(), self._sessions() as session, session.begin():
            yield session

    def insert(self, table: type[SQLModel]) -> postgresql.Insert | sqlite.Insert:
        """The dialect's INSERT for ``table``: it knows ``ON CONFLICT DO NOTHING``."""
        if self.dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """A session that only reads: it waits for no writer's turn (on SQLite it takes
        no write lock)."""
        async with self.engine.connect() as connection:
            await connection.execution_options(**{_READ_ONLY: True})
            async with AsyncSession(bind=connection, expire_on_commit=False) as session:
                yield session

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """A writer's turn: none on Postgres; on SQLite, among this process's writers,
        then among processes."""
        async with self._writer_turn:
            if self._writers_file is None:
                yield
                return
            async with self._writers_file.held():
                yield

    async def guard_customers(
        self, connection: AsyncConnection, digests: Iterable[str], *, exclusive: bool
    ) -> None:
        """Order this transaction against the customers' erasure: the erasure holds a
        customer's lock alone, the ingest's receipts share it, so a receipt is either
        committed before the erasure deletes receipts or sees its tombstone. Postgres
        only: on SQLite a writing transaction has the database to itself already."""
        if self.dialect != "postgresql":
            return
        keys = sorted({int.from_bytes(bytes.fromhex(d)[:8], "big", signed=True) for d in digests})
        lock = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
        statement = text(f"SELECT {lock}(k) FROM unnest(CAST(:keys AS bigint[])) AS k")
        await connection.execute(statement, {"keys": keys})

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.exec_driver_sql("SELECT 1")

    async def close(self) -> None:
        await self.engine.dispose()
        if self._writers_file is not None:
            self._writers_file.close()
