"""Handing validated events to their journeys: durable before acknowledged, once each.

An event is acknowledged only after signal-with-start has landed it in Temporal, so it
reaches the journey even while no worker runs. The receipt written afterwards is what
makes a resend a duplicate that touches nothing. The receipt comes second on purpose: no
lock is held across the call to Temporal, and the two windows this leaves (a crash
between signal and receipt, two resends racing) only deliver an event twice, which the
journey's own dedupe absorbs; nothing is ever acknowledged that was not delivered.

An erased customer's tombstone refuses their events before any signal, and, for an event
that raced the erasure, the receipt: it is written only where no tombstone stands, under
the customer's lock (``Store.guard_customers``), so nothing of theirs lands after the
erasure's pass. A source that says the customer came back lifts the tombstone.

While the store is unreachable, Temporal still is the durable part: events for running
journeys are signalled (a plain signal, never a start) and acknowledged, and their
receipts are held until the store returns (``service/receipts.py``). A journey is not
started then, because only the store can say whether the customer was erased: an event
for a customer without a running journey is refused (503) until the store is back.
While Temporal is unreachable, a circuit (``service/circuit.py``) answers at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

import structlog
from sqlalchemy import delete, tuple_
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client
from temporalio.common import MetricHistogramFloat
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode

from activities.group_commit import GroupCommit
from activities.journeys import JourneyClosedError
from activities.store import (
    DataKey,
    ErasedCustomer,
    IngestReceipt,
    LedgerEvent,
    Store,
    customer_digest,
    utcnow,
)
from runtime.telemetry import INGEST_PHASE_SECONDS, runtime_of, tracer
from runtime.temporal import send_event, signal_running_journey
from service.circuit import Circuit
from service.feed_watch import FeedWatch
from service.receipts import HeldReceipts
from workflows.config import JourneyConfig
from workflows.events import CustomerEvent

log = structlog.get_logger(__name__)

# Signals in flight at once, across all requests: enough to hide the round trip to
# Temporal, not enough to flood it when a burst of batches arrives.
SIGNALS_IN_FLIGHT = 64

Key = tuple[str, str]
# Receipts read or written in one statement at most: a few thousand bound parameters,
# far from Postgres's 32,767, and a batch of 500 (the API's largest) with others.
EVENTS_IN_A_GROUP = 1_000
# Where a delivery spends its time, in the API's metrics: reading the receipts, waiting
# for a signal slot, the signal, writing the receipts.
PHASES = ("receipts", "signal_slot", "signal", "record")
# What an event no mapping names is kept as, in the ledger.
UNMAPPED = "unmapped"


@dataclass(frozen=True)
class Delivered:
    duplicate: bool


@dataclass(frozen=True)
class Conflict:
    """Not delivered, and resending will not help: the customer's journey has ended."""

    reason: str


@dataclass(frozen=True)
class Unavailable:
    """Temporal or the store could not be reached: nothing was acknowledged; retry."""

    reason: str


Outcome = Delivered | Conflict | Unavailable


def key_of(event: CustomerEvent) -> Key:
    return (event.customer_id, event.event_id)


def digest(event: CustomerEvent) -> str:
    return hashlib.sha256(event.model_dump_json().encode()).hexdigest()


