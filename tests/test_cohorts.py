"""Cohorts over recency, frequency and value, as plain functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from workflows.cohorts import Cohort, CohortRules, cohort_of
from workflows.profile import Profile

NOW = datetime(2026, 11, 23, tzinfo=UTC)
RULES = CohortRules()


def profile(orders: int, value: str, last_bought_days_ago: float) -> Profile:
    last = NOW - timedelta(days=last_bought_days_ago)
    return Profile(
        order_count=orders,
        lifetime_value=Decimal(value),
        purchase_times=[last - timedelta(days=30 * n) for n in range(min(orders, 3))][::-1],
    )


@pytest.mark.parametrize(
    ("orders", "value", "days_ago", "cohort"),
    [
        (0, "0", 0, None),
        (1, "40", 3, Cohort.NEW),
        (2, "90", 3, Cohort.REPEAT),
        (5, "300", 3, Cohort.LOYAL),
        (2, "1000", 3, Cohort.VIP),  # value, not frequency, makes a VIP
        (9, "5000", 181, Cohort.LAPSED),  # recency comes first, even for a VIP
        (1, "40", 180, Cohort.NEW),  # 180 days is not yet lapsed
    ],
)
def test_cohort_by_recency_frequency_and_value(
    orders: int, value: str, days_ago: float, cohort: Cohort | None
) -> None:
    assert cohort_of(profile(orders, value, days_ago), RULES, NOW) == cohort


def test_thresholds_are_configurable_and_checked() -> None:
    generous = CohortRules(vip_value=Decimal(100), lapsed_after=timedelta(days=30))
    assert cohort_of(profile(1, "150", 3), generous, NOW) == Cohort.VIP
    assert cohort_of(profile(1, "150", 31), generous, NOW) == Cohort.LAPSED
    with pytest.raises(ValidationError, match="repeat_orders <= loyal_orders"):
        CohortRules(repeat_orders=6, loyal_orders=5)
