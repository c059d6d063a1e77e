"""Remediation ladders, as data.

The cause of a fall below the line picks the ladder. Steps climb in cost, from the
cheapest engagement to the most expensive one the business will pay for; each waits for
a positive response of the kinds its ladder lists. Priority settles which ladder wins
when a second cause arrives mid-climb (a complaint outranks a lapse).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, model_validator

from workflows.events import EventType


class Cause(StrEnum):
    SILENCE = "silence"
    RETURN = "return"
    COMPLAINT = "complaint"
    DELIVERY_LATE = "delivery_late"
    # The check-in a dormant customer gets once per dormant cadence.
    DORMANT = "dormant"
    # A VIP's priority handling (the service ticket, the thank-you); not a ladder.
    VIP_CARE = "vip_care"
    # Offers to customers above the line; not a ladder either.
    ABOVE_LINE = "above_line"
    # A calendared campaign's message; not a ladder.
    CAMPAIGN = "campaign"


class LadderStep(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    channel: str
    cost: Decimal
    offer_id: str | None = None
    # None: the journey's configured response window.
    response_window: timedelta | None = None


class Ladder(BaseModel):
    model_config = ConfigDict(frozen=True)

    cause: Cause
    priority: int
    steps: tuple[LadderStep, ...]
    resolved_by: frozenset[EventType]

    @model_validator(mode="after")
    def _climbs_in_cost(self) -> Ladder:
        costs = [step.cost for step in self.steps]
        if not costs or costs != sorted(costs):
            raise ValueError(f"{self.cause} ladder must have steps ordered by cost")
        return self


_WON_BACK = frozenset(
    {EventType.PURCHASE, EventType.OFFER_REDEEMED, EventType.EMAIL_OPENED, EventType.APP_BROWSE}
)
_MADE_GOOD = frozenset({EventType.PURCHASE, EventType.OFFER_REDEEMED, EventType.FEEDBACK})

LADDERS: dict[Cause, Ladder] = {
    ladder.cause: ladder
    for ladder in (
        Ladder(
            cause=Cause.SILENCE,
            priority=1,
            resolved_by=_WON_BACK,
            steps=(
                LadderStep(name="we miss you", channel="email", cost=Decimal("0.05")),
                LadderStep(
                    name="10% offer", channel="email", cost=Decimal("2.00"), offer_id="pct10"
                ),
                LadderStep(
                    name="free shipping",
                    channel="push",
                    cost=Decimal("6.00"),
                    offer_id="free-shipping",
                ),
                LadderStep(
                    name="20% offer", channel="sms", cost=Decimal("12.00"), offer_id="pct20"
                ),
            ),
        ),
        Ladder(
            cause=Cause.RETURN,
            priority=2,
            resolved_by=_MADE_GOOD,
            steps=(
                LadderStep(name="how did we do", channel="email", cost=Decimal("0.05")),
                LadderStep(
                    name="exchange credit",
                    channel="email",
                    cost=Decimal("5.00"),
                    offer_id="exchange-credit",
                ),
                LadderStep(
                    name="free shipping next order",
                    channel="push",
                    cost=Decimal("6.00"),
                    offer_id="free-shipping",
                ),
            ),
        ),
        Ladder(
            cause=Cause.DELIVERY_LATE,
            priority=3,
            resolved_by=_MADE_GOOD,
            steps=(
                LadderStep(name="apology", channel="email", cost=Decimal("0.05")),
                LadderStep(
                    name="shipping refund",
                    channel="email",
                    cost=Decimal("8.00"),
                    offer_id="shipping-refund",
                ),
            ),
        ),
        Ladder(
            cause=Cause.COMPLAINT,
            priority=4,
            resolved_by=_MADE_GOOD,
            steps=(
                LadderStep(name="apology", channel="email", cost=Decimal("0.05")),
                LadderStep(name="priority service call", channel="service", cost=Decimal("15.00")),
                LadderStep(
                    name="replacement product",
                    channel="service",
                    cost=Decimal("40.00"),
                    offer_id="replacement",
                ),
            ),
        ),
        Ladder(
            cause=Cause.DORMANT,
            priority=0,
            resolved_by=_WON_BACK,
            steps=(LadderStep(name="dormant check-in", channel="email", cost=Decimal("0.05")),),
        ),
    )
}


# A VIP who pivots (a flatline, a return, a complaint, a late delivery) is handled by a
# person first: this step opens a customer-service ticket before any marketing touch.
VIP_CARE_TICKET = LadderStep(name="VIP care ticket", channel="ticket", cost=Decimal("5.00"))
# And a VIP who gives feedback is thanked for it.
VIP_THANK_YOU = LadderStep(name="thank-you note", channel="email", cost=Decimal("0.05"))
