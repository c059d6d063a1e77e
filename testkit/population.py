"""A population on simulated time: many customers' real journeys, each answering what
it is sent (or, held back, what it would have been sent) by rules given in advance, so
that what the report and the offers that learn find can be checked against a known
truth.

    members = [Member(f"c{n}", joins=n * 0.25) for n in range(160)]
    await play(kit, members, answer, until=80)

Each member buys once on the day it joins and is then left to its journey. The clock
moves as ``equator simulate``'s does (``starter.simulation.Driver``), from the
scenario's day 0; every engagement the store records is handed to ``answer``, which
says what the customer buys a day after it was sent, if anything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal

from activities.store import Engagement
from starter.population import Act
from starter.simulation import Driver
from testkit.scenario import Scenario

# What a customer who was sent (or held back from) ``engagement`` buys: None, nothing.
Answer = Callable[[Engagement], Decimal | None]
# How long after an engagement a customer who answers it buys, in days.
DELAY = 1.0


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


@dataclass(frozen=True)
class _Population:
    """The members and what they answer, as the driver's population."""

    members: list[Member]
    answers: Answer

    def groups(self) -> dict[str, int]:
        return {"members": len(self.members)}

    def lives(self, days: float, seed: int) -> Iterator[Act]:
        for m in self.members:
            yield Act(m.joins, m.customer_id, "purchase", "joins", {"amount": str(m.amount)})

    def answer(self, engagement: Engagement, day: float, seed: int) -> Iterator[Act]:
        if (amount := self.answers(engagement)) is not None:
            bought = {"amount": str(amount)}
            event_id = f"answers-{engagement.id}"
            yield Act(day + DELAY, engagement.customer_id, "purchase", event_id, bought)


async def play(kit: Scenario, members: list[Member], answer: Answer, until: float) -> None:
    """Run the population to day ``until`` of the scenario."""
    driver = Driver(kit.env, kit.settings, _Population(members, answer), seed=0, start=kit.start)
    await driver.play(until)
    # The scenario ends the journeys it knows of.
    kit.customers |= driver.customers
