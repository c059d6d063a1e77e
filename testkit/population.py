"""A population on simulated time: many customers' real journeys, each answering what
it is sent (or, held back, what it would have been sent) by rules given in advance, so
that what the report and the offers that learn find can be checked against a known
truth.

    members = [Member(f"c{n}", joins=n * 0.25) for n in range(160)]
    await play(kit, members, answer, until=80)

Each member buys once on the day it joins and is then left to its journey. The clock
moves on a tick at a time; every engagement the store records is handed to ``answer``,
which says what the customer buys a day later, if anything.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from sqlmodel import col, select

from activities.store import Engagement, Store
from testkit.scenario import Scenario

# What a customer who was sent (or held back from) ``engagement`` buys: None, nothing.
Answer = Callable[[Engagement], Decimal | None]


@dataclass(frozen=True)
class Member:
    customer_id: str
    # The day of the first purchase: the journey starts then.
    joins: float
    amount: Decimal = Decimal(120)


class Quota:
    """Answers in exact proportion, in arrival order: with a rate of 0.3, 3 of every 10
    customers answer. What a sample then shows is the truth, to within one customer, so
    a check against the truth cannot flake however the control group falls."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.seen = 0

    def __call__(self) -> bool:
        before = int(self.seen * self.rate)
        self.seen += 1
        return int(self.seen * self.rate) > before


async def play(
    kit: Scenario,
    members: list[Member],
    answer: Answer,
    until: float,
    tick: float = 0.5,
    delay: float = 1.0,
) -> int:
    """Run the population to day ``until``; returns how many engagements it was sent."""
    due = [(m.joins, m.customer_id, m.amount) for m in members]
    heapq.heapify(due)
    store = Store(kit.settings.database_url)
    seen, answered = 0, 0
    try:
        day = 0.0
        while day <= until:
            await kit.at(day)
            while due and due[0][0] <= day:
                _, customer_id, amount = heapq.heappop(due)
                await kit.event(customer_id, "purchase", amount=amount)
            for engagement in await _recorded_after(store, seen):
                assert engagement.id is not None
                seen = engagement.id
                answered += 1
                if (spends := answer(engagement)) is not None:
                    heapq.heappush(due, (day + delay, engagement.customer_id, spends))
            day += tick
    finally:
        await store.close()
    return answered


async def _recorded_after(store: Store, after_id: int) -> list[Engagement]:
    async with store.reading() as session:
        rows = await session.exec(
            select(Engagement).where(col(Engagement.id) > after_id).order_by(col(Engagement.id))
        )
        return list(rows.all())
