"""Above-the-line offers as plain functions: candidates, and generative before dilutive."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tests.journeys import event
from workflows.catalogue import CATALOGUE, OfferKind
from workflows.offers import AboveTheLine, Candidate, candidates, choose, spend_in_period
from workflows.profile import Profile

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
RULES = AboveTheLine()
DRESSES_ONLY = Profile(lifetime_value=Decimal(400), order_count=3, categories=["dresses"])


def test_browsing_a_bought_category_suggests_its_complement_and_a_discount() -> None:
    browse = event("c", "app_browse", NOW, category="dresses")
    found = candidates(DRESSES_ONLY, RULES, browse, Decimal(0))
    assert [(c.offer.offer_id, c.category) for c in found] == [
        ("double-points", "shoes"),
        ("pct10", "dresses"),
    ]


def test_cross_sell_needs_a_new_category_and_a_customer_worth_it() -> None:
    has_shoes = DRESSES_ONLY.model_copy(update={"categories": ["dresses", "shoes"]})
    modest = DRESSES_ONLY.model_copy(update={"lifetime_value": Decimal(50)})
    browse = event("c", "app_browse", NOW, category="dresses")
    for profile in (has_shoes, modest):
        offered = [c.offer.offer_id for c in candidates(profile, RULES, browse, Decimal(0))]
        assert offered == ["pct10"]


def test_generative_always_wins_and_dilutive_needs_permission() -> None:
    generative = Candidate(CATALOGUE["double-points"], "shoes", "new category")
    dilutive = Candidate(CATALOGUE["pct10"], "dresses", "the usual")
    cheaper_dilutive = Candidate(
        CATALOGUE["pct10"].model_copy(update={"cost": Decimal("0.10")}), "dresses", "cheap"
    )
    assert generative.offer.kind == OfferKind.GENERATIVE
    assert choose([dilutive, cheaper_dilutive, generative], RULES) is generative
    assert choose([dilutive], RULES) is None  # not above the line, by default
    allowing = RULES.model_copy(update={"allow_dilutive": True})
    assert choose([dilutive, cheaper_dilutive], allowing) is cheaper_dilutive


def test_the_threshold_nudge_counts_the_period_and_a_gap() -> None:
    buy = event("c", "purchase", NOW, amount=30)
    nudged = candidates(Profile(), RULES, buy, Decimal("85.00"))
    assert [c.why for c in nudged] == ["spend $15.00 more for free shipping"]
    for spend in ("60.00", "100.00", "120.00"):  # too far, reached, past
        assert candidates(Profile(), RULES, buy, Decimal(spend)) == []
    old, recent = NOW - timedelta(days=31), NOW - timedelta(days=2)
    counted = spend_in_period([(old, Decimal(50)), (recent, Decimal(40))], RULES, NOW)
    assert counted == [(recent, Decimal(40))]
