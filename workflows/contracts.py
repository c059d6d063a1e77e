"""Inputs and outputs of the activities journeys call, shared by both sides.

Workflows call activities by these names so that workflow modules never import the
store or the channels (that code has side effects and heavy imports).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, Field

from workflows.bandit import LearningRules
from workflows.calendar import Campaign
from workflows.cohorts import Cohort, CohortRules
from workflows.events import CustomerEvent

RECORD_EVENTS = "record_events"
SEND_ENGAGEMENT = "send_engagement"
ERASE_CUSTOMER = "erase_customer"
RECORD_OUTCOMES = "record_outcomes"
RECORD_CAMPAIGN_CONTACTS = "record_campaign_contacts"
RECORD_HOLDOUTS = "record_holdouts"
RECORD_ATTRIBUTIONS = "record_attributions"
CHOOSE_OFFER = "choose_offer"
AUDIENCE_PAGE = "audience_page"
SIGNAL_AUDIENCE = "signal_audience"
CAMPAIGN_RESULTS = "campaign_results"
RECORD_AUDIT = "record_audit"
FEED_OUTAGES = "feed_outages"


class RecordEventsRequest(BaseModel):
    customer_id: str
    # Identifies this journey's attempt to apply the batch: a retried activity (same
    # token) finds its own rows and still reports them fresh; a redelivered event that an
    # earlier batch recorded (other token) is reported as already applied.
    application_id: str
    events: list[CustomerEvent]
    # To file the customer's cohort in the store as the journey defines it.
    cohort_rules: CohortRules | None = None


class RecordEventsResult(BaseModel):
    fresh_event_ids: list[str]


class EngagementRequest(BaseModel):
    idempotency_key: str
    customer_id: str
    # The ladder's cause, or the programme's (above_line, vip_care, campaign).
    cause: str
    ladder_run_id: str
    step: int
    step_name: str
    channel: str
    cost: Decimal
    offer_id: str | None = None
    # The category the offer targets, when it targets one (double points on shoes).
    offer_category: str | None = None
    # A ghost for a customer in the control group: recorded, at no cost, not delivered,
    # no offer in the wallet.
    held_back: bool = False
    # A learned choice: its decision and the cohort whose counts it adds to.
    decision: str | None = None
    arm_cohort: str | None = None
    # When the journey sent it (its clock: simulated time in a simulation); None: now.
    at: datetime | None = None


class OfferChoiceRequest(BaseModel):
    """Choose one of ``arms`` at ``decision`` (``workflows/bandit.py``)."""

    decision: str
    cohort: str
    arms: list[str] = Field(min_length=1)
    rules: LearningRules
    # Names this draw (the customer and the engagement): a worker given a seed draws
    # the same for it every time, whatever order journeys ask in.
    draw_key: str
    # When the journey chooses (its clock), for counts that lag (``rules.counts_lag``).
    at: datetime | None = None


class EngagementResult(BaseModel):
    engagement_id: int
    sent_at: datetime
    # False when an earlier attempt had already sent it: nothing went out this time.
    newly_sent: bool


class Via(StrEnum):
    """How a request reached a journey, for the audit."""

    API = "api"
    # The CLI, the Temporal UI, any Temporal client.
    TEMPORAL = "temporal"


class ErasureRequest(BaseModel):
    """The ``erase`` signal's payload."""

    request_id: str = Field(min_length=1, max_length=128)
    # Who asked (the API key's source), for the audit; empty when sent before it was kept.
    by: str = Field(default="", max_length=64)
    via: Via = Via.TEMPORAL


class EraseRequest(BaseModel):
    customer_id: str
    request_id: str
    by: str = ""
    via: Via = Via.TEMPORAL


class AuditRecord(BaseModel):
    """One entry of the audit (``activities/audit.py``): who did what to a customer or
    their journey, when, and how it came out. The store names the customer by digest."""

    # Makes a retried filing a no-op.
    entry_key: str
    at: datetime
    actor: str
    via: Via
    action: str
    customer_id: str
    request_id: str
    outcome: str
    detail: str = ""


class RecordAuditRequest(BaseModel):
    entries: list[AuditRecord]


class FeedOutagesRequest(BaseModel):
    """The outages known since a silence began."""

    since: datetime


class FeedOutage(BaseModel):
    """A stretch in which events could not reach the journeys (the ingest down, Temporal
    unreachable, a source that ops say was out); ``ended_at`` None: not over yet."""

    started_at: datetime
    ended_at: datetime | None = None
    cause: str


class FeedOutages(BaseModel):
    outages: list[FeedOutage] = Field(default_factory=list)


class EraseResult(BaseModel):
    deleted_rows: int
    anonymized_engagements: int


class Outcome(BaseModel):
    """What became of an engagement: ``responded`` or ``no_response`` within its window,
    or ``converted`` (an offer redeemed)."""

    idempotency_key: str
    outcome: str
    at: datetime


class Attribution(BaseModel):
    """A purchase (or redemption) credited to an engagement: the customer recovered, and
    ``amount`` of revenue. Once per engagement and event."""

    idempotency_key: str
    event_id: str
    amount: Decimal
    at: datetime


class RecordAttributionsRequest(BaseModel):
    attributions: list[Attribution]


class RecordHoldoutsRequest(BaseModel):
    """The programmes whose control group the customer is in, as drawn at ``at``: for the
    single customer view, filed when the draw changes."""

    customer_id: str
    held_back_from: list[str]
    at: datetime


class RecordOutcomesRequest(BaseModel):
    outcomes: list[Outcome]


class ContactOutcome(StrEnum):
    SENT = "sent"
    SUPPRESSED = "suppressed"
    # The channel failed for good: nothing reached the customer.
    FAILED = "failed"
    # The customer was in the campaign's control group: a ghost, nothing delivered.
    HELD_BACK = "held_back"
    # A purchase while the campaign ran, after it reached the customer.
    CONVERTED = "converted"


class CampaignContact(BaseModel):
    """What a campaign came to for one customer, as the journey files it in the single
    customer view. Filing the same outcome twice changes nothing."""

    campaign: str
    customer_id: str
    outcome: ContactOutcome
    at: datetime
    reason: str | None = None
    channel: str | None = None
    content_key: str | None = None


class RecordCampaignContactsRequest(BaseModel):
    contacts: list[CampaignContact]


class AudiencePageRequest(BaseModel):
    """Customers of the single customer view in these cohorts (none: everyone), in id
    order, after ``after``."""

    cohorts: frozenset[Cohort] = frozenset()
    after: str | None = None
    limit: int = Field(default=500, ge=1, le=5_000)


class AudiencePage(BaseModel):
    customer_ids: list[str]


class SignalAudienceRequest(BaseModel):
    campaign: Campaign
    customer_ids: list[str]
    # Journeys signalled per second, at most.
    rate: float = Field(gt=0)


class SignalAudienceResult(BaseModel):
    signalled: int
    # Customers whose journey has ended (erased): not restarted, not signalled.
    closed: int


class CampaignResults(BaseModel):
    """A campaign's outcomes so far, counted from the single customer view."""

    sent: int = 0
    suppressed: dict[str, int] = Field(default_factory=dict)
    failed: int = 0
    # Conversions after a contact, the control group's apart: what the campaign adds is
    # the difference between the two rates.
    converted: int = 0
    held_back: int = 0
    held_back_converted: int = 0

    @property
    def decided(self) -> int:
        return self.sent + sum(self.suppressed.values()) + self.failed + self.held_back
