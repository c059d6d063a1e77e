"""Cohorts: who the customer is to the business, from recency, frequency and value.

Evaluated in order, first match wins:

- **Lapsed**: bought before, but not within ``lapsed_after`` (180 days).
- **VIP**: lifetime value of at least ``vip_value`` ($1,000).
- **Loyal**: at least ``loyal_orders`` orders (5).
- **Repeat**: at least ``repeat_orders`` orders (2).
- **New**: one order.

A customer who has never bought has no cohort yet.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from workflows.profile import Profile


class Cohort(StrEnum):
    VIP = "vip"
    LOYAL = "loyal"
    REPEAT = "repeat"
    NEW = "new"
    LAPSED = "lapsed"


class CohortRules(BaseModel):
    model_config = ConfigDict(frozen=True)

    vip_value: Decimal = Field(default=Decimal("1000.00"), gt=0)
    loyal_orders: int = Field(default=5, ge=2)
    repeat_orders: int = Field(default=2, ge=2)
    lapsed_after: timedelta = timedelta(days=180)

    @model_validator(mode="after")
    def _ordered(self) -> CohortRules:
        if self.repeat_orders > self.loyal_orders:
            raise ValueError("need repeat_orders <= loyal_orders")
        return self


# The cohort by time alone turns once ``lapsed_after`` has wholly passed: look just after.
_JUST_AFTER = timedelta(seconds=1)


def lapses_at(profile: Profile, rules: CohortRules) -> datetime | None:
    """When the customer turns lapsed if they do not order first (None: never bought)."""
    if profile.order_count == 0 or not profile.purchase_times:
        return None
    return profile.purchase_times[-1] + rules.lapsed_after + _JUST_AFTER


def cohort_of(profile: Profile, rules: CohortRules, now: datetime) -> Cohort | None:
    if profile.order_count == 0 or not profile.purchase_times:
        return None
    if now - profile.purchase_times[-1] > rules.lapsed_after:
        return Cohort.LAPSED
    if profile.lifetime_value >= rules.vip_value:
        return Cohort.VIP
    if profile.order_count >= rules.loyal_orders:
        return Cohort.LOYAL
    if profile.order_count >= rules.repeat_orders:
        return Cohort.REPEAT
    return Cohort.NEW
