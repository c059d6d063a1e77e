"""Operator actions as Temporal updates, on the dev server: each one's effect, each
refusal's reason, and the CLI that sends them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TypeVar

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment
from temporalio.workflow import UpdateMethodMultiParam

from activities.store import Engagement
from runtime.temporal import steer
from testkit import Scenario, engagements
from tests.journeys import climbing, event, remediation
from tests.servers import equator as run_equator
from tests.servers import eventually
from workflows.journey import CustomerJourney
from workflows.operator import OperatorRequest, StartLadderRequest
from workflows.state import JourneyView

ALICE = OperatorRequest(by="alice", reason="checking a complaint by phone")


async def started(dev_world: Scenario) -> str:
    customer = f"op-{uuid.uuid4().hex[:6]}"
    await dev_world.send(event(customer, "purchase", datetime.now(UTC), amount=40))
    await eventually(lambda: dev_world.view(customer), lambda v: v.state.events_applied == 1)
    return customer


Request = TypeVar("Request", bound=OperatorRequest)


async def refused(
    dev_world: Scenario,
    customer: str,
    action: UpdateMethodMultiParam[[CustomerJourney, Request], JourneyView],
    request: Request,
) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as failure:
        await steer(dev_world.client, customer, action, request)
    return str(failure.value.cause)


async def complaint_steps(dev_world: Scenario, customer: str) -> list[Engagement]:
    found = await engagements(dev_world.settings.database_url, customer)
    return [engagement for engagement in found if engagement.cause == "complaint"]


async def test_pause_holds_everything_back_until_resumed(dev_world: Scenario) -> None:
    customer = await started(dev_world)
    paused = await steer(dev_world.client, customer, CustomerJourney.pause, ALICE)
    assert paused.state.paused
    assert paused.next_action == "nothing until resumed (paused by alice)"
    assert (
        paused.state.timeline[-1].summary
        == "journey paused by alice: checking a complaint by phone"
    )
    assert "already paused by alice" in await refused(
        dev_world, customer, CustomerJourney.pause, ALICE
    )

    # A ladder started while paused sends nothing until the journey resumes.
    start = StartLadderRequest(by="bob", cause="complaint")
    view = await steer(dev_world.client, customer, CustomerJourney.start_ladder, start)
    assert climbing(view).cause == "complaint"
    assert view.state.timeline[-1].summary.endswith("(started by bob); budget $7.00")
    assert await complaint_steps(dev_world, customer) == []

    resumed = await steer(
        dev_world.client, customer, CustomerJourney.resume, OperatorRequest(by="alice")
    )
    assert not resumed.state.paused
    sent = await eventually(lambda: complaint_steps(dev_world, customer), bool)
    assert [step.step_name for step in sent] == ["apology"]
    assert "not paused" in await refused(dev_world, customer, CustomerJourney.resume, ALICE)


async def test_skip_and_end_move_the_ladder_and_refuse_without_one(dev_world: Scenario) -> None:
    customer = await started(dev_world)
    for action in (CustomerJourney.skip_step, CustomerJourney.end_ladder):
        assert "no ladder is climbing" in await refused(dev_world, customer, action, ALICE)
    not_a_ladder = StartLadderRequest(by="bob", cause="vip_care")
    assert "vip_care is not a ladder" in await refused(
        dev_world, customer, CustomerJourney.start_ladder, not_a_ladder
    )

    await steer(dev_world.client, customer, CustomerJourney.pause, ALICE)  # keep the steps still
    start = StartLadderRequest(by="bob", cause="silence")
    await steer(dev_world.client, customer, CustomerJourney.start_ladder, start)
    assert "end it first" in await refused(dev_world, customer, CustomerJourney.start_ladder, start)
    skipped = await steer(dev_world.client, customer, CustomerJourney.skip_step, ALICE)
    assert climbing(skipped).step == 1
    assert skipped.state.timeline[-1].summary.startswith(
        "step 1 of 4 of silence ladder skipped by alice"
    )
    ended = await steer(dev_world.client, customer, CustomerJourney.end_ladder, ALICE)
    assert remediation(ended).ladder is None
    assert ended.state.line_position == "equator"
    assert [e.kind for e in ended.state.timeline][-3:] == [
        "ladder_started",
        "step_skipped",
        "ladder_ended",
    ]


async def test_the_cli_pauses_and_explains_a_refusal(
    dev_world: Scenario, dev_env: WorkflowEnvironment
) -> None:
    customer = await started(dev_world)
    target = dev_env.client.service_client.config.target_host

    async def equator(*args: str) -> tuple[int, str, str]:
        return await run_equator(*args, environment={"EQUATOR_TEMPORAL_ADDRESS": target})

    code, out, _ = await equator("pause", customer, "--by", "carol", "--reason", "fraud check")
    assert code == 0
    assert "paused by carol" in out
    code, _, err = await equator("pause", customer, "--by", "carol")
    assert code == 1
    assert "refused: already paused by carol" in err
    view: JourneyView = await dev_world.view(customer)
    assert view.state.paused_by == "carol"
    # The search attributes this server got at start-up are all there already.
    code, out, _ = await equator("temporal", "setup")
    assert (code, out.strip()) == (0, "search attributes in default: all already there")
