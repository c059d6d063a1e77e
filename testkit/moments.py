"""Programmes as pure functions, for unit tests that need no server: a journey's state
as a new customer's journey starts, and events applied through the same engine the
workflow uses. Every call is handed its time."""

from __future__ import annotations

from datetime import UTC, datetime

from workflows import engine
from workflows.config import JourneyConfig
from workflows.events import CustomerEvent, make_event
from workflows.programme import Journey
from workflows.registry import PROGRAMMES
from workflows.state import JourneyState

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CONFIG = JourneyConfig()
# Every registered programme, as a journey that begins today runs them.
EVERY = engine.Programmes.of(PROGRAMMES, lambda patch: True)


def ev(
    type: str, at: datetime = T0, event_id: str = "e", customer_id: str = "c", **props: object
) -> CustomerEvent:
    """An event as a source would send it."""
    return make_event(event_id, customer_id, type, at, props)


def begun(
    at: datetime = T0, config: JourneyConfig = CONFIG, customer_id: str = "c"
) -> JourneyState:
    """A new customer's journey state, as the workflow has it before the first event."""
    state = JourneyState(customer_id=customer_id)
    engine.begin(Journey(state, config, at), EVERY)
    return state


def apply(
    state: JourneyState, event: CustomerEvent, at: datetime = T0, config: JourneyConfig = CONFIG
) -> Journey:
    """Apply one fresh event at ``at``, then let the cohort follow; returns the journey
    (its ``reports`` and ``raised`` say what the programmes told)."""
    journey = Journey(state, config, at)
    engine.apply_event(journey, EVERY, event)
    engine.update_cohort(journey, EVERY)
    return journey
