"""Operator actions on a journey: pause, resume, skip the current step, start a ladder,
end the current ladder. Each has a check (the update's validator: a refusal names its
reason and leaves no trace in history) and an effect, noted in the timeline with who
asked. Pure functions, like the programmes.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from workflows.contracts import Via
from workflows.programme import Journey
from workflows.programmes.remediation import LadderRun, RemediationState
from workflows.registry import REMEDIATION
from workflows.state import JourneyState, LinePosition


class OperatorRequest(BaseModel):
    # Who asked, for the timeline and the audit: an operator's name or handle (over the
    # API, the source of the key).
    by: str = Field(min_length=1, max_length=64)
    reason: str = Field(default="", max_length=200)
    via: Via = Via.TEMPORAL


class StartLadderRequest(OperatorRequest):
    # A registered ladder's cause (silence, return, complaint, delivery_late, dormant).
    cause: str = Field(min_length=1, max_length=32)


class Refused(ValueError):
    """The action does not apply to the journey as it stands."""


def _climbing(state: JourneyState) -> tuple[RemediationState, LadderRun] | None:
    remediation = REMEDIATION.state_in(state)
    if remediation is None or remediation.ladder is None:
        return None
    return remediation, remediation.ladder


def check_pause(state: JourneyState) -> None:
    if state.paused:
        raise Refused(f"already paused by {state.paused_by}")


def check_resume(state: JourneyState) -> None:
    if not state.paused:
        raise Refused("the journey is not paused")


def check_skip(state: JourneyState) -> None:
    if _climbing(state) is None:
        raise Refused("no ladder is climbing: there is no step to skip")


def check_start(state: JourneyState, cause: str) -> None:
    if cause not in REMEDIATION.ladders:
        raise Refused(f"{cause} is not a ladder; ladders: {', '.join(REMEDIATION.ladders)}")
    climbing = _climbing(state)
    if climbing is not None:
        raise Refused(f"the {climbing[1].cause} ladder is climbing: end it first")


def check_end(state: JourneyState) -> None:
    if _climbing(state) is None:
        raise Refused("no ladder is climbing")


def _said(request: OperatorRequest) -> str:
    return f" by {request.by}" + (f": {request.reason}" if request.reason else "")


def pause(journey: Journey, request: OperatorRequest) -> None:
    """Nothing goes out while paused (steps, offers, thank-yous); events still apply."""
    journey.state.paused_by = request.by
    journey.note("paused", "journey paused" + _said(request))


def resume(journey: Journey, request: OperatorRequest) -> None:
    journey.state.paused_by = None
    journey.note("resumed", "journey resumed" + _said(request))


def skip(journey: Journey, request: OperatorRequest) -> None:
    """The current step, sent or not, is passed over; the next one is due now."""
    climbing = _climbing(journey.state)
    assert climbing is not None
    _, run = climbing
    what = f"step {run.step + 1} of {len(REMEDIATION.steps_of(run))} of {run.cause} ladder"
    journey.state.held.pop(run.step_key, None)
    run.step += 1
    run.response_deadline = None
    journey.note("step_skipped", f"{what} skipped" + _said(request))


def start(journey: Journey, request: StartLadderRequest) -> None:
    remediation = REMEDIATION.state_in(journey.state) or REMEDIATION.begin(journey)
    ladder = REMEDIATION.ladders[request.cause]
    REMEDIATION.start(journey, remediation, ladder, "started" + _said(request), care=False)
    REMEDIATION.put(journey.state, remediation)
    assert remediation.ladder is not None
    journey.report("journey.ladder_started", cause=ladder.cause, ladder=remediation.ladder.run_id)


def end(journey: Journey, request: OperatorRequest) -> None:
    """The climb stops where it is; the customer is back on the line, silence re-armed."""
    climbing = _climbing(journey.state)
    assert climbing is not None
    remediation, run = climbing
    remediation.ladder = None
    journey.state.line_position = LinePosition.EQUATOR
    REMEDIATION.rearm(journey, remediation)
    journey.note("ladder_ended", f"{run.cause} ladder ended" + _said(request))
