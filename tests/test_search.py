"""Search attributes and the README's list queries, against the dev server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from testkit import Scenario
from tests.journeys import event
from tests.servers import eventually


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
