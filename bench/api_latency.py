"""Latency through the real ingest API under a paced load: accepted to applied, and a
return to the first engagement it brings.

    .venv/bin/python -m bench.api_latency [--rates 20,50] [--seconds 20] [--customers 200]
        [--postgres]

Starts a dev server (in memory, search attributes registered), then `equator api` and
the worker (`python -m worker`), each in its own process as deployed, on one store
(SQLite in a temp dir, or with ``--postgres`` a fresh database on the machine's
PostgreSQL); quiet hours are off so that
engagements go out whatever the hour. A warm-up sends a purchase to each of
``--customers`` customers and to one more customer per return to come. Then, for each
rate, an open-loop load for ``--seconds``: each event is posted at its time, whatever
the answers before it; purchases go round the customers, and every tenth event is a
return from a customer of its own who gets nothing else, so that their return ladder's
first step goes out. Once every event is in the ledger and every return has its
engagement, the latencies are read from the times the system keeps: the receipt
(``ingest_receipt.received_at``, written once Temporal has the event) to the ledger
(``event_ledger.recorded_at``, the journey's ``record_events``), and a return's receipt
to its first engagement (``engagement.sent_at``); plus the 202's round trip as the
client saw it. Prints a markdown table of p50, p95 and p99 in ms, then one of the CPU
each process spent per event over each phase (Linux ``/proc``) and how busy the
machine's cores were: where the time goes when the journeys fall behind.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.sql import Executable
from sqlmodel import col, select

from activities.store import Engagement, IngestReceipt, LedgerEvent
from bench.processes import (
    IngestApi,
    children_cpu_seconds,
    cpu_seconds,
    dev_server,
    fresh_database,
    machine_busy_seconds,
    running_api,
    running_worker,
)
from starter.client import event_body
from workflows.ladders import RETURN

RETURN_EVERY = 10
WARM_UP_IN_FLIGHT = 32
OPEN_CONNECTIONS = 2_000
# How long the journeys may take to catch up once the load stops.
DRAIN_DEADLINE = 300.0
POLL_INTERVAL = 0.5
NO_QUIET_HOURS = {
    "EQUATOR_JOURNEY__CONTACT__QUIET_START": "00:00",
    "EQUATOR_JOURNEY__CONTACT__QUIET_END": "00:00",
}


@dataclass(frozen=True)
class Sent:
    event_id: str
    posted_at: datetime
    round_trip: float


Post = Callable[[dict[str, Any]], Coroutine[Any, Any, Sent]]


@dataclass(frozen=True)
class Phase:
    """One rate's load: the events in the order they are sent, tagged by the rate."""

    rate: int
    tag: str
    events: list[dict[str, Any]]
    # Return event id: its customer, who gets nothing else.
    returns: dict[str, str]

    @property
    def returners(self) -> list[str]:
        return list(self.returns.values())


@dataclass(frozen=True)
class Options:
    rates: list[int]
    seconds: int
    customers: int
    postgres: bool


@dataclass(frozen=True)
class Row:
    label: str
    samples: list[float]


@dataclass(frozen=True)
class Processes:
    worker: int
    api: int


@dataclass(frozen=True)
class CpuRow:
    """Over a phase, from its first event until every one is applied: CPU ms per event
    by process, and how busy the machine's cores were."""

    label: str
    worker: float
    api: float
    server: float
    busy: float

    @classmethod
    async def measured(
        cls, label: str, events: int, processes: Processes, phase: Awaitable[list[Row]]
    ) -> tuple[CpuRow, list[Row]]:
        def now() -> tuple[float, float, float, float, float]:
            worker, api = cpu_seconds(processes.worker), cpu_seconds(processes.api)
            busy, total = machine_busy_seconds()
            return worker, api, children_cpu_seconds() - worker - api, busy, total

        before = now()
        rows = await phase
        worker, api, server, busy, total = (b - a for a, b in zip(before, now(), strict=True))
        per_event = 1000 / events
        return cls(
            label, worker * per_event, api * per_event, server * per_event, busy / total
        ), rows


def purchase(customer: str, event_id: str) -> dict[str, Any]:
    return event_body(customer, "purchase", {"amount": "19.99"}, event_id=event_id)


def plan(
    run: str, rate: int, seconds: int, customers: Sequence[str], returners: Sequence[str]
) -> Phase:
    """``rate * seconds`` events: purchases round the customers, every RETURN_EVERY-th a
    return from the next of ``returners``."""
    tag = f"{run}-p{rate}"
    events, returning = [], iter(returners)
    for n in range(rate * seconds):
        if n % RETURN_EVERY == RETURN_EVERY - 1:
            customer = next(returning)
            properties = {"amount": "19.99", "reason": "did not fit"}
            events.append(event_body(customer, "return", properties, event_id=f"{tag}-{n}"))
        else:
            events.append(purchase(customers[n % len(customers)], f"{tag}-{n}"))
    returns = {e["event_id"]: e["customer_id"] for e in events if e["type"] == "return"}
    return Phase(rate, tag, events, returns)


