"""Sending one engagement: record it and put it in the outbox, exactly once (the courier
delivers it, ``activities/courier.py``); what became of it (outcomes, credit); and which
offer a learned decision makes (``workflows/bandit.py``), from the counts those writes
keep."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

import structlog
from sqlalchemy import and_, bindparam, case, func, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity

from activities.channels import OutboundMessage, add_to_outbox
from activities.store import (
    Engagement,
    EngagementCredit,
    OfferArm,
    Store,
    WalletEntry,
    utcnow,
)
from workflows import bandit
from workflows.catalogue import CATALOGUE
from workflows.contracts import (
    CHOOSE_OFFER,
    RECORD_ATTRIBUTIONS,
    RECORD_OUTCOMES,
    SEND_ENGAGEMENT,
    EngagementRequest,
    EngagementResult,
    OfferChoiceRequest,
    RecordAttributionsRequest,
    RecordOutcomesRequest,
)

log = structlog.get_logger(__name__)


class EngagementActivities:
    def __init__(
        self,
        store: Store,
        seed: int | None = None,
        outboxed: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        # Told once a send's outbox row is committed: the courier's wake-up.
        self._outboxed = outboxed
        # With a seed (a simulation), every draw is repeatable; without, entropy.
        self._seed = seed
        self._rng = random.Random()

    @activity.defn(name=SEND_ENGAGEMENT)
    async def send_engagement(self, request: EngagementRequest) -> EngagementResult:
        """The idempotency key names the journey, the ladder run and the step: a retried
        or replayed activity finds the engagement already sent and sends nothing. The
        engagement and its outbox row are one transaction; a provider is called later, by
        the courier, outside the journey's workflow task. A ghost (``held_back``) is
        recorded at no cost and goes nowhere: no outbox row, no offer."""
        async with self._store.transaction() as session:
            found = await session.exec(
                select(Engagement).where(Engagement.idempotency_key == request.idempotency_key)
            )
            sent = found.first()
            if sent is not None:
                assert sent.id is not None
                return EngagementResult(
                    engagement_id=sent.id, sent_at=sent.sent_at, newly_sent=False
                )
            engagement = Engagement(
                **request.model_dump(exclude={"offer_category", "cost", "at"}),
                cost=Decimal(0) if request.held_back else request.cost,
                sent_at=request.at or utcnow(),
            )
            session.add(engagement)
            offer = CATALOGUE.get(request.offer_id) if request.offer_id else None
            if offer is not None and not request.held_back:
                session.add(
                    WalletEntry(
                        customer_id=request.customer_id,
                        offer_id=offer.offer_id,
                        kind=offer.kind.value,
                        category=request.offer_category,
                        engagement_key=request.idempotency_key,
                        issued_at=engagement.sent_at,
                        expires_at=engagement.sent_at + offer.valid_for,
                    )
                )
            await session.flush()
            if request.decision is not None and request.arm_cohort is not None:
                await self._count(session, request.decision, request.arm_cohort, request.offer_id)
            if not request.held_back:
                add_to_outbox(
                    session,
                    OutboundMessage(
                        idempotency_key=request.idempotency_key,
                        customer_id=request.customer_id,
                        channel=request.channel,
                        content_key=f"{request.cause}/{request.step_name}",
                        offer_id=request.offer_id,
                    ),
                )
        if not request.held_back:
            self._outboxed()
        assert engagement.id is not None
        log.info(
            "engagement.held_back" if request.held_back else "engagement.sent",
            customer_id=request.customer_id,
            ladder_run_id=request.ladder_run_id,
            step=request.step,
            channel=request.channel,
            cost=str(engagement.cost),
        )
        return EngagementResult(
            engagement_id=engagement.id, sent_at=engagement.sent_at, newly_sent=True
        )

    @activity.defn(name=RECORD_ATTRIBUTIONS)
    async def record_attributions(self, request: RecordAttributionsRequest) -> None:
        """Credit purchases to engagements, each once (engagement and event)."""
        if not request.attributions:
            return
        rows = [a.model_dump() for a in request.attributions]
        statement = self._store.insert(EngagementCredit).values(rows).on_conflict_do_nothing()
        keys = {a.idempotency_key for a in request.attributions}
        async with self._store.transaction() as session:
            # A learned engagement's first credit is a recovery for its offer.
            credited = select(EngagementCredit.idempotency_key).where(
                col(EngagementCredit.idempotency_key).in_(keys)
            )
            learned = await session.exec(
                select(Engagement.decision, Engagement.arm_cohort, Engagement.offer_id).where(
                    col(Engagement.idempotency_key).in_(keys),
                    col(Engagement.idempotency_key).not_in(credited),
                    col(Engagement.decision).is_not(None),
                )
            )
            recovered = learned.all()
            connection = await session.connection()
            await connection.execute(statement)
            for decision, cohort, offer_id in recovered:
                assert decision is not None
                assert cohort is not None
                await self._count(session, decision, cohort, offer_id, recovered=1)

    @activity.defn(name=CHOOSE_OFFER)
    async def choose_offer(self, request: OfferChoiceRequest) -> bandit.Choice:
        """One Thompson draw over the offers' counts for the decision and cohort."""
        lag = request.rules.counts_lag
        if lag is None or request.at is None:
            counts = await self._running_counts(request)
        else:
            counts = await self._counts_as_of(request, request.at - lag)
        arms = [
            counts.get(offer_id, bandit.ArmCounts(offer_id=offer_id)) for offer_id in request.arms
        ]
        rng = self._rng if self._seed is None else random.Random(f"{self._seed}/{request.draw_key}")
        choice = bandit.choose(arms, request.rules, rng)
        log.info(
            "offer.chosen",
            decision=request.decision,
            cohort=request.cohort,
            offer_id=choice.offer_id,
            explored=choice.explored,
        )
        return choice

    async def _running_counts(self, request: OfferChoiceRequest) -> dict[str, bandit.ArmCounts]:
        async with self._store.reading() as session:
            found = await session.exec(
                select(OfferArm).where(
                    OfferArm.decision == request.decision,
                    OfferArm.cohort == request.cohort,
                    col(OfferArm.offer_id).in_(request.arms),
                )
            )
            return {
                arm.offer_id: bandit.ArmCounts(
                    offer_id=arm.offer_id, sent=arm.sent, recovered=arm.recovered
                )
                for arm in found.all()
            }

    async def _counts_as_of(
        self, request: OfferChoiceRequest, before: datetime
    ) -> dict[str, bandit.ArmCounts]:
        """The counts as they stood at ``before``, from the engagements and credits."""
        credited = (
            select(col(EngagementCredit.idempotency_key))
            .where(col(EngagementCredit.at) < before)
            .distinct()
            .subquery()
        )
        recovered = case((col(credited.c.idempotency_key).is_not(None), 1), else_=0)
        query = (
            select(col(Engagement.offer_id), func.count(), func.sum(recovered))
            .select_from(Engagement)
            .outerjoin(credited, credited.c.idempotency_key == Engagement.idempotency_key)
            .where(
                col(Engagement.decision) == request.decision,
                col(Engagement.arm_cohort) == request.cohort,
                col(Engagement.offer_id).in_(request.arms),
                col(Engagement.held_back).is_(False),
                col(Engagement.sent_at) < before,
            )
            .group_by(col(Engagement.offer_id))
        )
        async with self._store.reading() as session:
            connection = await session.connection()
            rows = (await connection.execute(query)).all()
        return {
            offer_id: bandit.ArmCounts(offer_id=offer_id, sent=sent, recovered=int(back or 0))
            for offer_id, sent, back in rows
        }

    async def _count(
        self,
        session: AsyncSession,
        decision: str,
        cohort: str,
        offer_id: str | None,
        recovered: int = 0,
    ) -> None:
        """Add a send (or a recovery) to an offer's counts at a decision."""
        if offer_id is None:
            return
        sent = 0 if recovered else 1
        row = {"decision": decision, "cohort": cohort, "offer_id": offer_id}
        statement = (
            self._store.insert(OfferArm)
            .values(**row, sent=sent, recovered=recovered)
            .on_conflict_do_update(
                index_elements=["decision", "cohort", "offer_id"],
                set_={
                    "sent": col(OfferArm.sent) + sent,
                    "recovered": col(OfferArm.recovered) + recovered,
                },
            )
        )
        connection = await session.connection()
        await connection.execute(statement)

    @activity.defn(name=RECORD_OUTCOMES)
    async def record_outcomes(self, request: RecordOutcomesRequest) -> None:
        """File what became of engagements. The first outcome recorded stands, so a
        retry or a replay changes nothing; only a response that then converts (an open,
        then a purchase) is raised to ``converted``."""
        if not request.outcomes:
            return
        # One statement for the lot; the unset outcome is what makes the first stand.
        outcome = col(Engagement.outcome)
        statement = (
            update(Engagement)
            .where(
                col(Engagement.idempotency_key) == bindparam("key"),
                or_(
                    outcome.is_(None),
                    and_(outcome == "responded", bindparam("outcome") == "converted"),
                ),
            )
            .values(outcome=bindparam("outcome"), outcome_at=bindparam("at"))
        )
        rows = [
            {"key": o.idempotency_key, "outcome": o.outcome, "at": o.at} for o in request.outcomes
        ]
        async with self._store.transaction() as session:
            connection = await session.connection()
            await connection.execute(statement, rows)
