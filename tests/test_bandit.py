"""Offers that learn: Thompson sampling as a pure function, its counts in the store (on
SQLite and Postgres), and a run of decisions through the real activities that must
learn which offer recovers more."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError
from sqlmodel import col, select

from activities.engagements import EngagementActivities
from activities.store import OfferArm, Store
from service.offer_report import fold
from testkit.moments import T0
from tests.journeys import engagement_request
from workflows.bandit import ArmCounts, LearningRules, choose
from workflows.catalogue import learnable
from workflows.contracts import (
    Attribution,
    EngagementRequest,
    OfferChoiceRequest,
    RecordAttributionsRequest,
)
from workflows.ladders import LadderStep

PURE = LearningRules(max_exploration=1.0)


def shares(arms: list[ArmCounts], rules: LearningRules, n: int = 400) -> dict[str, float]:
    rng = random.Random(7)
    made = [choose(arms, rules, rng).offer_id for _ in range(n)]
    return {arm.offer_id: made.count(arm.offer_id) / n for arm in arms}


def test_with_nothing_learned_every_offer_is_tried_alike() -> None:
    made = shares([ArmCounts(offer_id="a"), ArmCounts(offer_id="b")], PURE)
    assert made["a"] == pytest.approx(0.5, abs=0.07)


def test_the_offer_that_recovers_more_is_made_more() -> None:
    arms = [
        ArmCounts(offer_id="pct10", sent=100, recovered=8),
        ArmCounts(offer_id="five-off", sent=100, recovered=30),
    ]
    assert shares(arms, PURE)["five-off"] > 0.99
    # Little known about either: the better is favoured, the other still tried.
    few = [
        ArmCounts(offer_id="pct10", sent=6, recovered=1),
        ArmCounts(offer_id="five-off", sent=6, recovered=3),
    ]
    assert 0.6 < shares(few, PURE)["five-off"] < 0.95


def test_exploration_is_bounded_by_the_rules() -> None:
    arms = [ArmCounts(offer_id=o) for o in ("a", "b", "c")]  # "a" leads on ties
    bounded = LearningRules(max_exploration=0.2)
    made = shares(arms, bounded, n=1_000)
    assert 1 - made["a"] == pytest.approx(0.2, abs=0.04)
    assert made["b"] == pytest.approx(made["c"], abs=0.05)


def test_a_choice_says_why() -> None:
    arms = [
        ArmCounts(offer_id="pct10", sent=64, recovered=12),
        ArmCounts(offer_id="five-off", sent=10, recovered=0),
    ]
    choice = choose(arms, PURE, random.Random(1))
    pct10, five_off = choice.arms
    assert pct10.mean == pytest.approx(13 / 66)
    assert pct10.chance_best + five_off.chance_best == pytest.approx(1)
    assert "pct10 0.20 (12/64, best" in choice.why()
    assert "five-off 0.08 (0/10, best" in choice.why()
    with pytest.raises(ValueError, match="at least one offer"):
        choose([], PURE, random.Random(1))


def test_learning_stays_within_eligibility_and_generative_before_dilutive() -> None:
    offers = ("pct10", "five-off", "double-points")
    # Double points needs a lifetime value of $200: below it, the discounts are tried.
    assert learnable(offers, Decimal(150)) == ("pct10", "five-off")
    assert learnable(offers, Decimal(250)) == ("double-points",)


def test_a_step_refuses_alternatives_dearer_than_itself_or_unknown() -> None:
    with pytest.raises(ValidationError, match="within the step's cost"):
        LadderStep(
            name="x", channel="email", cost=Decimal(1), offer_id="pct10", alternatives=("pct20",)
        )
    with pytest.raises(ValidationError, match="within the step's cost"):
        LadderStep(
            name="x", channel="email", cost=Decimal(9), offer_id="pct10", alternatives=("nope",)
        )
    with pytest.raises(ValidationError, match="need the step's own offer"):
        LadderStep(name="x", channel="email", cost=Decimal(9), alternatives=("pct10",))


def learned(key: str, offer_id: str, cohort: str = "repeat") -> EngagementRequest:
    request = engagement_request(f"customer-c/{key}", "c")
    return request.model_copy(
        update={
            "step": 2,
            "offer_id": offer_id,
            "cost": Decimal("2.00"),
            "decision": "silence/an offer",
            "arm_cohort": cohort,
        }
    )


async def arm_counts(store: Store) -> dict[tuple[str, str], tuple[int, int]]:
    async with store.reading() as session:
        rows = (await session.exec(select(OfferArm).order_by(col(OfferArm.offer_id)))).all()
    return {(r.cohort, r.offer_id): (r.sent, r.recovered) for r in rows}


async def test_sends_and_first_credits_count_per_offer_and_cohort(store: Store) -> None:
    activities = EngagementActivities(store)
    for key, offer_id, cohort in (
        ("r/1", "pct10", "repeat"),
        ("r/2", "pct10", "repeat"),
        ("r/3", "five-off", "repeat"),
        ("r/4", "five-off", "loyal"),
    ):
        request = learned(key, offer_id, cohort)
        await activities.send_engagement(request)
        await activities.send_engagement(request)  # a retry
    # A ghost or an unlearned send counts nothing.
    await activities.send_engagement(engagement_request("customer-c/r/5", "c"))

    def credit(key: str, event_id: str) -> RecordAttributionsRequest:
        paid = Attribution(idempotency_key=f"customer-c/{key}", event_id=event_id, amount=40, at=T0)
        return RecordAttributionsRequest(attributions=[paid])

    await activities.record_attributions(credit("r/1", "p1"))
    await activities.record_attributions(credit("r/1", "p1"))  # a retry
    await activities.record_attributions(credit("r/1", "p2"))  # a second purchase: recovered once
    await activities.record_attributions(credit("r/3", "p3"))
    await activities.record_attributions(credit("r/5", "p4"))
    assert await arm_counts(store) == {
        ("repeat", "five-off"): (1, 1),
        ("loyal", "five-off"): (1, 0),
        ("repeat", "pct10"): (2, 1),
    }


async def test_decisions_through_the_store_learn_the_offer_that_recovers_more(
    store: Store,
) -> None:
    """Known truth: five-off recovers 35% of customers, pct10 10%. Each decision is a real
    choice, send and (when the customer recovers) credit, one after another."""
    truth = {"pct10": 0.10, "five-off": 0.35}
    activities = EngagementActivities(store, seed=3)
    customers = random.Random(11)
    rules = LearningRules()
    made = []
    for n in range(300):
        ask = OfferChoiceRequest(
            decision="silence/an offer",
            cohort="repeat",
            arms=["pct10", "five-off"],
            rules=rules,
            draw_key=f"c{n}/silence-1/step-2",
        )
        offer_id = (await activities.choose_offer(ask)).offer_id
        made.append(offer_id)
        await activities.send_engagement(learned(f"r/{n}", offer_id))
        if customers.random() < truth[offer_id]:
            paid = Attribution(
                idempotency_key=f"customer-c/r/{n}", event_id=f"p{n}", amount=40, at=T0
            )
            await activities.record_attributions(RecordAttributionsRequest(attributions=[paid]))
    later = made[150:]
    assert later.count("five-off") / len(later) > 0.75
    counts = await arm_counts(store)
    assert sum(sent for sent, _ in counts.values()) == 300


def test_offer_shares_are_folded_by_week_of_each_decision() -> None:
    monday, wednesday, next_monday = date(2026, 11, 23), date(2026, 11, 25), date(2026, 11, 30)
    rows = [
        ("silence/an offer", "pct10", monday, 3, 1),
        ("silence/an offer", "pct10", wednesday, 1, 0),
        ("silence/an offer", "five-off", wednesday, 4, 2),
        ("silence/an offer", "five-off", next_monday, 6, 3),
        ("return/exchange credit", "exchange-credit", monday, 2, 0),
    ]
    exchange, five_off, pct10 = fold(rows)
    assert (exchange.decision, exchange.sent, exchange.weeks[0].share) == (
        "return/exchange credit",
        2,
        1,
    )
    assert (five_off.sent, five_off.recovered, five_off.recovery_rate) == (10, 5, 0.5)
    assert [(w.week, w.sent, w.share) for w in five_off.weeks] == [
        (monday, 4, 0.5),
        (next_monday, 6, 1.0),
    ]
    assert [(w.week, w.share) for w in pct10.weeks] == [(monday, 0.5)]
    assert pct10.recovery_low < 0.25 < pct10.recovery_high


async def test_a_seeded_worker_draws_the_same_for_the_same_engagement(store: Store) -> None:
    def ask(key: str) -> OfferChoiceRequest:
        arms = ["pct10", "five-off", "double-points"]
        return OfferChoiceRequest(decision="d", cohort="new", arms=arms, rules=PURE, draw_key=key)

    async def draws(seed: int) -> list[str]:
        activities = EngagementActivities(store, seed=seed)
        return [(await activities.choose_offer(ask(f"c{n}/s/step-2"))).offer_id for n in range(30)]

    first = await draws(5)
    assert await draws(5) == first
    assert len(set(first)) == 3  # each key its own draw
    assert await draws(6) != first


async def test_counts_that_lag_are_read_as_they_stood(store: Store) -> None:
    """With ``counts_lag`` a choice sees the sends and first credits from before its
    moment less the lag, and nothing later: what a simulation needs to repeat."""
    activities = EngagementActivities(store, seed=1)
    day = timedelta(days=1)
    for n, offer_id in enumerate(("pct10", "five-off", "five-off")):
        request = learned(f"r/{n}", offer_id).model_copy(update={"at": T0 + n * day})
        await activities.send_engagement(request)
    paid = Attribution(idempotency_key="customer-c/r/1", event_id="p", amount=40, at=T0 + day)
    await activities.record_attributions(RecordAttributionsRequest(attributions=[paid]))
    lagging = LearningRules(counts_lag=day)

    async def seen(at: datetime) -> dict[str, tuple[int, int]]:
        ask = OfferChoiceRequest(
            decision="silence/an offer",
            cohort="repeat",
            arms=["pct10", "five-off"],
            rules=lagging,
            draw_key="c/x",
            at=at,
        )
        choice = await activities.choose_offer(ask)
        return {a.offer_id: (a.sent, a.recovered) for a in choice.arms}

    assert await seen(T0 + day + timedelta(hours=1)) == {"pct10": (1, 0), "five-off": (0, 0)}
    assert await seen(T0 + 2 * day + timedelta(hours=1)) == {"pct10": (1, 0), "five-off": (1, 1)}
    # The running counts see everything at once.
    ask = OfferChoiceRequest(
        decision="silence/an offer", cohort="repeat", arms=["five-off"], rules=PURE, draw_key="k"
    )
    [five_off] = (await activities.choose_offer(ask)).arms
    assert (five_off.sent, five_off.recovered) == (2, 1)
