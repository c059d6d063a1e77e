"""Journeys on the time-skipping server: months of customer life in seconds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlmodel import select
from temporalio.testing import WorkflowEnvironment

from activities.store import Engagement, LedgerEvent, Store
from tests.journeys import Journeys, days, event, journeys, now, sleep_until
from workflows.config import JourneyConfig
from workflows.state import JourneyView, LinePosition

# Silence after 30 days without a known cadence; each step waits 5 days for a response.
CONFIG = JourneyConfig(
    silence_min=days(10), silence_default=days(30), silence_max=days(90),
    response_window=days(5), dormant_cadence=days(60),
)


@pytest.fixture
async def db_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'equator.db'}"


@pytest.fixture
async def world(time_skipping_env: WorkflowEnvironment, db_url: str) -> AsyncIterator[Journeys]:
    async with journeys(time_skipping_env.client, db_url, CONFIG) as j:
        yield j


async def engagements(db_url: str, customer_id: str) -> list[Engagement]:
    store = Store(db_url)
    try:
        async with store.transaction() as session:
            rows = await session.exec(
                select(Engagement).where(Engagement.customer_id == customer_id)
            )
            return sorted(rows.all(), key=lambda e: e.sent_at)
    finally:
        await store.close()


def kinds(view: JourneyView) -> list[str]:
    return [entry.kind for entry in view.state.timeline]


async def test_silence_climbs_the_ladder_step_by_step(
    time_skipping_env: WorkflowEnvironment, world: Journeys, db_url: str
) -> None:
    env = time_skipping_env
    start = await now(env)
    await world.send(event("silent", "purchase", start, amount=120))
    await sleep_until(env, start + days(29))
    assert (await world.view("silent")).state.ladder is None

    climbed = []
    for day in (31, 36, 41):  # flatline at 30, then one step per 5-day window
        await sleep_until(env, start + days(day))
        view = await world.view("silent")
        assert view.state.ladder is not None
        climbed.append(view.state.ladder.step)
    assert climbed == [0, 1, 2]
    assert view.state.line_position == LinePosition.BELOW

    sent = await engagements(db_url, "silent")
    assert [e.step_name for e in sent] == ["we miss you", "10% offer", "free shipping"]
    assert [e.cost for e in sent] == sorted(e.cost for e in sent)
    # On the journey's clock: flatline at day 30, then one step per 5-day window.
    sent_at = [e.at - start for e in view.state.timeline if e.kind == "step_sent"]
    assert [round(gap / days(1)) for gap in sent_at] == [30, 35, 40]
