"""Offers that learn: Thompson sampling over the offers a decision may make.

A decision (a ladder step, an above-the-line moment) with several eligible offers picks
one by drawing each offer's recovery rate from its posterior, Beta(1 + recovered,
1 + sent - recovered) over what that offer achieved for the customer's cohort, and
making the offer whose draw is highest. An offer that recovers more is made more; one
little tried is still tried while its posterior leaves room for it to be the best.

Exploration is bounded: at most ``max_exploration`` of decisions go to an offer other
than the one with the best posterior mean (the leader). The chance that a draw names
another offer is estimated from the same posteriors; where it is above the bound, a
draw that names another offer is kept only in proportion.

The draw is made in an activity (``choose_offer``), whose result the journey's history
keeps: replay never draws again. Everything here is pure; the randomness is passed in.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field

# Draws per decision for the chance that each offer is the best.
CHANCE_DRAWS = 1_000


class LearningRules(BaseModel):
    model_config = ConfigDict(frozen=True)

    # Off: a decision makes its first eligible offer, as a ladder lists them.
    enabled: bool = True
    # The most of decisions that may go to an offer other than the current leader.
    max_exploration: float = Field(default=0.5, gt=0, le=1)
    # Choose from the counts as they stood this long before the choice, read from the
    # engagements themselves rather than the running counts: journeys choosing at the
    # same moment then cannot see each other's sends, so a simulation repeats. None:
    # the running counts (``offer_arm``), as production uses them.
    counts_lag: timedelta | None = None


class ArmCounts(BaseModel):
    """What one offer achieved at one decision for one cohort (treated sends only)."""

    offer_id: str
    sent: int = 0
    recovered: int = 0


class ArmEstimate(ArmCounts):
    # The posterior mean of its recovery rate, and the chance it is the best offer.
    mean: float
    chance_best: float


class Choice(BaseModel):
    offer_id: str
    arms: list[ArmEstimate]
    # Made over the leader's head: the draw named an offer that is not the leader.
    explored: bool

    def why(self) -> str:
        """The arms' posteriors, for the timeline: ``pct10 0.18 (12/64, best 71%)``."""
        how = "exploring" if self.explored else "Thompson sampling"
        arms = ", ".join(
            f"{a.offer_id} {a.mean:.2f} ({a.recovered}/{a.sent}, best {a.chance_best:.0%})"
            for a in self.arms
        )
        return f"{self.offer_id} by {how}; recovery posterior means: {arms}"


def _posterior(arm: ArmCounts) -> tuple[float, float]:
    recovered = min(arm.recovered, arm.sent)
    return 1.0 + recovered, 1.0 + arm.sent - recovered


def choose(arms: Sequence[ArmCounts], rules: LearningRules, rng: random.Random) -> Choice:
    """One Thompson draw over ``arms`` (in the decision's order), with exploration bounded
    by ``rules``."""
    if not arms:
        raise ValueError("a choice needs at least one offer")
    posteriors = [_posterior(arm) for arm in arms]
    means = [a / (a + b) for a, b in posteriors]
    # Ties go to the first listed: the ladder's own order.
    leader = max(range(len(arms)), key=lambda i: (means[i], -i))
    wins = [0] * len(arms)
    for _ in range(CHANCE_DRAWS):
        wins[_best(posteriors, rng)] += 1
    chance = [w / CHANCE_DRAWS for w in wins]
    picked = _best(posteriors, rng)
    explore = 1.0 - chance[leader]
    over_bound = explore > rules.max_exploration
    if picked != leader and over_bound and rng.random() >= rules.max_exploration / explore:
        picked = leader
    estimates = [
        ArmEstimate(**arm.model_dump(), mean=mean, chance_best=p)
        for arm, mean, p in zip(arms, means, chance, strict=True)
    ]
    return Choice(offer_id=arms[picked].offer_id, arms=estimates, explored=picked != leader)


def _best(posteriors: Sequence[tuple[float, float]], rng: random.Random) -> int:
    draws = [rng.betavariate(a, b) for a, b in posteriors]
    return max(range(len(draws)), key=draws.__getitem__)
