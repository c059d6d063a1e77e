"""Channels deliver engagements. Every send first becomes an outbox row, written in the
transaction that records the engagement (``add_to_outbox``): the audit record of every
send, and the queue. The courier (``activities/courier.py``) then hands each row to the
provider configured for its channel name, under that channel's ``DeliveryPolicy``; a
name with no provider leaves the row in the outbox, as it was before providers existed.

A provider is a ``Channel``, one module each in ``activities/delivery/``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol

import structlog
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel.ext.asyncio.session import AsyncSession

from activities.store import OutboxMessage, utcnow

log = structlog.get_logger(__name__)


class OutboundMessage(BaseModel):
    idempotency_key: str
    customer_id: str
    channel: str
    content_key: str
    offer_id: str | None = None


class Delivery(OutboundMessage):
    """What a provider is handed: the message (``channel`` is the one it goes by, a
    fallback perhaps), where to reach the customer, and what it says."""

    email: str | None = None
    subject: str
    text: str


class DeliveryFailed(Exception):
    """The provider could not take the message now (down, timed out, HTTP 5xx, SMTP
    4xx): retried under the channel's policy."""


class DeliveryRefused(Exception):
    """The provider refused the message for good (HTTP 4xx, SMTP 5xx, no or an invalid
    address): not retried on that channel; the customer's next channel is tried."""


class DeliveryPolicy(BaseModel):
    """How a channel's failures that may pass are retried: exponential back-off without
    jitter (the same row waits the same, so an operator can tell when it goes next), up
    to ``maximum_attempts`` on the channel, and not once the engagement is older than
    ``give_up_after`` (a late "we miss you" is worse than none). A channel given up on
    hands the message to the customer's next one."""

    model_config = ConfigDict(frozen=True)

    initial_interval: timedelta = timedelta(seconds=30)
    backoff_coefficient: float = Field(default=2.0, ge=1.0)
    maximum_interval: timedelta = timedelta(hours=1)
    maximum_attempts: int = Field(default=8, ge=1)
    give_up_after: timedelta = timedelta(days=1)

    def retry_in(self, attempts: int) -> timedelta:
        """The wait after the ``attempts``-th failed attempt."""
        wait = self.initial_interval * self.backoff_coefficient ** (attempts - 1)
        return min(wait, self.maximum_interval)


class Channel(Protocol):
    async def deliver(self, delivery: Delivery) -> str:
        """Hand the message to the provider and return its reference for it, only once
        it has accepted it; raise ``DeliveryFailed`` or ``DeliveryRefused`` otherwise.
        A provider may be handed one message twice (its answer lost, a courier gone
        between its acceptance and the record of it): always under the same idempotency
        key, which is what lets it drop the second."""
        ...


def add_to_outbox(session: AsyncSession, message: OutboundMessage) -> None:
    """The message's outbox row, pending and due at once, in the caller's transaction."""
    now = utcnow()
    session.add(OutboxMessage(**message.model_dump(), created_at=now, next_attempt_at=now))
    log.info(
        "engagement.outboxed",
        customer_id=message.customer_id,
        channel=message.channel,
        content_key=message.content_key,
        offer_id=message.offer_id,
        idempotency_key=message.idempotency_key,
    )
