"""Record a journey history for the replay tests: run once per released workflow change.

    .venv/bin/python -m tests.histories.record NAME

Plays a scenario that touches every path of the journey (events, a bad event, a
duplicate, a flatline, ladder steps, a win, a return ladder, dormancy, a campaign sent
twice and converted, an erasure) on the
time-skipping server and writes its history to ``tests/histories/NAME.json``.
Committed histories must keep replaying: that is what says a change to workflow code
is safe for running journeys, or needs ``workflow.patched``.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from temporalio.client import WorkflowHistory

from runtime.temporal import request_erasure
from testkit import scenario, time_skipping_server
from tests.journeys import NEVER_QUIET, days, event, now, sleep_until
from workflows.calendar import Campaign
from workflows.config import JourneyConfig

HERE = Path(__file__).parent


async def play() -> WorkflowHistory:
    config = JourneyConfig(max_events_per_run=50, contact=NEVER_QUIET)
    with tempfile.TemporaryDirectory() as tmp:
        db_url = f"sqlite+aiosqlite:///{tmp}/e.db"
        async with time_skipping_server() as env, scenario(config, db_url, env) as world:
            start = await now(env)
            handle = await world.send(event("golden", "purchase", start, "g1", amount=90))
            await world.send(event("golden", "purchase", start, "g1", amount=90))
            await handle.signal("event", {"event_id": "bad", "type": "teleport"})
            await sleep_until(env, start + days(36))
            await world.send(event("golden", "email_opened", await now(env), "g2"))
            await world.send(event("golden", "return", await now(env), "g3", amount=90))
            await sleep_until(env, start + days(80))
            await world.send(event("golden", "purchase", await now(env), "g4", amount=15))
            sale = Campaign(
                name="golden-sale",
                title="Golden Sale",
                starts_at=start + days(80),
                ends_at=start + days(90),
                content_key="golden-sale",
            )
            await world.campaign("golden", sale)
            await world.campaign("golden", sale)
            await sleep_until(env, start + days(80.5))
            await world.send(event("golden", "purchase", await now(env), "g5", amount=25))
            await sleep_until(env, start + days(81))
            await request_erasure(env.client, "golden", "erase-golden")
            await handle.result()
            return await handle.fetch_history()


def main() -> None:
    name = sys.argv[1]
    history = asyncio.run(play())
    (HERE / f"{name}.json").write_text(history.to_json())
    print(f"wrote {HERE / name}.json ({len(history.events)} events)")


if __name__ == "__main__":
    main()
