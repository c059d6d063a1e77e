"""The store and its activities, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlmodel import func, select

from activities.engagements import EngagementActivities
from activities.ledger import LedgerActivities
from activities.store import Customer, Engagement, LedgerEvent, OutboxMessage, Store
from tests.journeys import engagement_request, event
from workflows.contracts import Outcome, RecordEventsRequest, RecordOutcomesRequest

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


async def count(store: Store, table: type) -> int:
    async with store.transaction() as session:
        return (await session.exec(select(func.count()).select_from(table))).one()


async def test_recording_folds_events_into_the_profile(store: Store) -> None:
    ledger = LedgerActivities(store)
    events = [
        event("c1", "purchase", T0, "p1", amount="19.99", category="dresses"),
        event("c1", "purchase", T0 + timedelta(days=7), "p2", amount="80.01", category="shoes"),
        event("c1", "return", T0 + timedelta(days=8), "r1", amount="19.99"),
    ]
    result = await ledger.record_events(
        RecordEventsRequest(customer_id="c1", application_id="a1", events=events)
    )
    assert result.fresh_event_ids == ["p1", "p2", "r1"]
    async with store.transaction() as session:
        customer = await session.get(Customer, "c1")
    assert customer is not None
    assert customer.lifetime_value == Decimal("80.01")
    assert customer.loyalty_points == 19 + 80 - 19  # the return takes its points back
    assert customer.order_count == 2
    assert customer.first_purchase_at == T0
    assert customer.last_purchase_at == T0 + timedelta(days=7)
    assert customer.median_purchase_gap_days == 7
    assert customer.categories == ["dresses", "shoes"]
    assert customer.last_activity_at == T0 + timedelta(days=8)


async def test_a_retried_batch_is_fresh_and_a_redelivery_is_not(store: Store) -> None:
    ledger = LedgerActivities(store)
    batch = [event("c2", "purchase", T0, "p1", amount=10)]
    first = await ledger.record_events(
        RecordEventsRequest(customer_id="c2", application_id="a1", events=batch)
    )
    retried = await ledger.record_events(
        RecordEventsRequest(customer_id="c2", application_id="a1", events=batch)
    )
    redelivered = await ledger.record_events(
        RecordEventsRequest(customer_id="c2", application_id="a2", events=batch)
    )
    assert first.fresh_event_ids == retried.fresh_event_ids == ["p1"]
    assert redelivered.fresh_event_ids == []
    assert await count(store, LedgerEvent) == 1
    async with store.transaction() as session:
        customer = await session.get(Customer, "c2")
    assert customer is not None
    assert customer.lifetime_value == Decimal(10)


async def test_consent_and_timezone_reach_the_single_customer_view(store: Store) -> None:
    ledger = LedgerActivities(store)
    events = [
        event("c6", "consent_changed", T0, "k1", channel="email", granted=False),
        event("c6", "consent_changed", T0, "k2", channel="sms", granted=True),
        event("c6", "profile_updated", T0, "k3", timezone="Europe/Paris", home_store="s-12"),
    ]
    await ledger.record_events(
        RecordEventsRequest(customer_id="c6", application_id="a1", events=events)
    )
    async with store.transaction() as session:
        customer = await session.get(Customer, "c6")
    assert customer is not None
    assert customer.consent == {"email": False, "sms": True}
    assert (customer.timezone, customer.home_store) == ("Europe/Paris", "s-12")
    assert customer.last_activity_at is None  # none of these is the customer's own doing


async def test_event_ids_are_unique_per_customer_not_globally(store: Store) -> None:
    ledger = LedgerActivities(store)
    for customer in ("c4", "c5"):
        result = await ledger.record_events(
            RecordEventsRequest(
                customer_id=customer,
                application_id=f"a-{customer}",
                events=[event(customer, "purchase", T0, "order-1001", amount=5)],
            )
        )
        assert result.fresh_event_ids == ["order-1001"]
    assert await count(store, LedgerEvent) == 2


async def test_an_engagement_is_sent_once_whatever_the_retries(store: Store) -> None:
    activities = EngagementActivities(store)
    first = await activities.send_engagement(engagement_request())
    again = await activities.send_engagement(engagement_request())
    assert first.newly_sent
    assert not again.newly_sent
    assert again.engagement_id == first.engagement_id
    assert await count(store, Engagement) == 1
    assert await count(store, OutboxMessage) == 1
    async with store.transaction() as session:
        sent = (await session.exec(select(Engagement))).one()
    assert sent.cost == Decimal("0.05")
    assert sent.sent_at.tzinfo is not None


async def test_the_first_outcome_filed_stands_unless_a_response_converts(store: Store) -> None:
    activities = EngagementActivities(store)
    await activities.send_engagement(engagement_request("k/1"))
    await activities.send_engagement(engagement_request("k/2"))
    first = [
        Outcome(idempotency_key="k/1", outcome="responded", at=T0),
        Outcome(idempotency_key="k/unknown", outcome="responded", at=T0),  # ignored
    ]
    await activities.record_outcomes(RecordOutcomesRequest(outcomes=first))
    later = T0 + timedelta(days=3)
    again = [
        Outcome(idempotency_key="k/1", outcome="no_response", at=later),  # too late
        Outcome(idempotency_key="k/2", outcome="converted", at=later),
    ]
    await activities.record_outcomes(RecordOutcomesRequest(outcomes=again))
    async with store.transaction() as session:
        rows = await session.exec(
            select(Engagement.idempotency_key, Engagement.outcome, Engagement.outcome_at)
        )
        filed = sorted(rows)
    assert filed == [("k/1", "responded", T0), ("k/2", "converted", later)]
    assert await count(store, Engagement) == 2
    # A response that then converts (an open, then a purchase) is raised, once.
    converted = [Outcome(idempotency_key="k/1", outcome="converted", at=later)]
    await activities.record_outcomes(RecordOutcomesRequest(outcomes=converted))
    await activities.record_outcomes(RecordOutcomesRequest(outcomes=first[:1]))  # a replay
    async with store.transaction() as session:
        rows = await session.exec(
            select(Engagement.idempotency_key, Engagement.outcome, Engagement.outcome_at)
        )
        assert sorted(rows) == [("k/1", "converted", later), ("k/2", "converted", later)]


async def test_a_send_puts_its_message_in_the_outbox_due_at_once(store: Store) -> None:
    # Whatever its channel: a provider, or none, is the courier's business.
    woken: list[bool] = []
    activities = EngagementActivities(store, outboxed=lambda: woken.append(True))
    request = engagement_request().model_copy(update={"channel": "carrier-pigeon"})
    await activities.send_engagement(request)
    async with store.reading() as session:
        row = (await session.exec(select(OutboxMessage))).one()
    assert row.channel == "carrier-pigeon"
    assert (row.status, row.attempts, row.tried) == ("pending", 0, [])
    assert row.next_attempt_at == row.created_at
    assert woken == [True]  # the courier is told


async def test_sqlite_readers_do_not_wait_for_a_writer(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'e.db'}"
    api, worker = Store(url), Store(url)  # as two processes on one file
    await api.migrate()
    try:
        async with worker.transaction() as writing:
            writing.add(Customer(customer_id="w1", first_seen_at=T0, updated_at=T0))
            await writing.flush()
            # The write lock is held; a read goes ahead and sees what was committed.
            async with api.reading() as session:
                found = await asyncio.wait_for(session.get(Customer, "w1"), timeout=5)
            assert found is None
    finally:
        await api.close()
        await worker.close()


async def test_sqlite_writers_of_two_stores_take_turns_and_a_cancelled_one_lets_go(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'e.db'}"
    first, second = Store(url), Store(url)
    await first.migrate()

    async def write(store: Store, customer_id: str) -> None:
        async with store.transaction() as session:
            session.add(Customer(customer_id=customer_id, first_seen_at=T0, updated_at=T0))

    try:
        async with first.transaction() as session:
            session.add(Customer(customer_id="t1", first_seen_at=T0, updated_at=T0))
            waiting = asyncio.create_task(write(second, "never"))
            gives_up = asyncio.create_task(asyncio.sleep(0.2))
            done, _ = await asyncio.wait({waiting, gives_up}, return_when=asyncio.FIRST_COMPLETED)
            assert done == {gives_up}  # the second store's writer waits its turn
            waiting.cancel()
        # The cancelled writer would have taken the lock file after the first let go;
        # it must have let go too, or these would wait forever.
        await asyncio.wait_for(write(second, "t2"), timeout=10)
        await asyncio.wait_for(write(first, "t3"), timeout=10)
        async with first.reading() as reading:
            rows = await reading.exec(select(Customer.customer_id))
            assert sorted(rows) == ["t1", "t2", "t3"]
    finally:
        await first.close()
        await second.close()


async def test_a_sqlite_store_syncs_every_commit_unless_its_url_says_otherwise(
    tmp_path: Path,
) -> None:
    async def synchronous(url: str) -> int:
        store = Store(url)
        try:
            async with store.transaction() as session:
                connection = await session.connection()
                return int((await connection.exec_driver_sql("PRAGMA synchronous")).scalar_one())
        finally:
            await store.close()

    url = f"sqlite+aiosqlite:///{tmp_path / 'kept.db'}"
    assert await synchronous(url) == 2  # FULL
    assert await synchronous(f"{url}?synchronous=off") == 0
    with pytest.raises(ValueError, match="synchronous=sometimes"):
        Store(f"{url}?synchronous=sometimes")
