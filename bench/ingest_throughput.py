"""Ingest API throughput: requests per second over real HTTP, single events and batches,
the tracking spec's batches beside the native ones (the same purchases, in the same run).

    .venv/bin/python -m bench.ingest_throughput [--events 2000] [--customers 400]
        [--concurrency 32] [--batch-sizes 100,500] [--database-url postgresql+asyncpg://…]

Starts a dev server (in memory) and `equator api` in its own process (one uvicorn
worker), then drives it from this process with httpx: ``--events`` single events with
``--concurrency`` requests in flight, then the same number of events in batches of each
size. Events go to ``--customers`` customers whose journeys a warm-up has started;
``--customers 0`` gives every event a customer of its own, so that each one starts a
journey (the costlier case). No journey worker runs: what is measured is acceptance
(validated, signalled into Temporal by signal-with-start, receipted), which is what a
202 promises.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from bench.processes import dev_server, running_api
from starter.client import event_body


def event(run: str, n: int, customers: int) -> dict[str, Any]:
    customer = f"bench-{run}-{n}" if customers == 0 else f"bench-{n % customers}"
    purchase = {"amount": "19.99", "category": "shoes"}
    return event_body(customer, "purchase", purchase, event_id=f"{run}-{n}")


def track(run: str, n: int, customers: int) -> dict[str, Any]:
    """The same purchase as the tracking spec says it: an Order Completed."""
    customer = f"bench-{run}-{n}" if customers == 0 else f"bench-{n % customers}"
    return {
        "type": "track",
        "messageId": f"{run}-{n}",
        "userId": customer,
        "event": "Order Completed",
        "properties": {"revenue": 19.99, "products": [{"category": "shoes", "price": 19.99}]},
        "timestamp": datetime.now(UTC).isoformat(),
    }


async def timed(label: str, events: int, requests: list[Coroutine[Any, Any, None]]) -> float:
    """Runs the requests; prints and returns events per second."""
    started = time.perf_counter()
    await asyncio.gather(*requests)
    took = time.perf_counter() - started
    rate = len(requests) / took
    print(f"{label:<44} {rate:7.1f} req/s {events / took:7.0f} events/s ({took:.1f}s)")
    return events / took


async def bench(
    events: int, customers: int, concurrency: int, batch_sizes: Sequence[int], database: str
) -> None:
    env = await dev_server()
    async with env:
        with tempfile.TemporaryDirectory() as tmp:
            address = env.client.service_client.config.target_host
            database_url = database or f"sqlite+aiosqlite:///{tmp}/bench.db"
            async with running_api(address, database_url) as api:
                await drive(api.url, api.key, events, customers, concurrency, batch_sizes)
                print(f"peak RSS of the API process: {peak_rss(api.pid)}")


def peak_rss(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return f"{int(line.split()[1]) / 1024:.0f} MiB"
    except OSError:
        pass
    return "n/a"


async def drive(
    url: str, key: str, events: int, customers: int, concurrency: int, batch_sizes: Sequence[int]
) -> None:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits) as http:
        gate = asyncio.Semaphore(concurrency)

        async def post(path: str, body: Any) -> None:
            async with gate:
                response = await http.post(path, json=body, timeout=60)
                response.raise_for_status()

        # Warm up connections and code paths, and start the journeys events will go to.
        run = uuid.uuid4().hex[:6]
        warm = max(customers, 200)
        await asyncio.gather(*(post("/v1/events", event(run, n, customers)) for n in range(warm)))

        whose = f"{customers} existing journeys" if customers else "a new journey each"
        print(f"{events} events to {whose}, {concurrency} requests in flight, one API process")
        run = uuid.uuid4().hex[:6]
        await timed(
            "single events (POST /v1/events)",
            events,
            [post("/v1/events", event(run, n, customers)) for n in range(events)],
        )
        for size in batch_sizes:
            run = uuid.uuid4().hex[:6]
            batches = [
                {
                    "events": [
                        event(run, n, customers) for n in range(start, min(start + size, events))
                    ]
                }
                for start in range(0, events, size)
            ]
            native = await timed(
                f"batches of {size} (POST /v1/events:batch)",
                events,
                [post("/v1/events:batch", batch) for batch in batches],
            )
            run = uuid.uuid4().hex[:6]
            tracked = [
                {
                    "batch": [
                        track(run, n, customers) for n in range(start, min(start + size, events))
                    ],
                    "sentAt": datetime.now(UTC).isoformat(),
                    "writeKey": key,
                }
                for start in range(0, events, size)
            ]
            spec = await timed(
                f"tracking spec, batches of {size} (POST /v1/batch)",
                events,
                [post("/v1/batch", batch) for batch in tracked],
            )
            print(f"{'':<44} tracking spec / native: {spec / native:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--customers", type=int, default=400, help="0: a new one per event")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--batch-sizes", default="100,500")
    parser.add_argument("--database-url", default="", help="default: SQLite in a temp dir")
    args = parser.parse_args()
    sizes = [int(size) for size in args.batch_sizes.split(",")]
    asyncio.run(bench(args.events, args.customers, args.concurrency, sizes, args.database_url))


if __name__ == "__main__":
    main()
