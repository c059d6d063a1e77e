"""The programme report: the interval maths as plain functions, the SQL on SQLite and
Postgres over a known population, and `equator report` on the terminal."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from activities.store import Engagement, EngagementCredit, Store
from service.reports import programme_report
from service.uplift import mean_difference, rate_difference, wilson
from tests.servers import equator

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def test_wilson_and_newcombe_give_the_published_intervals() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873, example (a): 56/70 against 48/80,
    # method 10 (the hybrid score interval): 0.0524 to 0.3339.
    low, high = wilson(56, 70)
    assert (round(low, 4), round(high, 4)) == (0.6918, 0.877)
    difference = rate_difference(56, 70, 48, 80)
    assert (round(difference.value, 4), round(difference.low, 4), round(difference.high, 4)) == (
        0.2,
        0.0524,
        0.3339,
    )


def test_a_difference_of_means_from_sums_and_squares() -> None:
    # Treated: 10 customers spending 0 or 20 (five each); control: 10 spending 0 or 10.
    estimate = mean_difference(100.0, 2000.0, 10, 50.0, 500.0, 10)
    assert estimate.value == 5.0
    # Sample variances 1000/9 and 250/9; Welch's standard error over 10 and 10.
    half = 1.959963984540054 * ((1000 / 9) / 10 + (250 / 9) / 10) ** 0.5
    assert estimate.low == pytest.approx(5.0 - half)
    assert estimate.high == pytest.approx(5.0 + half)


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


async def test_the_report_counts_each_group_and_what_the_treated_gained(store: Store) -> None:
    await population(store)
    first, second = await programme_report(store)

    assert (first.cause, first.step, first.step_name) == ("silence", 1, "we miss you")
    treated, control = first.treated, first.control
    assert (treated.customers, control.customers) == (60, 40)
    assert (treated.recovered, control.recovered) == (18, 4)
    assert (treated.responded, control.responded) == (12, 8)
    assert (treated.revenue, control.revenue) == (Decimal(840), Decimal(160))
    assert (treated.cost, control.cost) == (Decimal("3.00"), Decimal(0))
    assert first.cost_per_recovered == Decimal("3.00") / 18
    rate = first.incremental_recovery_rate
    assert rate is not None
    assert rate.value == pytest.approx(18 / 60 - 4 / 40)
    assert rate.low < rate.value < rate.high
    assert rate.low > 0  # 30% against 10%, on 60 and 40 customers: more than noise
    revenue = first.incremental_revenue_per_customer
    assert revenue is not None
    assert revenue.value == pytest.approx(840 / 60 - 160 / 40)

    assert (second.step, second.treated.customers, second.control.customers) == (2, 5, 2)
    assert second.incremental_recovery_rate is None  # not enough data
    assert second.cost_per_recovered is None

    assert await programme_report(store, since=T0 + timedelta(days=1)) == [
        (await programme_report(store))[1]
    ]


async def test_equator_report_prints_the_table_and_the_json(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'e.db'}"
    store = Store(url)
    await store.migrate()
    await population(store)
    await store.close()
    environment = {"EQUATOR_DATABASE_URL": url}

    code, printed, _ = await equator("report", environment=environment)
    assert code == 0
    assert "| silence | 1 we miss you | 60 | 40 | 12 | 18 vs 4 | $840.00 | $3.00 |" in printed
    assert "+20.0% (" in printed
    assert "not enough data" in printed

    code, printed, _ = await equator(
        "report", "--json", "--since", "2026-11-03", environment=environment
    )
    assert code == 0
    [step] = json.loads(printed)
    assert (step["step"], step["incremental_recovery_rate"]) == (2, None)
