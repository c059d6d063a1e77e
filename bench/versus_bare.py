"""The journey beside a bare entity workflow, on one dev server, in one run.

    .venv/bin/python -m bench.versus_bare [--customers 200] [--events 5] [--rounds 2]
        [--big-population 1200] [--encrypted]

Starts a dev server (in memory, the journeys' search attributes registered) and, in
this process, two workers with the same sandbox runner and data converter: the
journeys' (``worker.running_worker``, SQLite store in a temp dir) and one for
``BareEntity``, the least a long-lived entity can be (a signal handler that keeps the
event id, a loop that waits on a condition, no activity; it never completes and is
terminated at the end). Both get the same purchase events by signal-with-start, 64
calls in flight, one side at a time:

- memory: RSS of this process (after a gc) with ``--customers`` workflows cached, then
  with ``--big-population``; the slope is KiB per cached workflow;
- ``--rounds`` rounds alternating bare, journey: ``--events`` events to each of
  ``--customers`` new workflows (the first starts it), then as many again to the same,
  now existing, workflows; accepted/s until the last call returns, applied/s until a
  query shows every event applied, and the CPU time this process and the dev server
  spent per applied event over both;
- the last round's histories: events per applied event, and a cold replay (a fresh
  ``Replayer``, median of three) of the longest.

With ``--encrypted`` a third side runs beside them: journeys whose client and worker
encrypt every payload (``runtime/codec.py``, a master key made for the run, its data
keys in a store of its own), so the codec's cost is a ratio measured in the same run.

Prints a markdown table: each side's figures (one per round where rounds apply) and
each against bare (and encrypted against plain), the ratios being what counts on a
shared, noisy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import importlib
import logging
import secrets
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from temporalio import workflow

from bench.processes import children_cpu_seconds, cpu_seconds, dev_server

with workflow.unsafe.imports_passed_through():
    from pydantic import SecretStr
    from temporalio.api.enums.v1 import EventType
    from temporalio.client import Client, WorkflowHistory
    from temporalio.common import WorkflowIDConflictPolicy
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.worker import Replayer, Worker
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

    from runtime.codec import data_converter
    from runtime.logging import configure_logging
    from runtime.settings import EncryptionSettings, Settings
    from runtime.temporal import journey_view, send_event
    from runtime.worker import WORKFLOW_RUNNER, running_worker
    from workflows.config import JourneyConfig
    from workflows.events import CustomerEvent, make_event
    from workflows.journey import CustomerJourney, journey_id

T = TypeVar("T")

IN_FLIGHT = 64
BARE_QUEUE = "bench-bare"
EVENT_SIGNAL = "event"
# How long a side may take to apply what it was sent before the run fails.
APPLY_DEADLINE = 600.0
POLL_INTERVAL = 0.2
REPLAYS = 3

ACCEPTED_NEW = "events accepted/s, new workflows"
APPLIED_NEW = "events applied/s, new workflows"
ACCEPTED_EXISTING = "events accepted/s, existing workflows"
APPLIED_EXISTING = "events applied/s, existing workflows"
CPU_HERE = "CPU per applied event in this process (worker + client), ms"
CPU_SERVER = "CPU per applied event in the dev server, ms"
MEMORY = "worker memory per cached workflow, KiB"
HISTORY = "history events per applied event"
REPLAY = "cold replay of the longest history, ms"
ENCRYPTED = "journey, encrypted"
TABLE_ORDER = (
    ACCEPTED_NEW,
    APPLIED_NEW,
    ACCEPTED_EXISTING,
    APPLIED_EXISTING,
    CPU_HERE,
    CPU_SERVER,
    MEMORY,
    HISTORY,
    REPLAY,
)


@workflow.defn
class BareEntity:
    """The reference: an entity that keeps the ids of its events, and nothing else."""

    @workflow.init
    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._applied = 0

    @workflow.run
    async def run(self) -> None:
        while True:
            await workflow.wait_condition(lambda: len(self._seen) > self._applied)
            self._applied = len(self._seen)

    @workflow.signal(name=EVENT_SIGNAL)
    def event(self, event: dict[str, Any]) -> None:
        self._seen.add(event["event_id"])

    @workflow.query
    def applied(self) -> int:
        return self._applied


# The journey worker's runner. Its module is passed through (worker.WORKFLOW_RUNNER passes
# `workflows`), so this one's is too: neither is re-imported for each workflow run.
BARE_RUNNER = SandboxedWorkflowRunner(
    restrictions=WORKFLOW_RUNNER.restrictions.with_passthrough_modules(__name__)
)


@dataclass(frozen=True)
class Side:
    """One of the two workflows under test, as the benchmark drives it."""

    name: str
    workflow_id: Callable[[str], str]
    send: Callable[[CustomerEvent], Awaitable[object]]
    applied: Callable[[str], Awaitable[int]]
    replayer: Callable[[], Replayer]
    # Its customers' names begin so: two sides of journeys must not share workflow ids.
    prefix: str = ""

    def customers(self, names: Sequence[str]) -> list[str]:
        return [f"{self.prefix}{name}" for name in names]


def bare_side(client: Client) -> Side:
    def workflow_id(customer: str) -> str:
        return f"bare-{customer}"

    async def send(event: CustomerEvent) -> object:
        # By name: mypy (1.x) mis-solves the overloads for a no-argument run method here
        # and then reports other modules' typed handles as errors.
        return await client.start_workflow(
            "BareEntity",
            id=workflow_id(event.customer_id),
            task_queue=BARE_QUEUE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            start_signal=EVENT_SIGNAL,
            start_signal_args=[event],
        )

    async def applied(customer: str) -> int:
        handle = client.get_workflow_handle(workflow_id(customer))
        return await handle.query(BareEntity.applied)

    def replayer() -> Replayer:
        return Replayer(
            workflows=[BareEntity],
            data_converter=pydantic_data_converter,
            workflow_runner=BARE_RUNNER,
        )

    return Side("bare", workflow_id, send, applied, replayer)


def journey_side(
    client: Client, settings: Settings, name: str = "journey", prefix: str = ""
) -> Side:
    async def send(event: CustomerEvent) -> object:
        return await send_event(client, settings.task_queue, settings.journey, event)

    async def applied(customer: str) -> int:
        return (await journey_view(client, customer)).state.events_applied

    def replayer() -> Replayer:
        return Replayer(
            workflows=[CustomerJourney],
            data_converter=client.data_converter,
            workflow_runner=WORKFLOW_RUNNER,
        )

    return Side(name, journey_id, send, applied, replayer, prefix)


@dataclass
class Figures:
    """One side's figures by name, a value per round where rounds apply."""

    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, figure: str, value: float) -> None:
        self.values.setdefault(figure, []).append(value)


