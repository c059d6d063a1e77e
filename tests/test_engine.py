"""The interpreter as pure functions: which programmes run and hear what, that a
programme with nothing to remember keeps no state, and when a journey next wakes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from testkit import apply, begun, ev
from testkit.moments import EVERY, T0
from workflows import engine
from workflows.config import AlarmGrid, JourneyConfig
from workflows.events import EventType
from workflows.programme import Journey
from workflows.registry import PROGRAMMES


def test_events_reach_only_the_programmes_that_hear_them() -> None:
    hearing = {t: [p.name for p in EVERY.by_event[t]] for t in EventType}
    assert hearing[EventType.CS_CONTACT] == ["remediation"]
    assert "campaigns" in hearing[EventType.PURCHASE]
    assert "campaigns" not in hearing[EventType.APP_BROWSE]


def test_a_programme_not_enabled_does_not_run_but_remediation_always_does() -> None:
    chosen = engine.Programmes.of(PROGRAMMES, lambda patch: True, frozenset({"campaigns"}))
    assert [p.name for p in chosen.enabled] == ["remediation", "campaigns"]


def test_a_journey_begun_before_a_patch_runs_without_its_programmes() -> None:
    old = engine.Programmes.of(PROGRAMMES, lambda patch: False)
    assert [p.name for p in old.enabled] == ["remediation", "campaigns"]


def test_unknown_programme_names_are_refused_with_the_known_ones() -> None:
    with pytest.raises(ValidationError, match="no programme named welcom; programmes: "):
        JourneyConfig(enabled=frozenset({"welcom"}))
    with pytest.raises(ValidationError, match="no programme named winbak"):
        JourneyConfig(programmes={"winbak": {}})


def test_a_programme_with_nothing_to_remember_keeps_no_state() -> None:
    state = begun()
    apply(state, ev("app_browse", event_id="b1", category="dresses"))
    apply(state, ev("cs_contact", event_id="c1"))
    assert set(state.programmes) == {"remediation"}


def test_an_alarm_grid_puts_a_deadline_off_to_its_next_instant() -> None:
    hour = timedelta(hours=1)
    grid = AlarmGrid(every=hour, anchor=T0 - timedelta(seconds=30))
    assert grid.next_at(T0) == T0 + hour - timedelta(seconds=30)
    on_it = T0 + 5 * hour - timedelta(seconds=30)
    assert grid.next_at(on_it) == on_it
    assert grid.next_at(on_it + timedelta(microseconds=1)) == on_it + hour
    # Before the anchor too.
    assert grid.next_at(T0 - 2 * hour) == T0 - hour - timedelta(seconds=30)


def test_a_journey_on_a_grid_wakes_at_the_grid_instant_after_its_deadline() -> None:
    grid = AlarmGrid(every=timedelta(hours=6), anchor=T0)
    exact, on_grid = JourneyConfig(), JourneyConfig(alarm_grid=grid)
    state = begun(config=exact)
    apply(state, ev("purchase", event_id="p1", amount="20.00"), T0 + timedelta(minutes=7))
    due, action = engine.next_deadline(Journey(state, exact, T0), EVERY)
    woken, same_action = engine.next_deadline(Journey(state, on_grid, T0), EVERY)
    assert due is not None
    assert woken is not None
    assert woken == grid.next_at(due) > due
    assert (woken - T0) % grid.every == timedelta(0)
    assert same_action == action
