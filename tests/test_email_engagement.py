"""Email engagement: unopened emails recorded by the journey itself, bounces that stop
email until a new address. Scenarios on simulated time (SQLite and Postgres), the
address in the single customer view, then pure functions."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sqlmodel import select

from activities.ledger import LedgerActivities
from activities.store import Customer, LedgerEvent, Store
from testkit import Scenario, apply, begun, ev
from testkit.moments import T0
from tests.journeys import NEVER_QUIET, NO_HOLDOUTS, days
from workflows.config import JourneyConfig
from workflows.contracts import RecordEventsRequest
from workflows.events import EmailProperties, parse_event
from workflows.programme import Journey
from workflows.programmes.email_engagement import (
    Delivery,
    EmailEngagement,
    EmailEngagementRules,
    EmailEngagementState,
    unopened_event_id,
)
from workflows.state import JourneyState, LinePosition

CONFIG = JourneyConfig(
    holdouts=NO_HOLDOUTS, contact=NEVER_QUIET, silence_default=days(60), silence_max=days(90)
)
EMAIL = EmailEngagement()


async def unopened(kit: Scenario, customer: str) -> list[LedgerEvent]:
    store = Store(kit.settings.database_url)
    try:
        async with store.transaction() as session:
            rows = await session.exec(
                select(LedgerEvent).where(
                    LedgerEvent.customer_id == customer, LedgerEvent.type == "email_unopened"
                )
            )
            return list(rows.all())
    finally:
        await store.close()


async def test_an_email_left_unopened_is_recorded_and_lowers_the_line(kit: Scenario) -> None:
    for customer in ("una", "otto"):
        await kit.event(customer, "purchase", day=0, amount=40)
        await kit.event(customer, "email_delivered", day=1, message_id="m-1", engagement_key="k-1")
    await kit.event("otto", "email_opened", day=3, engagement_key="k-1")  # in time
    await kit.at(day=3.9)
    assert await unopened(kit, "una") == []
    await kit.at(day=5)

    [recorded] = await unopened(kit, "una")
    assert (recorded.event_id, recorded.source) == ("unopened-m-1", "journey")
    assert recorded.properties == {"message_id": "m-1", "engagement_key": "k-1"}
    assert (await kit.view("una")).state.line_position == LinePosition.EQUATOR
    assert await kit.state("una", EMAIL) is None

    assert await unopened(kit, "otto") == []
    assert (await kit.view("otto")).state.line_position == LinePosition.ABOVE


async def test_a_bounce_sends_email_steps_elsewhere_until_a_new_address(kit: Scenario) -> None:
    await kit.event("bo", "profile_updated", day=0, email="bo@example.com")
    await kit.event("bo", "purchase", day=0, amount=40)  # welcome now, nudges at 14 and 28
    await kit.event("bo", "email_bounced", day=1, message_id="m-1")
    await kit.event("bo", "profile_updated", day=2, email="BO@example.com")  # the same one
    await kit.at(day=15)
    await kit.event("bo", "profile_updated", day=20, email="bo@example.org")
    await kit.at(day=29)

    assert [(m.day, m.name, m.channel) for m in await kit.sent("bo")] == [
        (0, "welcome", "email"),
        (14, "activation-picks", "push"),
        (28, "activation-free-shipping", "email"),
    ]
    [restored] = await kit.timeline("bo", programme="email_engagement", kind="email_restored")
    assert restored.summary == "a new address: email again"


async def test_the_address_reaches_the_single_customer_view(store: Store) -> None:
    update = ev("profile_updated", T0, "u1", customer_id="c7", email="c7@example.com")
    await LedgerActivities(store).record_events(
        RecordEventsRequest(customer_id="c7", application_id="a1", events=[update])
    )
    async with store.transaction() as session:
        customer = await session.get(Customer, "c7")
    assert customer is not None
    assert customer.email == "c7@example.com"


@pytest.mark.parametrize("address", ["nobody", "a@b", "a b@c.d", "x" * 250 + "@c.de"])
def test_an_address_that_is_not_one_is_refused(address: str) -> None:
    with pytest.raises(ValidationError, match=r"properties\.email"):
        ev("profile_updated", email=address)


def waiting(state: JourneyState) -> EmailEngagementState:
    found = EMAIL.state_in(state)
    assert found is not None
    return found


def test_an_open_naming_the_engagement_clears_the_delivery() -> None:
    state = begun()
    apply(state, ev("email_delivered", T0, "d1", message_id="m-1", engagement_key="k-1"))
    apply(state, ev("email_delivered", T0, "d2", message_id="m-1"))  # the same message
    assert len(waiting(state).deliveries) == 1
    apply(state, ev("email_opened", T0, "o1", engagement_key="k-1"))
    assert EMAIL.state_in(state) is None


def test_a_delivery_no_open_could_name_is_not_waited_for() -> None:
    state = begun()
    apply(state, ev("email_delivered", T0, "d1"))
    assert EMAIL.state_in(state) is None


def test_deliveries_waited_for_are_bounded() -> None:
    state = begun()
    kept = EmailEngagementRules().deliveries_kept
    for n in range(kept + 5):
        apply(state, ev("email_delivered", T0, f"d{n}", message_id=f"m-{n}"))
    deliveries = waiting(state).deliveries
    assert len(deliveries) == kept
    assert deliveries[0].properties.message_id == "m-5"


def test_the_unopened_event_is_raised_once_with_a_valid_id() -> None:
    state = begun()
    long_id = "m" * 128
    apply(state, ev("email_delivered", T0, "d1", message_id=long_id))
    journey = Journey(state, CONFIG, T0 + days(3))
    assert EMAIL.tick(journey, waiting(state)) is None
    [raised] = journey.raised
    event = parse_event(raised)
    assert event.event_id.startswith("unopened-")
    assert len(event.event_id) <= 128
    assert event.properties == EmailProperties(message_id=long_id)
    again = Delivery(properties=EmailProperties(message_id=long_id), event_id="d2", unopened_at=T0)
    assert unopened_event_id(again) == event.event_id
