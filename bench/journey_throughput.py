"""Journey throughput on the dev server: how fast events are accepted and applied.

    .venv/bin/python -m bench.journey_throughput [--customers 200] [--events 5]

Starts a dev server (in memory) and a worker in this process, sends every customer's
events by signal-with-start with 64 in flight, then waits until every journey has
applied all of its events. Prints accepted/s, applied/s and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
import uuid
from datetime import UTC, datetime

from bench.processes import dev_server
from runtime.settings import Settings
from runtime.temporal import journey_view, register_search_attributes, send_event
from runtime.worker import running_worker
from workflows.events import CustomerEvent, make_event

IN_FLIGHT = 64


async def bench(customers: int, events_each: int) -> None:
    env = await dev_server()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            task_queue=f"bench-{uuid.uuid4().hex[:6]}",
            database_url=f"sqlite+aiosqlite:///{tmp}/bench.db",
        )
        async with env, running_worker(env.client, settings):
            await register_search_attributes(env.client)
            ids = [f"bench-{n}" for n in range(customers)]
            now = datetime.now(UTC)
            events = [
                make_event(f"{customer}-{k}", customer, "purchase", now, {"amount": 10})
                for k in range(events_each)
                for customer in ids
            ]
            gate = asyncio.Semaphore(IN_FLIGHT)

            async def send(event: CustomerEvent) -> None:
                async with gate:
                    await send_event(env.client, settings.task_queue, settings.journey, event)

            started = time.perf_counter()
            await asyncio.gather(*(send(event) for event in events))
            accepted = time.perf_counter() - started

            async def applied(customer: str) -> int:
                return (await journey_view(env.client, customer)).state.events_applied

            while True:
                counts = await asyncio.gather(*(applied(c) for c in ids))
                if sum(counts) == len(events):
                    break
                await asyncio.sleep(0.2)
            done = time.perf_counter() - started
            for customer in ids:
                await env.client.get_workflow_handle(f"customer-{customer}").terminate()

    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"customers={customers} events={len(events)} in_flight={IN_FLIGHT}")
    print(f"accepted: {len(events) / accepted:.0f} events/s ({accepted:.1f}s)")
    print(f"applied:  {len(events) / done:.0f} events/s ({done:.1f}s, worker in-process)")
    print(f"peak RSS of bench + worker: {peak_mib:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--events", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(bench(args.customers, args.events))


if __name__ == "__main__":
    main()
