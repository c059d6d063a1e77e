"""Helpers the project's tests share beyond the testing kit (``testkit``): events at a
given time, a ladder step's request, and the programme states scenarios read."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any

from temporalio.testing import WorkflowEnvironment

from workflows.contact import ContactPolicy
from workflows.contracts import EngagementRequest
from workflows.events import CustomerEvent, make_event
from workflows.holdout import HoldoutRules, held_back_from
from workflows.programmes.above_the_line import OffersState
from workflows.programmes.remediation import LadderRun, RemediationState
from workflows.registry import ABOVE_THE_LINE, REMEDIATION
from workflows.state import JourneyView

# Scenarios must not depend on the hour they run at: no quiet hours.
NEVER_QUIET = ContactPolicy(quiet_start=time(0), quiet_end=time(0))
# No control groups: tests that are not about holdouts see every engagement sent, whatever
# customer id they pick and whatever quarter the clock is in (tests/test_holdouts.py).
NO_HOLDOUTS = HoldoutRules(shares={})
# The programmes of 0.1: scenarios about them run without the later ones, whose messages
# would share the frequency cap with theirs.
PROGRAMMES_0_1 = frozenset({"remediation", "vip_thanks", "above_the_line", "campaigns"})


def event(
    customer_id: str, type: str, at: datetime, event_id: str | None = None, **properties: Any
) -> CustomerEvent:
    return make_event(event_id or f"ev-{uuid.uuid4().hex[:12]}", customer_id, type, at, properties)


def engagement_request(
    key: str = "customer-c3/run/silence-1/step-1", customer_id: str = "c3"
) -> EngagementRequest:
    """The first step of a silence ladder, as a journey asks for it."""
    return EngagementRequest(
        idempotency_key=key,
        customer_id=customer_id,
        cause="silence",
        ladder_run_id="silence-1",
        step=1,
        step_name="we miss you",
        channel="email",
        cost=Decimal("0.05"),
    )


def remediation(view: JourneyView) -> RemediationState:
    """The remediation programme's state (always there: it watches for silence)."""
    state = REMEDIATION.state_in(view.state)
    assert state is not None
    return state


def climbing(view: JourneyView) -> LadderRun:
    """The ladder climbing in the journey (there must be one)."""
    run = remediation(view).ladder
    assert run is not None, "no ladder is climbing"
    return run


def offers(view: JourneyView) -> OffersState:
    return ABOVE_THE_LINE.state_in(view.state) or OffersState()


async def now(env: WorkflowEnvironment) -> datetime:
    return await env.get_current_time()


def days(n: float) -> timedelta:
    return timedelta(days=n)


async def sleep_until(env: WorkflowEnvironment, moment: datetime) -> None:
    """Skip the server's clock forward to ``moment``."""
    remaining = moment - await env.get_current_time()
    if remaining > timedelta(0):
        await env.sleep(remaining)


def customer_in(
    rules: HoldoutRules, control: bool, times: Iterable[datetime], programme: str = "remediation"
) -> str:
    """The first customer id in (or out of) the programme's control group at every one of
    ``times``: a scenario that crosses into another period keeps its groups."""
    moments = list(times)
    for n in range(1_000):
        customer = f"hold-{n}"
        if all(held_back_from(customer, programme, t, rules) == control for t in moments):
            return customer
    raise AssertionError("no such customer among 1,000")
