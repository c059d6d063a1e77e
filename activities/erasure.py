"""The right to be forgotten: delete a customer's personal data, keep anonymous totals."""

from __future__ import annotations

import structlog
from sqlalchemy import String, cast, delete, literal, update
from sqlmodel import col, select
from temporalio import activity

from activities.data_keys import erasing
from activities.store import (
    CampaignContactRecord,
    Customer,
    Engagement,
    EngagementCredit,
    IngestReceipt,
    LedgerEvent,
    OutboxMessage,
    Store,
    WalletEntry,
)
from workflows.contracts import ERASE_CUSTOMER, EraseRequest, EraseResult

log = structlog.get_logger(__name__)

# What an erased customer's engagements are filed under.
ERASED = "erased"


class ErasureActivities:
    def __init__(self, store: Store) -> None:
        self._store = store

    @activity.defn(name=ERASE_CUSTOMER)
    async def erase_customer(self, request: EraseRequest) -> EraseResult:
        """In one transaction: the profile, the events, the receipts, the messages, the
        offers held, the campaign contacts and the purchases credited to engagements go;
        engagements stay as anonymous spend
        (cause, step, channel, cost, time), with the customer id and the key that named
        them replaced; the customer's data keys are marked with this journey run, to be
        shredded once it has ended (it needs them until then: ``activities/data_keys.py``),
        which makes their history in Temporal unreadable. A retry finds nothing to do."""
        who = request.customer_id
        async with self._store.transaction() as session:
            connection = await session.connection()
            deleted = 0
            for table in (
                Customer,
                LedgerEvent,
                IngestReceipt,
                OutboxMessage,
                WalletEntry,
                CampaignContactRecord,
            ):
                where = col(table.customer_id) == who
                deleted += (await connection.execute(delete(table).where(where))).rowcount
            # Credits name an engagement by its key, which names the customer: they go
            # before the keys are replaced.
            keys = select(Engagement.idempotency_key).where(col(Engagement.customer_id) == who)
            credits = delete(EngagementCredit).where(
                col(EngagementCredit.idempotency_key).in_(keys)
            )
            deleted += (await connection.execute(credits)).rowcount
            anonymized = await connection.execute(
                update(Engagement)
                .where(col(Engagement.customer_id) == who)
                .values(
                    customer_id=ERASED,
                    idempotency_key=literal(f"{ERASED}:") + cast(col(Engagement.id), String),
                )
            )
            await connection.execute(erasing(who, activity.info().workflow_run_id or ""))
        log.info("customer.erased", request_id=request.request_id, deleted_rows=deleted)
        return EraseResult(deleted_rows=deleted, anonymized_engagements=anonymized.rowcount)
