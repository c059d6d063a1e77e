"""Journeys as pure functions, for tests that need no server: a ``Journey`` at a moment,
and events applied through the same engine the workflow uses."""

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


def ev(type: str, at: datetime = T0, event_id: str = "e", **props: object) -> CustomerEvent:
    return make_event(event_id, "c", type, at, props)


def begun(at: datetime = T0, config: JourneyConfig = CONFIG) -> JourneyState:
    """A new customer's journey state, as ``run`` leaves it before the first event."""
    state = JourneyState(customer_id="c")
    engine.begin(Journey(state, config, at), EVERY)
    return state


def apply(
    state: JourneyState, event: CustomerEvent, at: datetime = T0, config: JourneyConfig = CONFIG
) -> Journey:
    journey = Journey(state, config, at)
    engine.apply_event(journey, EVERY, event)
    return journey
