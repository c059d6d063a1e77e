"""Is the customer still a customer? The BG/NBD model (Fader, Hardie and Lee, 2005)
as pure functions: the workflow computes a customer's chance of being alive from their
own history and the population's parameters, which ``equator fit`` estimates from the
store and the configuration carries.

While alive, a customer buys at a rate λ (gamma-distributed across customers: shape
``r``, rate ``alpha``); after each purchase they may drop out for good with chance p
(beta-distributed: ``a``, ``b``). For a customer whose first purchase was ``age`` days
ago, with ``repeats`` purchases since, the last ``recency`` days after the first:

    P(alive) = 1 / (1 + [repeats > 0] · a / (b + repeats - 1)
                        · ((alpha + age) / (alpha + recency)) ** (r + repeats))

A customer who has not bought again is alive in the model's eyes (they cannot have
dropped out before a repeat), so for them the journey keeps the cadence rule.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

DAY = timedelta(days=1)


class AliveModel(BaseModel):
    """The population's BG/NBD parameters (time in days), and where the journey calls a
    customer silent."""

    model_config = ConfigDict(frozen=True)

    r: float = Field(gt=0)
    alpha: float = Field(gt=0)
    a: float = Field(gt=0)
    b: float = Field(gt=0)
    # Flatline once the chance of being alive falls below this.
    threshold: float = Field(default=0.5, gt=0, lt=1)


def p_alive(model: AliveModel, repeats: int, recency: float, age: float) -> float:
    """The chance the customer is alive, from days since the first purchase (``age``)
    and of the last one after it (``recency``)."""
    if repeats == 0:
        return 1.0
    growth = math.pow((model.alpha + age) / (model.alpha + recency), model.r + repeats)
    odds = model.a / (model.b + repeats - 1) * growth
    return 1.0 / (1.0 + odds)


def silent_from(
    model: AliveModel, first: datetime, last: datetime, repeats: int
) -> datetime | None:
    """When the chance of being alive falls below the threshold, if it ever does (not
    for a customer with no repeat purchase). Solved in closed form from ``p_alive``."""
    if repeats == 0:
        return None
    recency = (last - first) / DAY
    odds_needed = 1.0 / model.threshold - 1.0
    ratio = odds_needed * (model.b + repeats - 1) / model.a
    age = (model.alpha + recency) * math.pow(ratio, 1.0 / (model.r + repeats)) - model.alpha
    # Alive below the threshold already at the last purchase: silent from then.
    return first + max(age, recency) * DAY


def log_likelihood(
    r: float, alpha: float, a: float, b: float, repeats: int, recency: float, age: float
) -> float:
    """One customer's contribution to the model's log-likelihood (for ``equator fit``)."""
    x = repeats
    head = (
        math.lgamma(r + x)
        - math.lgamma(r)
        + r * math.log(alpha)
        + math.lgamma(a + b)
        + math.lgamma(b + x)
        - math.lgamma(b)
        - math.lgamma(a + b + x)
    )
    still = -(r + x) * math.log(alpha + age)
    if x == 0:
        return head + still
    dropped = math.log(a) - math.log(b + x - 1) - (r + x) * math.log(alpha + recency)
    # log(e^still + e^dropped), kept stable.
    top = max(still, dropped)
    return head + top + math.log(math.exp(still - top) + math.exp(dropped - top))
