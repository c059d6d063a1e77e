"""Milestones: the second and tenth order, a move up a cohort, an achievement."""

from __future__ import annotations

from testkit import Scenario, apply, begun, ev
from testkit.moments import T0
from tests.journeys import NEVER_QUIET, NO_HOLDOUTS, days
from workflows.cohorts import Cohort
from workflows.config import JourneyConfig
from workflows.programmes.milestones import Milestones

# A cap high enough that only milestones are in question.
CONFIG = JourneyConfig(
    holdouts=NO_HOLDOUTS,
    contact=NEVER_QUIET.model_copy(update={"marketing_cap": 20}),
    silence_default=days(60),
    silence_max=days(90),
)


async def said(kit: Scenario, customer: str) -> list[tuple[float | None, str]]:
    return [(m.day, m.name) for m in await kit.sent(customer) if m.cause == "milestones"]


async def test_the_second_order_and_a_move_up_are_each_said_once(kit: Scenario) -> None:
    await kit.event("mia", "purchase", day=0, amount=40)
    await kit.event("mia", "purchase", day=2, amount=40)
    await kit.event("mia", "achievement", day=3, name="first-review")
    await kit.event("mia", "purchase", day=4, amount=40)
    await kit.at(day=5)
    assert await said(kit, "mia") == [
        (2, "second-order-thanks"),
        (2, "welcome-to-repeat"),
        (3, "congratulations/first-review"),
    ]
    assert "milestones" not in (await kit.view("mia")).state.programmes


def test_the_tenth_order_is_a_milestone_and_the_ninth_is_not() -> None:
    state = begun()
    for n in range(1, 11):
        apply(state, ev("purchase", T0 + days(n), f"p{n}", amount=10), T0 + days(n))
    reached = Milestones().state_in(state)
    assert reached is not None
    assert [r.copy_key for r in reached.due] == [
        "second-order-thanks",
        "welcome-to-repeat",
        "welcome-to-loyal",
        "tenth-order-thanks",
    ]


def test_a_fall_is_not_a_milestone() -> None:
    state = begun()
    apply(state, ev("purchase", T0, "p1", amount=10))
    apply(state, ev("app_browse", T0 + days(400), "b1"), T0 + days(400))  # a year on: lapsed
    assert state.cohort == Cohort.LAPSED
    assert Milestones().state_in(state) is None
