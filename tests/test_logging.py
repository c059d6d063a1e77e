"""Log lines carry the ids that find their journey, and only ids; an exception is one
readable stack trace; lines written at once by many threads stay whole."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TextIO

import pytest
import structlog
from structlog.testing import capture_logs
from temporalio import activity, workflow
from temporalio.client import WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from activities.engagements import EngagementActivities
from activities.store import Store
from runtime.logging import LineLogger, add_temporal_ids, standard_library_handler
from tests.journeys import engagement_request


def test_outside_an_activity_nothing_is_added() -> None:
    assert add_temporal_ids(None, "info", {"event": "x"}) == {"event": "x"}


async def test_activity_lines_carry_customer_workflow_and_run_ids(store: Store) -> None:
    with capture_logs(processors=[add_temporal_ids]) as lines:
        activities = EngagementActivities(store)
        request = engagement_request("customer-kim/run/silence-1/step-1", "kim")
        await ActivityEnvironment().run(activities.send_engagement, request)
    [sent] = [line for line in lines if line["event"] == "engagement.sent"]
    assert sent["customer_id"] == "kim"
    # ActivityEnvironment's ids, as a worker would give the journey's.
    assert (sent["workflow_id"], sent["run_id"], sent["activity"]) == (
        "test",
        "test-run",
        "unknown",
    )


@activity.defn(name="always_fails")
async def always_fails() -> None:
    raise RuntimeError("the printer is on fire")


@workflow.defn(name="FailsOnce", sandboxed=False)
class FailsOnce:
    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity(
            always_fails,
            start_to_close_timeout=timedelta(seconds=5),
            retry_policy=RetryPolicy(maximum_attempts=2, initial_interval=timedelta(seconds=1)),
        )


@contextmanager
def json_lines(path: Path) -> Iterator[TextIO]:
    """Every standard-library record of the process, rendered as in production (JSON),
    and structlog's lines, into a file written as stderr is: each write a system call."""
    buffer = io.TextIOWrapper(open(path, "wb", buffering=0), write_through=True)  # noqa: SIM115
    root = logging.getLogger()
    handler = standard_library_handler(json=True, stream=buffer)
    saved = root.handlers, root.level
    root.handlers, root.level = [handler], logging.WARNING
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=lambda *_: LineLogger(buffer),
        cache_logger_on_first_use=False,
    )
    try:
        yield buffer
    finally:
        root.handlers, root.level = saved
        structlog.reset_defaults()
        buffer.close()


async def test_a_failing_activity_is_logged_with_one_readable_stack_trace(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    with json_lines(tmp_path / "log"):
        async with Worker(
            time_skipping_env.client,
            task_queue="fails",
            workflows=[FailsOnce],
            activities=[always_fails],
        ):
            with pytest.raises(WorkflowFailureError):
                await time_skipping_env.client.execute_workflow(
                    FailsOnce.run, id=f"fails-{uuid.uuid4()}", task_queue="fails"
                )
    lines = [json.loads(line) for line in (tmp_path / "log").read_text().splitlines()]
    failed = [line for line in lines if "exception" in line and "on fire" in line["exception"]]
    assert failed, lines
    trace = failed[0]["exception"]
    assert trace.startswith("Traceback (most recent call last):")
    assert 'raise RuntimeError("the printer is on fire")' in trace
    assert "<traceback object" not in trace


def test_lines_written_at_once_by_many_threads_stay_whole(tmp_path: Path) -> None:
    """structlog's and the standard library's lines, from threads writing at once: each on
    its own line, whole."""
    per_thread, threads = 400, 8
    # Threads switch as often as they can: a line written in two parts would be split.
    switching = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    with json_lines(tmp_path / "log"):

        def write(n: int) -> None:
            for i in range(per_thread):
                if (n + i) % 2:
                    structlog.get_logger().warning("structlog", writer=n, i=i, pad="x" * 200)
                else:
                    logging.getLogger("temporalio.activity").warning(
                        "stdlib", extra={"writer": n, "i": i, "pad": "y" * 200}
                    )

        workers = [threading.Thread(target=write, args=(n,)) for n in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    sys.setswitchinterval(switching)
    lines = (tmp_path / "log").read_text().splitlines()
    assert len(lines) == per_thread * threads
    parsed = [json.loads(line) for line in lines]
    assert {(line["writer"], line["i"]) for line in parsed} == {
        (n, i) for n in range(threads) for i in range(per_thread)
    }
