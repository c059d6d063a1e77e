"""Anonymous visitors of the tracking spec: a message with an ``anonymousId`` and no
``userId`` belongs to no customer yet. It is held here (a customer's journey is for
customers, and a visitor cannot be reached anyway) until an ``identify`` or an
``alias`` names the customer behind that id; then the held events go to the customer's
journey, as late events with their own times, and the visitor's later messages go
straight there. The first customer named for an anonymous id keeps it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, tuple_
from sqlmodel import col, select

from activities.store import AnonymousEvent, AnonymousIdentity, Store, utcnow

# How long a visitor's messages wait for the customer behind them.
HELD_FOR = timedelta(days=30)


@dataclass(frozen=True)
class Held:
    anonymous_id: str
    message_id: str
    message: dict[str, Any]
    occurred_at: datetime


class Identities:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def customers_of(self, anonymous_ids: Iterable[str]) -> dict[str, str]:
        """The customer each of these visitors is known to be, where one is."""
        wanted = sorted(set(anonymous_ids))
        if not wanted:
            return {}
        query = select(AnonymousIdentity.anonymous_id, AnonymousIdentity.customer_id).where(
            col(AnonymousIdentity.anonymous_id).in_(wanted)
        )
        async with self._store.reading() as session:
            return {visitor: customer for visitor, customer in (await session.exec(query)).all()}

    async def link(self, pairs: dict[str, str], source: str) -> list[Held]:
        """Record who these visitors are (a visitor linked already keeps their customer)
        and take the messages held for the newly linked ones, oldest first."""
        if not pairs:
            return []
        rows = [
            {
                "anonymous_id": visitor,
                "customer_id": customer,
                "source": source,
                "linked_at": utcnow(),
            }
            for visitor, customer in pairs.items()
        ]
        statement = (
            self._store.insert(AnonymousIdentity)
            .values(rows)
            .on_conflict_do_nothing()
            .returning(col(AnonymousIdentity.anonymous_id))
        )
        async with self._store.transaction() as session:
            connection = await session.connection()
            linked = [visitor for (visitor,) in (await connection.execute(statement)).all()]
            if not linked:
                return []
            held = await connection.execute(
                select(
                    AnonymousEvent.anonymous_id,
                    AnonymousEvent.message_id,
                    AnonymousEvent.message,
                    AnonymousEvent.occurred_at,
                )
                .where(col(AnonymousEvent.anonymous_id).in_(linked))
                .order_by(col(AnonymousEvent.occurred_at))
            )
            return [Held(*row) for row in held.all()]

    async def hold(self, messages: Sequence[Held], source: str) -> None:
        """Keep visitors' messages (a resend changes nothing); drop those held too long."""
        if not messages:
            return
        now = utcnow()
        rows = [
            {
                "anonymous_id": held.anonymous_id,
                "message_id": held.message_id,
                "source": source,
                "message": held.message,
                "occurred_at": held.occurred_at,
                "held_at": now,
            }
            for held in messages
        ]
        async with self._store.transaction() as session:
            connection = await session.connection()
            await connection.execute(
                delete(AnonymousEvent).where(col(AnonymousEvent.held_at) < now - HELD_FOR)
            )
            await connection.execute(
                self._store.insert(AnonymousEvent).values(rows).on_conflict_do_nothing()
            )

    async def release(self, messages: Sequence[Held]) -> None:
        """Forget held messages once their customer's journey has them."""
        if not messages:
            return
        keys = [(held.anonymous_id, held.message_id) for held in messages]
        async with self._store.transaction() as session:
            connection = await session.connection()
            where = tuple_(col(AnonymousEvent.anonymous_id), col(AnonymousEvent.message_id))
            await connection.execute(delete(AnonymousEvent).where(where.in_(keys)))
