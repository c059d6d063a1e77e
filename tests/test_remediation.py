"""Remediation and the event table as plain functions: no server, no clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from testkit.moments import CONFIG, T0, apply, begun, ev
from tests.journeys import NO_HOLDOUTS
from workflows.config import JourneyConfig
from workflows.contracts import FeedOutage
from workflows.events import EVENT_TABLE, EventType, Response, polarity
from workflows.ladders import SILENCE, Ladder, LadderStep
from workflows.programme import Engagement, Journey
from workflows.programmes.remediation import RemediationState, cost_ceiling
from workflows.registry import REMEDIATION
from workflows.silence import feed_out, silence_window
from workflows.state import JourneyState, LinePosition
from workflows.timeline import lasting


def weekly(n: int) -> list[datetime]:
    return [T0 + timedelta(days=7 * i) for i in range(n)]


def remediation(state: JourneyState) -> RemediationState:
    found = REMEDIATION.state_in(state)
    assert found is not None
    return found


def test_the_event_table_reads_every_event_type() -> None:
    assert set(EVENT_TABLE) == set(EventType)
    assert EVENT_TABLE[EventType.PURCHASE].response == Response.RECOVERED
    assert not EVENT_TABLE[EventType.EMAIL_UNOPENED].customer_initiated


def test_silence_window_follows_the_customers_own_cadence() -> None:
    assert silence_window(weekly(5), CONFIG) == timedelta(days=21)


def test_silence_window_without_a_cadence_is_the_default() -> None:
    assert silence_window(weekly(1), CONFIG) == CONFIG.silence_default


@pytest.mark.parametrize(
    ("gap_days", "expected"), [(1, CONFIG.silence_min), (365, CONFIG.silence_max)]
)
def test_silence_window_stays_within_bounds(gap_days: int, expected: timedelta) -> None:
    times = [T0, T0 + timedelta(days=gap_days)]
    assert silence_window(times, CONFIG) == expected


def test_cost_ceiling_scales_with_value_and_is_capped() -> None:
    assert cost_ceiling(Decimal(0), CONFIG) == Decimal("5.00")
    assert cost_ceiling(Decimal(1000), CONFIG) == Decimal("55.00")
    assert cost_ceiling(Decimal(25_000), CONFIG) == CONFIG.cost_ceiling_max


@pytest.mark.parametrize(("rating", "direction"), [(5, 1), (3, 0), (1, -1)])
def test_feedback_polarity_follows_the_rating(rating: int, direction: int) -> None:
    assert polarity(ev("feedback", rating=rating)) == direction


def test_every_ladder_climbs_in_cost() -> None:
    for ladder in REMEDIATION.ladders.values():
        costs = [step.cost for step in ladder.steps]
        assert costs == sorted(costs)
    with pytest.raises(ValidationError, match="ordered by cost"):
        Ladder(
            cause="silence",
            priority=1,
            resolved_by=frozenset(),
            steps=(
                LadderStep(name="b", channel="email", cost=Decimal(2)),
                LadderStep(name="a", channel="email", cost=Decimal(1)),
            ),
        )


def test_unopened_email_lowers_the_line_one_notch() -> None:
    state = begun()
    state.line_position = LinePosition.ABOVE
    positions = []
    for event_id in ("1", "2"):
        apply(state, ev("email_unopened", event_id=event_id))
        positions.append(state.line_position)
    assert positions == [LinePosition.EQUATOR, LinePosition.BELOW]
    assert remediation(state).ladder is None


def test_unopened_email_does_not_restart_the_silence_clock() -> None:
    state = begun()
    apply(state, ev("purchase", T0, "1", amount=5))
    later = T0 + timedelta(days=10)
    apply(state, ev("email_unopened", later, "2"), later)
    assert state.profile.last_activity_at == T0
    assert remediation(state).silence_deadline == T0 + CONFIG.silence_default


def test_a_future_dated_event_counts_as_now() -> None:
    state = begun()
    apply(state, ev("purchase", T0 + timedelta(days=3), amount=5))
    assert state.profile.last_activity_at == T0


def test_a_lower_priority_cause_does_not_interrupt_a_ladder() -> None:
    state = begun()
    apply(state, ev("complaint", event_id="1"))
    apply(state, ev("return", event_id="2", amount=1))
    run = remediation(state).ladder
    assert run is not None
    assert run.cause == "complaint"
    assert remediation(state).runs == 1


def test_a_response_the_ladder_does_not_count_leaves_it_climbing() -> None:
    state = begun()
    apply(state, ev("complaint", event_id="1"))
    apply(state, ev("email_opened", event_id="2"))
    assert remediation(state).ladder is not None
    assert state.line_position == LinePosition.BELOW


def wants(state: JourneyState, at: datetime) -> list[Engagement]:
    journey = Journey(state, CONFIG, at)
    REMEDIATION.tick(journey, remediation(state))
    return REMEDIATION.wants(journey, remediation(state))


def outage(start_day: float, end_day: float | None, cause: str = "till export") -> FeedOutage:
    end = T0 + timedelta(days=end_day) if end_day is not None else None
    return FeedOutage(started_at=T0 + timedelta(days=start_day), ended_at=end, cause=cause)


def test_lengths_of_time_read_in_their_two_largest_units() -> None:
    assert lasting(timedelta(days=10)) == "10 days"
    assert lasting(timedelta(days=2, hours=3, minutes=4)) == "2 days 3 hours"
    assert lasting(timedelta(minutes=1, seconds=5)) == "1 minute 5 seconds"
    assert lasting(timedelta(0)) == "0 seconds"


def test_feed_out_counts_each_moment_of_the_silence_once() -> None:
    now = T0 + timedelta(days=30)
    assert feed_out([], T0, now) == timedelta(0)
    # Before the silence, after now, and overlapping each other: counted once, clipped.
    outages = [outage(-5, 2), outage(1, 4), outage(10, 12), outage(11, 11.5), outage(29, None)]
    assert feed_out(outages, T0, now) == timedelta(days=4 + 2 + 1)
    assert feed_out([outage(-9, -1), outage(31, 40)], T0, now) == timedelta(0)


def ticked(state: JourneyState, at: datetime, outages: list[FeedOutage]) -> Journey:
    journey = Journey(state, CONFIG, at, feed_outages=outages)
    found = REMEDIATION.state_in(state)
    assert found is not None
    assert REMEDIATION.silent_since(journey, found) == T0
    REMEDIATION.tick(journey, found)
    return journey


def test_an_outage_within_the_silence_moves_the_flatline_by_its_length() -> None:
    """Silence 30 days from T0; the feed was out 10 of them: no flatline until day 40,
    and asking again at day 40 about the same outage does not move it twice."""
    state = begun()
    apply(state, ev("purchase", amount=5))
    assert REMEDIATION.silent_since(Journey(state, CONFIG, T0 + timedelta(days=29)),
                                    remediation(state)) is None  # fmt: skip
    journey = ticked(state, T0 + timedelta(days=30), [outage(5, 15)])
    assert remediation(state).ladder is None
    assert remediation(state).silence_deadline == T0 + timedelta(days=40)
    [note] = [e for e in state.timeline if e.kind == "silence_excused"]
    assert "the feed was out for 10 days of the silence (till export)" in note.summary
    assert journey.reports == []
    ticked(state, T0 + timedelta(days=40), [outage(5, 15)])
    assert remediation(state).ladder is not None
    assert remediation(state).ladder.cause == "silence"  # type: ignore[union-attr]


def test_an_outage_not_over_keeps_moving_the_flatline() -> None:
    state = begun()
    apply(state, ev("purchase", amount=5))
    ticked(state, T0 + timedelta(days=30), [outage(28, None)])
    assert remediation(state).silence_deadline == T0 + timedelta(days=32)
    ticked(state, T0 + timedelta(days=32), [outage(28, None)])
    assert remediation(state).silence_deadline == T0 + timedelta(days=34)
    assert remediation(state).ladder is None
    # Over at day 33: five days counted in all, so day 35; a purchase starts afresh.
    ticked(state, T0 + timedelta(days=34), [outage(28, 33)])
    assert remediation(state).silence_deadline == T0 + timedelta(days=35)
    apply(state, ev("purchase", T0 + timedelta(days=34), "2", amount=5), T0 + timedelta(days=34))
    assert remediation(state).feed_out == timedelta(0)


def test_flatline_waits_for_the_deadline() -> None:
    state = begun()
    apply(state, ev("purchase", amount=5))
    assert wants(state, T0 + timedelta(days=29)) == []
    assert remediation(state).ladder is None
    [first] = wants(state, T0 + timedelta(days=30))
    run = remediation(state).ladder
    assert run is not None
    assert (run.cause, first.key, first.name) == ("silence", "silence-1/step-1", "we miss you")


def climbing() -> tuple[JourneyState, Journey]:
    """A journey whose silence ladder has just started, its first step due."""
    state = begun()
    journey = Journey(state, CONFIG, T0)
    REMEDIATION.start(journey, remediation(state), SILENCE, "test", care=False)
    return state, journey


def test_a_step_waits_out_its_response_window_then_the_next_is_due() -> None:
    state, journey = climbing()
    [first] = REMEDIATION.wants(journey, remediation(state))
    REMEDIATION.sent(journey, remediation(state), first)
    assert wants(state, T0 + CONFIG.response_window / 2) == []
    [second] = wants(state, T0 + CONFIG.response_window)
    assert second.name == SILENCE.steps[1].name
    assert [o.outcome for o in state.outcomes_due] == ["no_response"]


def test_a_failed_step_costs_nothing_and_the_next_is_due_at_once() -> None:
    state, journey = climbing()
    [first] = REMEDIATION.wants(journey, remediation(state))
    REMEDIATION.failed(journey, remediation(state), first, "provider down")
    run = remediation(state).ladder
    assert run is not None
    assert run.spent == 0
    [second] = wants(state, T0)
    assert second.name == SILENCE.steps[1].name


def test_a_held_step_is_not_wanted_until_its_hold_ends() -> None:
    state, _ = climbing()
    state.held["silence-1/step-1"] = T0 + timedelta(hours=8)
    assert wants(state, T0 + timedelta(hours=7)) == []
    assert len(wants(state, T0 + timedelta(hours=8))) == 1


def test_bounded_memory_of_event_ids_and_timeline() -> None:
    config = JourneyConfig(holdouts=NO_HOLDOUTS, dedupe_window=10, timeline_length=5)
    state = begun(config=config)
    for n in range(30):
        apply(state, ev("app_browse", event_id=str(n)), config=config)
    assert state.recent_event_ids == [str(n) for n in range(20, 30)]
    assert len(state.timeline) == 5


def test_config_refuses_disordered_silence_bounds() -> None:
    with pytest.raises(ValidationError, match="silence_min"):
        JourneyConfig(
            holdouts=NO_HOLDOUTS, silence_min=timedelta(days=40), silence_default=timedelta(days=30)
        )
