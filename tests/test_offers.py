"""Above-the-line offers as plain functions: candidates, and generative before dilutive."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from testkit.moments import apply, begun
from tests.journeys import event
from workflows.catalogue import CATALOGUE, OfferKind
from workflows.config import JourneyConfig
from workflows.offers import AboveTheLine, Candidate, candidates, choose, rivals, spend_in_period
from workflows.profile import Profile
from workflows.registry import ABOVE_THE_LINE

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


def test_a_moment_with_several_offers_of_a_kind_learns_which_and_keeps_what_went_out() -> None:
    rules = RULES.model_copy(
        update={"cross_sell_offers": ("double-points", "threshold-free-shipping")}
    )
    browse = event("c", "app_browse", NOW, category="dresses")
    found = candidates(DRESSES_ONLY, rules, browse, Decimal(0))
    chosen = choose(found, rules)
    assert chosen is not None
    # The cheapest first; the discount is of another kind, no rival: generative first.
    assert rivals(found, chosen) == ("threshold-free-shipping", "double-points")

    config = JourneyConfig(above_the_line=rules)
    state = begun(NOW, config)
    for n, amount in enumerate((150, 150, 150)):
        bought = event("c", "purchase", NOW, f"p{n}", amount=amount, category="dresses")
        apply(state, bought, NOW, config)
    journey = apply(state, event("c", "app_browse", NOW, "b", category="dresses"), NOW, config)
    offers_state = ABOVE_THE_LINE.state_in(state)
    assert offers_state is not None
    [wanted] = ABOVE_THE_LINE.wants(journey, offers_state)
    assert (wanted.arms, wanted.decision) == (
        ("threshold-free-shipping", "double-points"),
        "above_line/cross-sell",
    )
    # The engagement path chose the second: that is the offer the wallet holds.
    made = wanted.model_copy(update={"offer_id": "double-points"})
    after = ABOVE_THE_LINE.sent(journey, offers_state, made)
    [held] = after.wallet
    assert (held.offer_id, held.category, held.arms) == ("double-points", "shoes", ())


def test_cross_sell_offers_must_be_in_the_catalogue() -> None:
    with pytest.raises(ValidationError, match="must be in the catalogue"):
        AboveTheLine(cross_sell_offers=("double-points", "a-pony"))
    with pytest.raises(ValidationError, match="must be in the catalogue"):
        AboveTheLine(cross_sell_offers=())
