"""Faults under load: what the product acknowledges, applies, loses and duplicates while
its parts go down, how long the ingest refuses events around each fault, and how fast it
answers once the fault is over.

    .venv/bin/python -m bench.faults [--rate 20] [--customers 200] [--outage 30]
        [--after 60] [--code DIR]

Runs as deployed: a dev server persisted to a file, the worker and `equator api` each in
a process of its own, on PostgreSQL reached through a TCP link the benchmark can cut.
A source posts purchases at ``--rate`` a second round ``--customers`` customers (each
warmed up with one first), open loop; it retries each event until it is acknowledged
(202) or refused for good (409), as a careful source does: waiting what ``Retry-After``
says, or after no answer half a second, doubling, jittered (``EquatorClient``'s waits).
Then, in turn, each for ``--outage`` seconds and followed by ``--after`` seconds of
load: the worker killed (SIGKILL) and started again; the dev server stopped and started
again on its file; the API killed and started again; the store's link cut and restored.
Then every acknowledged event is sent again
three times (batches of 100), and once the journeys have caught up, each journey's own
count of the events it applied is read.

``--code DIR`` runs the worker and the API from another checkout (a worktree of an
older commit): the same faults and load against the code before a change.

Prints, per fault: the attempts refused (503, 429, no connection), the refusal window
(first to last refused attempt), and the 202's round trip (p50, p99) in the minute
after, and what a source sees: from an event's first send to its 202 (p50, p99), for
the events first sent during the fault and the minute after, and how long after the
part's return the last event first sent during the fault was acknowledged; with where
the API spent it (its ``equator_ingest_phase_seconds``, the mean per
phase, read from its /metrics; an API without them shows none) and the CPU each part
spent in that minute (Linux ``/proc``); then events
acknowledged, applied, lost (acknowledged, never applied) and duplicated (applied more
than once).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url
from temporalio.service import RPCError

from bench.processes import (
    children_cpu_seconds,
    cpu_seconds,
    fresh_database,
    machine_busy_seconds,
)
from runtime.credentials import hash_key, new_key
from runtime.logging import configure_logging
from runtime.settings import Settings
from runtime.temporal import connect, journey_view
from starter.client import event_body, retry_wait
from starter.devstack import dev_server
from tests.servers import free_port

RETRIED = {429, 503}


@dataclass
class Attempt:
    at: float
    seconds: float
    outcome: str  # 202, 409, 503, 429, "no connection", "timeout"


@dataclass
class Event:
    customer: str
    body: dict[str, Any]
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def acknowledged(self) -> bool:
        return any(a.outcome == "202" for a in self.attempts)

    @property
    def first_sent(self) -> float:
        return self.attempts[0].at

    @property
    def acknowledged_at(self) -> float | None:
        return next((a.at + a.seconds for a in self.attempts if a.outcome == "202"), None)


# phase → (seconds, deliveries), as the API's metrics count them since it started.
Phases = dict[str, tuple[float, float]]
PHASE_METRIC = "equator_ingest_phase_seconds"
# part → CPU seconds so far, in the order of CPU_PARTS.
Cpu = dict[str, float]
CPU_PARTS = ("worker", "dev server", "API", "Postgres", "link", "load", "machine")


@dataclass
class Fault:
    name: str
    began: float = 0.0
    ended: float = 0.0
    # The API's phases once the part is back, and a minute later; the same for CPU.
    phases_back: Phases = field(default_factory=dict)
    phases_after: Phases = field(default_factory=dict)
    cpu_back: Cpu = field(default_factory=dict)
    cpu_after: Cpu = field(default_factory=dict)

    def cpu_spent(self) -> str:
        """CPU seconds each part spent in the minute after."""
        return " / ".join(
            f"{self.cpu_after[part] - self.cpu_back[part]:.0f}" for part in self.cpu_after
        )

    def phase_means(self) -> str:
        """Mean ms per phase in the minute after; counts restart with a new API process."""
        means = []
        for phase, (seconds, count) in self.phases_after.items():
            before_s, before_n = self.phases_back.get(phase, (0.0, 0.0))
            if count < before_n:  # the API started again in between
                before_s, before_n = 0.0, 0.0
            if count > before_n:
                means.append(f"{phase} {(seconds - before_s) / (count - before_n) * 1000:,.0f}")
        return ", ".join(means) or "-"


class Process:
    """A part of Equator in a process of its own, killed and started again at will, and
    started again, as a supervisor (systemd, Kubernetes) would, whenever it exits while
    it should run; its output goes to ``log``."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, log: Path) -> None:
        self.args, self.env, self.cwd, self.log = args, env, cwd, log
        self.process: asyncio.subprocess.Process | None = None
        self.wanted = False
        self.restarts = 0

    async def start(self) -> None:
        self.wanted = True
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, *self.args, env=self.env, cwd=self.cwd,
                stdout=log, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip

    @property
    def pid(self) -> int:
        assert self.process is not None, "started"
        return self.process.pid

    async def kill(self) -> None:
        self.wanted = False
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()

    async def supervise(self) -> None:
        while True:
            await asyncio.sleep(1)
            if self.wanted and self.process is not None and self.process.returncode is not None:
                last = self.log.read_text(errors="replace").strip().rsplit("\n", 1)[-1]
                print(f"{self.args[-1]} exited ({last[:200]}); started again", file=sys.stderr)
                self.restarts += 1
                await self.start()


