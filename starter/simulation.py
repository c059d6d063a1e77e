"""``equator simulate``: a population through the real journeys (the real programmes,
ladders, contact policy, holdouts, store) on Temporal's time-skipping server, so a year
of a retailer's customers runs in minutes and shows what the journeys would do.

Each member's own life is drawn from the seed first (``starter/personas.py``). The
clock then moves a tick at a time from a fixed start: what members do is signalled to
their journeys as the ingest API would; every engagement the store records is answered
by the member's persona (a purchase, an open, feedback) a little later, each answer
drawn from the seed and the engagement's name. A held-back customer's ghost reached no
one and is not answered. The same seed gives the same run: the clock's grid keeps a
journey's timers off the ticks its events arrive at (``TICK``), the store is read only
when every journey has caught up with the clock, the offers that learn choose from the
counts as they stood a tick and a half before, which no journey choosing at the same
moment can change, and answers are timed from the tick that reads the send. The test
server's clock runs in real time while the worker works, so ``workflow.now()`` (and an
engagement's ``sent_at``) carries up to seconds of it; timed from that, answers and every
deadline drawn from them drifted apart from run to run. What is left: a send that lands
within that much of a tick may be read a tick later in another run (a chance of about
one in ten thousand a send).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import itertools
import logging
import math
import multiprocessing
import tempfile
import time
import uuid
import zlib
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from concurrent.futures import ProcessPoolExecutor
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TypeVar

from pydantic import BaseModel
from sqlmodel import col, select
from temporalio.api.testservice.v1 import SleepRequest
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.store import Engagement, Store
from runtime.logging import configure_logging
from runtime.settings import Settings, WorkerSettings
from runtime.temporal import send_event
from runtime.worker import running_worker
from service.report_chart import page, roc_figure, weekly_figure
from service.reports import ProgrammeReport, programme_report
from starter.devstack import time_skipping_server
from starter.history import SilenceCheck
from starter.population import EPOCH, Act, Population
from workflows.config import AlarmGrid, JourneyConfig
from workflows.events import make_event
from workflows.journey import journey_id

# How far the clock moves at a time: half a day and 7 seconds, off the whole minutes
# that journeys' windows come in.
TICK = 0.5 + 7 / 86_400
# Journeys wake by themselves twelve times a tick at most: the time-skipping server
# serves those due together in one step, and the last of them falls due half a minute
# before each tick. Without it each deadline was an instant of its own, and one that
# fell in the seconds after a tick, while the worker took the tick's events in real
# time (the clock runs while the worker works), raced them: on a busy machine a run
# then differed from the last by an engagement.
ALARM_GRID = AlarmGrid(every=timedelta(days=TICK) / 12, anchor=EPOCH - timedelta(seconds=30))
# The longest a tick may take in real time before the run gives up on the server.
TICK_PATIENCE = timedelta(hours=1)
# Signals in flight at once.
CONCURRENCY = 64
# Customers per time-skipping server, by default.
BATCH = 1_000

C = TypeVar("C")


class Week(BaseModel):
    week: int
    # Silence ladders started (flatlines) that week, and what engagement cost.
    flatlines: int = 0
    spent: Decimal = Decimal(0)
    spent_so_far: Decimal = Decimal(0)


class SimulationResult(BaseModel):
    seed: int
    days: float
    # Members per persona.
    customers: dict[str, int]
    started_at: datetime
    seconds: float
    events_sent: int
    engagements: int
    spent: Decimal
    report: ProgrammeReport
    weeks: list[Week]


@dataclass(order=True)
class _Happening:
    day: float
    seq: int
    act: Act = field(compare=False)


async def simulate(
    population: Population,
    days: float,
    seed: int,
    config: JourneyConfig | None = None,
    database_url: str | None = None,
    check: Callable[[Store], Awaitable[C]] | None = None,
    processes: int = 1,
    batch: int = BATCH,
    progress: Callable[[float], None] | None = None,
) -> tuple[SimulationResult, C | None]:
    """Run ``population`` through the journeys for ``days`` from ``EPOCH``; ``check``
    reads the store afterwards, for what the result does not say.

    The customers are played in batches of at most ``batch``, each through a
    time-skipping server and worker of its own for the whole run, ``processes`` batches
    at a time, all writing to the one store. A server's cost per simulated day grows
    faster than its journeys (five times the journeys, twenty times slower), so small
    servers finish a large population sooner. A customer's journey depends on no
    other's, so the run is the same however it is split (the offers that learn aside).
    ``progress`` hears, as the run goes, how many days the batches have reached on
    average."""
    began = time.monotonic()
    groups = population.groups()
    customers = sum(groups.values())
    async with AsyncExitStack() as stack:
        if database_url is None:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="equator-sim-"))
            # Thrown away at the end: no commit waits for the disk (with processes
            # sharing the file, that wait under its lock was most of a write).
            database_url = f"sqlite+aiosqlite:///{folder}/simulation.db?synchronous=off"
        config = config or JourneyConfig()
        # Offers that learn choose from the counts of a tick and a half before: journeys
        # choosing at the same moment cannot see each other's sends, so a run repeats.
        lag = {"counts_lag": timedelta(days=TICK * 1.5)}
        learning = config.learning.model_copy(update=lag)
        batches = max(processes, math.ceil(customers / batch))
        settings = Settings(
            task_queue=f"simulation-{uuid.uuid4().hex[:8]}",
            database_url=database_url,
            journey=config.model_copy(update={"learning": learning, "alarm_grid": ALARM_GRID}),
            # Every journey stays cached: none replays its history to take its next event.
            worker=WorkerSettings(
                max_cached_journeys=max(1_000, math.ceil(customers / batches)), offer_seed=seed
            ),
        )
        plays = [_Batch(population, index, batches) for index in range(batches)]
        if batches == 1:
            sent = await _play(population, days, seed, settings, progress)
        elif processes == 1:
            sent = await _play_in_turn(plays, days, seed, settings, progress)
        else:
            sent = await _play_in_processes(plays, days, seed, settings, processes, progress)
        if progress is not None:
            progress(days)
        store = Store(database_url)
        try:
            report = await programme_report(store)
            weeks, engagements = await _weeks(store, days)
            checked = await check(store) if check is not None else None
        finally:
            await store.close()
    result = SimulationResult(
        seed=seed,
        days=days,
        customers=groups,
        started_at=EPOCH,
        seconds=round(time.monotonic() - began, 1),
        events_sent=sent,
        engagements=engagements,
        spent=weeks[-1].spent_so_far if weeks else Decimal(0),
        report=report,
        weeks=weeks,
    )
    return result, checked


async def _play(
    population: Population,
    days: float,
    seed: int,
    settings: Settings,
    progress: Callable[[float], None] | None = None,
) -> int:
    """The population's run on a time-skipping server of its own; the events it sent."""
    async with time_skipping_server() as env:
        run = Driver(env, settings, population, seed, progress=progress)
        async with running_worker(env.client, settings):
            await run.play(days)
            await run.end()
    return run.sent


