"""What a programme is: one unit of a customer journey, written as pure functions.

A programme (a remediation ladder, VIP thanks, above-the-line offers, campaigns, a
welcome series, …) says which events it hears, keeps its own small state (``None``
while it has nothing to remember, so a dormant programme costs nothing), names its
next deadline, and lists the engagements it wants now. It never sends anything
itself: the journey passes every engagement through one path (contact policy, the
idempotency key, the activity with its retry policy, telemetry, the timeline) and tells
the programme what came of it.

Every method is handed a ``Journey``: the customer's shared facts (profile, cohort,
line position, configuration), the time, and the means to write the timeline, file an
engagement's outcome and report a moment to telemetry. Nothing here does I/O.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, model_validator

from workflows import timeline
from workflows.cohorts import Cohort
from workflows.config import JourneyConfig
from workflows.contracts import FeedOutage
from workflows.events import CustomerEvent, EventType
from workflows.patches import Patch
from workflows.state import JourneyState, OutcomeDue

S = TypeVar("S", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)


class Contact(StrEnum):
    """How the contact policy applies to an engagement."""

    # Consent (with fallbacks), the marketing cap and quiet hours: every engagement
    # that the business starts.
    POLICY = "policy"
    # Consent only: a reply to something the customer just did; not counted in the cap.
    CONSENT = "consent"
    # None: ladder steps of journeys that began before the contact policy existed.
    NONE = "none"


class Engagement(BaseModel):
    """One touch a programme wants: a ladder step, an offer, a thank-you, a campaign
    message, a ticket. ``series`` and ``step`` name it within the journey, so it is
    never sent twice."""

    model_config = ConfigDict(frozen=True)

    # The cause it is filed under in the store: a ladder's cause or the programme.
    cause: str
    series: str
    step: int = 1
    name: str
    channel: str
    cost: Decimal
    # Short, for the timeline ("step 2 of silence ladder"); ``summary`` says it all.
    label: str
    # The summary around its channel: "<what> by <channel><after>".
    what: str
    after: str = ""
    offer_id: str | None = None
    offer_category: str | None = None
    contact: Contact = Contact.POLICY
    # Held back while the customer is in care (a complaint, a VIP's ticket).
    care_first: bool = False
    # A hold that would last past this time drops it instead.
    expires_at: datetime | None = None
    # The event it answers, if any.
    event_id: str | None = None
    # Set by the engagement path for a customer in the programme's control group: it
    # goes out as a ghost, recorded but not delivered (workflows/holdout.py).
    held_back: bool = False
    # The offers it may make instead of ``offer_id`` (which is the first): with more
    # than one, the engagement path learns which (workflows/bandit.py) at ``decision``,
    # which names where the choice is made (a ladder's step, an above-the-line moment).
    arms: tuple[str, ...] = ()
    decision: str | None = None
    # Set by the engagement path once it has chosen among ``arms``: the cohort whose
    # counts chose.
    learned_in: str | None = None

    @model_validator(mode="after")
    def _choice_named(self) -> Engagement:
        if len(self.arms) > 1 and self.decision is None:
            raise ValueError(f"{self.label}: a choice among offers needs its decision's name")
        return self

    @property
    def key(self) -> str:
        return f"{self.series}/step-{self.step}"

    @property
    def summary(self) -> str:
        return f"{self.what} by {self.channel}{self.after}"


@dataclass(frozen=True)
class Deadline:
    at: datetime
    # What happens then, for the timer's summary and the UI ("close step 2 response window").
    action: str


@dataclass(frozen=True)
class Report:
    """A moment for telemetry: a ``journey.*`` log line (unless ``what`` is None), and a
    counter added to if one is named."""

    what: str | None
    fields: Mapping[str, object]
    counter: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    value: int = 1


@dataclass(frozen=True)
class Filing:
    """A write to the single customer view a programme asks for (an activity by name)."""

    activity: str
    request: BaseModel
    summary: str


def _every_patch(patch: Patch) -> bool:
    """A journey that begins now runs with every patch."""
    return True


@dataclass
class Journey:
    """The customer's journey as a programme sees it at one moment."""

    state: JourneyState
    config: JourneyConfig
    now: datetime
    # Whether the journey runs with a patch (``workflow.patched`` in a workflow; asked
    # where the old code asked, since a marker's place in history is fixed).
    patched: Callable[[Patch], bool] = _every_patch
    reports: list[Report] = field(default_factory=list)
    # Events programmes raise themselves (an email left unopened): applied like any other.
    raised: list[dict[str, Any]] = field(default_factory=list)
    # The feed's outages since the silence a programme is about to act on began (asked
    # for it by ``Programme.silent_since``): empty where none are known or none asked.
    feed_outages: list[FeedOutage] = field(default_factory=list)

    def note(
        self,
        kind: str,
        summary: str,
        event_id: str | None = None,
        programme: str | None = None,
        engagement: str | None = None,
    ) -> None:
        entry = timeline.TimelineEntry(
            at=self.now,
            kind=kind,
            summary=summary,
            event_id=event_id,
            programme=programme,
            engagement=engagement,
        )
        timeline.append(self.state.timeline, entry, self.config.timeline_length)

    def held(self, engagement_key: str) -> bool:
        """Whether the contact policy holds the engagement back at this moment."""
        until = self.state.held.get(engagement_key)
        return until is not None and self.now < until

    def outcome(self, engagement_key: str, outcome: str) -> None:
        """File what became of an engagement (responded, no_response, converted)."""
        self.state.outcomes_due.append(
            OutcomeDue(engagement=engagement_key, outcome=outcome, at=self.now)
        )

    def raise_event(self, event_id: str, type: EventType, properties: dict[str, Any]) -> None:
        """Record an event the journey itself observed; ``event_id`` must be the same on
        every replay, so that it applies once."""
        self.raised.append(
            {
                "event_id": event_id,
                "customer_id": self.state.customer_id,
                "type": type.value,
                "occurred_at": self.now.isoformat(),
                "source": "journey",
                "properties": properties,
            }
        )

    def report(
        self,
        what: str | None,
        counter: str | None = None,
        labels: Mapping[str, str] | None = None,
        value: int = 1,
        **fields: object,
    ) -> None:
        self.reports.append(Report(what, fields, counter, labels or {}, value))


