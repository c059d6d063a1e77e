"""Above the line: the offer, if any, that a moment justifies for a customer doing well.

Generative offers (``workflows/catalogue.py``) always come before dilutive ones, and a
dilutive offer is made above the line only where the configuration allows it; the
timeline says what was chosen over what.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from workflows.catalogue import CATALOGUE, Offer, OfferKind
from workflows.events import CustomerEvent, EventType
from workflows.profile import Profile


class AboveTheLine(BaseModel):
    """When a customer above the line gets an offer (README, "Above the line")."""

    model_config = ConfigDict(frozen=True)

    # Cross-sell: browsing a category suggests its complement (the offer's own
    # eligibility says for whom).
    complements: dict[str, str] = Field(
        default_factory=lambda: {
            "dresses": "shoes",
            "shoes": "bags",
            "bags": "accessories",
            "knitwear": "accessories",
            "coats": "boots",
            "boots": "coats",
            "basics": "accessories",
        }
    )
    # Threshold nudge: spend over the period just under the perk's threshold.
    perk_threshold: Decimal = Decimal("100.00")
    nudge_gap: Decimal = Decimal("20.00")
    nudge_period: timedelta = timedelta(days=30)
    # A discount on the usual basket gives margin away; off unless a business wants it.
    allow_dilutive: bool = False
    # The offers a cross-sell may make on the complement; with several eligible, the
    # journey learns which recovers more (``workflows/bandit.py``).
    cross_sell_offers: tuple[str, ...] = ("double-points",)

    @field_validator("cross_sell_offers")
    @classmethod
    def _known(cls, offer_ids: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(offer_ids) - set(CATALOGUE))
        if unknown or not offer_ids:
            raise ValueError(f"cross-sell offers must be in the catalogue: {unknown or 'none'}")
        return offer_ids


@dataclass(frozen=True)
class Candidate:
    offer: Offer
    # The category it targets, if any ("double points on shoes").
    category: str | None
    why: str


def candidates(
    profile: Profile,
    rules: AboveTheLine,
    event: CustomerEvent,
    period_spend: Decimal,
) -> list[Candidate]:
    """Every offer this moment could justify, generative and dilutive alike."""
    found: list[Candidate] = []
    if event.type == EventType.APP_BROWSE and event.properties.category:
        browsed = event.properties.category
        target = rules.complements.get(browsed)
        if target and target not in profile.categories:
            why = f"browsing {browsed}; never bought {target}"
            found.extend(Candidate(CATALOGUE[o], target, why) for o in rules.cross_sell_offers)
        if browsed in profile.categories:
            why = f"browsing {browsed}, which they buy anyway"
            found.append(Candidate(CATALOGUE["pct10"], browsed, why))
    if event.type == EventType.PURCHASE:
        short = rules.perk_threshold - period_spend
        if Decimal(0) < short <= rules.nudge_gap:
            why = f"spend ${short:.2f} more for free shipping"
            found.append(Candidate(CATALOGUE["threshold-free-shipping"], None, why))
    return [c for c in found if profile.lifetime_value >= c.offer.min_lifetime_value]


def choose(found: list[Candidate], rules: AboveTheLine) -> Candidate | None:
    """Generative before dilutive, then the cheapest: new behaviour is worth paying for,
    a discount on the usual basket only gives margin away (and is not made at all unless
    ``allow_dilutive``)."""
    allowed = [c for c in found if c.offer.kind == OfferKind.GENERATIVE or rules.allow_dilutive]
    ranked = sorted(allowed, key=lambda c: (c.offer.kind != OfferKind.GENERATIVE, c.offer.cost))
    return ranked[0] if ranked else None


def rivals(found: list[Candidate], chosen: Candidate) -> tuple[str, ...]:
    """The offers the chosen one may give way to, itself first: those of its kind for the
    same category (the moment is the same; only the offer differs)."""
    alike = [
        c.offer.offer_id
        for c in found
        if c.offer.kind == chosen.offer.kind and c.category == chosen.category and c is not chosen
    ]
    return (chosen.offer.offer_id, *alike)


def spend_in_period(
    purchases: list[tuple[datetime, Decimal]], rules: AboveTheLine, now: datetime
) -> list[tuple[datetime, Decimal]]:
    """The purchases the threshold nudge still counts."""
    return [(at, amount) for at, amount in purchases if at > now - rules.nudge_period]
