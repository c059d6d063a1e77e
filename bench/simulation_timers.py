"""When a simulation's journeys wake: the distinct instants their timers fire at, per tick.

    .venv/bin/python -m bench.simulation_timers [--customers 150] [--days 120]

The time-skipping server moves its clock from one timer's instant to the next only once
every workflow task is done, so journeys whose timers fire at distinct instants are
served one after another. This runs the shipped personas (one process), reads every
journey's history before the run ends, and prints the history events per customer-year
by type, then how many distinct instants timers fired at per tick of the driver's clock
(and how many timers per instant): the length of that serial chain.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

from temporalio.api.enums.v1 import EventType

from runtime.logging import configure_logging
from starter import simulation
from starter.personas import PersonaPopulation, load_personas
from starter.population import EPOCH
from workflows.journey import journey_id


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=150)
    parser.add_argument("--days", type=float, default=120)
    args = parser.parse_args()
    configure_logging(logging.WARNING)
    kinds: Counter[str] = Counter()
    fired: list[datetime] = []
    journeys = 0

    class Reading(simulation.Driver):
        async def end(self) -> None:
            nonlocal journeys
            for customer in sorted(self.customers):
                handle = self.env.client.get_workflow_handle(journey_id(customer))
                history = await handle.fetch_history()
                journeys += 1
                for event in history.events:
                    kinds[EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")] += 1
                    if event.event_type == EventType.EVENT_TYPE_TIMER_FIRED:
                        fired.append(event.event_time.ToDatetime())
            await super().end()

    simulation.Driver = Reading  # type: ignore[misc]
    personas = load_personas(Path("personas.toml")).scaled(args.customers)
    await simulation.simulate(PersonaPopulation(personas), args.days, seed=1)

    years = journeys * args.days / 365
    print(f"{journeys} journeys over {args.days:g} days; history events per customer-year:")
    for kind, count in kinds.most_common():
        print(f"  {count / years:8.1f}  {kind.lower()}")
    per_tick: defaultdict[int, Counter[datetime]] = defaultdict(Counter)
    start = EPOCH.replace(tzinfo=None)
    for at in fired:
        tick = int((at - start).total_seconds() / 86_400 // simulation.TICK)
        per_tick[tick][at] += 1
    instants = [len(moments) for moments in per_tick.values()]
    timers = [n for moments in per_tick.values() for n in moments.values()]
    ticks = int(args.days // simulation.TICK) + 1
    print(
        f"\ntimers fired: {len(fired)}; distinct instants per tick: mean "
        f"{sum(instants) / ticks:.1f}, max {max(instants, default=0)}; timers per instant: "
        f"median {statistics.median(timers) if timers else 0:g}, max {max(timers, default=0)}"
    )


if __name__ == "__main__":
    asyncio.run(main())
