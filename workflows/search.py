"""Search attributes: what ops filter journeys by in the Temporal UI and list queries,
kept current by the journey. Ids and standing only, never personal data.

The dev server's SQLite visibility allows at most 3 Int, 3 Double, 3 Datetime and 3
KeywordList custom attributes; these use one of each.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from temporalio.common import SearchAttributeKey, SearchAttributeUpdate

from workflows.registry import REMEDIATION
from workflows.state import JourneyState

CUSTOMER_ID = SearchAttributeKey.for_keyword("CustomerId")
TIER = SearchAttributeKey.for_keyword("Tier")
LINE_POSITION = SearchAttributeKey.for_keyword("LinePosition")
LADDER = SearchAttributeKey.for_keyword("Ladder")
LADDER_STEP = SearchAttributeKey.for_int("LadderStep")
LAST_EVENT_AT = SearchAttributeKey.for_datetime("LastEventAt")
LIFETIME_VALUE = SearchAttributeKey.for_float("LifetimeValue")
# The programmes whose control group the customer is in (workflows/holdout.py).
HELD_BACK_FROM = SearchAttributeKey.for_keyword_list("HeldBackFrom")

KEYS: tuple[SearchAttributeKey[Any], ...] = (
    CUSTOMER_ID,
    TIER,
    LINE_POSITION,
    LADDER,
    LADDER_STEP,
    LAST_EVENT_AT,
    LIFETIME_VALUE,
    HELD_BACK_FROM,
)
_BY_NAME = {key.name: key for key in KEYS}


def values(state: JourneyState) -> dict[str, Any]:
    """The journey's search attributes as its state stands ("none" where nothing is;
    None leaves the attribute unset)."""
    remediation = REMEDIATION.state_in(state)
    run = remediation.ladder if remediation else None
    return {
        CUSTOMER_ID.name: state.customer_id,
        TIER.name: state.cohort.value if state.cohort else "none",
        LINE_POSITION.name: state.line_position.value,
        LADDER.name: run.cause if run else "none",
        LADDER_STEP.name: run.step + 1 if run else 0,
        LAST_EVENT_AT.name: state.profile.last_activity_at,
        LIFETIME_VALUE.name: float(state.profile.lifetime_value),
        # Unset, not an empty list, for the many held back from nothing (and for every
        # journey of 0.1, whose upserts stay as they were).
        HELD_BACK_FROM.name: list(state.held_back_from) or None,
    }


def erased() -> list[SearchAttributeUpdate[Any]]:
    """An erased journey's: its customer id stays (it names the workflow anyway); its
    spend, standing and last activity, which describe the customer, go."""
    return [key.value_unset() for key in KEYS if key is not CUSTOMER_ID]


def updates(changed: Mapping[str, Any]) -> list[SearchAttributeUpdate[Any]]:
    return [
        _BY_NAME[name].value_set(value) if value is not None else _BY_NAME[name].value_unset()
        for name, value in changed.items()
    ]
