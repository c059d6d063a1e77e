"""The offer catalogue, as data.

Each offer is **generative** (it creates behaviour the customer would not have had: a
first purchase in a new category, a bigger basket) or **dilutive** (a discount on what
the customer buys anyway).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class OfferKind(StrEnum):
    GENERATIVE = "generative"
    DILUTIVE = "dilutive"


class Offer(BaseModel):
    """An offer as the business defines it. The category it targets is chosen when it
    is made (double points on *shoes*) and kept with the engagement and the wallet."""

    model_config = ConfigDict(frozen=True)

    offer_id: str
    kind: OfferKind
    description: str
    # What it costs the business when issued and redeemed.
    cost: Decimal
    channel: str = "email"
    valid_for: timedelta = timedelta(days=14)
    # Loyalty points on the purchase that redeems it: this many times the usual.
    points_multiplier: int = 1
    # Eligibility: who may be offered it, by lifetime value.
    min_lifetime_value: Decimal = Decimal(0)


CATALOGUE: dict[str, Offer] = {
    offer.offer_id: offer
    for offer in (
        Offer(
            offer_id="double-points",
            kind=OfferKind.GENERATIVE,
            description="double points on a first purchase in a new category",
            cost=Decimal("1.50"),
            points_multiplier=2,
            min_lifetime_value=Decimal("200.00"),
        ),
        Offer(
            offer_id="threshold-free-shipping",
            kind=OfferKind.GENERATIVE,
            description="free shipping once the basket reaches the threshold",
            cost=Decimal("1.00"),
            valid_for=timedelta(days=7),
        ),
        Offer(
            offer_id="pct10",
            kind=OfferKind.DILUTIVE,
            description="10% off the next order",
            cost=Decimal("2.00"),
        ),
        Offer(
            offer_id="five-off",
            kind=OfferKind.DILUTIVE,
            description="$5 off an order of $40 or more",
            cost=Decimal("2.00"),
        ),
        Offer(
            offer_id="free-shipping",
            kind=OfferKind.DILUTIVE,
            description="free shipping on the next order",
            cost=Decimal("6.00"),
            channel="push",
        ),
        Offer(
            offer_id="pct20",
            kind=OfferKind.DILUTIVE,
            description="20% off the next order",
            cost=Decimal("12.00"),
            channel="sms",
        ),
        Offer(
            offer_id="exchange-credit",
            kind=OfferKind.DILUTIVE,
            description="credit towards an exchange",
            cost=Decimal("5.00"),
        ),
        Offer(
            offer_id="shipping-refund",
            kind=OfferKind.DILUTIVE,
            description="the shipping cost refunded",
            cost=Decimal("8.00"),
        ),
        Offer(
            offer_id="replacement",
            kind=OfferKind.DILUTIVE,
            description="a replacement product",
            cost=Decimal("40.00"),
            channel="service",
        ),
    )
}


def learnable(offer_ids: tuple[str, ...], lifetime_value: Decimal) -> tuple[str, ...]:
    """The offers a decision may choose between for this customer: those the customer is
    eligible for, and only the generative ones when there are any (new behaviour is worth
    trying before margin is given away)."""
    eligible = [
        offer_id
        for offer_id in offer_ids
        if lifetime_value >= CATALOGUE[offer_id].min_lifetime_value
    ]
    generative = [o for o in eligible if CATALOGUE[o].kind == OfferKind.GENERATIVE]
    return tuple(generative or eligible)


def points_multiplier(offer_id: str) -> int:
    offer = CATALOGUE.get(offer_id)
    return offer.points_multiplier if offer else 1