class Programme(Generic[S]):
    """Base of every programme. Override what the programme needs; each method returns
    the programme's state from then on (``None``: nothing left to remember)."""

    name: ClassVar[str]
    state_model: type[S]
    # The events dispatched to it; others never reach it.
    hears: ClassVar[frozenset[EventType]] = frozenset()
    # When it acts in a pass, lower first. Engagements go out in this order.
    turn: ClassVar[int]
    # The patch that brought it: journeys that began before it do without it.
    since: ClassVar[Patch | None] = None
    # Whether it is asked for engagements while the journey is paused (to drop them).
    runs_while_paused: ClassVar[bool] = False
    # Whether it hears the customer's cohort change (new → repeat, loyal → lapsed, …).
    hears_cohort: ClassVar[bool] = False
    # Runs whatever the configuration enables (remediation keeps the silence clock).
    always_on: ClassVar[bool] = False

    def __init__(self) -> None:
        # Rules parsed once per distinct setting: a worker runs journeys of a few at most
        # (keyed by content, not by the configuration object: every run has its own).
        self._parsed_rules: dict[str, BaseModel] = {}

    def rules(self, config: JourneyConfig, model: type[R]) -> R:
        """The programme's rules: ``model``'s defaults, overridden by what the journey's
        configuration says under the programme's name."""
        raw = config.programmes.get(self.name, {})
        key = json.dumps(raw, sort_keys=True, default=str)
        rules = self._parsed_rules.get(key)
        if rules is None:
            rules = self._parsed_rules[key] = model.model_validate(raw)
        assert isinstance(rules, model)
        return rules

    def state_in(self, journey_state: JourneyState) -> S | None:
        """This programme's state in the journey's (parsed on first use after a run
        starts or a query is answered: states travel as plain data)."""
        raw: Any = journey_state.programmes.get(self.name)
        if raw is None or isinstance(raw, self.state_model):
            return raw
        parsed = self.state_model.model_validate(raw)
        journey_state.programmes[self.name] = parsed
        return parsed

    def put(self, journey_state: JourneyState, state: S | None) -> None:
        if state is None:
            journey_state.programmes.pop(self.name, None)
        else:
            journey_state.programmes[self.name] = state

    def begin(self, journey: Journey) -> S | None:
        """Its state as a journey starts: ``None`` for one that waits for its events."""
        return None

    def heard(self, journey: Journey, state: S | None, event: CustomerEvent) -> S | None:
        return state

    def cohort_changed(self, journey: Journey, state: S | None, was: Cohort | None) -> S | None:
        """The cohort moved from ``was`` to ``journey.state.cohort``."""
        return state

    def silent_since(self, journey: Journey, state: S) -> datetime | None:
        """When a silence began that the programme would act on in this turn's ``tick``:
        the journey then asks for the feed's outages since (``Journey.feed_outages``)
        first, so that an outage is not taken for the customer's silence."""
        return None

    def tick(self, journey: Journey, state: S) -> S | None:
        """Time has passed: a silence becomes a flatline, a sequence ends."""
        return state

    def wants(self, journey: Journey, state: S) -> list[Engagement]:
        """The engagements it wants now, in order (a response window may close first)."""
        return []

    def sent(self, journey: Journey, state: S, engagement: Engagement) -> S | None:
        return state

    def failed(self, journey: Journey, state: S, engagement: Engagement, reason: str) -> S | None:
        return state

    def skipped(self, journey: Journey, state: S, engagement: Engagement, reason: str) -> S | None:
        """The contact policy (or care, or a pause) said no: nothing went out."""
        return state

    def deadline(self, state: S, held: Mapping[str, datetime]) -> Deadline | None:
        """When it next acts by itself; ``held`` says until when the contact policy
        holds each engagement back."""
        return None

    def blocks(self, state: S) -> frozenset[str]:
        """Channels that must not be used for now (an address that bounced)."""
        return frozenset()

    def care(self, state: S) -> str | None:
        """The care under way that holds marketing back ("complaint"), if any."""
        return None

    def filings(self, state: S) -> list[Filing]:
        """Writes to the single customer view that are due; taken, so cleared."""
        return []

    def describe(self, state: S) -> str | None:
        """One line for the UI's current details: where it stands, what it waits for."""
        return None
