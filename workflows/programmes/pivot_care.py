"""Pivot care: a loyal or repeat customer whose behaviour pivots gets care before
marketing, as a VIP does.

VIP care opens a VIP's ladders with a service ticket (``remediation``) and thanks a
VIP's feedback (``vip_thanks``); for journeys with this programme's patch both reach the
care cohorts its rules name (``cared_for``), so a complaint from a repeat customer is
handled by a person first. While the customer is in a care cohort it also watches for
the pivots no ladder covers: the cadence breaking (no purchase within k times their
median gap, sooner than the flatline) and the basket shrinking (a purchase well below
their typical one). A pivot opens a care ticket for the service team and holds campaigns
and sequences back until the customer answers (a purchase at their usual basket or
better, good feedback) or the care window passes.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from workflows.cohorts import Cohort
from workflows.events import CustomerEvent, EventType, polarity
from workflows.ladders import VIP_CARE_TICKET
from workflows.patches import Patch
from workflows.programme import Deadline, Engagement, Journey, Programme
from workflows.silence import median_gap, silence_window
from workflows.timeline import money, when


class Pivot(StrEnum):
    CADENCE = "cadence"
    BASKET = "basket"


class PivotCareRules(BaseModel):
    model_config = ConfigDict(frozen=True)

    # Whose pivots get care before marketing, and whose feedback is thanked.
    care_cohorts: frozenset[Cohort] = frozenset({Cohort.VIP, Cohort.LOYAL, Cohort.REPEAT})
    # The cadence breaks after this many median gaps without a purchase; watched only
    # while that comes sooner than the flatline (which has its own, larger, multiplier).
    cadence_multiplier: float = Field(default=2.0, gt=0)
    # A purchase below (1 - basket_shrink) times the typical basket is a pivot.
    basket_shrink: Decimal = Field(default=Decimal("0.5"), gt=0, lt=1)
    # The typical basket is the median of the last ``baskets_kept`` purchases, known
    # once there are ``baskets_needed``.
    baskets_kept: int = Field(default=6, ge=1, le=24)
    baskets_needed: int = Field(default=3, ge=1)
    ticket_cost: Decimal = Field(default=VIP_CARE_TICKET.cost, ge=0)
    # How long care holds marketing back when the customer does not answer.
    care_window: timedelta = timedelta(days=14)

    @model_validator(mode="after")
    def _consistent(self) -> PivotCareRules:
        if self.baskets_needed > self.baskets_kept:
            raise ValueError("need baskets_needed <= baskets_kept")
        if self.care_window <= timedelta(0):
            raise ValueError("care_window must be positive")
        return self


class Care(BaseModel):
    """Care under way after a pivot: a ticket, and marketing held back meanwhile."""

    pivot: Pivot
    # Keys the ticket's engagement.
    series: str
    since: datetime
    until: datetime
    ticket_due: bool = True
    # The ticket sent, while the customer's answer may still be filed as its outcome.
    awaiting: str | None = None


class PivotCareState(BaseModel):
    # The latest basket sizes, oldest first.
    baskets: list[Decimal] = Field(default_factory=list)
    # When the cadence breaks if no purchase comes first.
    cadence_due: datetime | None = None
    care: Care | None = None


def typical_basket(baskets: list[Decimal], rules: PivotCareRules) -> Decimal | None:
    if len(baskets) < rules.baskets_needed:
        return None
    return statistics.median(baskets)


def cadence_due(journey: Journey, rules: PivotCareRules) -> datetime | None:
    """When the cadence breaks if no purchase comes first: k median gaps after the last
    purchase; None while the cadence is unknown or the flatline would come first."""
    times = journey.state.profile.purchase_times
    gap = median_gap(times)
    if gap is None:
        return None
    window = gap * rules.cadence_multiplier
    if window >= silence_window(times, journey.config):
        return None
    return times[-1] + window


class PivotCare(Programme[PivotCareState]):
    name = "pivot_care"
    state_model = PivotCareState
    hears = frozenset({EventType.PURCHASE, EventType.FEEDBACK})
    hears_cohort = True
    # Before campaigns: a pivot seen in a pass holds that pass's campaign back.
    turn = 5
    since = Patch.RELEASE_0_2

    def _rules(self, journey: Journey) -> PivotCareRules:
        return self.rules(journey.config, PivotCareRules)

    def _watched(self, journey: Journey) -> bool:
        return journey.state.cohort in self._rules(journey).care_cohorts

    def cohort_changed(
        self, journey: Journey, state: PivotCareState | None, was: Cohort | None
    ) -> PivotCareState | None:
        rules = self._rules(journey)
        if self._watched(journey) and was not in rules.care_cohorts:
            state = state or PivotCareState()
            state.cadence_due = cadence_due(journey, rules)
        elif state is not None and not self._watched(journey):
            # Lapsed is no pivot any more: the winback's turn, not a person's.
            self._end_care(journey, state, "no_response", f"now {journey.state.cohort or 'none'}")
        return self._settled(journey, state)

    def heard(
        self, journey: Journey, state: PivotCareState | None, event: CustomerEvent
    ) -> PivotCareState | None:
        if state is None and not self._watched(journey):
            return None
        state = state or PivotCareState()
        if event.type == EventType.PURCHASE:
            self._purchase(journey, state, event.properties.amount)
        elif polarity(event) > 0:
            self._end_care(journey, state, "responded", "answered with good feedback")
        return self._settled(journey, state)

    def _purchase(self, journey: Journey, state: PivotCareState, amount: Decimal) -> None:
        rules = self._rules(journey)
        typical = typical_basket(state.baskets, rules)
        if typical is None or amount >= typical:
            self._end_care(
                journey, state, "responded", f"answered with a purchase of {money(amount)}"
            )
        elif amount < typical * (1 - rules.basket_shrink):
            why = f"a basket of {money(amount)}, typically {money(typical)}"
            self._pivot(journey, state, Pivot.BASKET, why)
        if self._watched(journey):
            state.baskets = [*state.baskets, amount][-rules.baskets_kept :]
            state.cadence_due = cadence_due(journey, rules)

    def _pivot(self, journey: Journey, state: PivotCareState, pivot: Pivot, why: str) -> None:
        """Open care, unless care is under way already (one person on it is enough)."""
        if state.care is not None:
            return
        state.care = Care(
            pivot=pivot,
            series=f"pivot-care-{journey.state.events_applied}-{pivot.value}",
            since=journey.now,
            until=journey.now + self._rules(journey).care_window,
        )
        journey.note(
            "pivot", f"{pivot.value} pivot ({why}): care before marketing", programme=self.name
        )
        journey.report("journey.pivot", pivot=pivot.value, cohort=str(journey.state.cohort))

    def _end_care(self, journey: Journey, state: PivotCareState, outcome: str, why: str) -> None:
        """Care under way (if any) is over; the ticket's outcome is what ended it."""
        care = state.care
        if care is None:
            return
        if care.awaiting is not None:
            journey.outcome(care.awaiting, outcome)
        state.care = None
        journey.note("care_over", f"{care.pivot.value} pivot care over: {why}", programme=self.name)

    def _settled(self, journey: Journey, state: PivotCareState | None) -> PivotCareState | None:
        """Nothing to remember outside the care cohorts, once care is over."""
        if state is None or self._watched(journey):
            return state
        if state.care is None:
            return None
        state.baskets, state.cadence_due = [], None
        return state

    def tick(self, journey: Journey, state: PivotCareState) -> PivotCareState | None:
        if state.care is not None and journey.now >= state.care.until:
            self._end_care(journey, state, "no_response", "care window passed")
        if state.cadence_due is not None and journey.now >= state.cadence_due:
            last = journey.state.profile.purchase_times[-1]
            state.cadence_due = None
            self._pivot(journey, state, Pivot.CADENCE, f"no purchase since {when(last)}")
        return self._settled(journey, state)

    def wants(self, journey: Journey, state: PivotCareState) -> list[Engagement]:
        care = state.care
        if care is None or not care.ticket_due:
            return []
        cost = self._rules(journey).ticket_cost
        return [
            Engagement(
                cause=self.name,
                series=care.series,
                name=f"care ticket/{care.pivot.value}",
                channel=VIP_CARE_TICKET.channel,
                cost=cost,
                label="care ticket",
                what=f"pivot care: a ticket for the service team ({care.pivot.value} pivot)",
                after=f" ({money(cost)})",
            )
        ]

    def sent(
        self, journey: Journey, state: PivotCareState, engagement: Engagement
    ) -> PivotCareState:
        if state.care is not None and state.care.series == engagement.series:
            state.care.ticket_due = False
            state.care.awaiting = engagement.key
        return state

    def failed(
        self, journey: Journey, state: PivotCareState, engagement: Engagement, reason: str
    ) -> PivotCareState:
        """No second ticket: care still holds marketing back until it is over."""
        if state.care is not None and state.care.series == engagement.series:
            state.care.ticket_due = False
        return state

    skipped = failed

    def deadline(self, state: PivotCareState, held: Mapping[str, datetime]) -> Deadline | None:
        care = state.care
        if care is not None and care.ticket_due:
            return Deadline(held.get(f"{care.series}/step-1", care.since), "open a care ticket")
        waiting = []
        if care is not None:
            waiting.append(Deadline(care.until, f"end {care.pivot.value} pivot care"))
        if state.cadence_due is not None:
            waiting.append(Deadline(state.cadence_due, "care ticket if no purchase by then"))
        return min(waiting, key=lambda deadline: deadline.at, default=None)

    def care(self, state: PivotCareState) -> str | None:
        return "pivot care" if state.care is not None else None

    def describe(self, state: PivotCareState) -> str | None:
        care = state.care
        if care is not None:
            return f"in care after a {care.pivot.value} pivot until {when(care.until)}"
        if not state.baskets and state.cadence_due is None:
            return None
        watching = f"watching {len(state.baskets)} baskets"
        if state.cadence_due is None:
            return watching
        return f"{watching}; the cadence breaks {when(state.cadence_due)}"


PIVOT_CARE = PivotCare()


def cared_for(journey: Journey) -> bool:
    """Whether the customer gets care before marketing when they pivot, and thanks for
    their feedback: a VIP; for journeys that run pivot care (with the programmes patch,
    and enabled), anyone in its care cohorts."""
    enabled = journey.config.enabled
    if journey.patched(Patch.RELEASE_0_2) and (enabled is None or PIVOT_CARE.name in enabled):
        cohorts = PIVOT_CARE.rules(journey.config, PivotCareRules).care_cohorts
        return journey.state.cohort in cohorts
    return journey.state.cohort == Cohort.VIP
