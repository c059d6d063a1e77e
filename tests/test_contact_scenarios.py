"""The contact policy in running journeys, on the time-skipping server (both databases)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from temporalio.testing import WorkflowEnvironment

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
from workflows.config import JourneyConfig
from workflows.contact import ContactPolicy


def config(contact: ContactPolicy = NEVER_QUIET, response_window: float = 5) -> JourneyConfig:
    return JourneyConfig(
        holdouts=NO_HOLDOUTS,
        enabled=PROGRAMMES_0_1,
        silence_min=days(10),
        silence_default=days(30),
        silence_max=days(90),
        response_window=days(response_window),
        contact=contact,
    )


def quiet_around(local: datetime) -> ContactPolicy:
    """Quiet hours from an hour before ``local`` (a local time) to two hours after it."""
    return NEVER_QUIET.model_copy(
        update={
            "quiet_start": (local - timedelta(hours=1)).time().replace(microsecond=0),
            "quiet_end": (local + timedelta(hours=2)).time().replace(second=0, microsecond=0),
        }
    )


def opening(local: datetime, quiet: ContactPolicy) -> datetime:
    """When the quiet hours around ``local`` end."""
    opened = datetime.combine(local.date(), quiet.quiet_end, tzinfo=local.tzinfo)
    return opened if opened >= local else opened + timedelta(days=1)


async def test_consent_withdrawn_mid_ladder_falls_back_then_skips(
    time_skipping_env: WorkflowEnvironment, database_url: str
) -> None:
    env = time_skipping_env
    async with scenario(config(), database_url, env) as world:
        start = await now(env)
        await world.send(event("cora", "purchase", start, amount=300))
        await sleep_until(env, start + days(31))  # step 1, "we miss you" by email
        withdrawn = await now(env)
        await world.send(
            event("cora", "consent_changed", withdrawn, channel="email", granted=False)
        )
        await sleep_until(env, start + days(36))  # step 2, an email step: by push instead
        withdrawn = await now(env)
        await world.send(event("cora", "consent_changed", withdrawn, channel="push", granted=False))
        await sleep_until(env, start + days(42))  # steps 3 (push) and 4 (sms): nowhere to go
        view = await world.view("cora")

    assert [(e.step_name, e.channel) for e in await engagements(database_url, "cora")] == [
        ("we miss you", "email"),
        ("an offer", "push"),
    ]
    skipped = [e.summary for e in view.state.timeline if e.kind == "engagement_skipped"]
    assert len(skipped) == 2
    assert "free shipping by push" in skipped[0]
    assert "no consent for push or its fallbacks" in skipped[0]
    assert view.state.profile.consent == {"email": False, "push": False}
    assert remediation(view).dormant  # an exhausted ladder, as always


async def test_a_frequency_cap_defers_a_touch(
    time_skipping_env: WorkflowEnvironment, database_url: str
) -> None:
    env = time_skipping_env
    capped = NEVER_QUIET.model_copy(update={"marketing_cap": 1})
    async with scenario(config(capped, response_window=2), database_url, env) as world:
        start = await now(env)
        await world.send(event("fran", "purchase", start, amount=300))
        await sleep_until(env, start + days(33))  # step 2 due at day 32: held back
        held = await world.view("fran")
        await sleep_until(env, start + days(38))
        view = await world.view("fran")

    assert remediation(held).ladder is not None
    assert "silence-1/step-2" in held.state.held
    assert held.next_action == "send step 2 of silence ladder"
    deferred = [e.summary for e in view.state.timeline if e.kind == "engagement_held"]
    assert len(deferred) == 1
    assert "frequency cap: 1 per 7 days" in deferred[0]
    steps = [e.at - start for e in view.state.timeline if e.kind == "engagement_sent"]
    assert [round(gap / days(1)) for gap in steps] == [30, 37]  # 7 days apart, not 2


async def test_quiet_hours_hold_a_step_until_morning_in_the_customers_zone(
    time_skipping_env: WorkflowEnvironment, database_url: str
) -> None:
    env = time_skipping_env
    start = await now(env)
    flatline = start + days(30)
    tokyo = "Asia/Tokyo"
    local = flatline.astimezone(ZoneInfo(tokyo))
    quiet = quiet_around(local)
    async with scenario(config(quiet), database_url, env) as world:
        await world.send(event("tomo", "purchase", start, amount=300))
        await world.send(event("tomo", "profile_updated", start, timezone=tokyo))
        await sleep_until(env, flatline + timedelta(hours=3))
        view = await world.view("tomo")

    [deferred] = [e for e in view.state.timeline if e.kind == "engagement_held"]
    assert f"quiet hours until {quiet.quiet_end:%H:%M} {tokyo}" in deferred.summary
    [step] = [e for e in view.state.timeline if e.kind == "engagement_sent"]
    assert abs(step.at - opening(local, quiet)) < timedelta(minutes=1)


async def test_an_offer_in_quiet_hours_waits_for_morning(
    time_skipping_env: WorkflowEnvironment, database_url: str
) -> None:
    env = time_skipping_env
    start = await now(env)
    local = start.astimezone(ZoneInfo("UTC"))
    quiet = quiet_around(local)
    async with scenario(config(quiet), database_url, env) as world:
        await world.send(event("quin", "purchase", start, amount=85))
        await sleep_until(env, start + timedelta(minutes=30))
        held = await world.view("quin")
        await sleep_until(env, start + timedelta(hours=3))
        view = await world.view("quin")

    assert held.next_action == "send the threshold-free-shipping offer"
    assert [e.kind for e in held.state.timeline if e.programme == "above_the_line"] == [
        "offer_chosen",
        "engagement_held",
    ]
    [sent] = [e for e in view.state.timeline if e.kind == "engagement_sent"]
    assert abs(sent.at - opening(local, quiet)) < timedelta(minutes=1)
    [nudge] = await engagements(database_url, "quin")
    assert nudge.offer_id == "threshold-free-shipping"
