"""Remediation ladders, as data.

The cause of a fall below the line picks the ladder. Steps climb in cost, from the
cheapest engagement to the most expensive one the business will pay for; each waits for
a response of the grades its ladder counts (``workflows/events.py``, ``Response``).
Priority settles which ladder wins when a second cause arrives mid-climb (a complaint
outranks a lapse). Ladders are registered in ``workflows/registry.py``.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from workflows.catalogue import CATALOGUE
from workflows.events import EventType, Response


class LadderStep(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    channel: str
    cost: Decimal
    offer_id: str | None = None
    # Other offers the step may make instead: the journey learns which recovers more
    # (``workflows/bandit.py``). None may cost more than the step.
    alternatives: tuple[str, ...] = ()
    # None: the journey's configured response window.
    response_window: timedelta | None = None

    @model_validator(mode="after")
    def _alternatives_fit(self) -> LadderStep:
        for offer_id in self.alternatives:
            offer = CATALOGUE.get(offer_id)
            if offer is None or offer.cost > self.cost:
                raise ValueError(f"{self.name}: {offer_id} is not an offer within the step's cost")
        if self.alternatives and self.offer_id is None:
            raise ValueError(f"{self.name}: alternatives need the step's own offer")
        return self

    @property
    def offers(self) -> tuple[str, ...]:
        """Every offer the step may make, its own first."""
        return (self.offer_id, *self.alternatives) if self.offer_id else ()


class Ladder(BaseModel):
    model_config = ConfigDict(frozen=True)

    # Names the ladder's runs and the cause its engagements are filed under.
    cause: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    priority: int
    steps: tuple[LadderStep, ...]
    resolved_by: frozenset[Response]
    # What won it for journeys that began before 0.2, where that differs (a silence
    # ladder was won by an open or a browse, which flattered the figures).
    resolved_by_0_1: frozenset[Response] | None = None
    # The events that start (or escalate to) it; silence and dormancy start by time.
    started_by: frozenset[EventType] = frozenset()
    # Service remediation: a sale blast while it climbs would be tone-deaf.
    service: bool = False

    @model_validator(mode="after")
    def _climbs_in_cost(self) -> Ladder:
        costs = [step.cost for step in self.steps]
        if not costs or costs != sorted(costs):
            raise ValueError(f"{self.cause} ladder must have steps ordered by cost")
        return self


# A ladder is won by a recovery (a purchase, a redemption): an open or a browse is
# filed as a response to its step, and the climb goes on.
WON_BACK = frozenset({Response.RECOVERED})
WON_BACK_0_1 = frozenset({Response.RECOVERED, Response.RESPONDED})
MADE_GOOD = frozenset({Response.RECOVERED, Response.FEEDBACK})

SILENCE = Ladder(
    cause="silence",
    priority=1,
    resolved_by=WON_BACK,
    resolved_by_0_1=WON_BACK_0_1,
    steps=(
        LadderStep(name="we miss you", channel="email", cost=Decimal("0.05")),
        LadderStep(
            name="an offer",
            channel="email",
            cost=Decimal("2.00"),
            offer_id="pct10",
            alternatives=("five-off",),
        ),
        LadderStep(
            name="free shipping", channel="push", cost=Decimal("6.00"), offer_id="free-shipping"
        ),
        LadderStep(name="20% offer", channel="sms", cost=Decimal("12.00"), offer_id="pct20"),
    ),
)
RETURN = Ladder(
    cause="return",
    priority=2,
    resolved_by=MADE_GOOD,
    started_by=frozenset({EventType.RETURN}),
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
)
DELIVERY_LATE = Ladder(
    cause="delivery_late",
    priority=3,
    resolved_by=MADE_GOOD,
    started_by=frozenset({EventType.DELIVERY_LATE}),
    service=True,
    steps=(
        LadderStep(name="apology", channel="email", cost=Decimal("0.05")),
        LadderStep(
            name="shipping refund",
            channel="email",
            cost=Decimal("8.00"),
            offer_id="shipping-refund",
        ),
    ),
)
COMPLAINT = Ladder(
    cause="complaint",
    priority=4,
    resolved_by=MADE_GOOD,
    started_by=frozenset({EventType.COMPLAINT}),
    service=True,
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
)
# The check-in a dormant customer gets once per dormant cadence.
DORMANT = Ladder(
    cause="dormant",
    priority=0,
    resolved_by=WON_BACK,
    resolved_by_0_1=WON_BACK_0_1,
    steps=(LadderStep(name="dormant check-in", channel="email", cost=Decimal("0.05")),),
)

# A VIP who pivots (a flatline, a return, a complaint, a late delivery) is handled by a
# person first: this step opens a customer-service ticket before any marketing touch.
VIP_CARE_TICKET = LadderStep(name="VIP care ticket", channel="ticket", cost=Decimal("5.00"))