@dataclass
class Run:
    options: argparse.Namespace
    api_url: str
    key: str
    events: list[Event] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def now(self) -> float:
        return time.monotonic() - self.started


async def deliver(run: Run, http: httpx.AsyncClient, event: Event) -> None:
    """Post until acknowledged or refused for good, as a careful source does (and as
    `EquatorClient` does): after a 429 or 503, what ``Retry-After`` says; after no
    answer, half a second, doubling; jittered either way."""
    attempt = 0
    while True:
        began = run.now()
        advice = None
        try:
            answer = await http.post("/v1/events", json=event.body)
            outcome = str(answer.status_code)
            advice = answer.headers.get("retry-after")
        except httpx.TimeoutException:
            outcome = "timeout"
        except httpx.TransportError:
            outcome = "no connection"
        event.attempts.append(Attempt(began, run.now() - began, outcome))
        if outcome not in {"429", "503", "timeout", "no connection"}:
            return
        await asyncio.sleep(retry_wait(advice, attempt))
        attempt += 1


async def load(run: Run, http: httpx.AsyncClient, stopped: Callable[[], bool]) -> None:
    """Purchases at the rate, open loop, round the customers, until stopped."""
    options = run.options
    tasks = []
    n = 0
    next_at = time.monotonic()
    while not stopped():
        customer = f"fault-{n % options.customers}"
        body = event_body(customer, "purchase", {"amount": "10.00"})
        event = Event(customer, body)
        run.events.append(event)
        tasks.append(asyncio.create_task(deliver(run, http, event)))
        n += 1
        next_at += 1 / options.rate
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    await asyncio.gather(*tasks)


async def redeliver(run: Run, http: httpx.AsyncClient, rounds: int = 3) -> Counter[str]:
    """Every acknowledged event again, ``rounds`` times, in batches of 100."""
    seen: Counter[str] = Counter()
    bodies = [e.body for e in run.events if e.acknowledged]
    for _ in range(rounds):
        for start in range(0, len(bodies), 100):
            while True:
                answer = await http.post(
                    "/v1/events:batch", json={"events": bodies[start : start + 100]}
                )
                if answer.status_code not in RETRIED:
                    break
                await asyncio.sleep(float(answer.headers.get("retry-after", 1)))
            seen.update(result["status"] for result in answer.json()["results"])
    return seen


async def applied(settings: Settings, customers: int, patience: float = 600) -> dict[str, int]:
    """Each journey's count of events applied, once every journey answers and the counts
    stop moving. A journey whose workflow task is failing for now (a task that took too
    long on a starved machine is retried) is asked again."""
    client = await connect(settings)

    async def count(customer: str) -> int | None:
        try:
            return (await journey_view(client, customer)).state.events_applied
        except RPCError:
            return None

    last: dict[str, int | None] = {}
    deadline = time.monotonic() + patience
    while True:
        names = [f"fault-{n}" for n in range(customers)]
        counts = dict(zip(names, await asyncio.gather(*map(count, names)), strict=True))
        settled = counts == last and None not in counts.values()
        if settled or time.monotonic() > deadline:
            return {name: found or 0 for name, found in counts.items()}
        last = counts
        await asyncio.sleep(10)


def percentile(samples: list[float], p: int) -> str:
    if not samples:
        return "-"
    if len(samples) == 1:
        return f"{samples[0] * 1000:,.0f}"
    return f"{statistics.quantiles(samples, n=100)[p - 1] * 1000:,.0f}"


def seconds(samples: list[float], p: int) -> str:
    if not samples:
        return "-"
    return f"{statistics.quantiles(samples, n=100)[p - 1] if len(samples) > 1 else samples[0]:.1f}"


