"""The journey's state: small, carried whole across continue-as-new, shown by the query.

What every programme shares lives here (profile, cohort, line position, the contact
policy's memory, the timeline); each programme's own state sits in ``programmes``
under its name, present only while the programme has something to remember.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, computed_field, field_validator, model_validator

from workflows import state_0_1
from workflows.cohorts import Cohort
from workflows.config import JourneyConfig
from workflows.profile import Profile
from workflows.timeline import TimelineEntry


class LinePosition(StrEnum):
    ABOVE = "above"
    EQUATOR = "equator"
    BELOW = "below"


class OutcomeDue(BaseModel):
    """An engagement's outcome, waiting to be filed in the store."""

    # The engagement's key within the journey: "<series>/step-<n>".
    engagement: str
    outcome: str
    at: datetime


class Touch(BaseModel):
    """A programme's last engagement (sent, or a control group's ghost): what a purchase
    soon after is credited to."""

    engagement: str
    at: datetime


class AttributionDue(BaseModel):
    """A purchase (or a redemption) credited to an engagement, waiting to be filed."""

    engagement: str
    event_id: str
    amount: Decimal
    at: datetime


class JourneyState(BaseModel):
    customer_id: str
    line_position: LinePosition = LinePosition.EQUATOR
    cohort: Cohort | None = None
    # Who paused the journey, if anyone: events still apply, nothing goes out.
    paused_by: str | None = None
    profile: Profile = Field(default_factory=Profile)
    events_applied: int = 0
    events_rejected: int = 0
    duplicates_ignored: int = 0
    # Marketing engagements sent within the contact policy's cap window.
    marketing_touches: list[datetime] = Field(default_factory=list)
    # Engagements the contact policy holds back (a cap, quiet hours), by key: until when.
    held: dict[str, datetime] = Field(default_factory=dict)
    outcomes_due: list[OutcomeDue] = Field(default_factory=list)
    # The programmes whose control group the customer is in this period: their
    # marketing goes out as ghosts (workflows/holdout.py). Drawn again each pass.
    held_back_from: list[str] = Field(default_factory=list)
    # Each programme's last touch, while a purchase could still be credited to it.
    last_touch: dict[str, Touch] = Field(default_factory=dict)
    attributions_due: list[AttributionDue] = Field(default_factory=list)
    # Each programme's own state, by programme name (see ``Programme.state_in``).
    programmes: dict[str, Any] = Field(default_factory=dict)
    recent_event_ids: list[str] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _carried_from_0_1(cls, data: Any) -> Any:
        return state_0_1.upgrade(data)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def paused(self) -> bool:
        return self.paused_by is not None


# Configurations parsed, by content: the SDK keeps each run's input for the run's life,
# and a worker sees a few distinct configurations at most, so journeys share one.
_SHARED_CONFIGS: dict[str, JourneyConfig] = {}
SHARED_CONFIGS_KEPT = 32


class JourneyInput(BaseModel):
    customer_id: str
    config: JourneyConfig = Field(default_factory=JourneyConfig)
    # Set by continue-as-new: the state so far and events received but not yet applied.
    state: JourneyState | None = None
    pending: list[Any] = Field(default_factory=list)
    pending_campaigns: list[Any] = Field(default_factory=list)

    @field_validator("config")
    @classmethod
    def _shared(cls, config: JourneyConfig) -> JourneyConfig:
        """An equal configuration parsed before, if any (configurations are frozen)."""
        key = config.model_dump_json()
        shared = _SHARED_CONFIGS.get(key)
        if shared is None:
            if len(_SHARED_CONFIGS) >= SHARED_CONFIGS_KEPT:
                _SHARED_CONFIGS.clear()
            shared = _SHARED_CONFIGS[key] = config
        return shared


class ProgrammeView(BaseModel):
    """An active programme as ops see it."""

    name: str
    # Where it stands ("climbing the silence ladder: step 2 of 4…"), if it says.
    standing: str | None = None
    next_action: str | None = None
    next_action_at: datetime | None = None


class JourneyView(BaseModel):
    """What the ``state`` query answers: the state, each active programme, and what
    happens next and when."""

    state: JourneyState
    pending_events: int
    next_action: str
    next_action_at: datetime | None
    programmes: list[ProgrammeView] = Field(default_factory=list)
