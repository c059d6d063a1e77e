"""What a campaign means for one journey: personalised, suppressed, held, converted.
Scenario on the time-skipping server, on SQLite and Postgres."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlmodel import select
from temporalio.testing import WorkflowEnvironment

from activities.store import CampaignContactRecord, Store
from testkit import engagements, scenario
from tests.journeys import (
    NEVER_QUIET,
    NO_HOLDOUTS,
    PROGRAMMES_0_1,
    days,
    event,
    now,
    remediation,
    sleep_until,
)
from workflows.calendar import Campaign
from workflows.config import JourneyConfig

CONFIG = JourneyConfig(holdouts=NO_HOLDOUTS, contact=NEVER_QUIET, enabled=PROGRAMMES_0_1)


def sale(start: datetime, **fields: Any) -> Campaign:
    values: dict[str, Any] = {
        "name": "spring-sale",
        "title": "Spring Sale",
        "starts_at": start,
        "ends_at": start + days(14),
        "content_key": "spring-sale",
        "categories": ("knitwear", "shoes"),
        "offer_id": "pct10",
        "cost": Decimal("0.02"),
    }
    return Campaign.model_validate(values | fields)


async def contacts(database_url: str, campaign: str) -> dict[str, CampaignContactRecord]:
    store = Store(database_url)
    try:
        async with store.transaction() as session:
            rows = await session.exec(
                select(CampaignContactRecord).where(CampaignContactRecord.campaign == campaign)
            )
            return {row.customer_id: row for row in rows.all()}
    finally:
        await store.close()


async def test_a_campaign_speaks_to_what_each_customer_buys_and_converts_on_purchase(
    time_skipping_env: WorkflowEnvironment, database_url: str
) -> None:
    env = time_skipping_env
    async with scenario(CONFIG, database_url, env) as world:
        start = await now(env)
        await world.send(event("dana", "purchase", start, amount=80, category="dresses"))
        await world.send(event("dana", "purchase", start, amount=60, category="shoes"))
        await world.send(event("gus", "purchase", start, amount=30, category="garden"))
        await sleep_until(env, start + days(1))
        campaign = sale(await now(env))
        for customer in ("dana", "gus", "nova"):  # nova has no journey yet: one starts
            await world.campaign(customer, campaign)
        await sleep_until(env, start + days(2))
        await world.send(event("dana", "purchase", await now(env), amount=45, category="shoes"))
        await sleep_until(env, start + days(3))
        dana = await world.view("dana")
        nova = await world.view("nova")

    sent = {
        customer: [
            (e.cause, e.step_name, e.channel, e.offer_id) for e in found if e.cause == "campaign"
        ]
        for customer in ("dana", "gus", "nova")
        for found in [await engagements(database_url, customer)]
    }
    assert sent == {
        "dana": [("campaign", "spring-sale/shoes", "email", "pct10")],
        "gus": [("campaign", "spring-sale/general", "email", "pct10")],
        "nova": [("campaign", "spring-sale/general", "email", "pct10")],
    }
    filed = await contacts(database_url, "spring-sale")
    assert {who: row.outcome for who, row in filed.items()} == dict.fromkeys(
        ("dana", "gus", "nova"), "sent"
    )
    assert filed["dana"].converted_at is not None
    assert filed["gus"].converted_at is None
    assert [e.kind for e in dana.state.timeline if e.programme == "campaigns"] == [
        "campaign_received",
        "engagement_sent",
        "campaign_converted",
    ]
    assert nova.state.events_applied == 0  # a journey started by the campaign alone


async def test_a_campaign_is_suppressed_in_remediation_and_without_consent(
    time_skipping_env: WorkflowEnvironment, database_url: str
) -> None:
    env = time_skipping_env
    async with scenario(CONFIG, database_url, env) as world:
        start = await now(env)
        await world.send(event("carl", "purchase", start, amount=300, category="coats"))
        await world.send(event("carl", "complaint", start, reason="damaged"))
        await world.send(event("una", "purchase", start, amount=20))
        for channel in ("email", "push", "sms"):
            await world.send(event("una", "consent_changed", start, channel=channel, granted=False))
        await sleep_until(env, start + timedelta(hours=1))
        campaign = sale(await now(env))
        await world.campaign("carl", campaign)
        await world.campaign("una", campaign)
        await sleep_until(env, start + timedelta(hours=2))
        carl = await world.view("carl")

    filed = await contacts(database_url, "spring-sale")
    assert {who: (row.outcome, row.reason) for who, row in filed.items()} == {
        "carl": ("suppressed", "in complaint remediation"),
        "una": ("suppressed", "no consent for email or its fallbacks"),
    }
    assert not [e for e in await engagements(database_url, "carl") if e.cause == "campaign"]
    assert remediation(carl).ladder is not None  # the complaint ladder climbs on, untouched


async def test_quiet_hours_hold_a_campaign_until_morning_and_a_second_signal_changes_nothing(
    time_skipping_env: WorkflowEnvironment, database_url: str
) -> None:
    env = time_skipping_env
    start = await now(env)
    # Quiet from now until three hours from now (UTC, the default zone).
    quiet = NEVER_QUIET.model_copy(
        update={
            "quiet_start": (start - timedelta(minutes=1)).time().replace(microsecond=0),
            "quiet_end": (start + timedelta(hours=3)).time().replace(second=0, microsecond=0),
        }
    )
    async with scenario(CONFIG.model_copy(update={"contact": quiet}), database_url, env) as world:
        await world.send(event("hana", "purchase", start, amount=50, category="shoes"))
        campaign = sale(start)
        await world.campaign("hana", campaign)
        await world.campaign("hana", campaign)  # the fan-out, retried after a crash
        await sleep_until(env, start + timedelta(hours=1))
        held = await world.view("hana")
        await sleep_until(env, start + timedelta(hours=4))
        view = await world.view("hana")

    assert held.next_action == "send the Spring Sale campaign"
    kinds = [e.kind for e in held.state.timeline if e.programme == "campaigns"]
    # The retried signal lands in the first one's workflow task (before the hold) or in
    # the next (after it), as the worker happens to poll: either way it changes nothing.
    assert kinds[0] == "campaign_received"
    assert sorted(kinds[1:]) == ["campaign_duplicate", "engagement_held"]
    [waits] = [e.summary for e in held.state.timeline if e.kind == "engagement_held"]
    assert waits.startswith("Spring Sale campaign waits until")
    assert len([e for e in await engagements(database_url, "hana") if e.cause == "campaign"]) == 1
    [sent] = [e for e in view.state.timeline if e.kind == "engagement_sent"]
    assert sent.at - start >= timedelta(hours=2, minutes=58)  # when the quiet hours ended
    assert view.state.duplicates_ignored == 1


async def test_a_campaign_purchase_wins_the_ladder_in_progress(
    time_skipping_env: WorkflowEnvironment, database_url: str
) -> None:
    env = time_skipping_env
    config = CONFIG.model_copy(update={"silence_default": days(30)})
    async with scenario(config, database_url, env) as world:
        start = await now(env)
        await world.send(event("quinn", "purchase", start, amount=35, category="shoes"))
        await sleep_until(env, start + days(31))  # silent: the silence ladder's first step
        campaign = sale(await now(env))
        await world.campaign("quinn", campaign)
        await sleep_until(env, start + days(32))
        await world.send(event("quinn", "purchase", await now(env), amount=70, category="shoes"))
        await sleep_until(env, start + days(33))
        view = await world.view("quinn")

    assert remediation(view).ladder is None
    assert remediation(view).won == 1
    [won] = [e.summary for e in view.state.timeline if e.kind == "ladder_won"]
    assert "silence ladder won at step 1 by purchase" in won
    filed = await contacts(database_url, "spring-sale")
    assert filed["quinn"].outcome == "sent"
    assert filed["quinn"].converted_at is not None