def report(run: Run, counts: dict[str, int], again: Counter[str]) -> str:
    attempts = [a for e in run.events for a in e.attempts]
    lines = [
        "| fault | refused attempts (503 / 429 / no connection, timeout) | refusal window, s "
        "| 202 p50 / p99 in the minute after, ms | first send to 202, p50 / p99, s "
        "| caught up, s | the API's mean per phase then, ms "
        f"| CPU s then: {' / '.join(CPU_PARTS)} |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for fault in run.faults:
        during = [a for a in attempts if fault.began - 1 <= a.at <= fault.ended + run.options.after]
        refused = [a for a in during if a.outcome != "202" and a.outcome != "409"]
        kinds = Counter(a.outcome for a in refused)
        window = (max(a.at for a in refused) - min(a.at for a in refused)) if refused else 0.0
        after = [
            a.seconds
            for a in attempts
            if a.outcome == "202" and fault.ended <= a.at < fault.ended + 60
        ]
        # What a source sees: from an event's first send to its 202, for the events first
        # sent during the fault and the minute after; and when the last of those sent
        # during the fault was acknowledged, counted from the part's return.
        until = fault.ended + run.options.after
        sent = [e for e in run.events if fault.began <= e.first_sent < until]
        waits = [at - e.first_sent for e in sent if (at := e.acknowledged_at) is not None]
        in_outage = [e.acknowledged_at for e in sent if e.first_sent < fault.ended]
        last = max((at for at in in_outage if at is not None), default=fault.ended)
        caught_up = "never" if None in in_outage else f"{max(0.0, last - fault.ended):.1f}"
        lines.append(
            f"| {fault.name} | {kinds['503']} / {kinds['429']} / "
            f"{kinds['no connection'] + kinds['timeout']} | {window:.1f} "
            f"| {percentile(after, 50)} / {percentile(after, 99)} "
            f"| {seconds(waits, 50)} / {seconds(waits, 99)} | {caught_up} "
            f"| {fault.phase_means()} | {fault.cpu_spent()} |"
        )
    # Each customer's warm-up purchase, then the load's.
    acknowledged: Counter[str] = Counter(f"fault-{n}" for n in range(run.options.customers))
    acknowledged.update(e.customer for e in run.events if e.acknowledged)
    lost = sum(max(0, acknowledged[c] - counts.get(c, 0)) for c in acknowledged)
    duplicated = sum(max(0, counts.get(c, 0) - acknowledged[c]) for c in counts)
    unacknowledged = sum(not e.acknowledged for e in run.events)
    lines += [
        "",
        f"events sent {len(run.events):,} (and a warm-up purchase per customer), acknowledged "
        f"{sum(acknowledged.values()) - run.options.customers:,}, "
        f"never acknowledged {unacknowledged:,}; applied "
        f"{sum(counts.values()) - run.options.customers:,}; "
        f"lost {lost:,}; duplicated {duplicated:,}",
        "sent again 3 times: "
        + ", ".join(f"{n:,} {status}" for status, n in sorted(again.items())),
    ]
    return "\n".join(lines)


class LinkProcess:
    """``bench/link.py`` in a process of its own, cut and restored by signals."""

    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process, self.port = process, port
        self.pid = process.pid

    async def cut(self) -> None:
        self.process.send_signal(signal.SIGUSR1)
        await asyncio.sleep(0.5)

    async def restore(self) -> None:
        self.process.send_signal(signal.SIGUSR2)
        await asyncio.sleep(0.5)


@asynccontextmanager
async def linked(host: str, port: int) -> AsyncIterator[LinkProcess]:
    listen = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.link", host, str(port), str(listen)
    )
    try:
        while True:  # listening
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", listen)
            except OSError:
                await asyncio.sleep(0.1)
                continue
            writer.close()
            break
        yield LinkProcess(process, listen)
    finally:
        process.kill()
        await process.wait()


