"""Record a journey history for the replay tests: run once per released workflow change.

    .venv/bin/python -m tests.histories.record NAME

Plays a scenario that touches every path of the journey (events, a bad event, a
duplicate, a flatline, ladder steps, a win, a return ladder, dormancy, a campaign sent
twice and converted; since 0.2 the welcome, milestones, a cross-sell, an unopened email
raised by the journey, a bounce and a new address, a failed payment's ladder, pivot
care, a lapse and its winback answered by feedback; since the audit, an operator's
pause and resume; since the feed's outages, a flatline moved on by one; an erasure) on
the time-skipping server and writes its history to ``tests/histories/NAME.json``.
Committed histories must keep replaying: that is what says a change to workflow code
is safe for running journeys, or needs ``workflow.patched``.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHistory

from activities.feed import Feed
from activities.store import Store
from runtime.temporal import request_erasure, steer
from testkit import scenario, time_skipping_server
from tests.journeys import NEVER_QUIET, NO_HOLDOUTS, days, event, now, sleep_until
from workflows.calendar import Campaign
from workflows.cohorts import CohortRules
from workflows.config import JourneyConfig
from workflows.contracts import Via
from workflows.journey import CustomerJourney
from workflows.operator import OperatorRequest

HERE = Path(__file__).parent


async def play() -> WorkflowHistory:
    config = JourneyConfig(
        holdouts=NO_HOLDOUTS,
        max_events_per_run=80,
        contact=NEVER_QUIET,
        cohorts=CohortRules(lapsed_after=days(40)),
    )
    with tempfile.TemporaryDirectory() as tmp:
        db_url = f"sqlite+aiosqlite:///{tmp}/e.db"
        async with time_skipping_server() as env, scenario(config, db_url, env) as world:
            start = await now(env)
            first = event("golden", "purchase", start, "g1", amount=90, category="trousers")
            handle = await world.send(first)
            await world.send(first)
            # The feed was out two days of her first silence: the flatline comes later.
            store = Store(db_url)
            try:
                await Feed(store, "ops").began(start + days(3), "till export", start + days(5))
            finally:
                await store.close()
            delivered = {"message_id": "m1"}
            await world.send(event("golden", "email_delivered", start, "d1", **delivered))
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
            moments: list[tuple[str, dict[str, Any]]] = [
                ("achievement", {"name": "first-review"}),
                ("email_bounced", {"message_id": "m2"}),
                ("profile_updated", {"email": "golden@example.com"}),
                ("payment_failed", {"reason": "card-expired"}),
                ("purchase", {"amount": 5}),
            ]
            for n, (type, properties) in enumerate(moments):
                await sleep_until(env, start + days(81 + n))
                await world.send(event("golden", type, await now(env), f"n{n}", **properties))
            # Silent for 40 days: lapsed, the winback asks why, and she answers.
            await sleep_until(env, start + days(126))
            await world.send(event("golden", "feedback", await now(env), "f1", rating=4))
            await sleep_until(env, start + days(127))
            ops = OperatorRequest(by="ops", reason="a call")
            await steer(env.client, "golden", CustomerJourney.pause, ops, update_id="pause-golden")
            await steer(
                env.client, "golden", CustomerJourney.resume, ops, update_id="resume-golden"
            )
            await sleep_until(env, start + days(130))
            await request_erasure(env.client, "golden", "erase-golden", "ops", Via.API)
            await handle.result()
            return await handle.fetch_history()


def main() -> None:
    name = sys.argv[1]
    history = asyncio.run(play())
    (HERE / f"{name}.json").write_text(history.to_json())
    print(f"wrote {HERE / name}.json ({len(history.events)} events)")


if __name__ == "__main__":
    main()
