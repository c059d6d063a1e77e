"""The journey's rules as plain functions: no server, no clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from workflows import rules
from workflows.config import JourneyConfig
from workflows.events import CustomerEvent, describe_errors, make_event, parse_event
from workflows.ladders import LADDERS, Cause, Ladder, LadderStep
from workflows.state import JourneyState, LadderRun, LinePosition

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CONFIG = JourneyConfig()


def ev(type: str, at: datetime = T0, event_id: str = "e", **props: object) -> CustomerEvent:
    return make_event(event_id, "c", type, at, props)


def weekly(n: int) -> list[datetime]:
    return [T0 + timedelta(days=7 * i) for i in range(n)]


def test_silence_window_follows_the_customers_own_cadence() -> None:
    assert rules.silence_window(weekly(5), CONFIG) == timedelta(days=21)


def test_silence_window_without_a_cadence_is_the_default() -> None:
    assert rules.silence_window(weekly(1), CONFIG) == CONFIG.silence_default


@pytest.mark.parametrize(
    ("gap_days", "expected"), [(1, CONFIG.silence_min), (365, CONFIG.silence_max)]
)
def test_silence_window_stays_within_bounds(gap_days: int, expected: timedelta) -> None:
    times = [T0, T0 + timedelta(days=gap_days)]
    assert rules.silence_window(times, CONFIG) == expected


def test_cost_ceiling_scales_with_value_and_is_capped() -> None:
    assert rules.cost_ceiling(Decimal(0), CONFIG) == Decimal("5.00")
    assert rules.cost_ceiling(Decimal(1000), CONFIG) == Decimal("55.00")
    assert rules.cost_ceiling(Decimal(25_000), CONFIG) == CONFIG.cost_ceiling_max


@pytest.mark.parametrize(("rating", "direction"), [(5, 1), (3, 0), (1, -1)])
def test_feedback_polarity_follows_the_rating(rating: int, direction: int) -> None:
    assert rules.polarity(ev("feedback", rating=rating)) == direction


def test_every_ladder_climbs_in_cost() -> None:
    for ladder in LADDERS.values():
        costs = [step.cost for step in ladder.steps]
        assert costs == sorted(costs)
    with pytest.raises(ValidationError, match="ordered by cost"):
        Ladder(
            cause=Cause.SILENCE,
            priority=1,
            resolved_by=frozenset(),
            steps=(
                LadderStep(name="b", channel="email", cost=Decimal(2)),
                LadderStep(name="a", channel="email", cost=Decimal(1)),
            ),
        )


def test_unopened_email_lowers_the_line_one_notch() -> None:
    state = JourneyState(customer_id="c", line_position=LinePosition.ABOVE)
    positions = []
    for event_id in ("1", "2"):
        rules.apply_event(state, CONFIG, ev("email_unopened", event_id=event_id), T0)
        positions.append(state.line_position)
    assert positions == [LinePosition.EQUATOR, LinePosition.BELOW]
    assert state.ladder is None


def test_unopened_email_does_not_restart_the_silence_clock() -> None:
    state = JourneyState(customer_id="c")
    rules.apply_event(state, CONFIG, ev("purchase", T0, "1", amount=5), T0)
    later = T0 + timedelta(days=10)
    rules.apply_event(state, CONFIG, ev("email_unopened", later, "2"), later)
    assert state.profile.last_activity_at == T0
    assert state.silence_deadline == T0 + CONFIG.silence_default


def test_a_future_dated_event_counts_as_now() -> None:
    state = JourneyState(customer_id="c")
    rules.apply_event(state, CONFIG, ev("purchase", T0 + timedelta(days=3), amount=5), T0)
    assert state.profile.last_activity_at == T0


def test_a_lower_priority_cause_does_not_interrupt_a_ladder() -> None:
    state = JourneyState(customer_id="c")
    rules.apply_event(state, CONFIG, ev("complaint", event_id="1"), T0)
    rules.apply_event(state, CONFIG, ev("return", event_id="2", amount=1), T0)
    assert state.ladder is not None
    assert state.ladder.cause == Cause.COMPLAINT
    assert state.ladder_runs == 1


def test_a_response_the_ladder_does_not_count_leaves_it_climbing() -> None:
    state = JourneyState(customer_id="c")
    rules.apply_event(state, CONFIG, ev("complaint", event_id="1"), T0)
    rules.apply_event(state, CONFIG, ev("email_opened", event_id="2"), T0)
    assert state.ladder is not None
    assert state.line_position == LinePosition.BELOW


def test_flatline_waits_for_the_deadline() -> None:
    state = JourneyState(customer_id="c")
    rules.apply_event(state, CONFIG, ev("purchase", amount=5), T0)
    assert not rules.flatline_if_silent(state, CONFIG, T0 + timedelta(days=29))
    assert rules.flatline_if_silent(state, CONFIG, T0 + timedelta(days=30))
    assert state.ladder is not None
    assert state.ladder.cause == Cause.SILENCE


def climbing() -> tuple[JourneyState, LadderRun, LadderStep]:
    """A journey whose silence ladder has just started, and its first step."""
    state = JourneyState(customer_id="c")
    rules.start_ladder(state, CONFIG, Cause.SILENCE, T0, "test")
    run = state.ladder
    assert run is not None
    first = rules.step_due(state, CONFIG, T0)
    assert first is not None
    return state, run, first


def test_a_step_waits_out_its_response_window_then_the_next_is_due() -> None:
    state, run, first = climbing()
    rules.step_sent(state, CONFIG, run, first, T0)
    assert rules.step_due(state, CONFIG, T0 + CONFIG.response_window / 2) is None
    second = rules.step_due(state, CONFIG, T0 + CONFIG.response_window)
    assert second == LADDERS[Cause.SILENCE].steps[1]


def test_a_failed_step_costs_nothing_and_the_next_is_due_at_once() -> None:
    state, run, first = climbing()
    rules.step_failed(state, CONFIG, run, first, T0, "provider down")
    assert run.spent == 0
    assert rules.step_due(state, CONFIG, T0) == LADDERS[Cause.SILENCE].steps[1]


def test_bounded_memory_of_event_ids_and_timeline() -> None:
    config = JourneyConfig(dedupe_window=10, timeline_length=5)
    state = JourneyState(customer_id="c")
    for n in range(30):
        rules.apply_event(state, config, ev("app_browse", event_id=str(n)), T0)
    assert state.recent_event_ids == [str(n) for n in range(20, 30)]
    assert len(state.timeline) == 5


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"type": "purchase"}, "event_id: Field required"),
        (
            {
                "event_id": "e",
                "customer_id": "c",
                "type": "teleport",
                "occurred_at": "2026-01-01T00:00:00Z",
            },
            "type: must be one of: purchase, return,",
        ),
        (
            {
                "event_id": "e",
                "customer_id": "c",
                "type": "purchase",
                "occurred_at": "2026-01-01T00:00:00",
                "properties": {"amount": 1},
            },
            "occurred_at: Input should have timezone info",
        ),
        (
            {
                "event_id": "e",
                "customer_id": "c",
                "type": "purchase",
                "occurred_at": "2026-01-01T00:00:00Z",
                "properties": {"amount": -1},
            },
            "properties.amount: Input should be greater than or equal to 0",
        ),
        (
            # Cannot even be moved to UTC: refused before anything tries.
            {
                "event_id": "e",
                "customer_id": "c",
                "type": "app_browse",
                "occurred_at": "0001-01-01T00:00:00+05:00",
            },
            "occurred_at: Value error, must lie between 1970 and 2999",
        ),
    ],
)
def test_invalid_events_are_described_by_field(data: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_event(data)
    assert fragment in describe_errors(caught.value)


def test_config_refuses_disordered_silence_bounds() -> None:
    with pytest.raises(ValidationError, match="silence_min"):
        JourneyConfig(silence_min=timedelta(days=40), silence_default=timedelta(days=30))
