"""A known population for report tests: engagements and credits of the silence ladder,
filed in the store as the activities file them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from activities.store import Engagement, EngagementCredit, Store

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def silence_step(
    n: int, step: int, name: str, cost: str, held_back: bool, outcome: str | None = None
) -> Engagement:
    """Customer ``s<n>``'s step of the silence ladder (a ghost costs nothing)."""
    return Engagement(
        idempotency_key=f"customer-s{n}/run/silence-1/step-{step}",
        customer_id=f"s{n}",
        cause="silence",
        ladder_run_id="silence-1",
        step=step,
        step_name=name,
        channel="email",
        cost=Decimal(0) if held_back else Decimal(cost),
        sent_at=T0 + timedelta(days=5 * (step - 1)),
        outcome=outcome,
        held_back=held_back,
    )


async def population(store: Store) -> None:
    """Silence step 1: 60 treated customers, 18 recovered (40 each, 3 of them twice);
    40 held back, 4 recovered (40 each). Silence step 2: 5 treated, 2 held back."""
    async with store.transaction() as session:
        for n in range(100):
            outcome = "responded" if n % 5 == 0 else "no_response"
            first = silence_step(n, 1, "we miss you", "0.05", held_back=n >= 60, outcome=outcome)
            session.add(first)
            credited = ["p1"] if n < 18 or 60 <= n < 64 else []
            for event_id in [*credited, *(["p2"] if n < 3 else [])]:
                session.add(
                    EngagementCredit(
                        idempotency_key=first.idempotency_key,
                        event_id=event_id,
                        amount=Decimal(40),
                        at=T0,
                    )
                )
        for n in range(7):
            session.add(silence_step(n, 2, "10% off", "0.50", held_back=n >= 5))
