"""The audit: every erasure and every operator action, who asked, when and how it came out.

Entries are written where the outcome is known: the erasure's own transaction records it
done; a journey records the operator actions it applied (whoever sent them: the API, the
CLI, the Temporal UI); the API records what it refused. Each names the customer by digest
and carries no personal data, so the audit outlives the customer's erasure.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, select
from temporalio import activity

from activities.store import AuditEntry, Store, customer_digest
from workflows.contracts import RECORD_AUDIT, AuditRecord, RecordAuditRequest


class AuditActivities:
    def __init__(self, store: Store) -> None:
        self._store = store

    @activity.defn(name=RECORD_AUDIT)
    async def record_audit(self, request: RecordAuditRequest) -> None:
        await record(self._store, request.entries)


async def record(store: Store, entries: Sequence[AuditRecord]) -> None:
    async with store.transaction() as session:
        await file(store, await session.connection(), entries)


async def file(store: Store, connection: AsyncConnection, entries: Sequence[AuditRecord]) -> None:
    """Within a transaction of the caller's (the erasure's); a retried entry adds nothing."""
    if not entries:
        return
    rows = [
        {
            "entry_key": entry.entry_key,
            "at": entry.at,
            "actor": entry.actor or "unknown",
            "via": entry.via.value,
            "action": entry.action,
            "customer_digest": customer_digest(entry.customer_id),
            "request_id": entry.request_id,
            "outcome": entry.outcome,
            "detail": entry.detail[:256],
        }
        for entry in entries
    ]
    await connection.execute(store.insert(AuditEntry).values(rows).on_conflict_do_nothing())


async def trail(
    store: Store, customer_id: str | None = None, since: datetime | None = None
) -> list[AuditEntry]:
    """The audit, oldest first: of one customer (erased or not), from a moment."""
    query = select(AuditEntry).order_by(col(AuditEntry.at), col(AuditEntry.id))
    if customer_id is not None:
        query = query.where(col(AuditEntry.customer_digest) == customer_digest(customer_id))
    if since is not None:
        query = query.where(col(AuditEntry.at) >= since)
    async with store.reading() as session:
        return list((await session.exec(query)).all())
