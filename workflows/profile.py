"""The customer's profile as events shape it: one function, used by the journey for its
state and by the store for the single customer view, so the two never disagree."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, Field

from workflows.catalogue import points_multiplier
from workflows.events import EVENT_TABLE, CustomerEvent, EventType

# How many purchase times the cadence is measured over.
CADENCE_PURCHASES = 12


class Profile(BaseModel):
    lifetime_value: Decimal = Decimal(0)
    order_count: int = 0
    # Most recent purchase times, oldest first: the customer's own cadence.
    purchase_times: list[datetime] = Field(default_factory=list)
    last_activity_at: datetime | None = None
    categories: list[str] = Field(default_factory=list)
    # Channel -> granted, as the customer last said; unset channels follow the policy.
    consent: dict[str, bool] = Field(default_factory=dict)
    timezone: str | None = None
    home_store: str | None = None
    location: str | None = None
    preferred_channels: list[str] = Field(default_factory=list)
    email: str | None = None
    first_purchase_at: datetime | None = None
    # One point per dollar spent; an offer's multiplier on the purchase that redeems it.
    loyalty_points: int = 0


def update_profile(profile: Profile, event: CustomerEvent, now: datetime) -> None:
    """Fold one fresh event into the profile. Out-of-order events land in their place;
    nothing is dated later than ``now``."""
    happened = min(event.occurred_at, now)
    match event.type:
        case EventType.PURCHASE:
            profile.lifetime_value += event.properties.amount
            profile.loyalty_points += int(event.properties.amount)
            profile.order_count += 1
            times = sorted({*profile.purchase_times, happened})
            profile.purchase_times = times[-CADENCE_PURCHASES:]
            if profile.first_purchase_at is None or happened < profile.first_purchase_at:
                profile.first_purchase_at = happened
            _add_category(profile, event.properties.category)
        case EventType.RETURN:
            profile.lifetime_value = max(
                Decimal(0), profile.lifetime_value - event.properties.amount
            )
            # Points earned on what came back go back too.
            profile.loyalty_points = max(0, profile.loyalty_points - int(event.properties.amount))
        case EventType.OFFER_REDEEMED:
            amount = event.properties.amount or Decimal(0)
            profile.lifetime_value += amount
            profile.loyalty_points += int(amount) * points_multiplier(event.properties.offer_id)
            _add_category(profile, event.properties.category)
        case EventType.CONSENT_CHANGED:
            profile.consent[event.properties.channel] = event.properties.granted
        case EventType.PROFILE_UPDATED:
            for field, value in event.properties.model_dump(exclude_none=True).items():
                setattr(profile, field, value)
        case _:
            pass
    if EVENT_TABLE[event.type].customer_initiated and (
        profile.last_activity_at is None or happened > profile.last_activity_at
    ):
        profile.last_activity_at = happened


def _add_category(profile: Profile, category: str | None) -> None:
    if category and category not in profile.categories:
        profile.categories.append(category)
