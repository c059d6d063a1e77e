"""The chance a customer is still a customer (BG/NBD): the formulas, the fit recovering
known parameters from customers simulated by the model itself, and the journey
flatlining by it; plain functions."""

from __future__ import annotations

import math
import random
from datetime import timedelta

import pytest

from starter.fit import FitError, Summary, fit, summaries
from testkit.moments import T0, apply, begun, ev
from workflows.alive import AliveModel, log_likelihood, p_alive, silent_from
from workflows.config import JourneyConfig
from workflows.registry import REMEDIATION

DAY = timedelta(days=1)
MODEL = AliveModel(r=0.5, alpha=20.0, a=0.8, b=3.0)


def test_alive_falls_with_silence_and_rises_with_a_late_last_purchase() -> None:
    assert p_alive(MODEL, repeats=0, recency=0, age=400) == 1.0
    falling = [p_alive(MODEL, 3, recency=60, age=age) for age in (60, 120, 240, 480)]
    assert falling == sorted(falling, reverse=True)
    assert falling[0] > 0.7
    assert p_alive(MODEL, 3, recency=200, age=240) > p_alive(MODEL, 3, recency=60, age=240)


def test_alive_is_the_likelihoods_share_of_staying() -> None:
    """The closed form against the likelihood's two terms (alive at the end, or dropped
    after the last purchase)."""
    r, alpha, a, b, x, tx, t = 0.5, 20.0, 0.8, 3.0, 3, 60.0, 240.0
    still = -(r + x) * math.log(alpha + t)
    dropped = math.log(a / (b + x - 1)) - (r + x) * math.log(alpha + tx)
    share = math.exp(still) / (math.exp(still) + math.exp(dropped))
    assert p_alive(MODEL, x, tx, t) == pytest.approx(share)
    # No repeat purchase: the chance of none in ``t`` days, (alpha / (alpha + t)) ** r.
    assert log_likelihood(r, alpha, a, b, 0, 0, t) == pytest.approx(
        r * math.log(alpha / (alpha + t))
    )


def test_silent_from_is_where_the_chance_crosses_the_threshold() -> None:
    first, last = T0, T0 + 60 * DAY
    silent = silent_from(MODEL, first, last, repeats=3)
    assert silent is not None
    assert p_alive(MODEL, 3, 60, (silent - first) / DAY) == pytest.approx(MODEL.threshold)
    assert silent_from(MODEL, first, first, repeats=0) is None
    # Already below it at the last purchase: silent from then.
    doubtful = MODEL.model_copy(update={"threshold": 0.99})
    assert silent_from(doubtful, first, last, repeats=1) == last


def population(model: AliveModel, customers: int, days: float, seed: int) -> list[Summary]:
    """Customers as the model says they behave: a rate from the gamma, a dropout chance
    from the beta, purchases as a Poisson process, a coin after each repeat (none can
    drop out before their first repeat)."""
    rng = random.Random(seed)
    found = []
    for _ in range(customers):
        rate = rng.gammavariate(model.r, 1 / model.alpha)
        drop = rng.betavariate(model.a, model.b)
        start = rng.uniform(0, days / 2)
        last, repeats, at = start, 0, start
        while True:
            at += rng.expovariate(rate)
            if at > days:
                break
            last, repeats = at, repeats + 1
            if rng.random() < drop:
                break
        found.append(Summary(repeats, last - start, days - start))
    return found


def test_the_fit_recovers_the_parameters_it_was_given() -> None:
    truth = AliveModel(r=0.8, alpha=30.0, a=0.6, b=2.5)
    fitted = fit(population(truth, 3_000, 730, seed=7))
    # What matters to the journey: the mean buying rate and the chance of dropping out.
    assert fitted.r / fitted.alpha == pytest.approx(truth.r / truth.alpha, rel=0.15)
    assert fitted.a / (fitted.a + fitted.b) == pytest.approx(truth.a / (truth.a + truth.b), rel=0.2)
    assert fitted.threshold == 0.5


def test_a_fit_needs_customers_who_repeat() -> None:
    with pytest.raises(FitError, match="too few"):
        fit([Summary(0, 0, 100)] * 50)


def test_summaries_count_buying_days_to_the_moment() -> None:
    bought = [("c", T0), ("c", T0 + 2 * DAY), ("c", T0 + 2 * DAY + timedelta(hours=1)), ("d", T0)]
    later = [("c", T0 + 90 * DAY)]
    found = sorted(summaries([*bought, *later], T0 + 10 * DAY), key=lambda s: s.repeats)
    assert found == [Summary(0, 0, 10), Summary(1, 2 + 1 / 24, 10)]


def test_the_journey_flatlines_by_the_model_when_configured() -> None:
    config = JourneyConfig(alive=MODEL)
    state = begun(T0, config)
    for day in (0, 20, 40, 60):
        apply(state, ev("purchase", T0 + day * DAY, f"p{day}", amount=30), T0 + day * DAY, config)
    remediation = REMEDIATION.state_in(state)
    assert remediation is not None
    assert remediation.silence_deadline == silent_from(MODEL, T0, T0 + 60 * DAY, repeats=3)
    # The cadence rule would have said 60 days after the last purchase (3 x 20).
    cadence = begun(T0)
    for day in (0, 20, 40, 60):
        apply(cadence, ev("purchase", T0 + day * DAY, f"p{day}", amount=30), T0 + day * DAY)
    plain = REMEDIATION.state_in(cadence)
    assert plain is not None
    assert plain.silence_deadline == T0 + 120 * DAY
    assert remediation.silence_deadline != plain.silence_deadline
