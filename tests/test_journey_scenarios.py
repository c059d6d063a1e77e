"""Scenario on the time-skipping server: months of customer life in seconds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlmodel import select
from temporalio.testing import WorkflowEnvironment

from activities.feed import Feed
from activities.journeys import JourneyClosedError
from activities.store import Customer, Engagement, LedgerEvent, OutboxMessage, Store, WalletEntry
from runtime.temporal import request_erasure
from testkit import Scenario, engagements, scenario
from tests.journeys import (
    NEVER_QUIET,
    NO_HOLDOUTS,
    PROGRAMMES_0_1,
    climbing,
    days,
    event,
    now,
    offers,
    remediation,
    sleep_until,
)
from workflows.config import JourneyConfig
from workflows.registry import VIP_THANKS
from workflows.state import JourneyView, LinePosition

# Silence after 30 days without a known cadence; each step waits 5 days for a response.
# No quiet hours: these scenarios must not depend on the hour they run at (the contact
# policy has its own, in test_contact_scenarios.py).
CONFIG = JourneyConfig(
    holdouts=NO_HOLDOUTS,
    enabled=PROGRAMMES_0_1,
    silence_min=days(10),
    silence_default=days(30),
    silence_max=days(90),
    response_window=days(5),
    dormant_cadence=days(60),
    contact=NEVER_QUIET,
)


@pytest.fixture
def db_url(database_url: str) -> str:
    return database_url


@pytest.fixture
async def world(time_skipping_env: WorkflowEnvironment, db_url: str) -> AsyncIterator[Scenario]:
    async with scenario(CONFIG, db_url, time_skipping_env) as j:
        yield j


def kinds(view: JourneyView) -> list[str]:
    return [entry.kind for entry in view.state.timeline]


async def test_a_feed_outage_within_the_silence_starts_no_ladder_it_alone_explains(
    time_skipping_env: WorkflowEnvironment, world: Scenario, db_url: str
) -> None:
    """The feed was out 10 of the 30 silent days (ops recorded it): the journey asks
    before it flatlines, and the flatline comes 10 days later, not sooner."""
    env = time_skipping_env
    start = await now(env)
    await world.send(event("outage-otto", "purchase", start, amount=120))
    store = Store(db_url)
    try:
        await Feed(store, "ops").began(start + days(5), "till export failed", start + days(15))
    finally:
        await store.close()
    await sleep_until(env, start + days(31))
    view = await world.view("outage-otto")
    assert remediation(view).ladder is None
    [excused] = [e for e in view.state.timeline if e.kind == "silence_excused"]
    assert "the feed was out for 10 days of the silence (till export failed)" in excused.summary
    await sleep_until(env, start + days(39))
    assert remediation(await world.view("outage-otto")).ladder is None
    await sleep_until(env, start + days(41))
    assert climbing(await world.view("outage-otto")).cause == "silence"


async def test_silence_climbs_the_ladder_step_by_step(
    time_skipping_env: WorkflowEnvironment, world: Scenario, db_url: str
) -> None:
    env = time_skipping_env
    start = await now(env)
    await world.send(event("silent", "purchase", start, amount=120))
    await sleep_until(env, start + days(29))
    assert remediation(await world.view("silent")).ladder is None

    climbed = []
    for day in (31, 36, 41):  # flatline at 30, then one step per 5-day window
        await sleep_until(env, start + days(day))
        view = await world.view("silent")
        climbed.append(climbing(view).step)
    assert climbed == [0, 1, 2]
    assert view.state.line_position == LinePosition.BELOW

    sent = await engagements(db_url, "silent")
    assert [e.step_name for e in sent] == ["we miss you", "an offer", "free shipping"]
    assert [e.cost for e in sent] == sorted(e.cost for e in sent)
    # On the journey's clock: flatline at day 30, then one step per 5-day window.
    sent_at = [e.at - start for e in view.state.timeline if e.kind == "engagement_sent"]
    assert [round(gap / days(1)) for gap in sent_at] == [30, 35, 40]


async def test_an_open_answers_a_step_and_only_a_purchase_wins_the_ladder(
    time_skipping_env: WorkflowEnvironment, world: Scenario, db_url: str
) -> None:
    env = time_skipping_env
    start = await now(env)
    await world.send(event("opener", "purchase", start, amount=120))
    await sleep_until(env, start + days(36))  # step 2 went out at day 35
    await world.send(event("opener", "email_opened", await now(env)))
    await sleep_until(env, start + days(39))
    climbing = await world.view("opener")
    assert remediation(climbing).ladder is not None
    assert climbing.state.line_position == LinePosition.BELOW

    await sleep_until(env, start + days(41))  # step 3 went out at day 40
    await world.send(event("opener", "purchase", await now(env), amount=45))
    await sleep_until(env, start + days(60))
    view = await world.view("opener")
    assert remediation(view).ladder is None
    assert view.state.line_position == LinePosition.ABOVE
    assert remediation(view).won == 1
    won = [e.summary for e in view.state.timeline if e.kind == "ladder_won"]
    assert won == ["silence ladder won at step 3 by purchase; cost $8.05"]
    answered = [e.summary for e in view.state.timeline if e.kind == "step_answered"]
    assert answered == [
        "email_opened answers step 2 of silence ladder; not a recovery, so the climb goes on"
    ]
    # What became of each engagement is filed in the store: the open is a response, the
    # purchase a conversion.
    assert [(e.step_name, e.outcome) for e in await engagements(db_url, "opener")] == [
        ("we miss you", "no_response"),
        ("an offer", "responded"),
        ("free shipping", "converted"),
    ]


async def test_a_return_picks_the_return_ladder(
    time_skipping_env: WorkflowEnvironment, world: Scenario, db_url: str
) -> None:
    env = time_skipping_env
    start = await now(env)
    await world.send(event("returner", "purchase", start, amount=60, category="shoes"))
    await world.send(event("returner", "return", start + days(1), amount=60, reason="fit"))
    await sleep_until(env, start + days(2))

    view = await world.view("returner")
    assert climbing(view).cause == "return"
    assert view.state.line_position == LinePosition.BELOW
    assert view.state.profile.lifetime_value == Decimal(0)
    assert [e.step_name for e in await engagements(db_url, "returner")] == ["how did we do"]


async def test_a_complaint_outranks_a_ladder_in_progress(
    time_skipping_env: WorkflowEnvironment, world: Scenario
) -> None:
    env = time_skipping_env
    start = await now(env)
    await world.send(event("upset", "purchase", start, amount=60))
    await world.send(event("upset", "return", start, amount=60))
    await world.send(event("upset", "complaint", start, severity="high"))
    await sleep_until(env, start + days(1))

    view = await world.view("upset")
    assert climbing(view).cause == "complaint"
    assert "ladder_superseded" in kinds(view)


async def test_the_cost_ceiling_stops_the_climb(
    time_skipping_env: WorkflowEnvironment, world: Scenario, db_url: str
) -> None:
    # A $10 customer is worth a $5.50 ladder: steps of $0.05 and $2.00, not $6.00.
    env = time_skipping_env
    start = await now(env)
    await world.send(event("thrifty", "purchase", start, amount=10))
    await sleep_until(env, start + days(50))

    view = await world.view("thrifty")
    assert remediation(view).ladder is None
    assert remediation(view).dormant
    assert view.state.line_position == LinePosition.BELOW
    assert [e.step_name for e in await engagements(db_url, "thrifty")] == [
        "we miss you",
        "an offer",
    ]
    assert remediation(view).spend == Decimal("2.05")
    dormant = [e.summary for e in view.state.timeline if e.kind == "dormant"]
    assert dormant == ["cost ceiling $5.50 reached before step 3 (free shipping, $6.00)"]


async def test_an_exhausted_ladder_leads_to_dormancy_that_a_purchase_ends(
    time_skipping_env: WorkflowEnvironment, world: Scenario, db_url: str
) -> None:
    env = time_skipping_env
    start = await now(env)
    await world.send(event("sleeper", "purchase", start, amount=900))  # ceiling $50
    await sleep_until(env, start + days(60))  # 4 steps from day 30, exhausted at day 50
    view = await world.view("sleeper")
    assert remediation(view).dormant
    assert remediation(view).ladder is None
    assert len(await engagements(db_url, "sleeper")) == 4

    await sleep_until(env, start + days(111))  # dormant cadence: one check-in at day 110
    view = await world.view("sleeper")
    checkins = [e for e in await engagements(db_url, "sleeper") if e.cause == "dormant"]
    assert len(checkins) == 1
    assert remediation(view).dormant

    await world.send(event("sleeper", "purchase", await now(env), amount=40))
    await sleep_until(env, start + days(112))
    view = await world.view("sleeper")
    assert not remediation(view).dormant
    assert view.state.line_position == LinePosition.ABOVE
    assert "woke" in kinds(view)


async def test_a_duplicated_event_is_applied_once(
    time_skipping_env: WorkflowEnvironment, world: Scenario, db_url: str
) -> None:
    env = time_skipping_env
    purchase = event("twice", "purchase", await now(env), event_id="pos-1", amount=25)
    for _ in range(3):
        await world.send(purchase)
    await env.sleep(timedelta(seconds=5))

    view = await world.view("twice")
    assert view.state.events_applied == 1
    assert view.state.duplicates_ignored == 2
    assert view.state.profile.lifetime_value == Decimal(25)
    store = Store(db_url)
    try:
        async with store.transaction() as session:
            ledger = (await session.exec(select(LedgerEvent))).all()
    finally:
        await store.close()
    assert [row.event_id for row in ledger] == ["pos-1"]


async def test_the_ledger_catches_a_redelivery_older_than_the_dedupe_window(
    time_skipping_env: WorkflowEnvironment, db_url: str
) -> None:
    env = time_skipping_env
    config = CONFIG.model_copy(update={"dedupe_window": 10})
    async with scenario(config, db_url, env) as world:
        at = await now(env)
        for n in range(12):
            await world.send(event("busy", "app_browse", at, event_id=f"browse-{n}"))
        await world.send(event("busy", "app_browse", at, event_id="browse-0"))
        await env.sleep(timedelta(seconds=5))
        view = await world.view("busy")
    assert view.state.events_applied == 12
    assert view.state.duplicates_ignored == 1


async def test_bad_input_is_recorded_and_ignored(
    time_skipping_env: WorkflowEnvironment, world: Scenario
) -> None:
    env = time_skipping_env
    at = await now(env)
    await world.send(event("careful", "purchase", at, amount=30))
    handle = env.client.get_workflow_handle("customer-careful")
    await handle.signal("event", {"event_id": "x1", "type": "teleport"})
    await handle.signal("event", "not even an object")
    await handle.signal(
        "event", {**event("someone-else", "purchase", at, amount=1).model_dump(mode="json")}
    )
    await handle.signal("no_such_signal", 42)
    await world.send(event("careful", "purchase", at, amount=20))
    await env.sleep(timedelta(seconds=5))

    view = await world.view("careful")
    assert view.state.events_applied == 2
    assert view.state.events_rejected == 4
    reasons = [e.summary for e in view.state.timeline if e.kind == "rejected"]
    assert any("type" in reason for reason in reasons)
    assert any("another customer" in reason for reason in reasons)
    assert any("no_such_signal" in reason for reason in reasons)


async def test_out_of_order_events_keep_the_cadence_in_order(
    time_skipping_env: WorkflowEnvironment, world: Scenario
) -> None:
    env = time_skipping_env
    at = await now(env)
    for offset in (0, 14, 7, 21):
        await world.send(event("weekly", "purchase", at - days(28) + days(offset), amount=10))
    await env.sleep(timedelta(seconds=5))
    view = await world.view("weekly")
    gaps = [
        b - a
        for a, b in zip(
            view.state.profile.purchase_times, view.state.profile.purchase_times[1:], strict=False
        )
    ]
    assert gaps == [days(7)] * 3
    # A weekly buyer's flatline: 3 x 7 days, inside the 10..90 day bounds.
    last = view.state.profile.last_activity_at
    assert last is not None
    assert remediation(view).silence_deadline == last + days(21)


async def test_cohorts_follow_the_customer_and_show_in_the_timeline(
    time_skipping_env: WorkflowEnvironment, world: Scenario
) -> None:
    env = time_skipping_env
    start = await now(env)
    await world.send(event("coco", "purchase", start, amount=80))
    await sleep_until(env, start + days(5))
    await world.send(event("coco", "purchase", await now(env), amount=120))
    await sleep_until(env, start + days(6))
    await world.send(event("coco", "purchase", await now(env), amount=900))
    await sleep_until(env, start + days(7))
    assert (await world.view("coco")).state.cohort == "vip"
    # Half a year without a purchase: lapsed (seen when the journey next wakes).
    await sleep_until(env, start + days(6 + 181 + 60))
    view = await world.view("coco")

    changes = [e.summary for e in view.state.timeline if e.kind == "cohort_changed"]
    assert changes == [
        "cohort none → new",
        "cohort new → repeat",
        "cohort repeat → vip",
        "cohort vip → lapsed",
    ]
    assert view.state.cohort == "lapsed"


async def test_a_vip_who_returns_gets_a_service_ticket_before_any_marketing(
    time_skipping_env: WorkflowEnvironment, world: Scenario, db_url: str
) -> None:
    env = time_skipping_env
    start = await now(env)
    for n, customer in enumerate(("vera", "rory")):  # vera spends like a VIP, rory not
        await world.send(event(customer, "purchase", start, f"{customer}-1", amount=700 - n * 600))
        await world.send(event(customer, "purchase", start, f"{customer}-2", amount=600 - n * 500))
    await sleep_until(env, start + days(1))
    assert (await world.view("vera")).state.cohort == "vip"
    for customer in ("vera", "rory"):
        await world.send(event(customer, "return", await now(env), amount=100))
    await sleep_until(env, start + days(7))

    vera = [(e.step_name, e.channel) for e in await engagements(db_url, "vera")]
    assert vera == [("VIP care ticket", "ticket"), ("how did we do", "email")]
    rory = [(e.step_name, e.channel) for e in await engagements(db_url, "rory")]
    assert rory == [("how did we do", "email"), ("exchange credit", "email")]
    started = [
        e.summary for e in (await world.view("vera")).state.timeline if e.kind == "ladder_started"
    ]
    assert started[-1].endswith("VIP care: a service ticket before any marketing")


async def test_a_vip_is_thanked_for_feedback(
    time_skipping_env: WorkflowEnvironment, world: Scenario, db_url: str
) -> None:
    env = time_skipping_env
    start = await now(env)
    await world.send(event("vic", "purchase", start, amount=1500))
    await sleep_until(env, start + days(1))
    await world.send(event("vic", "feedback", await now(env), "fb-1", rating=5))
    await sleep_until(env, start + days(2))

    [thanks] = await engagements(db_url, "vic")
    assert (thanks.step_name, thanks.channel, thanks.cause) == (
        "thank-you note",
        "email",
        "vip_care",
    )
    view = await world.view("vic")
    [thanked] = [e for e in view.state.timeline if e.kind == "engagement_sent"]
    assert (thanked.programme, thanked.event_id) == ("vip_thanks", "fb-1")
    assert VIP_THANKS.state_in(view.state) is None


async def test_erase_deletes_personal_data_keeps_spend_and_ends_the_journey(
    time_skipping_env: WorkflowEnvironment, world: Scenario, db_url: str
) -> None:
    env = time_skipping_env
    start = await now(env)
    handle = await world.send(event("erin", "purchase", start, "e1", amount=60))
    await world.send(event("erin", "return", start, "e2", amount=60))
    await sleep_until(env, start + days(1))  # the return ladder's first step has gone out
    assert len(await engagements(db_url, "erin")) == 1

    await request_erasure(world.client, "erin", "erase-test-1")
    await handle.result()  # the journey ends

    store = Store(db_url)
    try:
        async with store.transaction() as session:
            assert await session.get(Customer, "erin") is None
            assert (
                await session.exec(select(LedgerEvent).where(LedgerEvent.customer_id == "erin"))
            ).all() == []
            assert (
                await session.exec(select(OutboxMessage).where(OutboxMessage.customer_id == "erin"))
            ).all() == []
            kept = (
                await session.exec(select(Engagement).where(Engagement.customer_id == "erased"))
            ).all()
    finally:
        await store.close()
    assert [(e.step_name, e.cost) for e in kept] == [("how did we do", Decimal("0.05"))]
    assert all("erin" not in e.idempotency_key for e in kept)
    view = await world.view("erin")  # a closed journey still answers: with nothing
    assert view.state.profile.order_count == 0
    assert [e.kind for e in view.state.timeline] == ["erased"]

    # A later event is refused. (That a source can say the customer came back, and a
    # new journey starts, is tested on the dev server in test_api.py: the time-skipping
    # server does not deliver the start signal to a restarted workflow id.)
    with pytest.raises(JourneyClosedError):
        await world.send(event("erin", "purchase", await now(env), "e3", amount=10))


async def test_the_samantha_loop_cross_sells_a_new_category_and_closes_on_redemption(
    time_skipping_env: WorkflowEnvironment, world: Scenario, db_url: str
) -> None:
    """A high-value customer who only buys dresses browses dresses in the app: she is
    offered double points on shoes, not 10% off dresses; redeeming it in store closes the
    loop (conversion, points, a new category)."""
    env = time_skipping_env
    start = await now(env)
    await world.send(event("sam", "purchase", start, "s1", amount=150, category="dresses"))
    await world.send(event("sam", "purchase", start, "s2", amount=120, category="dresses"))
    await sleep_until(env, start + days(3))
    await world.send(event("sam", "app_browse", await now(env), "s3", category="dresses"))
    await sleep_until(env, start + days(4))
    offered = await world.view("sam")
    redeemed = {"offer_id": "double-points", "amount": 90, "category": "shoes"}
    await world.send(event("sam", "offer_redeemed", await now(env), "s4", **redeemed))
    await sleep_until(env, start + days(5))
    view = await world.view("sam")

    [chosen] = [e.summary for e in offered.state.timeline if e.kind == "offer_chosen"]
    assert chosen == (
        "double-points on shoes (generative) over pct10 (dilutive): "
        "browsing dresses; never bought shoes"
    )
    [sent] = await engagements(db_url, "sam")
    assert (sent.cause, sent.offer_id, sent.channel) == ("above_line", "double-points", "email")
    assert sent.outcome == "converted"
    store = Store(db_url)
    try:
        async with store.transaction() as session:
            [entry] = (
                await session.exec(select(WalletEntry).where(WalletEntry.customer_id == "sam"))
            ).all()
            customer = await session.get(Customer, "sam")
    finally:
        await store.close()
    assert (entry.offer_id, entry.kind, entry.redeemed_by_event) == (
        "double-points",
        "generative",
        "s4",
    )
    assert customer is not None
    assert (customer.cohort, customer.loyalty_points) == ("repeat", 450)
    assert customer.categories == ["dresses", "shoes"]
    [held] = offers(view).wallet
    assert (held.offer_id, held.category) == ("double-points", "shoes")
    assert held.redeemed_at is not None
    assert offers(view).conversions == 1
    assert view.state.profile.categories == ["dresses", "shoes"]
    assert view.state.profile.loyalty_points == 150 + 120 + 90 * 2


async def test_a_basket_just_under_the_threshold_gets_a_nudge(
    time_skipping_env: WorkflowEnvironment, world: Scenario, db_url: str
) -> None:
    env = time_skipping_env
    start = await now(env)
    await world.send(event("nia", "purchase", start, amount=85))
    await world.send(event("ned", "purchase", start, amount=45))  # far from it: nothing
    await sleep_until(env, start + days(1))

    [nudge] = await engagements(db_url, "nia")
    assert nudge.offer_id == "threshold-free-shipping"
    chosen = [
        e.summary for e in (await world.view("nia")).state.timeline if e.kind == "offer_chosen"
    ]
    assert chosen == ["threshold-free-shipping (generative): spend $15.00 more for free shipping"]
    assert await engagements(db_url, "ned") == []
