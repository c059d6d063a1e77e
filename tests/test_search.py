"""Search attributes and the README's list queries, against the dev server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from runtime.settings import Settings
from runtime.temporal import register_search_attributes, request_erasure
from runtime.worker import running_worker
from testkit import Scenario, scenario
from tests.journeys import NEVER_QUIET, customer_in, event
from tests.servers import dev_server, eventually
from workflows import search
from workflows.config import JourneyConfig
from workflows.holdout import HoldoutRules, Period
from workflows.journey import journey_id


async def test_journeys_index_themselves_and_the_readme_queries_find_them(
    dev_world: Scenario,
) -> None:
    at = datetime.now(UTC)
    # A VIP who returned something (below the line, on the return ladder), a repeat
    # customer doing well, and a new one.
    await dev_world.send(event("vip-below", "purchase", at, "a1", amount=1500))
    await dev_world.send(event("vip-below", "return", at, "a2", amount=100))
    await dev_world.send(event("repeat-above", "purchase", at, "b1", amount=40))
    await dev_world.send(event("repeat-above", "purchase", at, "b2", amount=30))
    await dev_world.send(event("new-one", "app_browse", at, "c1"))
    await dev_world.send(event("new-one", "purchase", at, "c2", amount=25))

    queue = f"TaskQueue = '{dev_world.settings.task_queue}'"

    async def settles(query: str, n: int) -> None:
        """Visibility is eventually consistent: wait (with a deadline) for the count."""

        async def count() -> int:
            return (await dev_world.client.count_workflows(f"{query} AND {queue}")).count

        await eventually(count, lambda found: found == n)

    expected = {
        "Tier = 'vip' AND LinePosition = 'below'": 1,
        "LinePosition = 'below'": 1,
        "Ladder = 'return' AND LadderStep >= 1": 1,
        "Tier = 'repeat' AND LinePosition = 'above'": 1,
        "LifetimeValue > 1000": 1,
        "LifetimeValue < 100": 2,
        "Tier = 'new'": 1,
        # Event times are kept at the server clock's millisecond precision at most.
        f"LastEventAt >= '{(at - timedelta(seconds=1)).isoformat()}'": 3,
        "CustomerId = 'repeat-above'": 1,
    }
    for query, n in expected.items():
        await settles(query, n)


async def test_a_control_group_is_found_by_the_programmes_it_is_held_back_from(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    rules = HoldoutRules(shares={"remediation": 0.5}, period=Period.YEAR)
    config = JourneyConfig(contact=NEVER_QUIET, holdouts=rules)
    now = datetime.now(UTC)
    span = [now, now + timedelta(hours=1)]
    control = customer_in(rules, control=True, times=span)
    treated = customer_in(rules, control=False, times=span)
    async with scenario(config, f"sqlite+aiosqlite:///{tmp_path / 'e.db'}", dev_env) as world:
        for customer in (control, treated):
            await world.send(event(customer, "purchase", now, amount=20))
        queue = f"TaskQueue = '{world.settings.task_queue}'"

        async def held_back() -> list[str]:
            found = world.client.list_workflows(f"HeldBackFrom = 'remediation' AND {queue}")
            return [execution.id async for execution in found]

        assert await eventually(held_back, bool) == [journey_id(control)]
        assert (await world.view(control)).state.held_back_from == ["remediation"]
        assert (await world.view(treated)).state.held_back_from == []


async def test_a_worker_will_not_start_on_a_namespace_missing_an_attribute(tmp_path: Path) -> None:
    registered = [key for key in search.KEYS if key is not search.HELD_BACK_FROM]
    async with dev_server(search_attributes=registered) as env:
        settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'e.db'}")
        with pytest.raises(RuntimeError, match="HeldBackFrom are not registered"):
            async with running_worker(env.client, settings):
                pass
        assert await register_search_attributes(env.client) == ["HeldBackFrom"]
        async with running_worker(env.client, settings):
            pass


async def test_an_erased_journey_keeps_no_search_attribute_but_its_customer_id(
    dev_world: Scenario,
) -> None:
    await dev_world.send(event("erased-one", "purchase", datetime.now(UTC), "e1", amount=1234))
    handle = dev_world.client.get_workflow_handle(journey_id("erased-one"))
    ours = {key.name for key in search.KEYS}

    async def indexed() -> set[str]:
        described = await handle.describe()
        return {pair.key.name for pair in described.typed_search_attributes} & ours

    await eventually(indexed, lambda names: search.LIFETIME_VALUE.name in names)
    await request_erasure(dev_world.client, "erased-one", "forget-me")
    await handle.result()
    assert await indexed() == {search.CUSTOMER_ID.name}
