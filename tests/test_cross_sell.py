"""Post-purchase cross-sell on simulated time, on SQLite and Postgres; its rules as pure
functions."""

from __future__ import annotations

from datetime import timedelta

import pytest

from testkit import Scenario, apply, begun, ev
from testkit.moments import T0
from tests.journeys import NEVER_QUIET, NO_HOLDOUTS, days
from workflows.config import JourneyConfig
from workflows.programme import Journey
from workflows.programmes.cross_sell import CrossSell

# Alone (remediation always runs), so that no other programme's messages share the cap.
CONFIG = JourneyConfig(
    holdouts=NO_HOLDOUTS,
    enabled=frozenset({"cross_sell"}),
    contact=NEVER_QUIET,
    silence_default=days(60),
    silence_max=days(90),
)


async def suggested(kit: Scenario, customer: str) -> list[tuple[float | None, str, str | None]]:
    return [(m.day, m.name, m.outcome) for m in await kit.sent(customer) if m.cause == "cross_sell"]


async def test_trousers_suggest_knitwear_a_day_later_and_a_sweater_converts(
    kit: Scenario,
) -> None:
    await kit.event("sam", "purchase", day=0, amount=60, category="trousers")
    await kit.at(day=0.9)
    assert await suggested(kit, "sam") == []

    await kit.at(day=2)
    assert await suggested(kit, "sam") == [(1, "cross-sell/trousers/knitwear", None)]

    await kit.event("sam", "purchase", day=5, amount=45, category="knitwear")
    await kit.at(day=7)
    assert await suggested(kit, "sam") == [
        (1, "cross-sell/trousers/knitwear", "converted"),
        (6, "cross-sell/knitwear/accessories", None),
    ]
    [converted] = await kit.timeline("sam", programme="cross_sell", kind="cross_sell_converted")
    assert converted.summary == "bought knitwear after the suggestion"


async def test_a_complement_already_bought_is_not_suggested(kit: Scenario) -> None:
    await kit.event("kim", "purchase", day=0, amount=50, category="knitwear")
    await kit.event("kim", "purchase", day=3, amount=60, category="trousers")
    await kit.at(day=10)
    assert [name for _, name, _ in await suggested(kit, "kim")] == [
        "cross-sell/knitwear/accessories"
    ]


async def test_the_same_suggestion_waits_out_its_quiet_period(kit: Scenario) -> None:
    await kit.event("quinn", "purchase", day=0, amount=60, category="trousers")
    await kit.event("quinn", "purchase", day=10, amount=60, category="trousers")
    await kit.at(day=32)
    assert [day for day, _, _ in await suggested(kit, "quinn")] == [1]
    assert await kit.state("quinn", CrossSell()) is None  # quiet period over: nothing kept

    await kit.event("quinn", "purchase", day=35, amount=60, category="trousers")
    await kit.at(day=37)
    assert await suggested(kit, "quinn") == [
        (1, "cross-sell/trousers/knitwear", "no_response"),
        (36, "cross-sell/trousers/knitwear", None),
    ]


async def test_a_suggestion_due_during_a_complaint_is_dropped(kit: Scenario) -> None:
    await kit.event("carla", "purchase", day=0, amount=60, category="trousers")
    await kit.event("carla", "complaint", day=0.5, reason="damaged")
    await kit.at(day=3)
    assert await suggested(kit, "carla") == []
    [skipped] = await kit.timeline("carla", programme="cross_sell", kind="engagement_skipped")
    assert skipped.summary.endswith("skipped: in complaint remediation")
    assert await kit.state("carla", CrossSell()) is None


def test_the_rules_come_from_the_configuration() -> None:
    rules = {"delay": "P3D", "complements": {"trousers": "belts"}}
    config = JourneyConfig(holdouts=NO_HOLDOUTS, programmes={"cross_sell": rules})
    state = begun(config=config)
    apply(state, ev("purchase", T0, "t1", amount=60, category="trousers"), config=config)
    programme = CrossSell()
    pending = programme.state_in(state)
    assert pending is not None

    def wanted(after: timedelta) -> list[str]:
        return [e.name for e in programme.wants(Journey(state, config, T0 + after), pending)]

    assert wanted(days(2)) == []
    assert wanted(days(3)) == ["cross-sell/trousers/belts"]


@pytest.mark.parametrize("props", [{}, {"category": "socks"}], ids=["no category", "no complement"])
def test_a_purchase_with_nothing_to_suggest_keeps_no_state(props: dict[str, str]) -> None:
    state = begun()
    apply(state, ev("purchase", T0, "p1", amount=20, **props))
    assert CrossSell().state_in(state) is None


def test_a_purchase_from_history_suggests_nothing() -> None:
    state = begun()
    late = T0 + days(40)  # heard after its suggestion would have been over
    apply(state, ev("purchase", T0, "old", amount=60, category="trousers"), at=late)
    assert CrossSell().state_in(state) is None
