"""Operator actions on a journey: pause, resume, skip the current step, start a ladder,
end the current ladder. Each has a check (the update's validator: a refusal names its
reason and leaves no trace in history) and an effect, noted in the timeline with who
asked. Pure functions, like the rest of the rules.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from workflows.config import JourneyConfig
from workflows.ladders import LADDERS, Cause
from workflows.rules import note, silence_deadline, start_ladder, steps_of
from workflows.state import JourneyState, LinePosition


class OperatorRequest(BaseModel):
    # Who asked, for the timeline: an operator's name or handle.
    by: str = Field(min_length=1, max_length=64)
    reason: str = Field(default="", max_length=200)


class StartLadderRequest(OperatorRequest):
    cause: Cause


class Refused(ValueError):
    """The action does not apply to the journey as it stands."""


def check_pause(state: JourneyState) -> None:
    if state.paused:
        raise Refused(f"already paused by {state.paused_by}")


def check_resume(state: JourneyState) -> None:
    if not state.paused:
        raise Refused("the journey is not paused")


def check_skip(state: JourneyState) -> None:
    if state.ladder is None:
        raise Refused("no ladder is climbing: there is no step to skip")


def check_start(state: JourneyState, cause: Cause) -> None:
    if cause not in LADDERS:
        raise Refused(f"{cause.value} is not a ladder")
    if state.ladder is not None:
        raise Refused(f"the {state.ladder.cause.value} ladder is climbing: end it first")


def check_end(state: JourneyState) -> None:
    if state.ladder is None:
        raise Refused("no ladder is climbing")


def _said(request: OperatorRequest) -> str:
    return f" by {request.by}" + (f": {request.reason}" if request.reason else "")


def pause(
    state: JourneyState, config: JourneyConfig, request: OperatorRequest, now: datetime
) -> None:
    """Nothing goes out while paused (steps, offers, thank-yous); events still apply."""
    state.paused_by = request.by
    note(state, config, now, "paused", "journey paused" + _said(request))


def resume(
    state: JourneyState, config: JourneyConfig, request: OperatorRequest, now: datetime
) -> None:
    state.paused_by = None
    note(state, config, now, "resumed", "journey resumed" + _said(request))


def skip(
    state: JourneyState, config: JourneyConfig, request: OperatorRequest, now: datetime
) -> None:
    """The current step, sent or not, is passed over; the next one is due now."""
    run = state.ladder
    assert run is not None
    what = f"step {run.step + 1} of {len(steps_of(run))} of {run.cause.value} ladder"
    run.step += 1
    run.response_deadline = None
    run.deferred_until = None
    note(state, config, now, "step_skipped", f"{what} skipped" + _said(request))


def start(
    state: JourneyState, config: JourneyConfig, request: StartLadderRequest, now: datetime
) -> None:
    start_ladder(state, config, request.cause, now, "started" + _said(request))


def end(
    state: JourneyState, config: JourneyConfig, request: OperatorRequest, now: datetime
) -> None:
    """The climb stops where it is; the customer is back on the line, silence re-armed."""
    run = state.ladder
    assert run is not None
    state.ladder = None
    state.line_position = LinePosition.EQUATOR
    state.silence_deadline = silence_deadline(state, now, config)
    note(state, config, now, "ladder_ended", f"{run.cause.value} ladder ended" + _said(request))