async def _play_in_turn(
    plays: list[_Batch],
    days: float,
    seed: int,
    settings: Settings,
    progress: Callable[[float], None] | None,
) -> int:
    """The batches one after another in this process, each on a server of its own."""
    sent = 0
    for done, play in enumerate(plays):
        reached = None
        if progress is not None:
            reached = functools.partial(_averaged, progress, done * days, len(plays))
        sent += await _play(play, days, seed, play.settings(settings), reached)
    return sent


def _averaged(progress: Callable[[float], None], behind: float, count: int, day: float) -> None:
    progress((behind + day) / count)


async def _play_in_processes(
    plays: list[_Batch],
    days: float,
    seed: int,
    settings: Settings,
    processes: int,
    progress: Callable[[float], None] | None,
) -> int:
    """The batches ``processes`` at a time, each in a process of its own (spawned: the
    SDK's threads do not survive a fork), after one migration of the shared store. Each
    batch tells the day it has reached through a shared dictionary."""
    store = Store(settings.database_url)
    try:
        await store.migrate()
    finally:
        await store.close()
    loop = asyncio.get_running_loop()
    spawn = multiprocessing.get_context("spawn")
    with spawn.Manager() as manager, ProcessPoolExecutor(processes, mp_context=spawn) as pool:
        reached = manager.dict()
        played = [
            loop.run_in_executor(pool, _play_batch, play, days, seed, settings, reached)
            for play in plays
        ]
        watching = asyncio.create_task(_watch(reached, len(plays), progress)) if progress else None
        try:
            return sum(await asyncio.gather(*played))
        finally:
            if watching is not None:
                watching.cancel()


async def _watch(
    reached: MutableMapping[int, float], count: int, progress: Callable[[float], None]
) -> None:
    """The batches' average day, four times a second until cancelled."""
    while True:
        await asyncio.sleep(0.25)
        days = await asyncio.to_thread(lambda: sum(dict(reached).values()))
        progress(days / count)