class Server:
    """The dev server on its file: stopped and started again at will."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._running = AsyncExitStack()

    async def start(self) -> None:
        await self._running.enter_async_context(dev_server(self.settings))

    async def stop(self) -> None:
        await self._running.aclose()


async def bench(options: argparse.Namespace, code: Path) -> str:
    key = new_key()
    async with AsyncExitStack() as exits:
        database = make_url(await exits.enter_async_context(fresh_database()))
        link = await exits.enter_async_context(
            linked(database.host or "127.0.0.1", database.port or 5432)
        )
        data = exits.enter_context(tempfile.TemporaryDirectory(prefix="equator-faults-"))
        settings = Settings(
            temporal_address=f"127.0.0.1:{free_port()}",
            ui_port=free_port(),
            data_dir=Path(data),
            database_url=database.set(host="127.0.0.1", port=link.port).render_as_string(
                hide_password=False
            ),
            task_queue=f"faults-{uuid.uuid4().hex[:6]}",
        )
        env = {
            **os.environ,
            "PYTHONPATH": str(code),
            "EQUATOR_TEMPORAL_ADDRESS": settings.temporal_address,
            "EQUATOR_DATABASE_URL": settings.database_url,
            "EQUATOR_TASK_QUEUE": settings.task_queue,
        }
        api_port = free_port()
        sources = json.dumps([{"name": "bench", "key_hashes": [hash_key(key)]}])
        metrics = f"127.0.0.1:{free_port()}"
        api_env = {
            **env,
            "EQUATOR_INGEST__PORT": str(api_port),
            "EQUATOR_INGEST__SOURCES": sources,
            "EQUATOR_TELEMETRY__METRICS_ADDRESS": metrics,
        }
        server = Server(settings)
        worker = Process(["-m", "worker"], env, code, Path(data) / "worker.log")
        api = Process(["-m", "starter.cli", "api"], api_env, code, Path(data) / "api.log")
        await server.start()
        exits.push_async_callback(server.stop)
        for part in (worker, api):
            await part.start()
            exits.push_async_callback(part.kill)
            supervising = asyncio.create_task(part.supervise())
            exits.callback(supervising.cancel)
        parts: dict[str, Process | LinkProcess] = {"worker": worker, "API": api, "link": link}
        run = Run(options, f"http://127.0.0.1:{api_port}", key)
        http = await exits.enter_async_context(
            httpx.AsyncClient(
                base_url=run.api_url,
                headers={"Authorization": f"Bearer {key}"},
                timeout=30,
                limits=httpx.Limits(max_connections=1000),
            )
        )
        await ready(http)
        for n in range(options.customers):
            first = event_body(f"fault-{n}", "purchase", {"amount": "1.00"})
            await deliver(run, http, Event(f"fault-{n}", first))
        stopping = asyncio.Event()
        loading = asyncio.create_task(load(run, http, stopping.is_set))
        await asyncio.sleep(options.after)
        for name, down, up in (
            ("worker killed", worker.kill, worker.start),
            ("dev server stopped", server.stop, server.start),
            ("API killed", api.kill, api.start),
            ("store unreachable", link.cut, link.restore),
        ):
            fault = Fault(name, began=run.now())
            run.faults.append(fault)
            await down()
            await asyncio.sleep(options.outage)
            await up()
            fault.ended = run.now()
            fault.phases_back, fault.cpu_back = await phases(http, metrics), cpu(parts)
            await asyncio.sleep(options.after)
            fault.phases_after, fault.cpu_after = await phases(http, metrics), cpu(parts)
        stopping.set()
        await loading
        again = await redeliver(run, http)
        counts = await applied(settings, options.customers)
        restarts = (
            f"\nstarted again after a failed start: worker {worker.restarts}, API {api.restarts}"
        )
        return report(run, counts, again) + restarts


async def phases(http: httpx.AsyncClient, address: str) -> Phases:
    """The API's delivery phases so far, from its Prometheus text; none while it is down."""
    try:
        text = (await http.get(f"http://{address}/metrics", timeout=5)).text
    except httpx.HTTPError:
        return {}
    found: dict[str, list[float]] = {}
    for line in text.splitlines():
        for part, index in (("_sum{", 0), ("_count{", 1)):
            if line.startswith(PHASE_METRIC + part):
                labels, value = line.rsplit(" ", 1)
                phase = labels.split('phase="', 1)[1].split('"', 1)[0]
                found.setdefault(phase, [0.0, 0.0])[index] = float(value)
    return {phase: (seconds, count) for phase, (seconds, count) in found.items()}


def cpu(parts: dict[str, Process | LinkProcess]) -> Cpu:
    """CPU seconds so far of each part: the dev server is this process's other child;
    Postgres, all its processes (the backends that ended, in the postmaster's children's
    time); the load, this process; the machine, busy over all cores."""
    spent = {name: cpu_seconds(part.pid) for name, part in parts.items()}
    spent["dev server"] = children_cpu_seconds() - sum(spent.values())
    spent["Postgres"] = postgres_cpu_seconds()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    spent["load"] = usage.ru_utime + usage.ru_stime
    spent["machine"] = machine_busy_seconds()[0]
    return {part: spent[part] for part in CPU_PARTS}


def postgres_cpu_seconds() -> float:
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            name, fields = stat.read_text().rsplit(")", 1)
        except OSError:  # gone meanwhile
            continue
        if name.endswith("(postgres"):
            ticks += sum(int(field) for field in fields.split()[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


async def ready(http: httpx.AsyncClient) -> None:
    while True:
        try:
            if (await http.get("/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=20)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--outage", type=float, default=30)
    parser.add_argument("--after", type=float, default=60)
    parser.add_argument("--code", help="run the worker and the API from this checkout")
    options = parser.parse_args()
    configure_logging(logging.WARNING)  # on stderr: stdout is the table
    code = Path(options.code).resolve() if options.code else Path.cwd()
    print(asyncio.run(bench(options, code)))


if __name__ == "__main__":
    main()
