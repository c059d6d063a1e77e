"""The journey's state: small, carried whole across continue-as-new, shown by the query."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, computed_field

from workflows.calendar import Campaign
from workflows.cohorts import Cohort
from workflows.config import JourneyConfig
from workflows.contracts import CampaignContact
from workflows.ladders import Cause
from workflows.profile import Profile


class LinePosition(StrEnum):
    ABOVE = "above"
    EQUATOR = "equator"
    BELOW = "below"


class TimelineEntry(BaseModel):
    at: datetime
    kind: str
    summary: str
    event_id: str | None = None


class LadderRun(BaseModel):
    """One climb of one ladder. ``run_id`` keys its engagements, so none is sent twice."""

    run_id: str
    cause: Cause
    started_at: datetime
    ceiling: Decimal
    step: int = 0
    spent: Decimal = Decimal(0)
    # Set once the current step's engagement has gone out; the window then runs.
    response_deadline: datetime | None = None
    # Set while the contact policy holds the current step back (cap, quiet hours).
    deferred_until: datetime | None = None
    # A VIP's climb: a service ticket comes before the ladder's own steps.
    vip_care: bool = False


class WalletOffer(BaseModel):
    """An offer made to the customer above the line, and what became of it."""

    # Names its engagement (unique in the journey), so it is never sent twice.
    key: str
    offer_id: str
    category: str | None = None
    why: str
    issued_at: datetime | None = None
    expires_at: datetime | None = None
    redeemed_at: datetime | None = None
    # Set while the contact policy holds it back (a cap, quiet hours).
    deferred_until: datetime | None = None


class OutcomeDue(BaseModel):
    """An engagement's outcome, waiting to be filed in the store."""

    # The engagement's key within the journey: "<ladder run or offer>/step-<n>".
    engagement: str
    outcome: str
    at: datetime


class CampaignDue(BaseModel):
    """A campaign received and not yet decided: held back while quiet hours last."""

    campaign: Campaign
    deferred_until: datetime | None = None


class CampaignReached(BaseModel):
    """A campaign sent to the customer, converted by a purchase until it ends."""

    name: str
    ends_at: datetime


class JourneyState(BaseModel):
    customer_id: str
    line_position: LinePosition = LinePosition.EQUATOR
    cohort: Cohort | None = None
    # Who paused the journey, if anyone: events still apply, nothing goes out.
    paused_by: str | None = None
    dormant: bool = False
    profile: Profile = Field(default_factory=Profile)
    silence_deadline: datetime | None = None
    ladder: LadderRun | None = None
    ladder_runs: int = 0
    remediation_spend: Decimal = Decimal(0)
    remediations_won: int = 0
    events_applied: int = 0
    events_rejected: int = 0
    duplicates_ignored: int = 0
    # Marketing engagements sent within the contact policy's cap window.
    marketing_touches: list[datetime] = Field(default_factory=list)
    # The feedback event a VIP is owed a thank-you for.
    thanks_due: str | None = None
    # Above the line: the offer chosen and not yet sent, the offers made (the wallet),
    # how many were redeemed, and the purchases the threshold nudge counts.
    offer_due: WalletOffer | None = None
    wallet: list[WalletOffer] = Field(default_factory=list)
    conversions: int = 0
    recent_purchases: list[tuple[datetime, Decimal]] = Field(default_factory=list)
    outcomes_due: list[OutcomeDue] = Field(default_factory=list)
    # Campaigns: the names received (the dedupe window), those waiting to be decided,
    # those that reached the customer and may yet convert, and outcomes to file.
    campaigns_seen: list[str] = Field(default_factory=list)
    campaigns_due: list[CampaignDue] = Field(default_factory=list)
    campaigns_reached: list[CampaignReached] = Field(default_factory=list)
    campaign_contacts_due: list[CampaignContact] = Field(default_factory=list)
    recent_event_ids: list[str] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def paused(self) -> bool:
        return self.paused_by is not None


class JourneyInput(BaseModel):
    customer_id: str
    config: JourneyConfig = JourneyConfig()
    # Set by continue-as-new: the state so far and events received but not yet applied.
    state: JourneyState | None = None
    pending: list[Any] = Field(default_factory=list)
    pending_campaigns: list[Any] = Field(default_factory=list)


class JourneyView(BaseModel):
    """What the ``state`` query answers: the state plus what happens next and when."""

    state: JourneyState
    pending_events: int
    next_action: str
    next_action_at: datetime | None