async def bounded(calls: Iterable[Awaitable[T]]) -> list[T]:
    """Await every call, at most IN_FLIGHT at a time, results in order."""
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one(call: Awaitable[T]) -> T:
        async with gate:
            return await call

    return await asyncio.gather(*(one(call) for call in calls))


def purchases(customers: Sequence[str], first: int, count: int) -> list[CustomerEvent]:
    """Events ``first`` to ``first + count - 1`` of every customer, round-robin."""
    now = datetime.now(UTC)
    return [
        make_event(f"{customer}-{k}", customer, "purchase", now, {"amount": 10})
        for k in range(first, first + count)
        for customer in customers
    ]


async def until_applied(side: Side, customers: Sequence[str], target: int) -> None:
    """Wait until every customer's workflow has applied ``target`` events."""
    deadline = time.monotonic() + APPLY_DEADLINE
    pending = list(customers)
    while True:
        counts = await bounded(side.applied(customer) for customer in pending)
        pending = [c for c, n in zip(pending, counts, strict=True) if n < target]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{side.name}: {len(pending)} workflows below {target} events applied "
                f"after {APPLY_DEADLINE:.0f}s"
            )
        await asyncio.sleep(POLL_INTERVAL)


async def deliver(
    side: Side, customers: Sequence[str], first: int, count: int
) -> tuple[float, float]:
    """Send ``count`` more events to each customer; returns (accepted/s, applied/s)."""
    events = purchases(customers, first, count)
    started = time.perf_counter()
    await bounded(side.send(event) for event in events)
    accepted = time.perf_counter() - started
    await until_applied(side, customers, first + count)
    applied = time.perf_counter() - started
    return len(events) / accepted, len(events) / applied