def _play_batch(
    play: _Batch,
    days: float,
    seed: int,
    settings: Settings,
    reached: MutableMapping[int, float],
) -> int:
    """One batch, in a process of the pool."""
    configure_logging(logging.WARNING)
    try:
        return asyncio.run(
            _play(
                play,
                days,
                seed,
                play.settings(settings),
                functools.partial(reached.__setitem__, play.index),
            )
        )
    except RPCError as err:
        # Temporal's errors cannot be unpickled in the parent, which then reports only
        # that a process "terminated abruptly": say what happened in words.
        raise RuntimeError(
            f"the simulation's batch {play.index + 1} of {play.count}: {err}"
        ) from None


class _Batch:
    """The members of a population whose id hashes to ``index`` of ``count``."""

    def __init__(self, population: Population, index: int, count: int) -> None:
        self.population, self.index, self.count = population, index, count

    def _ours(self, customer_id: str) -> bool:
        return zlib.crc32(customer_id.encode()) % self.count == self.index

    def settings(self, settings: Settings) -> Settings:
        """A task queue of the batch's own: its worker takes only its journeys."""
        return settings.model_copy(update={"task_queue": f"{settings.task_queue}-{self.index}"})

    def groups(self) -> dict[str, int]:
        return self.population.groups()

    def lives(self, days: float, seed: int) -> Iterator[Act]:
        return (act for act in self.population.lives(days, seed) if self._ours(act.customer_id))

    def answer(self, engagement: Engagement, day: float, seed: int) -> Iterable[Act]:
        # The store is shared: another batch's engagements are its to answer.
        if not self._ours(engagement.customer_id):
            return ()
        return self.population.answer(engagement, day, seed)


class Driver:
    """A population played against journeys on a time-skipping server: its clock from
    ``start`` (``EPOCH`` in a simulation), its members' acts, and the answers due."""

    def __init__(
        self,
        env: WorkflowEnvironment,
        settings: Settings,
        population: Population,
        seed: int,
        start: datetime = EPOCH,
        progress: Callable[[float], None] | None = None,
    ) -> None:
        self.env, self.settings, self.population, self.seed = env, settings, population, seed
        self.start, self.progress = start, progress
        self.customers: set[str] = set()
        self.due: list[_Happening] = []
        self.seq = itertools.count()
        self.sent = 0
        self.answered_to = 0
        self.limit = asyncio.Semaphore(CONCURRENCY)

    async def play(self, days: float) -> None:
        for act in self.population.lives(days, self.seed):
            self._plan(act)
        await self._move_to(self.start)
        store = Store(self.settings.database_url)
        try:
            day = 0.0
            while day <= days:
                # The server moves its clock only once every workflow task due before
                # the tick is done, so the store now holds every engagement sent before
                # it, however busy the worker was: read them before sending anything.
                await self._move_to(self.start + timedelta(days=day))
                for engagement in await self._recorded(store):
                    # Timed from this tick, the first to read it, not from its
                    # ``sent_at``: the journey's clock carries the real time the worker
                    # took (milliseconds to seconds), which, passed on to the answer and
                    # every deadline drawn from it, drifted from run to run until some
                    # comparison with a tick or a window fell the other way.
                    for act in self.population.answer(engagement, day, self.seed):
                        self._plan(act)
                # Customers at once; each customer's events in order, one after another.
                by_customer: dict[str, list[Act]] = defaultdict(list)
                while self.due and self.due[0].day <= day:
                    act = heapq.heappop(self.due).act
                    by_customer[act.customer_id].append(act)
                await asyncio.gather(*(self._send(acts) for acts in by_customer.values()))
                if self.progress is not None:
                    self.progress(day)
                day += TICK
        finally:
            await store.close()

    async def end(self) -> None:
        """Journeys never end by themselves: end them, so the server waits on none."""

        async def terminate(customer_id: str) -> None:
            async with self.limit:
                handle = self.env.client.get_workflow_handle(journey_id(customer_id))
                # Not found: never started, the member did nothing within the days.
                with contextlib.suppress(RPCError):
                    await handle.terminate("simulation over")

        await asyncio.gather(*(terminate(c) for c in self.customers))

    def _plan(self, act: Act) -> None:
        heapq.heappush(self.due, _Happening(act.day, next(self.seq), act))

    async def _move_to(self, moment: datetime) -> None:
        """The server's clock to ``moment``. It moves only once every workflow task due
        before then is done, which on a busy machine takes longer than the client's
        default 30 s a call: the call is given all the time a tick can take."""
        remaining = moment - await self.env.get_current_time()
        if remaining > timedelta(0):
            sleep = SleepRequest()
            sleep.duration.FromTimedelta(remaining)
            await self.env.client.test_service.unlock_time_skipping_with_sleep(
                sleep, timeout=TICK_PATIENCE
            )

    async def _send(self, acts: list[Act]) -> None:
        async with self.limit:
            for act in acts:
                # Dated when it happened, as a source dates it, not when the tick
                # delivered it: a customer's gaps (and the silence drawn from them) are
                # then the persona's, not multiples of the tick.
                moment = self.start + timedelta(days=act.day)
                event = make_event(act.event_id, act.customer_id, act.type, moment, act.properties)
                settings = self.settings
                await send_event(self.env.client, settings.task_queue, settings.journey, event)
                self.customers.add(act.customer_id)
                self.sent += 1

    async def _recorded(self, store: Store) -> list[Engagement]:
        """Engagements recorded since the last look, in the order they were sent."""
        async with store.reading() as session:
            rows = await session.exec(
                select(Engagement)
                .where(col(Engagement.id) > self.answered_to)
                .order_by(col(Engagement.id))
            )
            found = list(rows.all())
        if found:
            self.answered_to = found[-1].id or self.answered_to
        # Ids follow the order journeys happened to write in; answers are planned in
        # an order a run repeats.
        return sorted(found, key=lambda e: (e.sent_at, e.idempotency_key))


