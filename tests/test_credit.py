"""Credit: a purchase soon after a programme's last touch is credited to it (the customer
recovered, and the revenue); as plain functions, in the store, and on simulated time."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlmodel import col, select
from temporalio.testing import ActivityEnvironment

from activities.engagements import EngagementActivities
from activities.erasure import ErasureActivities
from activities.store import EngagementCredit, Store
from testkit import Scenario
from testkit.moments import T0, begun, ev
from tests.journeys import NEVER_QUIET, NO_HOLDOUTS, PROGRAMMES_0_1, engagement_request
from workflows import engine
from workflows.config import JourneyConfig
from workflows.contracts import Attribution, EraseRequest, RecordAttributionsRequest
from workflows.programme import Engagement, Journey

CONFIG = JourneyConfig(
    contact=NEVER_QUIET.model_copy(update={"marketing_cap": 10}),
    enabled=PROGRAMMES_0_1,
    holdouts=NO_HOLDOUTS,
)
DAY = timedelta(days=1)


def step(series: str, n: int = 1) -> Engagement:
    return Engagement(
        cause=series.split("-")[0],
        series=series,
        step=n,
        name="a step",
        channel="email",
        cost=Decimal("0.05"),
        label="a step",
        what="a step",
    )


def test_each_programme_credits_its_own_last_touch_within_the_window() -> None:
    state = begun(T0, CONFIG)
    journey = Journey(state, CONFIG, T0)
    engine.touch(journey, "remediation", step("silence-1", 1))
    engine.touch(Journey(state, CONFIG, T0 + DAY), "remediation", step("silence-1", 2))
    engine.touch(Journey(state, CONFIG, T0 + DAY), "welcome", step("welcome", 1))
    purchase = ev("purchase", T0 + 3 * DAY, event_id="p1", amount=40)
    engine.attribute(Journey(state, CONFIG, T0 + 3 * DAY), purchase)
    credited = {(a.engagement, a.event_id, a.amount) for a in state.attributions_due}
    assert credited == {("silence-1/step-2", "p1", Decimal(40)), ("welcome/step-1", "p1", 40)}


def test_no_credit_outside_the_window_before_the_touch_or_without_an_amount() -> None:
    state = begun(T0, CONFIG)
    engine.touch(Journey(state, CONFIG, T0), "remediation", step("silence-1"))
    for event in (
        ev("purchase", T0 + 8 * DAY, event_id="late", amount=10),  # window: 7 days
        ev("purchase", T0 - DAY, event_id="before", amount=10),  # sent late, happened before
        ev("offer_redeemed", T0 + DAY, event_id="no-amount", offer_id="free-shipping"),
        ev("app_browse", T0 + DAY, event_id="browse"),
    ):
        engine.attribute(Journey(state, CONFIG, T0 + 8 * DAY), event)
    assert state.attributions_due == []
    redeemed = ev("offer_redeemed", T0 + DAY, event_id="r", offer_id="free-shipping", amount=25)
    engine.attribute(Journey(state, CONFIG, T0 + DAY), redeemed)
    assert [a.amount for a in state.attributions_due] == [Decimal(25)]


def test_touches_too_old_to_be_credited_are_forgotten() -> None:
    state = begun(T0, CONFIG)
    engine.touch(Journey(state, CONFIG, T0), "remediation", step("silence-1"))
    engine.touch(Journey(state, CONFIG, T0 + 10 * DAY), "welcome", step("welcome"))
    assert list(state.last_touch) == ["welcome"]


async def credits(store: Store) -> list[tuple[str, str, Decimal]]:
    async with store.reading() as session:
        rows = await session.exec(select(EngagementCredit).order_by(col(EngagementCredit.event_id)))
        return [(c.idempotency_key, c.event_id, c.amount) for c in rows.all()]


async def test_a_credit_is_filed_once_and_erased_with_the_customer(store: Store) -> None:
    activities = EngagementActivities(store)
    for customer, key in (("c1", "customer-c1/run/silence-1/step-1"), ("c2", "customer-c2/r/x")):
        await activities.send_engagement(engagement_request(key, customer))
        credit = Attribution(idempotency_key=key, event_id=f"p-{customer}", amount=30, at=T0)
        request = RecordAttributionsRequest(attributions=[credit])
        await activities.record_attributions(request)
        await activities.record_attributions(request)  # a retry adds nothing
    assert await credits(store) == [
        ("customer-c1/run/silence-1/step-1", "p-c1", Decimal(30)),
        ("customer-c2/r/x", "p-c2", Decimal(30)),
    ]
    await ActivityEnvironment().run(
        ErasureActivities(store).erase_customer, EraseRequest(customer_id="c1", request_id="r1")
    )
    assert await credits(store) == [("customer-c2/r/x", "p-c2", Decimal(30))]


async def test_a_purchase_after_a_step_is_credited_to_it(kit: Scenario) -> None:
    await kit.event("rita", "purchase", day=0, amount=200)
    await kit.event("rita", "return", day=1, amount=60)  # the return ladder: step 1 at once
    await kit.event("rita", "purchase", day=3, amount=75, event_id="back")
    await kit.event("rita", "purchase", day=20, amount=90, event_id="much-later")
    await kit.at(day=21)
    [first, *_] = [m for m in await kit.sent("rita") if m.cause == "return"]
    store = Store(kit.settings.database_url)
    try:
        found = [
            (key.split("/", 2)[2], event, amount) for key, event, amount in await credits(store)
        ]
    finally:
        await store.close()
    # Back two days after the return's first step: credited to it. Seventeen days on,
    # out of the return's window, but three days after the silence ladder's first step
    # (her cadence of 3 days made 14 days of silence a flatline): credited to that.
    assert found == [
        (first.key, "back", Decimal(75)),
        ("silence-2/step-1", "much-later", Decimal(90)),
    ]
