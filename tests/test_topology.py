"""docker/compose.yaml's topology, started from processes (there is no container engine
here): a persisted Temporal dev server, two `equator worker` processes, two `equator api`
processes on ports of their own, and the store on the machine's PostgreSQL. A customer's
events go through both API replicas in turn, and each resent through the other; the
journey applies each exactly once."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlmodel import select
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

from activities.store import LedgerEvent, Store
from runtime.credentials import Scope, hash_key, new_key
from runtime.temporal import journey_pollers
from runtime.worker import WORKFLOW_RUNNER
from service.api_models import LiveJourney
from starter.client import ApiError, EquatorClient, event_body
from tests.conftest import postgres_database
from tests.servers import dev_server, eventually, free_port
from tests.test_docker import dockerfile, healthcheck
from workflows.journey import CustomerJourney

pytestmark = pytest.mark.devserver

EVENTS = 8


@asynccontextmanager
async def equator(
    command: str, environment: Mapping[str, str], log: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`equator <command>` as a process of its own, its output in ``log``; stopped as a
    container is (SIGTERM, then SIGKILL after a grace)."""
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "starter.cli", command,
            env={**os.environ, **environment}, stdout=output, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        try:
            yield process
        finally:
            if process.returncode is None:
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout=15)
            except TimeoutError:
                process.kill()
                await process.wait()


async def ready(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            return (await http.get(f"{url}/readyz")).status_code == 200
    except httpx.TransportError:
        return False


@activity.defn
async def idle() -> None:
    """Work for the activity pollers to ask for."""


async def test_every_worker_polling_is_seen_whichever_partition_its_polls_wait_on() -> None:
    # Ten workers of two pollers each spread over the task queue's four partitions: the
    # root partition alone saw six of them.
    async with dev_server() as temporal, AsyncExitStack() as stack:
        queue = f"partitions-{uuid.uuid4().hex[:8]}"
        target = temporal.client.service_client.config.target_host
        names = {f"worker-{n}" for n in range(10)}
        for name in sorted(names):
            worker = Worker(
                await Client.connect(target),  # one worker per client and task queue
                task_queue=queue, workflows=[CustomerJourney], activities=[idle],
                workflow_runner=WORKFLOW_RUNNER, identity=name,
                max_concurrent_workflow_task_polls=2, max_concurrent_activity_task_polls=2,
            )  # fmt: skip
            await stack.enter_async_context(worker)
        await eventually(lambda: journey_pollers(temporal.client, queue), names.__eq__, within=30)


async def test_two_workers_and_two_apis_on_postgres_apply_each_event_once(
    tmp_path: Path,
) -> None:
    key = new_key()
    source = {"name": "pos", "key_hashes": [hash_key(key)],
              "scopes": [Scope.EVENTS_WRITE, Scope.JOURNEYS_READ]}  # fmt: skip
    async with (
        postgres_database() as database_url,
        dev_server(db_file=tmp_path / "temporal.db") as temporal,
        AsyncExitStack() as stack,
    ):
        queue = f"topology-{uuid.uuid4().hex[:8]}"
        environment = {
            "EQUATOR_TEMPORAL_ADDRESS": temporal.client.service_client.config.target_host,
            "EQUATOR_DATABASE_URL": database_url,
            "EQUATOR_TASK_QUEUE": queue,
            "EQUATOR_INGEST__SOURCES": json.dumps([source]),
        }
        workers = [
            await stack.enter_async_context(
                equator("worker", environment, tmp_path / f"worker-{n}.log")
            )
            for n in range(2)
        ]
        ports = [free_port(), free_port()]
        for n, port in enumerate(ports):
            api = {**environment, "EQUATOR_INGEST__PORT": str(port)}
            await stack.enter_async_context(equator("api", api, tmp_path / f"api-{n}.log"))
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        apis = [await stack.enter_async_context(EquatorClient(url, key)) for url in urls]

        for url in urls:
            # Ready once a worker polls the journeys: the workers start as processes too.
            await eventually(functools.partial(ready, url), bool, within=90)
        # The image's own health check passes against a ready replica, and only there.
        _, *argv = healthcheck(dockerfile())
        for port, healthy in ((ports[0], True), (free_port(), False)):
            check = await asyncio.create_subprocess_exec(
                sys.executable, *argv, env={**os.environ, "EQUATOR_INGEST__PORT": str(port)},
                stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            assert (await check.wait() == 0) is healthy
        # Both workers poll the journeys' task queue (a worker is named pid@host).
        both = {f"{worker.pid}@{socket.gethostname()}" for worker in workers}
        await eventually(lambda: journey_pollers(temporal.client, queue), both.issubset, within=30)

        customer = f"topology-{uuid.uuid4().hex[:8]}"
        events = [
            event_body(customer, "purchase", {"amount": f"{n + 1}.00", "category": "shoes"})
            for n in range(EVENTS)
        ]
        for n, event in enumerate(events):
            assert not (await apis[n % 2].send(event)).duplicate
        # Delivery is at least once: each event again, through the other replica.
        for n, event in enumerate(events):
            assert (await apis[(n + 1) % 2].send(event)).duplicate

        async def journey() -> LiveJourney | None:
            try:
                view = await apis[0].journey(customer)
            except ApiError:  # not yet answerable
                return None
            return view if isinstance(view, LiveJourney) else None

        view = await eventually(
            journey, lambda v: v is not None and v.state.events_applied >= EVENTS, within=30
        )
        assert view is not None
        assert view.state.events_applied == EVENTS
        assert view.state.profile.lifetime_value == sum(Decimal(n + 1) for n in range(EVENTS))
        store = Store(database_url)
        try:
            async with store.reading() as session:
                rows = await session.exec(
                    select(LedgerEvent.event_id).where(LedgerEvent.customer_id == customer)
                )
                ledger = list(rows.all())
        finally:
            await store.close()
        assert sorted(ledger) == sorted(event["event_id"] for event in events)
        # Stopped as a container is (SIGTERM): the worker finishes what it holds and
        # exits cleanly, well within compose's 10 s before SIGKILL.
        workers[0].terminate()
        assert await asyncio.wait_for(workers[0].wait(), timeout=10) == 0
        assert b"Traceback" not in (tmp_path / "worker-0.log").read_bytes()
