"""Journeys started on 0.1 carry on when the worker is upgraded under them.

Journeys start and act on the code of 0.1 (its last commit, taken out of this
repository's history into a temporary folder and run there as a worker process); that
worker is stopped and today's takes the task queue over. Each journey replays its
history on today's code without a failed workflow task and goes on: a ladder climbs to
its next step, a silence still becomes a flatline, and a run that continued as new on
0.1 starts from a 0.1 state. On the dev server.
"""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import tarfile
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError
from sqlmodel import col, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.store import Engagement, Store
from runtime.settings import Settings
from runtime.temporal import journey_view, send_event
from runtime.worker import running_worker
from testkit import engagements
from tests.journeys import NEVER_QUIET, NO_HOLDOUTS, event, remediation
from tests.servers import eventually
from workflows.config import JourneyConfig
from workflows.journey import journey_id

pytestmark = pytest.mark.devserver

ROOT = Path(__file__).resolve().parent.parent
# The last commit of 0.1 (tagged v0.1.0; by hash, since a clone may come without tags).
RELEASE_0_1 = "4ab154a53ec6f37221211e39b8b709c531d01382"
# Windows of seconds, so that ladders act on the old code and again on the new.
CONFIG = JourneyConfig(
    holdouts=NO_HOLDOUTS,
    silence_min=timedelta(seconds=2),
    silence_default=timedelta(seconds=4),
    silence_max=timedelta(seconds=60),
    response_window=timedelta(seconds=3),
    contact=NEVER_QUIET,
)
# A journey that continues as new on 0.1, handing its 0.1 state to the next run.
SHORT_RUNS = CONFIG.model_copy(update={"max_events_per_run": 2})


@pytest.fixture(scope="module")
def code_0_1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tree of 0.1, from this repository's history."""
    archived = subprocess.run(
        ["git", "archive", "--format=tar", RELEASE_0_1],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    if archived.returncode != 0:
        pytest.fail(f"git archive {RELEASE_0_1}: {archived.stderr.decode().strip()}")
    folder = tmp_path_factory.mktemp("equator-0.1")
    with tarfile.open(fileobj=io.BytesIO(archived.stdout)) as tree:
        tree.extractall(folder, filter="data")
    return folder


@pytest.fixture
async def settings(dev_env: WorkflowEnvironment, tmp_path: Path) -> Settings:
    return Settings(
        temporal_address=dev_env.client.service_client.config.target_host,
        task_queue=f"upgrade-{uuid.uuid4().hex[:8]}",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'equator.db'}",
    )


@pytest.fixture
async def worker_0_1(
    code_0_1: Path, settings: Settings
) -> AsyncIterator[asyncio.subprocess.Process]:
    """A worker of 0.1 on the task queue, in a process of its own (its modules first on
    the path, this environment's packages under them)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c",
        "import asyncio, worker; from starter.settings import Settings; "
        "asyncio.run(worker.main(Settings()))",
        cwd=code_0_1,
        env={
            **os.environ,
            "PYTHONPATH": str(code_0_1),
            "EQUATOR_TEMPORAL_ADDRESS": settings.temporal_address,
            "EQUATOR_TASK_QUEUE": settings.task_queue,
            "EQUATOR_DATABASE_URL": settings.database_url,
        },
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def steps_sent(database_url: str, customer_id: str) -> list[str]:
    """What went out to the customer, read from 0.1's schema (columns added since are not
    there yet); nothing while 0.1's worker has yet to create the store's tables."""
    store = Store(database_url)
    try:
        async with store.reading() as session:
            rows = await session.exec(
                select(Engagement.step_name)
                .where(Engagement.customer_id == customer_id)
                .order_by(col(Engagement.sent_at), col(Engagement.id))
            )
            return list(rows.all())
    except OperationalError:
        return []
    finally:
        await store.close()


async def failed_tasks(client: Client, customer_id: str) -> list[str]:
    """Workflow tasks of the journey's latest run that failed, with their causes."""
    history = await client.get_workflow_handle(journey_id(customer_id)).fetch_history()
    return [
        str(entry.workflow_task_failed_event_attributes.failure.message)
        for entry in history.events
        if entry.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    ]


async def test_journeys_of_0_1_carry_on_after_the_upgrade(
    dev_env: WorkflowEnvironment,
    settings: Settings,
    worker_0_1: asyncio.subprocess.Process,
) -> None:
    client = dev_env.client
    queue, db = settings.task_queue, settings.database_url

    async def send(customer: str, type: str, config: JourneyConfig = CONFIG, **props: Any) -> None:
        moment = datetime.now(UTC)
        await send_event(client, queue, config, event(customer, type, moment, **props))

    # On 0.1: rosa returns an order (the return ladder's first step goes out); lena buys
    # once (her silence is still running); cora's journey continues as new.
    await send("rosa", "purchase", amount=200)
    await send("rosa", "return", amount=60, reason="fit")
    await send("lena", "purchase", amount=40)
    for n in range(3):
        await send("cora", "purchase", SHORT_RUNS, amount=10 + n)
    sent = await eventually(lambda: steps_sent(db, "rosa"), lambda found: len(found) == 1)
    assert sent == ["how did we do"]

    async def cora_runs() -> tuple[str | None, str]:
        described = await client.get_workflow_handle(journey_id("cora")).describe()
        return described.run_id, described.raw_description.workflow_execution_info.first_run_id

    await eventually(cora_runs, lambda runs: runs[0] != runs[1])

    worker_0_1.terminate()
    assert await worker_0_1.wait() is not None

    # Today's worker takes over (once the tasks kept for the gone worker's cache time out,
    # 10 s): each journey replays on the new code and goes on.
    async with running_worker(client, settings):
        rosa = await eventually(lambda: engagements(db, "rosa"), lambda found: len(found) == 2)
        assert [e.step_name for e in rosa] == ["how did we do", "exchange credit"]
        lena = await eventually(
            lambda: engagements(db, "lena"), lambda found: len(found) >= 1, within=30
        )
        assert lena[0].step_name == "we miss you"
        await send("cora", "purchase", SHORT_RUNS, amount=20)
        cora = await eventually(
            lambda: journey_view(client, "cora"), lambda view: view.state.events_applied == 4
        )
        assert cora.state.profile.order_count == 4
        assert remediation(cora).silence_deadline is not None
        for customer in ("rosa", "lena", "cora"):
            assert await failed_tasks(client, customer) == []
        for customer in ("rosa", "lena", "cora"):
            await client.get_workflow_handle(journey_id(customer)).terminate("test over")
