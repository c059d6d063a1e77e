"""Determinism: recorded journey histories must replay on today's workflow code.

A failure here means a change would break running journeys: put it behind
``workflow.patched`` (and record a new history with ``tests/histories/record.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from runtime.worker import WORKFLOW_RUNNER
from tests.histories.record import play
from workflows.journey import CustomerJourney

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
RECORDED = {path.stem: path.read_text() for path in HISTORIES}


def replayer() -> Replayer:
    return Replayer(
        workflows=[CustomerJourney],
        data_converter=pydantic_data_converter,
        workflow_runner=WORKFLOW_RUNNER,
    )


@pytest.mark.parametrize("name", sorted(RECORDED))
async def test_recorded_histories_replay(name: str) -> None:
    history = WorkflowHistory.from_json("customer-golden", RECORDED[name])
    result = await replayer().replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None


async def test_a_fresh_history_replays() -> None:
    history = await play()
    assert len(history.events) > 50
    result = await replayer().replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None


def test_there_is_a_recorded_history() -> None:
    assert RECORDED, "tests/histories/ must hold at least one recorded journey history"
