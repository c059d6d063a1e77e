"""Holdouts: the assignment as plain functions, and a control group's ghosts on
simulated time, on SQLite and Postgres."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError

from activities.ledger import LedgerActivities
from activities.store import Customer, Store
from starter.demo import STORIES, demo_journey, twins
from testkit import Scenario, deliveries
from testkit.moments import EVERY, T0, begun
from tests.journeys import NEVER_QUIET, PROGRAMMES_0_1, customer_in, event
from workflows import engine
from workflows.config import JourneyConfig
from workflows.contracts import RecordEventsRequest, RecordHoldoutsRequest
from workflows.holdout import HoldoutRules, Period, draw, held_back_from, period_of
from workflows.programme import Contact, Engagement, Journey

HALF = HoldoutRules(shares={"remediation": 0.5}, period=Period.YEAR)
# Room under the cap for every step: what is measured is the ladder, not the cap.
CONFIG = JourneyConfig(
    contact=NEVER_QUIET.model_copy(update={"marketing_cap": 10}),
    enabled=PROGRAMMES_0_1,
    holdouts=HALF,
)


def test_the_draw_is_stable_uniform_and_its_own_per_programme_and_period() -> None:
    assert draw("c1", "remediation", "2026-Q4") == draw("c1", "remediation", "2026-Q4")
    others = {draw("c1", "winback", "2026-Q4"), draw("c1", "remediation", "2027-Q1")}
    assert draw("c1", "remediation", "2026-Q4") not in others
    draws = [draw(f"customer-{n}", "remediation", "2026-Q4") for n in range(20_000)]
    assert all(0 <= d < 1 for d in draws)
    # About the share asked for (the draw is fixed: this cannot flake).
    for share in (0.05, 0.10, 0.5):
        held = sum(d < share for d in draws) / len(draws)
        assert abs(held - share) < 0.01


def test_periods_name_their_draw() -> None:
    at = datetime(2026, 11, 29, 21, 0, tzinfo=UTC)
    assert period_of(at, Period.YEAR) == "2026"
    assert period_of(at, Period.QUARTER) == "2026-Q4"
    assert period_of(at, Period.MONTH) == "2026-11"
    assert period_of(datetime(2027, 1, 1, tzinfo=UTC), Period.QUARTER) == "2027-Q1"


def test_a_programme_not_named_holds_back_no_one() -> None:
    assert not held_back_from("anyone", "welcome", T0, HoldoutRules())
    assert HoldoutRules().shares == {"remediation": 0.10, "winback": 0.10}


def test_an_exempt_customer_is_never_held_back() -> None:
    held = [f"c{n}" for n in range(100) if held_back_from(f"c{n}", "remediation", T0, HALF)]
    assert held  # about half
    exempt = HALF.model_copy(update={"exempt": frozenset(held[:3])})
    assert [c for c in held if held_back_from(c, "remediation", T0, exempt)] == held[3:]


def test_the_demo_holds_back_one_twin_and_none_of_its_cast() -> None:
    rules = demo_journey().holdouts
    for quarter in range(8):
        at = datetime(2026 + quarter // 4, 1 + 3 * (quarter % 4), 1, tzinfo=UTC)
        cast = twins(rules, at)
        assert held_back_from(cast["held back"], "remediation", at, rules)
        assert not held_back_from(cast["treated"], "remediation", at, rules)
    assert not any(held_back_from(beat.customer, "remediation", T0, rules) for beat in STORIES)


def test_rules_refuse_a_share_out_of_range_or_an_unknown_programme() -> None:
    with pytest.raises(ValidationError, match="must be in"):
        HoldoutRules(shares={"remediation": 1.0})
    with pytest.raises(ValidationError, match="no programme named remediaton"):
        JourneyConfig(holdouts=HoldoutRules(shares={"remediaton": 0.1}))


def ladder_step(contact: Contact = Contact.POLICY, channel: str = "email") -> Engagement:
    return Engagement(
        cause="silence",
        series="silence-1",
        name="we miss you",
        channel=channel,
        cost=Decimal("0.05"),
        label="step 1 of silence ladder",
        what="step 1 of silence ladder",
        contact=contact,
    )


def test_marketing_is_held_back_and_service_is_not_unless_the_rules_say() -> None:
    customer = customer_in(HALF, control=True, times=[T0])
    journey = Journey(begun(T0, CONFIG, customer), CONFIG, T0)
    engine.draw_holdouts(journey, EVERY)
    assert journey.state.held_back_from == ["remediation"]
    assert engine.holds_back(journey, "remediation", ladder_step())
    assert not engine.holds_back(journey, "welcome", ladder_step())
    ticket = ladder_step(channel="ticket")
    thanks = ladder_step(contact=Contact.CONSENT)
    assert not engine.holds_back(journey, "remediation", ticket)
    assert not engine.holds_back(journey, "remediation", thanks)
    service_too = CONFIG.model_copy(update={"holdouts": HALF.model_copy(update={"service": True})})
    journey = Journey(journey.state, service_too, T0)
    assert engine.holds_back(journey, "remediation", ticket)


async def single_view(database_url: str, customer_id: str) -> list[str] | None:
    store = Store(database_url)
    try:
        return await single_view_of(store, customer_id)
    finally:
        await store.close()


async def test_the_single_view_takes_the_draw_once_and_makes_a_row_if_need_be(
    store: Store,
) -> None:
    ledger = LedgerActivities(store)
    await ledger.record_events(
        RecordEventsRequest(
            customer_id="k1", application_id="a1", events=[event("k1", "purchase", T0, amount=5)]
        )
    )
    for customer in ("k1", "k2"):  # k2: a journey the store has not seen an event of
        request = RecordHoldoutsRequest(customer_id=customer, held_back_from=["winback"], at=T0)
        await ledger.record_holdouts(request)
        await ledger.record_holdouts(request)
        assert await single_view_of(store, customer) == ["winback"]
    await ledger.record_holdouts(RecordHoldoutsRequest(customer_id="k1", held_back_from=[], at=T0))
    assert await single_view_of(store, "k1") == []


async def single_view_of(store: Store, customer_id: str) -> list[str] | None:
    """The programmes the store says the customer is held back from."""
    async with store.reading() as session:
        customer = await session.get(Customer, customer_id)
        assert customer is not None
        return customer.held_back_from


async def test_a_control_customer_gets_ghosts_that_climb_as_the_treated_steps_do(
    kit: Scenario,
) -> None:
    span = [kit.day(0), kit.day(30)]
    control = customer_in(HALF, control=True, times=span)
    treated = customer_in(HALF, control=False, times=span)
    for customer in (control, treated):
        await kit.event(customer, "purchase", day=0, amount=200)
        await kit.event(customer, "return", day=1, amount=60)
    await kit.at(day=20)

    ghosts, steps = await kit.sent(control), await kit.sent(treated)
    climb = [(m.day, m.name, m.channel) for m in steps if m.cause == "return"]
    assert len(climb) >= 2  # the treated customer climbed the return ladder
    # The control customer's ladder climbed the same steps at the same times, as ghosts.
    assert [(m.day, m.name, m.channel) for m in ghosts if m.cause == "return"] == climb
    assert all(m.held_back and m.cost == 0 for m in ghosts if m.cause == "return")
    assert not any(m.held_back for m in steps)
    assert all(m.cost > 0 for m in steps if m.cause == "return")
    # Ghosts reach no one and take no room under the cap.
    assert await deliveries(kit.settings.database_url, control) == []
    assert len(await deliveries(kit.settings.database_url, treated)) >= len(climb)
    view = await kit.view(control)
    assert view.state.held_back_from == ["remediation"]
    assert (await kit.view(treated)).state.held_back_from == []
    assert view.state.marketing_touches == []
    [first, *_] = await kit.timeline(control, kind="engagement_held_back")
    assert first.summary.endswith("held back: remediation control group")
    # The single customer view says who is in which control group.
    assert await single_view(kit.settings.database_url, control) == ["remediation"]
    assert await single_view(kit.settings.database_url, treated) is None
    # Outcomes are filed for ghosts by the same rules.
    outcomes = [m.outcome for m in steps if m.cause == "return"]
    assert "no_response" in outcomes
    assert [m.outcome for m in ghosts if m.cause == "return"] == outcomes
