"""Channels deliver engagements. Each takes the message and the store transaction that
records the engagement, so a channel that writes locally commits with it, exactly once.

The default channel writes to the outbox table and the structured log; real providers
(email over SMTP, SMS, push, service tickets) plug in by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import structlog
from pydantic import BaseModel
from sqlmodel.ext.asyncio.session import AsyncSession

from activities.store import OutboxMessage, utcnow

log = structlog.get_logger(__name__)


class OutboundMessage(BaseModel):
    idempotency_key: str
    customer_id: str
    channel: str
    content_key: str
    offer_id: str | None = None


class UnknownChannel(Exception):
    """No channel is configured under this name (not retried)."""


class DeliveryRefused(Exception):
    """The provider refused the message for good, e.g. an invalid address (not retried)."""


class Channel(Protocol):
    async def deliver(self, message: OutboundMessage, session: AsyncSession) -> None: ...


class OutboxChannel:
    async def deliver(self, message: OutboundMessage, session: AsyncSession) -> None:
        session.add(OutboxMessage(**message.model_dump(), created_at=utcnow()))
        log.info(
            "engagement.outboxed",
            customer_id=message.customer_id,
            channel=message.channel,
            content_key=message.content_key,
            offer_id=message.offer_id,
            idempotency_key=message.idempotency_key,
        )


class Channels:
    """Routes a channel name to its channel; unnamed ones go to the default, if any."""

    def __init__(
        self, routes: Mapping[str, Channel] | None = None, default: Channel | None = None
    ) -> None:
        self._routes = dict(routes or {})
        self._default = default

    def route(self, name: str) -> Channel:
        channel = self._routes.get(name, self._default)
        if channel is None:
            raise UnknownChannel(f"no channel configured for {name!r}")
        return channel
