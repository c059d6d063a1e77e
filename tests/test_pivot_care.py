"""Pivot care: loyal and repeat customers who pivot get care before marketing, as VIPs
do. Scenarios on simulated time (SQLite and Postgres), then pure functions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from testkit import Scenario, apply, begun, ev
from testkit.moments import T0
from tests.journeys import NEVER_QUIET, NO_HOLDOUTS, days
from workflows import engine
from workflows.calendar import Campaign
from workflows.cohorts import Cohort
from workflows.config import JourneyConfig
from workflows.patches import Patch
from workflows.programme import Engagement, Journey
from workflows.programmes.pivot_care import (
    PIVOT_CARE,
    PivotCareRules,
    PivotCareState,
    cadence_due,
    cared_for,
)
from workflows.registry import PROGRAMMES, REMEDIATION
from workflows.state import JourneyState

# Pivot care with what it works beside; the other programmes' messages would share the cap.
CONFIG = JourneyConfig(
    holdouts=NO_HOLDOUTS,
    enabled=frozenset({"pivot_care", "vip_thanks", "campaigns"}),
    contact=NEVER_QUIET,
    silence_min=days(10),
    silence_default=days(30),
    silence_max=days(90),
)
WEEKLY = (0, 7, 14, 21, 28)


def sale(kit: Scenario, name: str, day: float) -> Campaign:
    return Campaign(
        name=name,
        title=name.title(),
        starts_at=kit.day(day),
        ends_at=kit.day(day + 7),
        content_key=name,
    )


async def sent(kit: Scenario, customer: str, *causes: str) -> list[tuple[float | None, str, str]]:
    return [(m.day, m.name, m.channel) for m in await kit.sent(customer) if m.cause in causes]


async def test_a_loyal_customers_broken_cadence_gets_a_ticket_and_holds_marketing_back(
    kit: Scenario,
) -> None:
    for day in WEEKLY:  # loyal after five weekly orders: the cadence breaks 14 days on
        await kit.event("lola", "purchase", day=day, amount=50)
    await kit.event("nina", "purchase", day=28, amount=50)
    await kit.at(day=43)
    for customer in ("lola", "nina"):
        await kit.campaign(customer, sale(kit, "spring", 43))
    await kit.at(day=44)

    assert (await kit.view("lola")).state.cohort == Cohort.LOYAL
    assert await sent(kit, "lola", "pivot_care", "campaign") == [
        (42, "care ticket/cadence", "ticket")
    ]
    [held] = await kit.timeline("lola", programme="campaigns", kind="engagement_skipped")
    assert held.summary.endswith("skipped: in pivot care remediation")
    assert await sent(kit, "nina", "pivot_care", "campaign") == [(43, "spring/general", "email")]

    # A purchase at the usual basket answers: care is over, marketing flows again.
    await kit.event("lola", "purchase", day=45, amount=50)
    await kit.campaign("lola", sale(kit, "summer", 45))
    await kit.at(day=46)
    assert await sent(kit, "lola", "campaign") == [(45, "summer/general", "email")]
    [ticket] = [m for m in await kit.sent("lola") if m.cause == "pivot_care"]
    assert ticket.outcome == "responded"
    [over] = await kit.timeline("lola", programme="pivot_care", kind="care_over")
    assert over.summary == "cadence pivot care over: answered with a purchase of $50.00"


async def test_a_shrunken_basket_gets_a_ticket(kit: Scenario) -> None:
    for day in WEEKLY:
        await kit.event("bea", "purchase", day=day, amount=100)
    await kit.event("bea", "purchase", day=30, amount=30)
    await kit.at(day=31)

    assert await sent(kit, "bea", "pivot_care") == [(30, "care ticket/basket", "ticket")]
    [pivot] = await kit.timeline("bea", programme="pivot_care", kind="pivot")
    assert pivot.summary.startswith("basket pivot (a basket of $30.00, typically $100.00)")


async def test_a_repeat_customers_complaint_is_ticketed_before_the_ladders_marketing(
    kit: Scenario,
) -> None:
    await kit.event("remy", "purchase", day=0, amount=40)
    await kit.event("remy", "purchase", day=7, amount=40)
    await kit.event("nell", "purchase", day=7, amount=40)
    for customer in ("remy", "nell"):
        await kit.event(customer, "complaint", day=8)
    await kit.at(day=14)  # the ticket's response window is the journey's, 5 days

    assert await sent(kit, "remy", "complaint") == [
        (8, "VIP care ticket", "ticket"),
        (13, "apology", "email"),
    ]
    assert (await sent(kit, "nell", "complaint"))[0] == (8, "apology", "email")


async def test_a_loyal_customers_feedback_is_thanked_a_new_ones_not(kit: Scenario) -> None:
    for day in WEEKLY:
        await kit.event("lola", "purchase", day=day, amount=50)
    await kit.event("nina", "purchase", day=28, amount=50)
    for customer in ("lola", "nina"):
        await kit.event(customer, "feedback", day=29, event_id=f"fb-{customer}", rating=5)
    await kit.at(day=30)

    assert await sent(kit, "lola", "vip_care") == [(29, "thank-you note", "email")]
    assert await sent(kit, "nina", "vip_care", "pivot_care") == []
    assert await kit.state("nina", PIVOT_CARE) is None


def customer(*amounts: float, gap: timedelta = timedelta(days=7)) -> tuple[JourneyState, Journey]:
    """A journey after one purchase of each amount, ``gap`` apart; the journey is at the last."""
    state = begun()
    at = T0
    for n, amount in enumerate(amounts):
        at = T0 + n * gap
        apply(state, ev("purchase", at, f"p{n}", amount=amount), at)
    return state, Journey(state, JourneyConfig(holdouts=NO_HOLDOUTS), at)


def pivot_care(state: JourneyState) -> PivotCareState:
    found = PIVOT_CARE.state_in(state)
    assert found is not None
    return found


def test_a_new_customer_is_not_watched_a_repeat_one_is() -> None:
    state, _ = customer(40)
    assert PIVOT_CARE.state_in(state) is None
    state, _ = customer(40, 40)
    assert pivot_care(state).cadence_due == T0 + timedelta(days=7 + 14)


def test_the_cadence_is_not_watched_when_the_flatline_comes_first() -> None:
    _, journey = customer(
        40, 40, gap=timedelta(days=100)
    )  # twice 100 days: past the 180-day flatline
    assert cadence_due(journey, PivotCareRules()) is None


def test_a_basket_between_shrunk_and_usual_neither_pivots_nor_answers() -> None:
    state, _ = customer(100, 100, 100, 100, 100, 60)
    assert pivot_care(state).care is None
    state, journey = customer(100, 100, 100, 100, 100, 40)
    assert pivot_care(state).care is not None
    apply(state, ev("purchase", journey.now, "small", amount=60), journey.now)
    assert PIVOT_CARE.care(pivot_care(state)) == "pivot care"
    apply(state, ev("feedback", journey.now, "good", rating=5), journey.now)
    assert PIVOT_CARE.care(pivot_care(state)) is None


def test_baskets_are_bounded() -> None:
    state, _ = customer(*[50] * 12)
    assert len(pivot_care(state).baskets) == PivotCareRules().baskets_kept


def old(patch: Patch) -> bool:
    """A journey that began before the programmes patch."""
    return patch != Patch.RELEASE_0_2


def complaint_from(cohort: Cohort, patched: Callable[[Patch], bool]) -> bool:
    """Whether a complaint from a customer in ``cohort`` opens a ladder with a ticket."""
    state = begun()
    state.cohort = cohort
    journey = Journey(state, CONFIG, T0, patched)
    programmes = engine.Programmes.of(PROGRAMMES, patched)
    engine.apply_event(journey, programmes, ev("complaint"))
    remediation = REMEDIATION.state_in(state)
    assert remediation is not None
    assert remediation.ladder is not None
    return remediation.ladder.vip_care


@pytest.mark.parametrize(
    ("cohort", "patched", "cared"),
    [
        (Cohort.LOYAL, old, False),
        (Cohort.VIP, old, True),
        (Cohort.LOYAL, lambda patch: True, True),
        (Cohort.REPEAT, lambda patch: True, True),
        (Cohort.NEW, lambda patch: True, False),
    ],
)
def test_care_reaches_the_care_cohorts_only_with_the_patch(
    cohort: Cohort, patched: Callable[[Patch], bool], cared: bool
) -> None:
    assert complaint_from(cohort, patched) is cared
    state = begun()
    state.cohort = cohort
    assert cared_for(Journey(state, CONFIG, T0, patched)) is cared


def test_the_care_cohorts_are_configurable() -> None:
    config = CONFIG.model_copy(update={"programmes": {"pivot_care": {"care_cohorts": ["vip"]}}})
    state = begun()
    state.cohort = Cohort.LOYAL
    assert not cared_for(Journey(state, config, T0))


@pytest.mark.parametrize(("patched", "counted"), [(old, 1), (lambda patch: True, 0)])
def test_a_ticket_is_not_a_marketing_touch_with_the_patch(
    patched: Callable[[Patch], bool], counted: int
) -> None:
    state = begun()
    ticket = Engagement(
        cause="pivot_care",
        series="s",
        name="t",
        channel="ticket",
        cost=Decimal(5),
        label="t",
        what="t",
    )
    engine.touched(Journey(state, CONFIG, T0, patched), ticket)
    assert len(state.marketing_touches) == counted


def test_baskets_needed_fit_in_baskets_kept() -> None:
    with pytest.raises(ValidationError, match="baskets_needed <= baskets_kept"):
        PivotCareRules(baskets_kept=2, baskets_needed=3)
