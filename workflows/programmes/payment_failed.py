"""The payment-failed ladder: a declined payment puts an order, and a customer, at risk.

The first step asks the customer to update their payment method (cheap, at once); then
a reminder by SMS; then a person calls. Paying (a purchase) or redeeming an offer wins
it. It outranks a lapse; a climb for a return, a late delivery or a complaint goes on.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from workflows.events import EventType, Response
from workflows.ladders import Ladder, LadderStep

PAYMENT_FAILED = Ladder(
    cause="payment_failed",
    priority=2,
    started_by=frozenset({EventType.PAYMENT_FAILED}),
    resolved_by=frozenset({Response.RECOVERED}),
    steps=(
        LadderStep(
            name="update your payment method",
            channel="email",
            cost=Decimal("0.05"),
            response_window=timedelta(days=1),
        ),
        LadderStep(
            name="payment reminder",
            channel="sms",
            cost=Decimal("0.10"),
            response_window=timedelta(days=2),
        ),
        LadderStep(name="payment help call", channel="service", cost=Decimal("6.00")),
    ),
)
