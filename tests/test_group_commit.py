"""Group commit: concurrent writes share transactions, and one failure fails only its own."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from activities.group_commit import GroupCommit
from activities.ledger import LedgerActivities
from activities.store import Customer, LedgerEvent, Store, unreachable
from tests.journeys import event
from tests.servers import free_port
from workflows.contracts import RecordEventsRequest

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


class Customers:
    """Writes a customer row per request, refusing ids that start with "bad"."""

    def __init__(self) -> None:
        self.groups: list[int] = []

    async def write(self, session: AsyncSession, ids: Sequence[str]) -> list[str]:
        self.groups.append(len(ids))
        for customer_id in ids:
            if customer_id.startswith("bad"):
                raise ValueError(f"refused {customer_id}")
            session.add(Customer(customer_id=customer_id, first_seen_at=T0, updated_at=T0))
        return [f"wrote {customer_id}" for customer_id in ids]


async def stored(store: Store, ids: Sequence[str]) -> set[str]:
    async with store.transaction() as session:
        found = await session.exec(
            select(Customer.customer_id).where(col(Customer.customer_id).in_(ids))
        )
        return set(found)


async def test_writes_that_arrive_together_share_a_transaction(store: Store) -> None:
    customers = Customers()
    group = GroupCommit(store, customers.write)
    ids = [f"g{n}" for n in range(20)]
    results = await asyncio.gather(*(group.submit(customer_id) for customer_id in ids))
    assert results == [f"wrote {customer_id}" for customer_id in ids]
    assert await stored(store, ids) == set(ids)
    # All were waiting before the first write began: one transaction for the lot.
    assert customers.groups == [20]


async def test_one_refused_write_fails_only_itself(store: Store) -> None:
    customers = Customers()
    group = GroupCommit(store, customers.write)
    ids = ["f0", "f1", "bad-f2", "f3"]
    results = await asyncio.gather(
        *(group.submit(customer_id) for customer_id in ids), return_exceptions=True
    )
    assert results[:2] == ["wrote f0", "wrote f1"]
    assert results[3] == "wrote f3"
    assert isinstance(results[2], ValueError)
    assert await stored(store, ids) == {"f0", "f1", "f3"}


async def test_a_caller_that_gives_up_leaves_the_group_intact(store: Store) -> None:
    group = GroupCommit(store, Customers().write)
    first = asyncio.create_task(group.submit("c0"))
    gives_up = asyncio.create_task(group.submit("c1"))
    waits = asyncio.create_task(group.submit("c2"))
    await asyncio.sleep(0)
    gives_up.cancel()
    assert await first == "wrote c0"
    assert await waits == "wrote c2"
    with pytest.raises(asyncio.CancelledError):
        await gives_up
    # Its write went out with its group all the same: a retry finds it done.
    assert await stored(store, ["c0", "c1", "c2"]) == {"c0", "c1", "c2"}


async def test_journeys_recording_at_once_each_get_their_own_answer(store: Store) -> None:
    ledger = LedgerActivities(store)

    def request(customer: str, application: str, *ids: str) -> RecordEventsRequest:
        events = [event(customer, "purchase", T0, i, amount=10) for i in ids]
        return RecordEventsRequest(customer_id=customer, application_id=application, events=events)

    results = await asyncio.gather(
        ledger.record_events(request("k0", "a0", "p1")),
        ledger.record_events(request("k1", "a1", "p1", "p2")),
        # In the same group as the first: the same event again, from another application.
        ledger.record_events(request("k1", "a9", "p2", "p3")),
        ledger.record_events(request("k1", "a1", "p1", "p2")),  # a retry of a1
    )
    assert [r.fresh_event_ids for r in results] == [["p1"], ["p1", "p2"], ["p3"], ["p1", "p2"]]
    async with store.transaction() as session:
        rows = await session.exec(select(LedgerEvent.customer_id, LedgerEvent.event_id))
        assert sorted(rows) == [("k0", "p1"), ("k1", "p1"), ("k1", "p2"), ("k1", "p3")]
        k1 = await session.get(Customer, "k1")
    assert k1 is not None
    assert k1.order_count == 3


async def test_a_store_out_of_reach_fails_the_whole_group_at_once() -> None:
    # Alone, each write would wait out the same outage again.
    store = Store(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nowhere")
    customers = Customers()
    group = GroupCommit(store, customers.write)
    try:
        results = await asyncio.gather(
            *(group.submit(f"u{n}") for n in range(5)), return_exceptions=True
        )
    finally:
        await store.close()
    assert all(isinstance(result, Exception) and unreachable(result) for result in results)
    assert customers.groups == [5]


async def test_a_group_holds_requests_up_to_their_total_size(store: Store) -> None:
    groups: list[list[int]] = []

    async def write(session: AsyncSession, requests: Sequence[list[str]]) -> list[int]:
        groups.append([len(request) for request in requests])
        return [len(request) for request in requests]

    group = GroupCommit(store, write, reading=True, size=len, most=5)
    requests = [["a"] * 3, ["b"] * 2, ["c"], ["d"] * 9, ["e"]]
    assert await asyncio.gather(*map(group.submit, requests)) == [3, 2, 1, 9, 1]
    # One over the bound goes alone: a group always takes one.
    assert groups == [[3, 2], [1], [9], [1]]
