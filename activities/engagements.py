"""Sending one ladder step: record the engagement and deliver it, exactly once."""

from __future__ import annotations

from decimal import Decimal

import structlog
from sqlalchemy import bindparam, update
from sqlmodel import col, select
from temporalio import activity

from activities.channels import Channels, OutboundMessage
from activities.store import Engagement, EngagementCredit, Store, WalletEntry, utcnow
from workflows.catalogue import CATALOGUE
from workflows.contracts import (
    RECORD_ATTRIBUTIONS,
    RECORD_OUTCOMES,
    SEND_ENGAGEMENT,
    EngagementRequest,
    EngagementResult,
    RecordAttributionsRequest,
    RecordOutcomesRequest,
)

log = structlog.get_logger(__name__)


class EngagementActivities:
    def __init__(self, store: Store, channels: Channels) -> None:
        self._store = store
        self._channels = channels

    @activity.defn(name=SEND_ENGAGEMENT)
    async def send_engagement(self, request: EngagementRequest) -> EngagementResult:
        """The idempotency key names the journey, the ladder run and the step: a retried
        or replayed activity finds the engagement already sent and sends nothing. A ghost
        (``held_back``) is recorded at no cost and goes nowhere: no delivery, no offer."""
        channel = self._channels.route(request.channel)
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
                **request.model_dump(exclude={"offer_category", "cost"}),
                cost=Decimal(0) if request.held_back else request.cost,
                sent_at=utcnow(),
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
            if not request.held_back:
                await channel.deliver(
                    OutboundMessage(
                        idempotency_key=request.idempotency_key,
                        customer_id=request.customer_id,
                        channel=request.channel,
                        content_key=f"{request.cause}/{request.step_name}",
                        offer_id=request.offer_id,
                    ),
                    session,
                )
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
        async with self._store.transaction() as session:
            connection = await session.connection()
            await connection.execute(statement)

    @activity.defn(name=RECORD_OUTCOMES)
    async def record_outcomes(self, request: RecordOutcomesRequest) -> None:
        """File what became of engagements. The first outcome recorded stands, so a
        retry or a replay changes nothing."""
        if not request.outcomes:
            return
        # One statement for the lot; the unset outcome is what makes the first stand.
        statement = (
            update(Engagement)
            .where(
                col(Engagement.idempotency_key) == bindparam("key"),
                col(Engagement.outcome).is_(None),
            )
            .values(outcome=bindparam("outcome"), outcome_at=bindparam("at"))
        )
        rows = [
            {"key": o.idempotency_key, "outcome": o.outcome, "at": o.at} for o in request.outcomes
        ]
        async with self._store.transaction() as session:
            connection = await session.connection()
            await connection.execute(statement, rows)