async def throughput(side: Side, customers: Sequence[str], events: int, figures: Figures) -> None:
    """Both cases, new then existing workflows, and the CPU both took per applied event."""
    here, server = cpu_seconds("self"), children_cpu_seconds()
    accepted, applied = await deliver(side, customers, 0, events)
    figures.add(ACCEPTED_NEW, accepted)
    figures.add(APPLIED_NEW, applied)
    accepted, applied = await deliver(side, customers, events, events)
    figures.add(ACCEPTED_EXISTING, accepted)
    figures.add(APPLIED_EXISTING, applied)
    per_event = 1000 / (2 * events * len(customers))
    figures.add(CPU_HERE, (cpu_seconds("self") - here) * per_event)
    figures.add(CPU_SERVER, (children_cpu_seconds() - server) * per_event)


def rss_kib() -> int:
    gc.collect()
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


async def memory(side: Side, customers: Sequence[str], base: int, figures: Figures) -> None:
    """KiB of RSS per cached workflow, between ``base`` and ``len(customers)`` of them."""
    await deliver(side, customers[:base], 0, 1)
    before = rss_kib()
    await deliver(side, customers[base:], 0, 1)
    after = rss_kib()
    figures.add(MEMORY, (after - before) / (len(customers) - base))


async def histories(client: Client, workflow_ids: Sequence[str]) -> list[WorkflowHistory]:
    return await bounded(client.get_workflow_handle(wid).fetch_history() for wid in workflow_ids)


async def cold_replay_ms(side: Side, history: WorkflowHistory) -> float:
    """Median of REPLAYS replays, each in a fresh Replayer."""
    samples = []
    for _ in range(REPLAYS):
        replayer = side.replayer()
        started = time.perf_counter()
        await replayer.replay_workflow(history)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def event_types(history: WorkflowHistory) -> Counter[str]:
    return Counter(
        EventType.Name(event.event_type).removeprefix("EVENT_TYPE_") for event in history.events
    )


async def history_figures(
    client: Client, side: Side, customers: Sequence[str], applied_each: int, figures: Figures
) -> Counter[str]:
    """Events per applied event over ``customers``' histories; replays the longest and
    returns its events by type."""
    fetched = await histories(client, [side.workflow_id(customer) for customer in customers])
    figures.add(HISTORY, sum(len(h.events) for h in fetched) / (applied_each * len(customers)))
    longest = max(fetched, key=lambda h: len(h.events))
    figures.add(REPLAY, await cold_replay_ms(side, longest))
    return event_types(longest)


async def terminate_all(client: Client, workflow_ids: Iterable[str]) -> None:
    await bounded(client.get_workflow_handle(wid).terminate() for wid in workflow_ids)


@dataclass(frozen=True)
class Options:
    customers: int
    events: int
    rounds: int
    big_population: int
    # The programmes the journeys run (None: all registered).
    enabled: frozenset[str] | None = None
    # A third side: journeys with every payload encrypted.
    encrypted: bool = False


@dataclass
class Outcome:
    """What a run measured: figures and the longest history's event types, by side."""

    figures: dict[str, Figures]
    longest: dict[str, Counter[str]]


def population(tag: str, size: int) -> list[str]:
    return [f"{tag}-{n:05d}" for n in range(size)]


async def measure(client: Client, sides: Sequence[Side], options: Options) -> Outcome:
    outcome = Outcome({side.name: Figures() for side in sides}, {})
    used: list[str] = []
    crowd = population("mem", options.big_population)
    for side in sides:
        mine = side.customers(crowd)
        await memory(side, mine, options.customers, outcome.figures[side.name])
        used += [side.workflow_id(customer) for customer in mine]
    for n in range(options.rounds):
        customers = population(f"r{n}", options.customers)
        for side in sides:
            mine = side.customers(customers)
            await throughput(side, mine, options.events, outcome.figures[side.name])
            used += [side.workflow_id(customer) for customer in mine]
    last = population(f"r{options.rounds - 1}", options.customers)
    for side in sides:
        outcome.longest[side.name] = await history_figures(
            client, side, side.customers(last), 2 * options.events, outcome.figures[side.name]
        )
    await terminate_all(client, used)
    return outcome


@asynccontextmanager
async def bare_worker(client: Client) -> AsyncIterator[Worker]:
    async with Worker(
        client, task_queue=BARE_QUEUE, workflows=[BareEntity], workflow_runner=BARE_RUNNER
    ) as worker:
        yield worker


