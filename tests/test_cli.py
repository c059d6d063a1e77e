"""The `equator` CLI end to end: a real dev server, a real worker, real processes."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.journeys import Journeys, journeys
from tests.servers import dev_server, eventually


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    async with dev_server() as env:
        yield env


@pytest.fixture
async def world(env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[Journeys]:
    async with journeys(env.client, f"sqlite+aiosqlite:///{tmp_path / 'equator.db'}") as world:
        yield world


async def equator(world: Journeys, *args: str) -> tuple[int, str, str]:
    target = world.client.service_client.config.target_host
    environment = {
        **os.environ,
        "EQUATOR_TEMPORAL_ADDRESS": target,
        "EQUATOR_TASK_QUEUE": world.settings.task_queue,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "starter.cli", *args,
        env=environment, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_send_then_show(world: Journeys) -> None:
    customer = f"cli-{uuid.uuid4().hex[:6]}"
    world.customers.add(customer)
    code, out, _ = await equator(
        world, "send", customer, "purchase", "amount=42.5", "category=shoes"
    )
    assert code == 0
    assert f"customer-{customer}" in out

    view = await eventually(lambda: world.view(customer), lambda v: v.state.events_applied == 1)
    assert str(view.state.profile.lifetime_value) == "42.5"

    code, out, _ = await equator(world, "show", customer, "--json")
    assert code == 0
    assert json.loads(out)["state"]["line_position"] == "above"
    code, out, _ = await equator(world, "show", customer)
    assert "is **above** the line" in out
    assert "purchase: amount 42.5, category shoes" in out


async def test_bad_input_and_unknown_customers_get_clear_errors(world: Journeys) -> None:
    code, _, err = await equator(world, "send", "c", "purchase", "amount=cheap")
    assert code == 2
    assert "purchase.properties.amount" in err

    code, _, err = await equator(world, "show", f"nobody-{uuid.uuid4().hex[:6]}")
    assert code == 1
    assert "no journey for customer" in err


async def test_a_closed_journey_is_not_restarted_blank(world: Journeys) -> None:
    customer = f"erased-{uuid.uuid4().hex[:6]}"
    world.customers.add(customer)
    assert (await equator(world, "send", customer, "app_browse"))[0] == 0
    await world.client.get_workflow_handle(f"customer-{customer}").terminate("operator")

    code, _, err = await equator(world, "send", customer, "purchase", "amount=5")
    assert code == 1
    assert "has ended; it is not restarted implicitly" in err
