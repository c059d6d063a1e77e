"""Photograph the programme report as a person reads it: a fresh SQLite store is filled,
through the engagement activities, with twelve weeks of the silence and return ladders
(customers drawn into a 10% control group as the holdouts draw them, the treated
recovering more often than the control group, a few of them at every step), then
`equator report --html` writes the page and headless Chromium photographs it; and
`equator simulate --html` of the shipped personas, photographed the same way.

    make screenshots        # writes docs/screenshots/programme-report.png among others

The population is drawn from a fixed seed, so the picture changes only with the product.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import shutil
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import structlog

from activities.engagements import EngagementActivities
from activities.store import Store
from scripts.ui_screenshots import OUT, chromium_page
from workflows.bandit import LearningRules
from workflows.contracts import (
    Attribution,
    EngagementRequest,
    OfferChoiceRequest,
    Outcome,
    RecordAttributionsRequest,
    RecordOutcomesRequest,
)
from workflows.ladders import RETURN, SILENCE, Ladder

HOLDOUT_SHARE = 0.10
RULES = LearningRules()
# Who carries on to the next step when not recovered (the rest go quiet for good, are
# erased, or hit the ladder's budget).
CARRY_ON = 0.9


@dataclass(frozen=True)
class Season:
    """A ladder's customers, and per step the chance that a treated and a control
    customer recover (a purchase credited to the step)."""

    ladder: Ladder
    customers: int
    recovery: tuple[tuple[float, float], ...]


SEASONS = (
    Season(SILENCE, 2400, ((0.09, 0.05), (0.12, 0.05), (0.08, 0.04), (0.06, 0.04))),
    # A smaller ladder: its last step's control group is too small to say anything.
    Season(RETURN, 300, ((0.10, 0.06), (0.16, 0.07), (0.11, 0.05))),
)


# Where a step tries several offers, how often each truly recovers a treated customer:
# the learning comes to favour five-off week by week.
OFFER_RECOVERY = {"pct10": 0.08, "five-off": 0.16}
SEASON_LENGTH = timedelta(weeks=12)


async def fill(store: Store, rng: random.Random) -> None:
    # The learning draws from its own seed: the population's draws stay as they were.
    activities = EngagementActivities(store, seed=29)
    start = datetime.now(UTC) - SEASON_LENGTH
    for season in SEASONS:
        outcomes: list[Outcome] = []
        credits: list[Attribution] = []
        for n in range(season.customers):
            customer = f"{season.ladder.cause[:3]}-{n:05d}"
            held_back = rng.random() < HOLDOUT_SHARE
            run = f"{season.ladder.cause}-1"
            # The season's flatlines spread over its weeks; a step every five days.
            joined = start + SEASON_LENGTH * n / season.customers
            for number, (step, (treated, control)) in enumerate(
                zip(season.ladder.steps, season.recovery, strict=True), start=1
            ):
                key = f"customer-{customer}/run/{run}/step-{number}"
                request = EngagementRequest(
                    idempotency_key=key,
                    customer_id=customer,
                    cause=season.ladder.cause,
                    ladder_run_id=run,
                    step=number,
                    step_name=step.name,
                    channel=step.channel,
                    cost=step.cost,
                    offer_id=step.offer_id,
                    held_back=held_back,
                    at=joined + timedelta(days=5 * (number - 1)),
                )
                chance = control if held_back else treated
                if step.alternatives and not held_back:
                    request, chance = await learned(activities, request, step.offers)
                sent = await activities.send_engagement(request)
                recovered = rng.random() < chance
                at = sent.sent_at + timedelta(days=rng.uniform(0.5, 5))
                if recovered:
                    # Basket sizes spread as they do: most modest, a few large.
                    amount = Decimal(round(rng.lognormvariate(math.log(55), 0.5), 2))
                    credit = Attribution(
                        idempotency_key=key, event_id=f"p-{key}", amount=amount, at=at
                    )
                    if request.decision:  # the learning hears of it at once
                        batch = RecordAttributionsRequest(attributions=[credit])
                        await activities.record_attributions(batch)
                    else:
                        credits.append(credit)
                redeemed = recovered and step.offer_id is not None and not held_back
                responded = recovered or rng.random() < (0.05 if held_back else 0.15)
                outcome = "converted" if redeemed else "responded" if responded else "no_response"
                outcomes.append(Outcome(idempotency_key=key, outcome=outcome, at=at))
                if recovered or rng.random() > CARRY_ON:
                    break
        await activities.record_outcomes(RecordOutcomesRequest(outcomes=outcomes))
        await activities.record_attributions(RecordAttributionsRequest(attributions=credits))


async def learned(
    activities: EngagementActivities, request: EngagementRequest, offers: tuple[str, ...]
) -> tuple[EngagementRequest, float]:
    """The offer the learning chooses, as a journey asks for it, and its true chance."""
    decision = f"{request.cause}/{request.step_name}"
    ask = OfferChoiceRequest(
        decision=decision,
        cohort="repeat",
        arms=list(offers),
        rules=RULES,
        draw_key=f"{request.customer_id}/{request.ladder_run_id}/step-{request.step}",
    )
    offer_id = (await activities.choose_offer(ask)).offer_id
    made = {"offer_id": offer_id, "decision": decision, "arm_cohort": "repeat"}
    return request.model_copy(update=made), OFFER_RECOVERY[offer_id]


async def main() -> None:
    # The activities log every engagement; thousands of lines would hide what matters.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    data = Path(tempfile.mkdtemp(prefix="equator-report-"))
    url = f"sqlite+aiosqlite:///{data / 'equator.db'}"
    try:
        store = Store(url)
        try:
            await store.migrate()
            await fill(store, random.Random(13))
        finally:
            await store.close()
        page = data / "programme-report.html"
        await equator("report", "--html", str(page), environment={"EQUATOR_DATABASE_URL": url})
        # The shipped personas for a year, as the README runs them.
        simulated = data / "simulation.html"
        await equator("simulate", "--seed", "1", "--processes", "2", "--html", str(simulated))
        await asyncio.to_thread(OUT.mkdir, parents=True, exist_ok=True)
        async with chromium_page() as browser:
            await browser.photograph(
                page.as_uri(), "cost per recovered", OUT / "programme-report.png", 2180, width=1280
            )
            await browser.photograph(
                simulated.as_uri(), "Week by week", OUT / "simulation.png", 1500, width=1280
            )
    finally:
        shutil.rmtree(data, ignore_errors=True)


async def equator(*args: str, environment: dict[str, str] | None = None) -> None:
    done = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "starter.cli", *args, env={**os.environ, **(environment or {})}
    )
    if await done.wait() != 0:
        raise SystemExit(f"equator {args[0]} failed")


if __name__ == "__main__":
    asyncio.run(main())