async def paced(
    rate: int, events: Sequence[dict[str, Any]], post: Post
) -> tuple[float, list[Sent]]:
    """Post each event at its time (open loop); returns the rate achieved and each
    event as sent."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    requests: list[asyncio.Task[Sent]] = []
    for n, event in enumerate(events):
        await asyncio.sleep(max(0.0, start + n / rate - loop.time()))
        requests.append(asyncio.create_task(post(event)))
    achieved = (len(events) - 1) / (loop.time() - start)
    return achieved, await asyncio.gather(*requests)


async def warm_up(post: Post, events: Sequence[dict[str, Any]]) -> None:
    gate = asyncio.Semaphore(WARM_UP_IN_FLIGHT)

    async def one(event: dict[str, Any]) -> None:
        async with gate:
            await post(event)

    await asyncio.gather(*(one(event) for event in events))


async def ledger_count(engine: AsyncEngine, tag: str) -> int:
    query = select(func.count()).where(col(LedgerEvent.event_id).startswith(f"{tag}-"))
    async with engine.connect() as connection:
        return int((await connection.execute(query)).scalar_one())


async def engaged_count(engine: AsyncEngine, customers: Sequence[str]) -> int:
    query = select(func.count(func.distinct(Engagement.customer_id))).where(
        Engagement.cause == RETURN.cause, col(Engagement.customer_id).in_(customers)
    )
    async with engine.connect() as connection:
        return int((await connection.execute(query)).scalar_one())


async def until_caught_up(engine: AsyncEngine, phase: Phase) -> None:
    """Wait until every event of the phase is in the ledger and every return engaged."""
    deadline = time.monotonic() + DRAIN_DEADLINE
    while True:
        recorded = await ledger_count(engine, phase.tag)
        engaged = await engaged_count(engine, phase.returners)
        if recorded == len(phase.events) and engaged == len(phase.returners):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{phase.rate}/s: {recorded}/{len(phase.events)} events in the ledger, "
                f"{engaged}/{len(phase.returners)} returns engaged after {DRAIN_DEADLINE:.0f}s"
            )
        await asyncio.sleep(POLL_INTERVAL)


def posted_to(sent: Sequence[Sent], ends: Mapping[str, datetime]) -> list[float]:
    return [(ends[one.event_id] - one.posted_at).total_seconds() for one in sent]


def gaps(starts: Mapping[str, datetime], ends: Mapping[str, datetime]) -> list[float]:
    return [(ends[key] - start).total_seconds() for key, start in starts.items()]


async def times(engine: AsyncEngine, query: Executable) -> dict[str, datetime]:
    """A query's (key, time) rows as a mapping."""
    async with engine.connect() as connection:
        return {key: at for key, at in (await connection.execute(query)).all()}


async def phase_times(
    engine: AsyncEngine, phase: Phase
) -> tuple[dict[str, datetime], dict[str, datetime], dict[str, datetime]]:
    """By event id, when it was receipted and recorded in the ledger; and by return event
    id, when its customer's first return engagement was sent."""
    receipts = select(IngestReceipt.event_id, IngestReceipt.received_at)
    ledger = select(LedgerEvent.event_id, LedgerEvent.recorded_at)
    first_sent = (
        select(Engagement.customer_id, func.min(Engagement.sent_at))
        .where(Engagement.cause == RETURN.cause, col(Engagement.customer_id).in_(phase.returners))
        .group_by(col(Engagement.customer_id))
    )
    prefix = f"{phase.tag}-"
    engaged = await times(engine, first_sent)
    return (
        await times(engine, receipts.where(col(IngestReceipt.event_id).startswith(prefix))),
        await times(engine, ledger.where(col(LedgerEvent.event_id).startswith(prefix))),
        {event_id: engaged[customer] for event_id, customer in phase.returns.items()},
    )


