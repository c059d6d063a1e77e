"""Deliveries that arrive at once share the store's round trips for their receipts, and
each event is still taken once: of an event and its resend racing it, one is new and the
other a duplicate."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import event as sqlalchemy_event
from temporalio.testing import WorkflowEnvironment

from activities.store import Store
from service.ingest import Delivered, Ingest
from tests.ingest import raw_event
from workflows.config import JourneyConfig
from workflows.events import customer_event_adapter

DELIVERIES = 30


@contextmanager
def statements_on(store: Store) -> Iterator[list[str]]:
    """The SQL statements the store's engine sends while in the block."""
    sent: list[str] = []

    def record(*args: Any) -> None:
        sent.append(args[2])  # (connection, cursor, statement, …)

    engine = store.engine.sync_engine
    sqlalchemy_event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        sqlalchemy_event.remove(engine, "before_cursor_execute", record)


async def test_deliveries_at_once_read_receipts_together_and_take_each_event_once(
    dev_env: WorkflowEnvironment, store: Store
) -> None:
    ingest = Ingest(
        dev_env.client, store, f"grouped-{uuid.uuid4().hex[:8]}", JourneyConfig(),
        temporal_timeout=timedelta(seconds=10), key_cache_ttl=timedelta(minutes=5),
    )  # fmt: skip
    events = [
        customer_event_adapter.validate_python(raw_event(f"grouped-{n}")) for n in range(DELIVERIES)
    ]
    try:
        with statements_on(store) as sent:
            # Each event twice, in deliveries of their own, all at once.
            outcomes = await asyncio.gather(*(ingest.deliver([e]) for e in events + events))
        again = await asyncio.gather(*(ingest.deliver([e]) for e in events))
    finally:
        await ingest.close()

    for n in range(DELIVERIES):
        [original], [resend] = outcomes[n], outcomes[n + DELIVERIES]
        assert {original, resend} == {Delivered(duplicate=False), Delivered(duplicate=True)}
    assert again == [[Delivered(duplicate=True)]] * DELIVERIES
    # All were waiting before the first read began: one read of the receipts for the
    # sixty deliveries, where each used to make its own.
    reads = [s for s in sent if s.lstrip().startswith("SELECT") and "FROM ingest_receipt" in s]
    writes = [s for s in sent if s.lstrip().startswith("INSERT INTO ingest_receipt")]
    assert len(reads) == 1
    assert 1 <= len(writes) < 2 * DELIVERIES
