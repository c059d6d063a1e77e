"""Welcome and activation on simulated time, on SQLite and Postgres."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from testkit import Scenario, apply, begun, ev
from testkit.moments import T0
from tests.journeys import NEVER_QUIET, NO_HOLDOUTS, days
from workflows.config import JourneyConfig
from workflows.programmes.welcome import Welcome, WelcomeRules

CONFIG = JourneyConfig(
    holdouts=NO_HOLDOUTS, contact=NEVER_QUIET, silence_default=days(60), silence_max=days(90)
)


async def welcome(kit: Scenario, customer: str) -> list[tuple[float | None, str, str | None]]:
    return [(m.day, m.name, m.outcome) for m in await kit.sent(customer) if m.cause == "welcome"]


async def test_a_first_order_is_welcomed_and_nudged_until_the_second(kit: Scenario) -> None:
    await kit.event("wendy", "purchase", day=0, amount=40)
    await kit.at(day=29)
    assert [(day, name) for day, name, _ in await welcome(kit, "wendy")] == [
        (0, "welcome"),
        (14, "activation-picks"),
        (28, "activation-free-shipping"),
    ]
    [last] = [m for m in await kit.sent("wendy") if m.name == "activation-free-shipping"]
    assert last.offer_id == "threshold-free-shipping"

    await kit.event("wendy", "purchase", day=30, amount=25)
    await kit.at(day=60)
    assert [outcome for _, _, outcome in await welcome(kit, "wendy")] == [
        "no_response",
        "no_response",
        "converted",
    ]
    [activated] = await kit.timeline("wendy", programme="welcome", kind="activated")
    assert activated.summary == "second order after 3 message(s)"
    assert "welcome" not in (await kit.view("wendy")).state.programmes


async def test_a_second_order_before_any_nudge_ends_it_at_the_welcome(kit: Scenario) -> None:
    await kit.event("quick", "purchase", day=0, amount=40)
    await kit.event("quick", "purchase", day=3, amount=40)
    await kit.at(day=40)
    assert await welcome(kit, "quick") == [(0, "welcome", "converted")]


def test_a_backfilled_history_applied_at_once_gets_no_welcome() -> None:
    state = begun()
    apply(state, ev("purchase", T0, "h1", amount=40))
    assert Welcome().state_in(state) is not None
    apply(state, ev("purchase", T0, "h2", amount=40))
    assert Welcome().state_in(state) is None


def test_nudges_must_climb_in_cost() -> None:
    cheap, dear = WelcomeRules().nudges
    with pytest.raises(ValidationError, match="climb in cost"):
        WelcomeRules(nudges=(dear, cheap))
