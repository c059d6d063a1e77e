"""Penny's winback on simulated time, on SQLite and Postgres; cadence and copy keys as
pure functions."""

from __future__ import annotations

from datetime import datetime

import pytest
from pydantic import ValidationError

from testkit import Scenario, apply, begun, ev
from testkit.moments import T0
from tests.journeys import NEVER_QUIET, NO_HOLDOUTS, days
from workflows.cohorts import CohortRules
from workflows.config import JourneyConfig
from workflows.programme import Journey
from workflows.programmes.winback import Winback, WinbackRules, cadence
from workflows.state import JourneyState

# Alone (remediation always runs), lapsed after two months; the silence ladder would
# flatline only months later.
CONFIG = JourneyConfig(
    holdouts=NO_HOLDOUTS,
    enabled=frozenset({"winback"}),
    contact=NEVER_QUIET,
    cohorts=CohortRules(lapsed_after=days(60)),
    silence_min=days(150),
    silence_default=days(150),
    silence_max=days(180),
)


async def winback(kit: Scenario, customer: str) -> list[tuple[float | None, str, str | None]]:
    return [(m.day, m.name, m.outcome) for m in await kit.sent(customer) if m.cause == "winback"]


async def monthly(kit: Scenario, customers: dict[str, str]) -> None:
    """Each customer buys her category on days 0, 30 and 60: she lapses on day 120."""
    for day in (0, 30, 60):
        for customer, category in customers.items():
            await kit.event(customer, "purchase", day=day, amount=40, category=category)


async def test_a_lapsed_customer_is_asked_why_and_her_answer_picks_the_next_step(
    kit: Scenario,
) -> None:
    await monthly(kit, {"penny": "dresses", "polly": "shoes"})
    await kit.at(day=121)
    assert await winback(kit, "penny") == [(120, "winback-why/dresses/monthly", None)]
    assert await winback(kit, "polly") == [(120, "winback-why/shoes/monthly", None)]

    await kit.event("penny", "feedback", day=122, rating=4)
    await kit.event("polly", "feedback", day=122, rating=1)
    await kit.at(day=123)
    assert await winback(kit, "penny") == [
        (120, "winback-why/dresses/monthly", "responded"),
        (122, "winback-new-in/dresses/monthly", None),
    ]
    # She left unhappy: straight to the offer.
    assert await winback(kit, "polly") == [
        (120, "winback-why/shoes/monthly", "responded"),
        (122, "winback-offer/shoes/monthly", None),
    ]
    [offer] = [m for m in await kit.sent("polly") if m.cause == "winback" and m.offer_id]
    assert offer.offer_id == "pct10"
    [answered] = await kit.timeline("penny", programme="winback", kind="winback_answered")
    assert answered.summary == "survey answered: rated 4 of 5; the next step follows"


async def test_an_order_wins_her_back_and_ends_the_winback(kit: Scenario) -> None:
    await monthly(kit, {"pia": "dresses"})
    await kit.event("pia", "purchase", day=133, amount=40, category="dresses")
    await kit.at(day=160)
    assert await winback(kit, "pia") == [
        (120, "winback-why/dresses/monthly", "no_response"),
        (130, "winback-new-in/dresses/monthly", "converted"),
    ]
    [won] = await kit.timeline("pia", programme="winback", kind="won_back")
    assert won.summary == "after 2 message(s): back as repeat"
    # Won back: nothing left to remember until she lapses again.
    assert await kit.state("pia", Winback()) is None


def bought(state: JourneyState, *orders: tuple[datetime, str]) -> None:
    for n, (at, category) in enumerate(orders):
        apply(state, ev("purchase", at, f"o{n}", amount=30, category=category), at, CONFIG)


def copy_keys(state: JourneyState, at: datetime) -> list[str]:
    """What the winback would send at ``at``, once the journey has seen the time."""
    apply(state, ev("app_browse", at, "look"), at, CONFIG)
    programme = Winback()
    running = programme.state_in(state)
    if running is None:
        return []
    return [e.name for e in programme.wants(Journey(state, CONFIG, at), running)]


@pytest.mark.parametrize(
    ("gap", "label"),
    [
        (None, "once"),
        (7, "weekly"),
        (14, "weekly"),
        (30, "monthly"),
        (90, "quarterly"),
        (365, "yearly"),
    ],
)
def test_the_cadence_label_names_her_usual_gap(gap: int | None, label: str) -> None:
    times = [T0] if gap is None else [T0, T0 + days(gap), T0 + days(2 * gap)]
    assert cadence(times) == label


def test_the_copy_key_carries_her_latest_category_and_cadence() -> None:
    state = begun(config=CONFIG)
    # Weekly, bags last; a shoe order from before arrives late and changes nothing.
    bought(state, (T0, "shoes"), (T0 + days(7), "dresses"), (T0 + days(14), "bags"))
    apply(
        state,
        ev("purchase", T0 + days(3), "late", amount=30, category="shoes"),
        T0 + days(15),
        CONFIG,
    )
    assert copy_keys(state, T0 + days(76)) == ["winback-why/bags/weekly"]


def test_a_history_that_arrives_lapsed_gets_no_winback() -> None:
    state = begun(config=CONFIG)
    apply(state, ev("purchase", T0, "old", amount=30, category="dresses"), T0 + days(100), CONFIG)
    assert state.cohort == "lapsed"
    assert copy_keys(state, T0 + days(101)) == []


def test_a_redeemed_offer_wins_her_back() -> None:
    state = begun(config=CONFIG)
    bought(state, (T0, "dresses"))
    assert copy_keys(state, T0 + days(61)) == ["winback-why/dresses/once"]
    apply(state, ev("offer_redeemed", T0 + days(62), "r", offer_id="pct10"), T0 + days(62), CONFIG)
    assert Winback().state_in(state) is None


def test_winback_steps_must_climb_in_cost() -> None:
    new_in, offer = WinbackRules().follow_ups
    with pytest.raises(ValidationError, match="climb in cost"):
        WinbackRules(follow_ups=(offer, new_in))
