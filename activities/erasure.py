"""The right to be forgotten: delete a customer's personal data, keep anonymous totals."""

from __future__ import annotations

import structlog
from sqlalchemy import String, cast, delete, literal, update
from sqlmodel import col, select
from temporalio import activity

from activities import audit
from activities.data_keys import erasing
from activities.store import (
    AnonymousEvent,
    AnonymousIdentity,
    CampaignContactRecord,
    Customer,
    Engagement,
    EngagementCredit,
    ErasedCustomer,
    IngestReceipt,
    LedgerEvent,
    OutboxMessage,
    Store,
    WalletEntry,
    customer_digest,
    utcnow,
)
from workflows.contracts import ERASE_CUSTOMER, AuditRecord, EraseRequest, EraseResult

log = structlog.get_logger(__name__)

# What an erased customer's engagements are filed under.
ERASED = "erased"


class ErasureActivities:
    def __init__(self, store: Store) -> None:
        self._store = store

    @activity.defn(name=ERASE_CUSTOMER)
    async def erase_customer(self, request: EraseRequest) -> EraseResult:
        """In one transaction: the profile, the events, the receipts, the messages, the
        offers held, the campaign contacts, the anonymous visits tied to the customer and
        their held events, and the purchases credited to engagements go;
        engagements stay as anonymous spend
        (cause, step, channel, cost, time), with the customer id and the key that named
        them replaced; the customer's data keys are marked with this journey run, to be
        shredded once it has ended (it needs them until then: ``activities/data_keys.py``),
        which makes their history in Temporal unreadable. A retry finds nothing to do.

        The first pass also leaves a tombstone, which the ingest checks (no receipt lands
        for the customer after it), and the audit's entry of the erasure."""
        who = request.customer_id
        digest = customer_digest(who)
        async with self._store.transaction() as session:
            connection = await session.connection()
            # Receipts in flight commit first, or see the tombstone (``Store.guard_customers``).
            await self._store.guard_customers(connection, [digest], exclusive=True)
            tombstone = {
                "customer_digest": digest,
                "erased_at": utcnow(),
                "request_id": request.request_id,
            }
            await connection.execute(
                self._store.insert(ErasedCustomer).values(tombstone).on_conflict_do_nothing()
            )
            # Their anonymous visits' held events go with the links that name them.
            visits = select(AnonymousIdentity.anonymous_id).where(
                col(AnonymousIdentity.customer_id) == who
            )
            held = delete(AnonymousEvent).where(col(AnonymousEvent.anonymous_id).in_(visits))
            deleted = (await connection.execute(held)).rowcount
            for table in (
                AnonymousIdentity,
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
            # The first pass's entry stands; later passes remove what raced it.
            done = AuditRecord(
                entry_key=f"{request.request_id}:erased",
                at=utcnow(),
                actor=request.by,
                via=request.via,
                action="customer.erase",
                customer_id=who,
                request_id=request.request_id,
                outcome="erased",
                detail=f"{deleted} rows deleted, {anonymized.rowcount} engagements anonymized",
            )
            await audit.file(self._store, connection, [done])
        log.info("customer.erased", request_id=request.request_id, deleted_rows=deleted)
        return EraseResult(deleted_rows=deleted, anonymized_engagements=anonymized.rowcount)