class Ingest:
    def __init__(
        self,
        client: Client,
        store: Store,
        task_queue: str,
        config: JourneyConfig,
        temporal_timeout: timedelta,
        key_cache_ttl: timedelta,
    ) -> None:
        self._client = client
        self._store = store
        self._task_queue = task_queue
        self._config = config
        self._timeout = temporal_timeout
        # How long another process may still hold an erased customer's data key.
        self._key_cache_ttl = key_cache_ttl
        self._in_flight = asyncio.Semaphore(SIGNALS_IN_FLIGHT)
        # The feed's outages, as the ingest sees them: for journeys about to flatline.
        self._feed = FeedWatch(store)
        self._circuit = Circuit(
            lambda: client.service_client.check_health(timeout=self._timeout),
            opened=self._feed.temporal_lost,
            closed=self._feed.temporal_back,
        )
        # Deliveries at the same moment share the store's round trips: one read of the
        # receipts for all of them, one transaction to write theirs (``GroupCommit``).
        self._receipt_reads = GroupCommit(
            store, _read_receipts, reading=True, size=len, most=EVENTS_IN_A_GROUP
        )
        self._receipt_writes = GroupCommit(
            store, self._write_receipts, size=len, most=EVENTS_IN_A_GROUP
        )
        self._held = HeldReceipts(self._record, digest)
        histogram = _phase_histogram(runtime_of(client))
        self._phases = {
            phase: histogram.with_additional_attributes({"phase": phase}) for phase in PHASES
        }

    @property
    def task_queue(self) -> str:
        return self._task_queue

    @property
    def temporal_circuit_open(self) -> bool:
        """Temporal was found unreachable and has not been seen since."""
        return self._circuit.open

    @property
    def receipts_held(self) -> int:
        """Receipts waiting for the store."""
        return len(self._held)

    async def start(self) -> None:
        await self._feed.start()

    async def close(self) -> None:
        await self._circuit.close()
        await self._held.close()
        await self._feed.close()

    @contextmanager
    def _timed(self, phase: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self._phases[phase].record(time.perf_counter() - began)

    async def deliver(
        self, events: Sequence[CustomerEvent], customer_returned: bool = False
    ) -> list[Outcome]:
        """One outcome per event, in order. A repeat of an event earlier in the same call
        shares that event's fate. ``customer_returned``: the source says customers whose
        journeys have ended (erased) came back; they start anew."""
        keys = [key_of(event) for event in events]
        store_up = True
        try:
            with self._timed("receipts"):
                known, erased = await self._receipt_reads.submit(frozenset(keys))
        except (SQLAlchemyError, OSError) as err:
            log.warning("ingest.store_unavailable", error=str(err), serving="running journeys")
            known, erased, store_up = {}, set(), False
            if customer_returned:
                return [_RETURN_WAITS] * len(events)
        known = self._held.digests(keys) | known

        # The first occurrence of each new key is signalled; every other one is a resend.
        first: dict[Key, int] = {}
        for index, key in enumerate(keys):
            if key in known:
                _check_resend(events[index], known[key])
            elif key in first:
                _check_resend(events[index], digest(events[first[key]]))
            else:
                first[key] = index
        signalled: dict[int, Outcome] = {}
        waiting: set[str] = set()
        if customer_returned and erased:
            # Lifted before the signal: the new journey's data key is theirs, not shared.
            try:
                waiting = await self._lift(erased)
            except (SQLAlchemyError, OSError) as err:
                log.error("ingest.store_unavailable", error=str(err))
                return [Unavailable("the event store is unreachable")] * len(events)
            erased = set()
        # Customers in parallel, each customer's events in the order they were sent.
        by_customer: dict[str, list[int]] = {}
        for index in first.values():
            customer = events[index].customer_id
            if customer in erased:
                signalled[index] = _ERASED
            elif customer in waiting:
                signalled[index] = _FORGETTING
            else:
                by_customer.setdefault(customer, []).append(index)
        await asyncio.gather(
            *(
                self._signal_in_order(events, indexes, signalled, customer_returned, store_up)
                for indexes in by_customer.values()
            )
        )
        delivered = [i for i, outcome in signalled.items() if isinstance(outcome, Delivered)]
        try:
            if store_up:
                with self._timed("record"):
                    raced, erased = await self._record([events[i] for i in delivered])
        except (SQLAlchemyError, OSError) as err:
            store_up = False
            log.warning("ingest.receipt_failed", error=str(err))
        if not store_up:
            # Delivered: the receipts wait for the store; the 202 stands.
            if delivered:
                log.info("ingest.receipts_held", events=len(delivered))
                self._held.hold(events[i] for i in delivered)
        else:
            for i in delivered:
                if events[i].customer_id in erased:
                    # Signalled while the journey erased the customer, which drops it; a
                    # returning customer's event raced the erasure's last pass: retry.
                    signalled[i] = _STILL_ERASING if customer_returned else _ERASED
                elif keys[i] in raced:
                    # Another request receipted it first: a resend racing the original.
                    signalled[i] = Delivered(duplicate=True)

        outcomes: list[Outcome] = []
        for index, key in enumerate(keys):
            if index in signalled:
                outcomes.append(signalled[index])
            elif key in known or isinstance(signalled[first[key]], Delivered):
                outcomes.append(Delivered(duplicate=True))
            else:
                outcomes.append(signalled[first[key]])
        return outcomes

    async def _signal_in_order(
        self,
        events: Sequence[CustomerEvent],
        indexes: list[int],
        signalled: dict[int, Outcome],
        customer_returned: bool,
        start: bool,
    ) -> None:
        """Signal one customer's events one after another. After a failure the rest are
        not sent, so that a resend cannot land them out of order."""
        for position, index in enumerate(indexes):
            outcome = await self._signal(events[index], customer_returned, start)
            signalled[index] = outcome
            if not isinstance(outcome, Delivered):
                signalled |= dict.fromkeys(indexes[position + 1 :], outcome)
                return

    async def _signal(self, event: CustomerEvent, customer_returned: bool, start: bool) -> Outcome:
        """Signal-with-start, or, with ``start`` false (the store is down), a signal to
        the customer's running journey only."""
        if self._circuit.open:
            return _TEMPORAL_DOWN
        attributes = {
            "equator.customer_id": event.customer_id,
            "equator.event_id": event.event_id,
            "equator.event_type": event.type.value,
        }
        with tracer.start_as_current_span("deliver event", attributes=attributes) as span:
            with self._timed("signal_slot"):
                await self._in_flight.acquire()
            try:
                with self._timed("signal"):
                    if start:
                        await send_event(
                            self._client,
                            self._task_queue,
                            self._config,
                            event,
                            self._timeout,
                            customer_returned,
                        )
                    else:
                        await signal_running_journey(self._client, event, self._timeout)
            except JourneyClosedError as err:
                span.set_attribute("equator.outcome", "conflict")
                return Conflict(str(err))
            except (RPCError, RuntimeError) as err:
                span.set_attribute("equator.outcome", "unavailable")
                if isinstance(err, RPCError) and err.status == RPCStatusCode.NOT_FOUND:
                    return _NOT_STARTED_WITHOUT_STORE
                # RuntimeError: a lazy client that has not connected yet and cannot.
                log.warning("ingest.temporal_unavailable", error=str(err))
                if not isinstance(err, RPCError) or err.status in _UNREACHABLE:
                    self._circuit.trip(str(err))
                return _TEMPORAL_DOWN
            except (SQLAlchemyError, OSError) as err:
                # Encrypted: the customer's data key, not in this process's cache,
                # is in the store.
                log.warning("ingest.data_key_unavailable", error=str(err))
                span.set_attribute("equator.outcome", "unavailable")
                return _KEY_UNREACHABLE
            finally:
                self._in_flight.release()
        return Delivered(duplicate=False)

    async def record_unmapped(self, events: Sequence[UnmappedEvent]) -> None:
        """Keep events no mapping names in the ledger, under the type ``unmapped`` with
        their name, once each and none for an erased customer: journeys never see them,
        the ledger shows what a source sent."""
        if not events:
            return
        now = utcnow()
        async with self._store.transaction() as session:
            connection = await session.connection()
            erased = await self._erased_under_lock(
                connection, {event.customer_id for event in events}
            )
            rows = [
                {
                    "customer_id": event.customer_id,
                    "event_id": event.event_id,
                    "source": event.source,
                    "type": UNMAPPED,
                    "occurred_at": event.occurred_at,
                    "recorded_at": now,
                    "properties": {"name": event.name},
                    "application_id": "ingest",
                }
                for event in events
                if event.customer_id not in erased
            ]
            if rows:
                statement = self._store.insert(LedgerEvent).values(rows).on_conflict_do_nothing()
                await connection.execute(statement)

    async def customer_of(self, event_id: str) -> str | None:
        """Whose event this id named when the ingest took it (a refund's order, say)."""
        query = select(IngestReceipt.customer_id).where(col(IngestReceipt.event_id) == event_id)
        async with self._store.reading() as session:
            return (await session.exec(query)).first()

    async def _erased_under_lock(
        self, connection: AsyncConnection, customers: set[str]
    ) -> set[str]:
        """Which customers are erased, read under their shared locks: a write in this
        transaction then either precedes their erasure's pass or sees its tombstone."""
        await self._store.guard_customers(
            connection, map(customer_digest, customers), exclusive=False
        )
        return await _erased(connection, customers)

    async def was_erased(self, customer_id: str) -> bool:
        async with self._store.reading() as session:
            return bool(await _erased(await session.connection(), {customer_id}))

    async def _lift(self, customers: set[str]) -> set[str]:
        """The erased customers came back: their tombstones go, but for those whose data
        keys a process may still hold (not yet shredded, or less than the keys' cache time
        ago), who must wait: a journey started for them now could be encrypted under a key
        about to be gone, and never run. Returns those."""
        by_digest = {customer_digest(customer): customer for customer in customers}
        async with self._store.transaction() as session:
            connection = await session.connection()
            tombstones = await connection.execute(
                select(ErasedCustomer.customer_digest, ErasedCustomer.shredded_at).where(
                    col(ErasedCustomer.customer_digest).in_(list(by_digest))
                )
            )
            keyed = await connection.execute(
                select(DataKey.customer_id).where(col(DataKey.customer_id).in_(list(customers)))
            )
            unshredded = set(keyed.scalars())
            now = utcnow()
            waiting = {
                by_digest[found]
                for found, shredded_at in tombstones.all()
                if by_digest[found] in unshredded
                or (shredded_at is not None and shredded_at + self._key_cache_ttl > now)
            }
            lifted = [found for found, customer in by_digest.items() if customer not in waiting]
            await connection.execute(
                delete(ErasedCustomer).where(col(ErasedCustomer.customer_digest).in_(lifted))
            )
        return waiting

    async def _record(self, events: list[CustomerEvent]) -> tuple[set[Key], set[str]]:
        """Write receipts, none for an erased customer (an event that raced the erasure).
        Returns the keys another request had receipted first, and the customers found
        erased."""
        if not events:
            return set(), set()
        return await self._receipt_writes.submit(events)

    async def _write_receipts(
        self, session: AsyncSession, deliveries: Sequence[list[CustomerEvent]]
    ) -> list[tuple[set[Key], set[str]]]:
        """``_record`` for a group of deliveries in one transaction: a key two of them
        hold is receipted by the first, and raced for the other."""
        customers = {event.customer_id for events in deliveries for event in events}
        connection = await session.connection()
        erased = await self._erased_under_lock(connection, customers)
        now = utcnow()
        rows: dict[Key, dict[str, object]] = {}
        for events in deliveries:
            for event in events:
                if event.customer_id not in erased:
                    rows.setdefault(
                        key_of(event),
                        {
                            "customer_id": event.customer_id,
                            "event_id": event.event_id,
                            "source": event.source or "",
                            "digest": digest(event),
                            "received_at": now,
                        },
                    )
        inserted: set[Key] = set()
        if rows:
            statement = (
                self._store.insert(IngestReceipt)
                .values(list(rows.values()))
                .on_conflict_do_nothing()
                .returning(col(IngestReceipt.customer_id), col(IngestReceipt.event_id))
            )
            inserted = {(c, e) for c, e in (await connection.execute(statement)).all()}
        results = []
        for events in deliveries:
            mine = {key_of(event) for event in events if event.customer_id not in erased}
            won = mine & inserted
            inserted -= won
            results.append((mine - won, {event.customer_id for event in events} & erased))
        return results


async def _read_receipts(
    session: AsyncSession, deliveries: Sequence[frozenset[Key]]
) -> list[tuple[dict[Key, str], set[str]]]:
    """For each delivery, the receipts of its events (their digests) and which of its
    customers were erased: one read of each for the group."""
    keys = frozenset().union(*deliveries)
    rows = await session.exec(
        select(IngestReceipt.customer_id, IngestReceipt.event_id, IngestReceipt.digest).where(
            tuple_(IngestReceipt.customer_id, IngestReceipt.event_id).in_(list(keys))
        )
    )
    known = {(customer, event): found for customer, event, found in rows.all()}
    erased = await _erased(await session.connection(), {customer for customer, _ in keys})
    return [
        (
            {key: known[key] for key in delivery if key in known},
            {customer for customer, _ in delivery} & erased,
        )
        for delivery in deliveries
    ]


@dataclass(frozen=True)
class UnmappedEvent:
    """An event of a source that no mapping names (``service/tracking.py``)."""

    customer_id: str
    event_id: str
    name: str
    occurred_at: datetime
    source: str


_ERASED = Conflict(
    "the customer was erased; send with customer_returned=true if they came back as a new customer"
)


_TEMPORAL_DOWN = Unavailable("Temporal is unreachable")
_UNREACHABLE = frozenset({RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED})
_RETURN_WAITS = Unavailable("the event store is unreachable, and a returning customer needs it")
_NOT_STARTED_WITHOUT_STORE = Unavailable(
    "the event store is unreachable and the customer has no running journey: a journey "
    "starts only once the store can say the customer was not erased"
)
_KEY_UNREACHABLE = Unavailable(
    "the customer's data key is in the event store, which is unreachable"
)

_STILL_ERASING = Unavailable(
    "the customer's erasure is still finishing and took this event; retry in a moment"
)

_FORGETTING = Unavailable(
    "the customer was erased moments ago and their keys are still being forgotten; "
    "retry in a minute"
)


async def _erased(connection: AsyncConnection, customers: set[str]) -> set[str]:
    """Which of these customers were erased (their tombstones)."""
    by_digest = {customer_digest(customer): customer for customer in customers}
    found = await connection.execute(
        select(ErasedCustomer.customer_digest).where(
            col(ErasedCustomer.customer_digest).in_(list(by_digest))
        )
    )
    return {by_digest[tombstone] for tombstone in found.scalars()}


def _check_resend(event: CustomerEvent, original_digest: str) -> None:
    """A resend is a duplicate, as the contract says, even when its body differs (say, a
    source that re-stamps its retries); the difference is logged for the source's owner."""
    if digest(event) != original_digest:
        log.warning(
            "ingest.resend_differs",
            customer_id=event.customer_id,
            event_id=event.event_id,
            reason="same event_id as an accepted event, different content",
        )


@cache
def _phase_histogram(runtime: Runtime) -> MetricHistogramFloat:
    """Once per Temporal runtime, which serves the process's metrics."""
    return runtime.metric_meter.create_histogram_float(
        INGEST_PHASE_SECONDS,
        "where the delivery of events spent its time, by phase (" + ", ".join(PHASES) + ")",
        "s",
    )