async def bench(options: Options) -> Outcome:
    env = await dev_server()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            task_queue=f"bench-{uuid.uuid4().hex[:6]}",
            database_url=f"sqlite+aiosqlite:///{tmp}/bench.db",
            journey=JourneyConfig(enabled=options.enabled),
        )
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(env)
            await stack.enter_async_context(running_worker(env.client, settings))
            await stack.enter_async_context(bare_worker(env.client))
            sides = [bare_side(env.client), journey_side(env.client, settings)]
            if options.encrypted:
                sealed = encrypted(settings, f"{tmp}/bench-encrypted.db")
                client = await Client.connect(
                    env.client.service_client.config.target_host,
                    data_converter=data_converter(sealed),
                )
                await stack.enter_async_context(running_worker(client, sealed))
                sides.append(journey_side(client, sealed, ENCRYPTED, prefix="sealed-"))
            return await measure(env.client, sides, options)


def encrypted(settings: Settings, database: str) -> Settings:
    """``settings`` with a master key made for the run, a task queue and a store of their
    own."""
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    return settings.model_copy(
        update={
            "task_queue": f"{settings.task_queue}-encrypted",
            "database_url": f"sqlite+aiosqlite:///{database}",
            "encryption": EncryptionSettings(
                master_keys={"bench": SecretStr(key)}, active_master_key="bench"
            ),
        }
    )


def number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def table(outcome: Outcome, options: Options) -> str:
    values = {name: figures.values for name, figures in outcome.figures.items()}
    names = list(values)
    # Each side against bare, and the encrypted journeys against the plain ones.
    pairs = [(name, "bare") for name in names if name != "bare"]
    if ENCRYPTED in values:
        pairs.append((ENCRYPTED, "journey"))
    lines = [
        f"| {options.customers} workflows x {options.events} purchases, {IN_FLIGHT} in flight "
        f"| {' | '.join(names)} | {' | '.join(f'{a} / {b}' for a, b in pairs)} |",
        "| --- " * (1 + len(names) + len(pairs)) + "|",
    ]
    for figure in TABLE_ORDER:
        cells = [" / ".join(map(number, values[name][figure])) for name in names]
        for a, b in pairs:
            ratios = [x / y for y, x in zip(values[b][figure], values[a][figure], strict=True)]
            cells.append(" / ".join(f"{r:.2f}" for r in ratios))
        lines.append(f"| {figure} | {' | '.join(cells)} |")
    return "\n".join(lines)


def types_table(outcome: Outcome) -> str:
    longest = outcome.longest
    names = list(longest)
    lines = [
        f"| longest history, events by type | {' | '.join(names)} |",
        "| --- " * (1 + len(names)) + "|",
    ]
    everything = sum(longest.values(), Counter[str]())
    for kind, _ in everything.most_common():
        lines.append(f"| {kind.lower()} | {' | '.join(str(longest[n][kind]) for n in names)} |")
    lines.append(f"| total | {' | '.join(str(longest[n].total()) for n in names)} |")
    return "\n".join(lines)


def report(outcome: Outcome, options: Options) -> None:
    print(
        f"Rounds alternate bare, journey; a figure per round where rounds apply "
        f"({options.rounds} rounds). Memory: {options.customers} → "
        f"{options.big_population} cached workflows. Programmes: "
        f"{', '.join(sorted(options.enabled)) if options.enabled else 'all'}.\n"
    )
    print(table(outcome, options))
    print()
    print(types_table(outcome))


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--events", type=int, default=5, help="per customer and case")
    parser.add_argument("--rounds", type=int, default=2, choices=range(1, 100), metavar="N")
    parser.add_argument("--big-population", type=int, default=1_200, help="memory step")
    parser.add_argument(
        "--programmes",
        help="comma-separated programmes the journeys run (default: every registered one)",
    )
    parser.add_argument(
        "--encrypted", action="store_true", help="a third side: journeys with payloads encrypted"
    )
    args = parser.parse_args()
    if args.big_population <= args.customers:
        parser.error("--big-population must be larger than --customers")
    enabled = frozenset(args.programmes.split(",")) if args.programmes else None
    options = Options(
        args.customers, args.events, args.rounds, args.big_population, enabled, args.encrypted
    )
    configure_logging(logging.WARNING)  # a line per engagement would clutter the table
    report(asyncio.run(bench(options)), options)


if __name__ == "__main__":
    # Run as a script this file is __main__, which the sandbox cannot pass through: run
    # it, and with it BareEntity, from the module's importable name.
    importlib.import_module("bench.versus_bare").run()
