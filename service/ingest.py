"""Handing validated events to their journeys: durable before acknowledged, once each.

An event is acknowledged only after signal-with-start has landed it in Temporal, so it
reaches the journey even while no worker runs. The receipt written afterwards is what
makes a resend a duplicate that touches nothing. The receipt comes second on purpose: no
lock is held across the call to Temporal, and the two windows this leaves (a crash
between signal and receipt, two resends racing) only deliver an event twice, which the
journey's own dedupe absorbs; nothing is ever acknowledged that was not delivered.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlalchemy import tuple_
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col, select
from temporalio.client import Client
from temporalio.service import RPCError

from activities.journeys import JourneyClosedError
from activities.store import IngestReceipt, Store, utcnow
from runtime.telemetry import tracer
from runtime.temporal import send_event
from workflows.config import JourneyConfig
from workflows.events import CustomerEvent

log = structlog.get_logger(__name__)

# Signals in flight at once, across all requests: enough to hide the round trip to
# Temporal, not enough to flood it when a burst of batches arrives.
SIGNALS_IN_FLIGHT = 64

Key = tuple[str, str]


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
    ) -> None:
        self._client = client
        self._store = store
        self._task_queue = task_queue
        self._config = config
        self._timeout = temporal_timeout
        self._in_flight = asyncio.Semaphore(SIGNALS_IN_FLIGHT)

    async def deliver(
        self, events: Sequence[CustomerEvent], customer_returned: bool = False
    ) -> list[Outcome]:
        """One outcome per event, in order. A repeat of an event earlier in the same call
        shares that event's fate. ``customer_returned``: the source says customers whose
        journeys have ended (erased) came back; they start anew."""
        keys = [key_of(event) for event in events]
        try:
            known = await self._receipts(set(keys))
        except (SQLAlchemyError, OSError) as err:
            log.error("ingest.store_unavailable", error=str(err))
            return [Unavailable("the event store is unreachable")] * len(events)

        # The first occurrence of each new key is signalled; every other one is a resend.
        first: dict[Key, int] = {}
        for index, key in enumerate(keys):
            if key in known:
                _check_resend(events[index], known[key])
            elif key in first:
                _check_resend(events[index], digest(events[first[key]]))
            else:
                first[key] = index
        # Customers in parallel, each customer's events in the order they were sent.
        by_customer: dict[str, list[int]] = {}
        for index in first.values():
            by_customer.setdefault(events[index].customer_id, []).append(index)
        signalled: dict[int, Outcome] = {}
        await asyncio.gather(
            *(
                self._signal_in_order(events, indexes, signalled, customer_returned)
                for indexes in by_customer.values()
            )
        )
        delivered = [i for i, outcome in signalled.items() if isinstance(outcome, Delivered)]
        try:
            raced = await self._record([events[i] for i in delivered])
        except (SQLAlchemyError, OSError) as err:
            # Delivered but not receipted: ask for a resend, which the journey absorbs.
            log.error("ingest.receipt_failed", error=str(err))
            signalled |= dict.fromkeys(delivered, Unavailable("the event store is unreachable"))
        else:
            # Another request receipted it first: this was a resend racing the original.
            signalled |= {i: Delivered(duplicate=True) for i in delivered if keys[i] in raced}

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
    ) -> None:
        """Signal one customer's events one after another. After a failure the rest are
        not sent, so that a resend cannot land them out of order."""
        for position, index in enumerate(indexes):
            outcome = signalled[index] = await self._signal(events[index], customer_returned)
            if not isinstance(outcome, Delivered):
                signalled |= dict.fromkeys(indexes[position + 1 :], outcome)
                return

    async def _signal(self, event: CustomerEvent, customer_returned: bool) -> Outcome:
        attributes = {
            "equator.customer_id": event.customer_id,
            "equator.event_id": event.event_id,
            "equator.event_type": event.type.value,
        }
        with tracer.start_as_current_span("deliver event", attributes=attributes) as span:
            async with self._in_flight:
                try:
                    await send_event(
                        self._client,
                        self._task_queue,
                        self._config,
                        event,
                        self._timeout,
                        customer_returned,
                    )
                except JourneyClosedError as err:
                    span.set_attribute("equator.outcome", "conflict")
                    return Conflict(str(err))
                except (RPCError, RuntimeError) as err:
                    # RuntimeError: a lazy client that has not connected yet and cannot.
                    log.warning("ingest.temporal_unavailable", error=str(err))
                    span.set_attribute("equator.outcome", "unavailable")
                    return Unavailable("Temporal is unreachable")
        return Delivered(duplicate=False)

    async def _receipts(self, keys: set[Key]) -> dict[Key, str]:
        async with self._store.reading() as session:
            rows = await session.exec(
                select(
                    IngestReceipt.customer_id, IngestReceipt.event_id, IngestReceipt.digest
                ).where(tuple_(IngestReceipt.customer_id, IngestReceipt.event_id).in_(list(keys)))
            )
            return {(customer, event): found for customer, event, found in rows.all()}

    async def _record(self, events: list[CustomerEvent]) -> set[Key]:
        """Write receipts; returns the keys another request had receipted first."""
        if not events:
            return set()
        now = utcnow()
        rows = [
            {
                "customer_id": event.customer_id,
                "event_id": event.event_id,
                "source": event.source or "",
                "digest": digest(event),
                "received_at": now,
            }
            for event in events
        ]
        statement = (
            self._store.insert(IngestReceipt)
            .values(rows)
            .on_conflict_do_nothing()
            .returning(col(IngestReceipt.customer_id), col(IngestReceipt.event_id))
        )
        async with self._store.transaction() as session:
            connection = await session.connection()
            inserted = {(c, e) for c, e in (await connection.execute(statement)).all()}
        return {key_of(event) for event in events} - inserted


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
