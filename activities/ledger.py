"""Recording applied events: the append-only ledger and the profile they shape."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity

from activities.store import Customer, LedgerEvent, Store, WalletEntry, utcnow
from workflows.cohorts import cohort_of
from workflows.contracts import RECORD_EVENTS, RecordEventsRequest, RecordEventsResult
from workflows.events import CustomerEvent, EventType
from workflows.profile import Profile, update_profile
from workflows.silence import median_gap


class LedgerActivities:
    def __init__(self, store: Store) -> None:
        self._store = store

    @activity.defn(name=RECORD_EVENTS)
    async def record_events(self, request: RecordEventsRequest) -> RecordEventsResult:
        """Append the batch and fold the new events into the customer's profile, in one
        transaction. An event already in the ledger under another application is a
        redelivery and is reported as not fresh; under this one, a retry of this call."""
        now = utcnow()
        ids = [event.event_id for event in request.events]
        async with self._store.transaction() as session:
            rows = await session.exec(
                select(LedgerEvent.event_id, LedgerEvent.application_id).where(
                    LedgerEvent.customer_id == request.customer_id,
                    col(LedgerEvent.event_id).in_(ids),
                )
            )
            known = dict(rows.all())
            new = [event for event in request.events if event.event_id not in known]
            customer = await session.get(Customer, request.customer_id)
            if customer is None:
                customer = Customer(
                    customer_id=request.customer_id, first_seen_at=now, updated_at=now
                )
            profile = Profile.model_validate(customer, from_attributes=True)
            for event in new:
                session.add(
                    LedgerEvent(
                        event_id=event.event_id,
                        customer_id=event.customer_id,
                        source=event.source,
                        type=event.type.value,
                        occurred_at=event.occurred_at,
                        recorded_at=now,
                        properties=event.properties.model_dump(mode="json"),
                        application_id=request.application_id,
                    )
                )
                update_profile(profile, event, now)
                if event.type == EventType.OFFER_REDEEMED:
                    await _redeem(session, event.customer_id, event.properties.offer_id, event)
            if new:
                customer.sqlmodel_update(profile.model_dump(exclude={"purchase_times"}))
                customer.purchase_times = [t.isoformat() for t in profile.purchase_times]
                customer.last_purchase_at = max(profile.purchase_times, default=None)
                gap = median_gap(profile.purchase_times)
                customer.median_purchase_gap_days = gap / timedelta(days=1) if gap else None
                if request.cohort_rules is not None:
                    cohort = cohort_of(profile, request.cohort_rules, now)
                    customer.cohort = cohort.value if cohort else None
                customer.updated_at = now
                session.add(customer)
        fresh = [
            event_id
            for event_id in ids
            if event_id not in known or known[event_id] == request.application_id
        ]
        return RecordEventsResult(fresh_event_ids=fresh)


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
