"""What a treated group gained over its control group, with 95% confidence intervals:
plain functions over counts and sums, so the report's numbers test without a store.

Rates use Newcombe's hybrid score interval for a difference of two proportions (built
on Wilson's interval for each), which stays inside [-1, 1] and behaves at small counts
and rates near 0 or 1, where the textbook Wald interval does not. Money per customer
uses Welch's interval for a difference of means (normal quantile: the report does not
speak below ``MINIMUM_PER_GROUP`` customers a group).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054
# Below this many customers in either group the report says "not enough data".
MINIMUM_PER_GROUP = 30


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float


def wilson(successes: int, n: int) -> tuple[float, float]:
    """Wilson's score interval for a proportion."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n**2)) / (1 + Z95**2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def rate_difference(treated: int, n_treated: int, control: int, n_control: int) -> Estimate:
    """Treated rate minus control rate (Newcombe's hybrid score interval)."""
    p1, p2 = treated / n_treated, control / n_control
    l1, u1 = wilson(treated, n_treated)
    l2, u2 = wilson(control, n_control)
    difference = p1 - p2
    low = difference - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = difference + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return Estimate(difference, low, high)


def mean_difference(
    total_treated: float,
    squares_treated: float,
    n_treated: int,
    total_control: float,
    squares_control: float,
    n_control: int,
) -> Estimate:
    """Treated mean minus control mean, from each group's sum and sum of squares
    (Welch's interval, normal quantile)."""

    def mean_and_variance(total: float, squares: float, n: int) -> tuple[float, float]:
        mean = total / n
        variance = max(squares - n * mean**2, 0.0) / (n - 1) if n > 1 else 0.0
        return mean, variance

    m1, v1 = mean_and_variance(total_treated, squares_treated, n_treated)
    m2, v2 = mean_and_variance(total_control, squares_control, n_control)
    half = Z95 * math.sqrt(v1 / n_treated + v2 / n_control)
    return Estimate(m1 - m2, m1 - m2 - half, m1 - m2 + half)