async def _weeks(store: Store, days: float) -> tuple[list[Week], int]:
    """Per week of the run: flatlines (silence ladders started) and what was spent."""
    weeks = [Week(week=n + 1) for n in range(int(days // 7) + 1)]
    async with store.reading() as session:
        rows = (await session.exec(select(Engagement))).all()
    started: dict[tuple[str, str], datetime] = {}
    for row in rows:
        at = row.sent_at
        weeks[min(len(weeks) - 1, max(0, (at - EPOCH).days // 7))].spent += row.cost
        if row.cause == "silence":
            key = (row.customer_id, row.ladder_run_id)
            started[key] = min(at, started.get(key, at))
    for at in started.values():
        weeks[min(len(weeks) - 1, max(0, (at - EPOCH).days // 7))].flatlines += 1
    so_far = Decimal(0)
    for week in weeks:
        so_far += week.spent
        week.spent_so_far = so_far
    return weeks, len(rows)


def summary(result: SimulationResult, table: str) -> str:
    """The run for a terminal: who, how long, what it cost, the report, the weeks."""
    who = ", ".join(f"{count} {name}" for name, count in result.customers.items())
    monthly = _months(result.weeks)
    lines = [
        f"{sum(result.customers.values())} customers ({who}) over {result.days:g} days, "
        f"seed {result.seed}: {result.events_sent} events, {result.engagements} "
        f"engagements, ${result.spent:,.2f} spent; ran in {result.seconds:g} s.",
        "",
        table,
        "",
        "| weeks | flatlines | spent | spent so far |",
        "| --- | --- | --- | --- |",
        *(
            f"| {first}-{last} | {flat} | ${spent:,.2f} | ${so_far:,.2f} |"
            for first, last, flat, spent, so_far in monthly
        ),
    ]
    return "\n".join(lines)


def _months(weeks: Iterable[Week]) -> list[tuple[int, int, int, Decimal, Decimal]]:
    """Weeks four at a time: (first, last, flatlines, spent, spent so far)."""
    listed = list(weeks)
    return [
        (
            chunk[0].week,
            chunk[-1].week,
            sum(w.flatlines for w in chunk),
            sum((w.spent for w in chunk), Decimal(0)),
            chunk[-1].spent_so_far,
        )
        for chunk in (listed[i : i + 4] for i in range(0, len(listed), 4))
    ]


def simulation_page(result: SimulationResult, silence: SilenceCheck | None = None) -> str:
    """The run as a page: week by week, silence detection against the truth (a cut
    history), then the report of what engagement achieved."""
    weeks = result.weeks
    fig = weekly_figure(
        [w.week for w in weeks],
        [w.flatlines for w in weeks],
        [float(w.spent_so_far) for w in weeks],
    )
    charts = [("Week by week", fig)]
    if silence is not None and silence.auc is not None:
        points = [(p.false_positive_rate, p.true_positive_rate) for p in silence.roc]
        heading = (
            f"Silence detection at the cut: precision {silence.precision or 0:.1%}, "
            f"recall {silence.recall or 0:.1%}"
        )
        charts.append((heading, roc_figure(points, silence.auc)))
    who = ", ".join(f"{count} {name}" for name, count in result.customers.items())
    about = (
        f"{sum(result.customers.values())} customers ({who}), {result.days:g} days from "
        f"{result.started_at:%Y-%m-%d}, seed {result.seed}: {result.engagements} "
        f"engagements, ${result.spent:,.2f} spent"
    )
    return page(result.report, "Simulation", about, charts)