async def run_phase(engine: AsyncEngine, post: Post, phase: Phase) -> list[Row]:
    """The phase's load, then its latencies once every event is in."""
    achieved, sent = await paced(phase.rate, phase.events, post)
    await until_caught_up(engine, phase)
    receipted, recorded, engaged = await phase_times(engine, phase)
    returns_sent = [one for one in sent if one.event_id in engaged]
    returns_receipted = {event_id: receipted[event_id] for event_id in engaged}
    label = f"{phase.rate}/s ({achieved:.1f}/s sent)"
    return [
        Row(f"{label}: 202 round trip", [one.round_trip for one in sent]),
        Row(f"{label}: posted → ledger (applied)", posted_to(sent, recorded)),
        Row(f"{label}: receipt → ledger", gaps(receipted, recorded)),
        Row(f"{label}: return posted → first engagement sent", posted_to(returns_sent, engaged)),
        Row(f"{label}: return receipt → first engagement sent", gaps(returns_receipted, engaged)),
    ]


def poster(http: httpx.AsyncClient) -> Post:
    async def post(event: dict[str, Any]) -> Sent:
        posted_at, started = datetime.now(UTC), time.perf_counter()
        response = await http.post("/v1/events", json=event, timeout=60)
        response.raise_for_status()
        return Sent(event["event_id"], posted_at, time.perf_counter() - started)

    return post


async def drive(
    api: IngestApi, worker: int, database_url: str, options: Options
) -> tuple[list[Row], list[CpuRow]]:
    # Names of this run's own, so that a store used before (Postgres) takes them as new.
    run = uuid.uuid4().hex[:6]
    customers = [f"{run}-buyer-{n:04d}" for n in range(options.customers)]
    returns = sum(rate * options.seconds // RETURN_EVERY for rate in options.rates)
    returners = [f"{run}-returner-{n:04d}" for n in range(returns)]
    phases, offset = [], 0
    for rate in options.rates:
        phase = plan(run, rate, options.seconds, customers, returners[offset:])
        phases.append(phase)
        offset += len(phase.returners)
    engine = create_async_engine(database_url)
    headers = {"Authorization": f"Bearer {api.key}"}
    # Enough connections that requests wait on the API, never on the client's pool.
    limits = httpx.Limits(max_connections=OPEN_CONNECTIONS)
    rows: list[Row] = []
    cpu: list[CpuRow] = []
    processes = Processes(worker, api.pid)
    async with httpx.AsyncClient(base_url=api.url, headers=headers, limits=limits) as http:
        post = poster(http)
        warm_up_events = [purchase(c, f"{run}-warm-{c}") for c in customers + returners]
        warm = Phase(0, f"{run}-warm", warm_up_events, {})
        await warm_up(post, warm.events)
        await until_caught_up(engine, warm)
        for phase in phases:
            label = f"{phase.rate}/s"
            used, latencies = await CpuRow.measured(
                label, len(phase.events), processes, run_phase(engine, post, phase)
            )
            rows += latencies
            cpu.append(used)
    await engine.dispose()
    return rows, cpu


async def bench(options: Options) -> tuple[list[Row], list[CpuRow]]:
    env = await dev_server()
    async with AsyncExitStack() as stack:
        if options.postgres:
            database_url = await stack.enter_async_context(fresh_database())
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory())
            database_url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        settings = {"EQUATOR_TASK_QUEUE": f"bench-{uuid.uuid4().hex[:6]}", **NO_QUIET_HOURS}
        address = env.client.service_client.config.target_host
        async with (
            env,
            running_worker(address, database_url, settings) as worker,
            running_api(address, database_url, settings) as api,
        ):
            return await drive(api, worker, database_url, options)


def milliseconds(samples: Sequence[float]) -> str:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return " | ".join(f"{cuts[p - 1] * 1000:,.0f}" for p in (50, 95, 99))


def cpu_table(rows: Sequence[CpuRow]) -> str:
    lines = [
        "| paced load | worker CPU ms/event | API CPU ms/event | dev server CPU ms/event "
        "| machine busy |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {r.label} | {r.worker:.1f} | {r.api:.1f} | {r.server:.1f} | {r.busy:.0%} |"
        for r in rows
    ]
    return "\n".join(lines)


def table(rows: Sequence[Row], options: Options) -> str:
    lines = [
        f"| paced load, {options.seconds} s each, every {RETURN_EVERY}th event a return "
        "| p50 ms | p95 ms | p99 ms | events |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [f"| {row.label} | {milliseconds(row.samples)} | {len(row.samples)} |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="20,50", help="events/s, one phase each")
    parser.add_argument("--seconds", type=int, default=20, help="of load per rate")
    parser.add_argument("--customers", type=int, default=200, help="receiving purchases")
    parser.add_argument("--postgres", action="store_true", help="default: SQLite in a temp dir")
    args = parser.parse_args()
    rates = [int(rate) for rate in args.rates.split(",")]
    options = Options(rates, args.seconds, args.customers, args.postgres)
    latencies, cpu = asyncio.run(bench(options))
    print(table(latencies, options))
    print()
    print(cpu_table(cpu))


if __name__ == "__main__":
    main()
