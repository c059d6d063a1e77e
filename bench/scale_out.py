"""Scale-out on one machine: API and worker processes added against one dev server.

    .venv/bin/python -m bench.scale_out [--events 3000] [--shapes 1x1,2x2]

For each shape (API processes by worker processes, as deployed: `equator api`,
`python -m worker`), on a fresh Postgres database and task queue: post the events as
fast as the APIs take them (64 in flight, round robin over the APIs) to 400 customers
whose journeys a first round started, then wait until every one is in the ledger.
Prints events accepted/s (202s) and applied/s (in the ledger), and each against the
first shape. The dev server, the processes and the load
share the machine's cores: the figures say where adding processes stops paying.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
import uuid
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench.api_latency import NO_QUIET_HOURS, ledger_count, purchase
from bench.processes import dev_server, fresh_database, running_api, running_worker

IN_FLIGHT = 64
CUSTOMERS = 400
APPLY_DEADLINE = 600.0


@dataclass(frozen=True)
class Shape:
    apis: int
    workers: int

    @property
    def label(self) -> str:
        return f"{self.apis} API, {self.workers} worker"


@dataclass(frozen=True)
class Result:
    shape: Shape
    accepted: float
    applied: float


async def post_all(urls: Sequence[tuple[str, str]], events: Sequence[dict[str, Any]]) -> float:
    """Post every event, ``IN_FLIGHT`` at once, round robin over the APIs; seconds taken."""
    clients = [
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120)
        for url, key in urls
    ]
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def post(client: httpx.AsyncClient, event: dict[str, Any]) -> None:
        async with gate:
            (await client.post("/v1/events", json=event)).raise_for_status()

    started = time.perf_counter()
    try:
        await asyncio.gather(
            *(post(client, event) for client, event in zip(itertools.cycle(clients), events))
        )
    finally:
        for client in clients:
            await client.aclose()
    return time.perf_counter() - started


async def measure(shape: Shape, address: str, events_count: int) -> Result:
    async with fresh_database() as database_url, AsyncExitStack() as stack:
        settings = {"EQUATOR_TASK_QUEUE": f"scale-{uuid.uuid4().hex[:6]}", **NO_QUIET_HOURS}
        for _ in range(shape.workers):
            await stack.enter_async_context(running_worker(address, database_url, settings))
        apis = [
            await stack.enter_async_context(running_api(address, database_url, settings))
            for _ in range(shape.apis)
        ]
        urls = [(api.url, api.key) for api in apis]
        run = uuid.uuid4().hex[:6]
        customers = [f"{run}-c{n}" for n in range(CUSTOMERS)]
        engine = create_async_engine(database_url)
        try:
            # Every journey started and every process serving before the clock starts.
            warm = [purchase(customer, f"{run}-warm-{customer}") for customer in customers]
            await post_all(urls, warm)
            await applied(engine, f"{run}-warm", len(warm), shape)
            tag = f"{run}-load"
            events = [purchase(customers[n % CUSTOMERS], f"{tag}-{n}") for n in range(events_count)]
            started = time.perf_counter()
            posting = await post_all(urls, events)
            await applied(engine, tag, len(events), shape)
            applying = time.perf_counter() - started
        finally:
            await engine.dispose()
    return Result(shape, len(events) / posting, len(events) / applying)


async def applied(engine: AsyncEngine, tag: str, count: int, shape: Shape) -> None:
    """Wait until ``count`` events tagged ``tag`` are in the ledger."""
    deadline = time.perf_counter() + APPLY_DEADLINE
    while await ledger_count(engine, tag) < count:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{shape.label}: not applied in {APPLY_DEADLINE:.0f}s")
        await asyncio.sleep(0.2)


async def bench(shapes: Sequence[Shape], events_count: int) -> list[Result]:
    env = await dev_server()
    async with env:
        address = env.client.service_client.config.target_host
        return [await measure(shape, address, events_count) for shape in shapes]


def table(results: Sequence[Result], events_count: int) -> str:
    first = results[0]
    lines = [
        f"| {events_count} events to {CUSTOMERS} customers, Postgres | accepted/s | applied/s "
        f"| accepted, vs {first.shape.label} | applied, vs {first.shape.label} |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {r.shape.label} | {r.accepted:.0f} | {r.applied:.0f} "
        f"| {r.accepted / first.accepted:.2f} | {r.applied / first.applied:.2f} |"
        for r in results
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--shapes", default="1x1,2x2", help="APIsxworkers, comma-separated")
    args = parser.parse_args()
    shapes = [Shape(*(int(n) for n in shape.split("x"))) for shape in args.shapes.split(",")]
    print(table(asyncio.run(bench(shapes, args.events)), args.events))


if __name__ == "__main__":
    main()
