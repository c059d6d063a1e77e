"""How fast `equator simulate` runs, against a bare reference on the same kind of server.

    .venv/bin/python -m bench.simulation_speed [--customers 300] [--days 365]
        [--processes 1,2]

Runs the shipped personas, scaled to ``--customers``, for ``--days`` with each number
of processes, then, as the reference, sends as many events as the simulation did to
``BareEntity`` workflows (``bench/versus_bare.py``) on a fresh time-skipping server,
64 in flight. Prints seconds, customer-years per minute, journey actions (events sent
plus engagements recorded) per second, and the bare events per second: the ratio of
the two is the figure that carries across machines.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
import uuid
from pathlib import Path

from temporalio.worker import Worker

from bench.versus_bare import (
    BARE_QUEUE,
    BARE_RUNNER,
    BareEntity,
    bare_side,
    bounded,
    purchases,
    until_applied,
)
from runtime.logging import configure_logging
from starter.devstack import time_skipping_server
from starter.personas import PersonaPopulation, load_personas
from starter.simulation import SimulationResult, simulate


async def bare_events_per_second(events: int, customers: int) -> float:
    """Events to bare entities on a time-skipping server, per second, until all applied."""
    async with time_skipping_server() as env:
        side = bare_side(env.client)
        names = [f"b{n}-{uuid.uuid4().hex[:6]}" for n in range(customers)]
        per_customer = max(1, events // customers)
        async with Worker(
            env.client,
            task_queue=BARE_QUEUE,
            workflows=[BareEntity],
            workflow_runner=BARE_RUNNER,
        ):
            began = time.monotonic()
            await bounded(side.send(e) for e in purchases(names, 0, per_customer))
            await until_applied(side, names, per_customer)
            seconds = time.monotonic() - began
            for name in names:
                await env.client.get_workflow_handle(side.workflow_id(name)).terminate()
    return per_customer * customers / seconds


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--days", type=float, default=365)
    parser.add_argument("--processes", default="1,2")
    args = parser.parse_args()
    configure_logging(logging.WARNING)
    personas = load_personas(Path("personas.toml")).scaled(args.customers)
    runs: list[tuple[int, SimulationResult]] = []
    for processes in (int(p) for p in args.processes.split(",")):
        result, _ = await simulate(
            PersonaPopulation(personas), args.days, seed=1, processes=processes
        )
        runs.append((processes, result))
    customers = sum(p.count for p in personas.personas)
    reference = await bare_events_per_second(runs[0][1].events_sent, customers)
    print(
        f"\n{sum(runs[0][1].customers.values())} customers over {args.days:g} days "
        f"(bare reference: {reference:,.0f} events/s on a time-skipping server)\n"
    )
    print("| processes | seconds | customer-years per minute | actions/s | actions/s ÷ bare |")
    print("| --- | --- | --- | --- | --- |")
    for processes, result in runs:
        people = sum(result.customers.values())
        actions = (result.events_sent + result.engagements) / result.seconds
        years = people * args.days / 365 / (result.seconds / 60)
        print(
            f"| {processes} | {result.seconds:g} | {years:,.0f} | {actions:,.0f} "
            f"| {actions / reference:.2f} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
