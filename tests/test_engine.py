"""The interpreter as pure functions: which programmes run and hear what, and that a
programme with nothing to remember keeps no state."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from testkit import apply, begun, ev
from testkit.moments import EVERY
from workflows import engine
from workflows.config import JourneyConfig
from workflows.events import EventType
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
