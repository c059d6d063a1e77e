"""Proof against a known truth: populations of real journeys on the time-skipping server,
each customer answering by rates given in advance. The report must find the uplift the
population was given (and none where it was given none), and the offers that learn must
come to make the better offer in a clear majority."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlmodel import col, select
from temporalio.testing import WorkflowEnvironment

from activities.store import Engagement, OfferArm, Store
from service.offer_report import OfferArmReport, offer_report, offer_table
from service.reports import StepReport, programme_report, table
from testkit.population import Member, Quota, play
from testkit.scenario import Scenario, scenario
from tests.journeys import NEVER_QUIET, NO_HOLDOUTS, PROGRAMMES_0_1
from workflows.config import JourneyConfig
from workflows.holdout import HoldoutRules, Period

# Room under the cap for every step: what is measured is the ladder, not the cap.
CONFIG = JourneyConfig(
    contact=NEVER_QUIET.model_copy(update={"marketing_cap": 10}),
    enabled=PROGRAMMES_0_1,
    holdouts=HoldoutRules(shares={"remediation": 0.5}, period=Period.YEAR),
)
# One customer joins every six hours; each flatlines 30 days after joining.
MEMBERS = [Member(f"sim-{n:03d}", joins=n / 4) for n in range(160)]


@pytest.fixture
async def world(time_skipping_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[Scenario]:
    async with scenario(CONFIG, f"sqlite+aiosqlite:///{tmp_path}/e.db", time_skipping_env) as s:
        yield s


async def first_step(world: Scenario, treated: float, control: float) -> StepReport:
    """Play the population: a customer recovers after the silence ladder's first step at
    ``treated``'s rate when sent it, at ``control``'s when held back."""
    rates = {False: Quota(treated), True: Quota(control)}

    def answer(engagement: Engagement) -> Decimal | None:
        if (engagement.cause, engagement.step) != ("silence", 1):
            return None
        return Decimal(50) if rates[engagement.held_back]() else None

    await play(world, MEMBERS, answer, until=72)
    store = Store(world.settings.database_url)
    try:
        reports = (await programme_report(store)).steps
    finally:
        await store.close()
    print(table(reports))  # what the closing note pastes (pytest -s)
    [step] = [r for r in reports if (r.cause, r.step) == ("silence", 1)]
    return step


async def test_the_report_recovers_a_known_uplift(world: Scenario) -> None:
    step = await first_step(world, treated=0.45, control=0.15)
    assert min(step.treated.customers, step.control.customers) >= 60
    assert step.treated.customers + step.control.customers == len(MEMBERS)
    rate = step.incremental_recovery_rate
    assert rate is not None
    assert rate.low <= 0.30 <= rate.high
    assert rate.low > 0  # and it is told from none
    revenue = step.incremental_revenue_per_customer
    assert revenue is not None
    assert revenue.low <= 0.30 * 50 <= revenue.high


async def test_the_report_finds_no_uplift_where_there_is_none(world: Scenario) -> None:
    step = await first_step(world, treated=0.25, control=0.25)
    rate = step.incremental_recovery_rate
    assert rate is not None
    assert rate.low <= 0 <= rate.high


async def offers_made(database_url: str) -> list[OfferArmReport]:
    store = Store(database_url)
    try:
        reports = await offer_report(store)
    finally:
        await store.close()
    print(offer_table(reports))
    return sorted(reports, key=lambda r: r.offer_id != "pct10")


async def test_the_offers_that_learn_come_to_make_the_better_offer(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    """At the silence ladder's second step, five-off truly recovers 35% of customers and
    pct10 10%; nobody is held back."""
    config = CONFIG.model_copy(update={"holdouts": NO_HOLDOUTS})
    rates = {"pct10": Quota(0.10), "five-off": Quota(0.35)}

    def answer(engagement: Engagement) -> Decimal | None:
        if engagement.decision != "silence/an offer" or engagement.offer_id is None:
            return None
        return Decimal(40) if rates[engagement.offer_id]() else None

    database_url = f"sqlite+aiosqlite:///{tmp_path}/e.db"
    async with scenario(config, database_url, time_skipping_env) as world:
        await play(world, MEMBERS[:120], answer, until=67)
        chosen = await world.timeline(MEMBERS[119].customer_id, kind="offer_chosen")
    store = Store(database_url)
    try:
        async with store.reading() as session:
            learned = await session.exec(
                select(Engagement.offer_id)
                .where(col(Engagement.decision) == "silence/an offer")
                .order_by(col(Engagement.id))
            )
            made = list(learned.all())
            arms = {a.offer_id: a for a in (await session.exec(select(OfferArm))).all()}
    finally:
        await store.close()
    assert len(made) == 120
    later = made[60:]
    assert later.count("five-off") / len(later) > 0.6
    # The counts the choices were drawn from are the sends and recoveries themselves.
    assert sum(arm.sent for arm in arms.values()) == 120
    assert arms["five-off"].recovered == int(rates["five-off"].seen * 0.35)
    # The report shows it: five-off recovers more, and takes most of the sends.
    pct10, five_off = await offers_made(database_url)
    assert (pct10.offer_id, five_off.offer_id) == ("pct10", "five-off")
    assert five_off.recovery_rate > pct10.recovery_rate
    assert five_off.sent > 2 * pct10.sent
    assert five_off.sent + pct10.sent == 120
    # Every decision says why, in the customer's timeline.
    [why] = [entry.summary for entry in chosen]
    assert "recovery posterior means: pct10" in why
