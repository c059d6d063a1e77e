"""Recording applied events: the append-only ledger and the profile they shape."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sql
from sqlalchemy import bindparam, insert, update
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity

from activities.group_commit import GroupCommit
from activities.store import Customer, LedgerEvent, Store, WalletEntry, utcnow
from workflows.cohorts import cohort_of
from workflows.contracts import (
    RECORD_EVENTS,
    RECORD_HOLDOUTS,
    RecordEventsRequest,
    RecordEventsResult,
    RecordHoldoutsRequest,
)
from workflows.events import CustomerEvent, EventType
from workflows.profile import Profile, update_profile
from workflows.silence import median_gap

# The tables themselves: rows written as plain values (see ``_record``).
_LEDGER = SQLModel.metadata.tables[str(LedgerEvent.__tablename__)]
_CUSTOMERS = SQLModel.metadata.tables[str(Customer.__tablename__)]


class LedgerActivities:
    def __init__(self, store: Store) -> None:
        self._store = store
        # Journeys record their batches many at once: they share transactions.
        self._writes = GroupCommit(store, _record)

    @activity.defn(name=RECORD_EVENTS)
    async def record_events(self, request: RecordEventsRequest) -> RecordEventsResult:
        """Append the batch and fold the new events into the customer's profile, in one
        transaction (with other journeys' batches, see ``GroupCommit``). An event already
        in the ledger under another application is a redelivery and is reported as not
        fresh; under this one, a retry of this call."""
        return await self._writes.submit(request)

    @activity.defn(name=RECORD_HOLDOUTS)
    async def record_holdouts(self, request: RecordHoldoutsRequest) -> None:
        """Put the customer's control groups in the single customer view (a customer the
        store has not seen yet gets a row of its own). Filing the same twice is a no-op."""
        async with self._store.transaction() as session:
            connection = await session.connection()
            updated = await connection.execute(
                update(_CUSTOMERS)
                .where(_CUSTOMERS.c.customer_id == request.customer_id)
                .values(held_back_from=request.held_back_from)
            )
            if updated.rowcount == 0:
                session.add(
                    Customer(
                        customer_id=request.customer_id,
                        first_seen_at=request.at,
                        updated_at=request.at,
                        held_back_from=request.held_back_from,
                    )
                )


async def _record(
    session: AsyncSession, requests: Sequence[RecordEventsRequest]
) -> list[RecordEventsResult]:
    """Journeys' batches in one transaction: two reads for the lot (what the ledger knows
    of their events, their customers), each batch folded in turn, then one write of the
    new ledger rows and one of each customer touched. Rows as plain values, not models:
    building a table model per row cost more than the write."""
    now = utcnow()
    customer_ids = {request.customer_id for request in requests}
    event_ids = {event.event_id for request in requests for event in request.events}
    rows = await session.exec(
        select(LedgerEvent.customer_id, LedgerEvent.event_id, LedgerEvent.application_id).where(
            col(LedgerEvent.customer_id).in_(customer_ids), col(LedgerEvent.event_id).in_(event_ids)
        )
    )
    known = {(customer_id, event_id): application for customer_id, event_id, application in rows}
    connection = await session.connection()
    found = await connection.execute(
        sql.select(_CUSTOMERS).where(_CUSTOMERS.c.customer_id.in_(customer_ids))
    )
    stored = {row["customer_id"]: dict(row) for row in found.mappings()}
    folded = _Folded(known, stored, now)
    results = [await folded.record(session, request) for request in requests]
    if folded.ledger:
        await connection.execute(insert(_LEDGER), folded.ledger)
    inserted = [values for key, values in folded.customers.items() if key not in stored]
    updated = [values for key, values in folded.customers.items() if key in stored]
    if inserted:
        await connection.execute(insert(_CUSTOMERS), inserted)
    if updated:
        await connection.execute(
            update(_CUSTOMERS).where(_CUSTOMERS.c.customer_id == bindparam("key")),
            [{**values, "key": values["customer_id"]} for values in updated],
        )
    return results


class _Folded:
    """What a group's batches add up to: the ledger rows to append and each customer's
    row as it stands after them (a customer in two batches is written once)."""

    def __init__(
        self,
        known: dict[tuple[str, str], str],
        stored: dict[str, dict[str, Any]],
        now: datetime,
    ) -> None:
        self.known = known
        self.now = now
        self.ledger: list[dict[str, Any]] = []
        self.customers: dict[str, dict[str, Any]] = {}
        self._stored = stored

    async def record(
        self, session: AsyncSession, request: RecordEventsRequest
    ) -> RecordEventsResult:
        fresh: list[str] = []
        new: list[CustomerEvent] = []
        for event in request.events:
            key = (request.customer_id, event.event_id)
            application = self.known.get(key)
            if application is None:
                self.known[key] = request.application_id
                new.append(event)
            elif application != request.application_id:
                continue  # a redelivery: the ledger has it from another application
            fresh.append(event.event_id)  # new, or written by an earlier try of this call
        if new:
            self._fold(request, new)
            for event in new:
                if event.type == EventType.OFFER_REDEEMED:
                    await _redeem(session, event.customer_id, event.properties.offer_id, event)
        return RecordEventsResult(fresh_event_ids=fresh)

    def _fold(self, request: RecordEventsRequest, new: list[CustomerEvent]) -> None:
        now = self.now
        before = self.customers.get(request.customer_id) or self._stored.get(request.customer_id)
        profile = Profile.model_validate(before or {})
        for event in new:
            self.ledger.append(
                {
                    "event_id": event.event_id,
                    "customer_id": event.customer_id,
                    "source": event.source,
                    "type": event.type.value,
                    "occurred_at": event.occurred_at,
                    "recorded_at": now,
                    "properties": event.properties.model_dump(mode="json"),
                    "application_id": request.application_id,
                }
            )
            update_profile(profile, event, now)
        gap = median_gap(profile.purchase_times)
        cohort = before["cohort"] if before else None
        if request.cohort_rules is not None:
            found = cohort_of(profile, request.cohort_rules, now)
            cohort = found.value if found else None
        self.customers[request.customer_id] = {
            "customer_id": request.customer_id,
            "first_seen_at": before["first_seen_at"] if before else now,
            **profile.model_dump(exclude={"purchase_times"}),
            "purchase_times": [t.isoformat() for t in profile.purchase_times],
            "last_purchase_at": max(profile.purchase_times, default=None),
            "median_purchase_gap_days": gap / timedelta(days=1) if gap else None,
            "cohort": cohort,
            "updated_at": now,
        }


async def _redeem(
    session: AsyncSession, customer_id: str, offer_id: str, event: CustomerEvent
) -> None:
    """Mark the customer's oldest unexpired holding of the offer as redeemed, if any."""
    held = await session.exec(
        select(WalletEntry)
        .where(
            WalletEntry.customer_id == customer_id,
            WalletEntry.offer_id == offer_id,
            col(WalletEntry.redeemed_at).is_(None),
            WalletEntry.expires_at >= event.occurred_at,
        )
        .order_by(col(WalletEntry.issued_at))
    )
    entry = held.first()
    if entry is not None:
        entry.redeemed_at = event.occurred_at
        entry.redeemed_by_event = event.event_id
        session.add(entry)
