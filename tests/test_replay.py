"""Determinism: recorded journey histories must replay on today's workflow code.

A failure here means a change would break running journeys: put it behind
``workflow.patched`` (and record a new history with ``tests/histories/record.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from runtime.worker import WORKFLOW_RUNNER
from tests.histories.record import play
from workflows.journey import CustomerJourney
from workflows.patches import AT_START, RELEASE, Patch

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


def patches_marked(history: WorkflowHistory) -> list[str]:
    return [
        json.loads(event.marker_recorded_event_attributes.details["patch-data"].payloads[0].data)[
            "id"
        ]
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and event.marker_recorded_event_attributes.marker_name == "core_patch"
    ]


async def test_a_run_that_begins_on_this_release_marks_one_patch_and_newer_ones() -> None:
    # Every older patch is implied by the release: one marker a run, not one per patch;
    # only changes newer than the release mark their own (this run is steered by an
    # operator, then ends erased).
    marked = patches_marked(await play())
    assert marked == [RELEASE, Patch.FEED_OUTAGES, Patch.OPERATOR_AUDIT, Patch.ERASURE_UNINDEXED]


def test_a_run_that_began_on_0_1_kept_its_own_patches() -> None:
    history = WorkflowHistory.from_json("customer-golden", RECORDED["journey-v3"])
    assert RELEASE not in patches_marked(history)
    assert set(AT_START) <= set(patches_marked(history))


def test_there_is_a_recorded_history() -> None:
    assert RECORDED, "tests/histories/ must hold at least one recorded journey history"
