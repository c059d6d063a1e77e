"""A sequence of engagements some days apart (a welcome's nudges, a winback), as data
and pure functions: the step due now, what sending or passing over one does, and when
the sequence is over.

Unlike a remediation ladder there is no budget and no escalation by cause: the
programme that runs a sequence says what answers it (a second purchase, feedback).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from workflows.programme import Deadline, Engagement, Journey


class SequenceStep(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    channel: str
    cost: Decimal
    # How long after the sequence starts (first step) or the previous step.
    wait: timedelta = timedelta(0)
    offer_id: str | None = None


def climbing_in_cost(steps: tuple[SequenceStep, ...], what: str) -> None:
    """Cheapest first: refuse rules whose steps do not climb in cost."""
    costs = [step.cost for step in steps]
    if costs != sorted(costs):
        raise ValueError(f"{what} must climb in cost")


class SequenceRun(BaseModel):
    """One customer's way through a sequence; ``series`` keys its engagements."""

    series: str
    # How many steps it has (its rules may change while it runs: it keeps its own).
    length: int
    step: int = 0
    # When the current step is due; after the last, when the sequence is over.
    due_at: datetime
    # The engagement sent last, while it may still be answered.
    awaiting: str | None = None


def start(series: str, steps: tuple[SequenceStep, ...], now: datetime) -> SequenceRun:
    return SequenceRun(series=series, length=len(steps), due_at=now + steps[0].wait)


def due(
    journey: Journey,
    run: SequenceRun,
    steps: tuple[SequenceStep, ...],
    cause: str,
    content: str = "",
) -> Engagement | None:
    """The step to send now, if one is due; ``content`` personalises its copy key.
    Marketing: held back while the customer is in care."""
    if run.step >= min(run.length, len(steps)) or journey.now < run.due_at:
        return None
    step = steps[run.step]
    name = f"{step.name}/{content}" if content else step.name
    return Engagement(
        cause=cause,
        series=run.series,
        step=run.step + 1,
        name=name,
        channel=step.channel,
        cost=step.cost,
        offer_id=step.offer_id,
        label=f"step {run.step + 1} of {run.length} of {cause}",
        what=f"{cause} step {run.step + 1} of {run.length}: {name}",
        care_first=True,
    )


def advance(
    journey: Journey,
    run: SequenceRun,
    steps: tuple[SequenceStep, ...],
    last_wait: timedelta,
    sent: Engagement | None = None,
) -> None:
    """The current step went out (``sent``), failed or was passed over: the next is due
    after its wait; after the last, the sequence is over ``last_wait`` later."""
    if sent is not None:
        answer(journey, run, "no_response")
        run.awaiting = sent.key
    run.step += 1
    wait = steps[run.step].wait if run.step < min(run.length, len(steps)) else last_wait
    run.due_at = journey.now + wait


def answer(journey: Journey, run: SequenceRun, outcome: str) -> None:
    """What became of the step sent last (responded, converted, no_response)."""
    if run.awaiting is not None:
        journey.outcome(run.awaiting, outcome)
        run.awaiting = None


def over(journey: Journey, run: SequenceRun) -> bool:
    """Whether every step is done and the last one's time to answer has passed (its
    outcome is then filed as no_response)."""
    if run.step < run.length or journey.now < run.due_at:
        return False
    answer(journey, run, "no_response")
    return True


def deadline(run: SequenceRun, held: Mapping[str, datetime], what: str) -> Deadline:
    if run.step < run.length:
        at = held.get(f"{run.series}/step-{run.step + 1}", run.due_at)
        return Deadline(at, f"send step {run.step + 1} of {what}")
    return Deadline(run.due_at, f"close {what}")
