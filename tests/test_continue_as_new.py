"""Continue-as-new on the real dev server, with its suggestion threshold lowered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from testkit import scenario
from tests.journeys import NO_HOLDOUTS, event
from tests.servers import dev_server, eventually
from workflows.config import JourneyConfig

EVENTS = 300


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    # The server suggests continue-as-new at 60 history events instead of 4,096.
    async with dev_server("limit.historyCount.suggestContinueAsNew=60") as env:
        yield env


async def test_state_and_every_signal_survive_continue_as_new(
    env: WorkflowEnvironment, tmp_path: Path
) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'equator.db'}"
    async with scenario(JourneyConfig(holdouts=NO_HOLDOUTS), db_url, env) as world:
        at = await env.get_current_time()
        first = event("loyal", "purchase", at, "p-0", amount=1)
        handle = await world.send(first)
        first_run = (await handle.describe()).run_id

        # Senders race the hand-overs: 8 at a time, every event a purchase of $1.
        queue = [event("loyal", "purchase", at, f"p-{n}", amount=1) for n in range(1, EVENTS)]

        async def sender() -> None:
            while queue:
                await world.send(queue.pop())

        await asyncio.gather(*(sender() for _ in range(8)))
        view = await eventually(
            lambda: world.view("loyal"), lambda v: v.state.events_applied == EVENTS
        )
        description = await handle.describe()

    assert view.state.profile.lifetime_value == Decimal(EVENTS)
    assert view.state.profile.order_count == EVENTS
    assert view.state.duplicates_ignored == 0
    assert description.status == WorkflowExecutionStatus.RUNNING
    assert description.run_id != first_run

    async def runs() -> int:
        query = f"WorkflowId = '{handle.id}'"
        return len([wf async for wf in env.client.list_workflows(query)])

    await eventually(runs, lambda n: n >= 3)  # at least two hand-overs under load
