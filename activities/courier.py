"""The courier: delivers the outbox, outside any workflow task, so a slow provider
never stalls a journey. Each worker runs one; replicas share the outbox.

A round claims a batch of due pending rows under a lease, in one UPDATE of the rows a
CTE picks (on Postgres ``FOR UPDATE SKIP LOCKED``, so concurrent claims pass each other
by; SQLite drops the clause, its writers taking turns), delivers each through the
provider configured for its channel (``DeliverySettings.channels``), and records each
outcome as it comes:

- accepted: ``delivered``, with the provider's reference;
- a failure that may pass (``DeliveryFailed``): retried on the same channel after the
  channel's policy's back-off, until it gives up;
- refused for good (``DeliveryRefused``), or given up on: the next of the customer's
  ``preferred_channels`` that has a provider and consent is tried at once; with none
  left the row is ``failed``; a row that no provider could take is ``no_channel``.

A row is marked delivered only after the provider accepted it, so a courier gone
between the two (or a lost answer) delivers it again once the lease runs out, under the
same idempotency key (``Message-ID``, ``Idempotency-Key``): that is what lets the
provider drop the second. While a lease holds no other courier takes the row, and the
lease outlasts any one delivery (``DeliverySettings`` checks), so two replicas never
deliver a row twice at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Self

import structlog
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import or_, update
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col, select

from activities.channels import (
    Channel,
    Delivery,
    DeliveryFailed,
    DeliveryPolicy,
    DeliveryRefused,
)
from activities.delivery.content import render
from activities.delivery.smtp import SmtpConfig
from activities.delivery.webhook import WebhookConfig
from activities.store import Customer, OutboxMessage, Store, utcnow
from workflows.contact import ContactPolicy, reachable_channel
from workflows.profile import Profile

log = structlog.get_logger(__name__)

ChannelConfig = Annotated[SmtpConfig | WebhookConfig, Field(discriminator="kind")]


class DeliverySettings(BaseModel):
    """Which provider each channel name goes to, and the courier's pace. With no channel
    configured every engagement stays in the outbox, marked ``no_channel``."""

    model_config = ConfigDict(frozen=True)

    channels: dict[str, ChannelConfig] = Field(default_factory=dict)
    # How often the courier looks for due rows; a send in this process wakes it sooner.
    interval: timedelta = timedelta(seconds=1)
    # Rows claimed (and delivered at once) per round.
    batch: int = Field(default=20, ge=1)
    # How long a claim keeps other couriers off a row.
    lease: timedelta = timedelta(minutes=2)

    @model_validator(mode="after")
    def _lease_outlasts_a_delivery(self) -> Self:
        for name, config in self.channels.items():
            if self.lease < 2 * config.timeout:
                raise ValueError(
                    f"lease ({self.lease}) must be at least twice channel {name!r}'s timeout "
                    f"({config.timeout}), or another courier could take a row mid-delivery"
                )
        return self


@dataclass(frozen=True)
class _Route:
    channel: Channel
    policy: DeliveryPolicy


@dataclass(frozen=True)
class _Outcome:
    """What one round did with one row: the columns to set."""

    row: OutboxMessage
    values: dict[str, Any]


class Courier:
    def __init__(
        self,
        store: Store,
        settings: DeliverySettings,
        contact: ContactPolicy,
        name: str | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        # Fallbacks follow the contact policy's consent rule and skip internal channels.
        self._contact = contact
        self._routes = {
            channel: _Route(config.channel(), config.policy)
            for channel, config in settings.channels.items()
        }
        self.name = name or f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:6]}"
        self._wake = asyncio.Event()
        self._stopping = False

    def wake(self) -> None:
        """Look for due rows now (a send has just written one), not at the interval.
        With no provider there is nothing to hurry: the interval's round marks the lot,
        not a round (and two writes) per send."""
        if self._routes:
            self._wake.set()

    @asynccontextmanager
    async def running(self, grace: timedelta) -> AsyncIterator[Self]:
        """Deliver in the background; on leaving, finish the round in flight (up to
        ``grace``; a delivery cut off then is delivered again, under the same key, when
        its lease runs out)."""
        task = asyncio.create_task(self._run(), name=f"courier {self.name}")
        try:
            yield self
        finally:
            self._stopping = True
            self._wake.set()
            try:
                await asyncio.wait_for(task, grace.total_seconds())
            except TimeoutError:
                log.warning("courier.cut_off", courier=self.name, grace=str(grace))

    async def _run(self) -> None:
        """Rounds until stopped: a full batch goes straight on, otherwise the courier
        waits for a send or the interval."""
        while not self._stopping:
            self._wake.clear()
            try:
                claimed = await self.deliver_due()
            except (SQLAlchemyError, OSError) as err:
                # The store is down: a line a round, no trace; the next round tries again.
                log.warning("courier.round_failed", courier=self.name, error=str(err))
                claimed = 0
            except Exception:
                log.exception("courier.round_failed", courier=self.name)
                claimed = 0
            if claimed < self._settings.batch and not self._stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._wake.wait(), self._settings.interval.total_seconds()
                    )

    async def deliver_due(self) -> int:
        """One round: claim due rows, deliver them, record each outcome. Returns how
        many rows were claimed."""
        now = utcnow()
        rows = await self._claim(now)
        if not rows:
            return 0
        customers = await self._customers({row.customer_id for row in rows})
        # Rows with nowhere to go are recorded together; deliveries one by one, each as
        # soon as its provider answers.
        attempts = []
        unroutable = []
        for row in rows:
            customer = customers.get(row.customer_id)
            channel = self._channel_for(row, customer, row.tried)
            if channel is None:
                unroutable.append(self._nowhere(row))
            else:
                attempts.append(self._attempt(row, customer, channel))
        if unroutable:
            await self._record(unroutable)
        failures = await asyncio.gather(*attempts, return_exceptions=True)
        for failure in failures:
            if isinstance(failure, BaseException):  # its row is retried once its lease ends
                log.error("courier.record_failed", courier=self.name, exc_info=failure)
        return len(rows)

    async def _claim(self, now: datetime) -> list[OutboxMessage]:
        claimable = (
            col(OutboxMessage.status) == "pending",
            col(OutboxMessage.next_attempt_at) <= now,
            or_(
                col(OutboxMessage.claimed_until).is_(None),
                col(OutboxMessage.claimed_until) <= now,
            ),
        )
        # A read first, which takes no write lock (SQLite): most rounds find nothing.
        async with self._store.reading() as session:
            found = await session.exec(select(OutboxMessage.id).where(*claimable).limit(1))
            if found.first() is None:
                return []
        # A CTE, evaluated once: as a subquery (``id IN (…)``) Postgres may run it again
        # for each row updated, each run skipping the rows just locked, and so claim
        # every due row whatever the batch.
        due = (
            select(OutboxMessage.id)
            .where(*claimable)
            .order_by(col(OutboxMessage.next_attempt_at))
            .limit(self._settings.batch)
            .with_for_update(skip_locked=True)
            .cte("due")
        )
        claim = (
            update(OutboxMessage)
            .where(col(OutboxMessage.id) == due.c.id)
            .values(claimed_by=self.name, claimed_until=now + self._settings.lease)
            .returning(col(OutboxMessage.id))
        )
        async with self._store.transaction() as session:
            connection = await session.connection()
            ids = list((await connection.execute(claim)).scalars())
            if not ids:
                return []
            rows = await session.exec(select(OutboxMessage).where(col(OutboxMessage.id).in_(ids)))
            return list(rows.all())

    async def _customers(self, ids: Iterable[str]) -> dict[str, Customer]:
        async with self._store.reading() as session:
            found = await session.exec(select(Customer).where(col(Customer.customer_id).in_(ids)))
            return {customer.customer_id: customer for customer in found.all()}

    def _channel_for(
        self, row: OutboxMessage, customer: Customer | None, tried: list[str]
    ) -> str | None:
        """The channel to try: the one in use, else the first of the row's own and the
        customer's fallbacks not given up on that has a provider."""
        if row.channel_used in self._routes and row.channel_used not in tried:
            return row.channel_used
        candidates = self._candidates(row, customer)
        return next((c for c in candidates if c not in tried and c in self._routes), None)

    def _candidates(self, row: OutboxMessage, customer: Customer | None) -> list[str]:
        """The row's channel (the journey's choice), then the customer's preferred
        channels in order, those the customer consents to. Work for staff (a ticket)
        never falls back to a message to the customer."""
        if customer is None or row.channel in self._contact.internal_channels:
            return [row.channel]
        # Both are NULL on customers older than their columns (migrations 0002, 0004).
        profile = Profile(consent=customer.consent or {})
        fallbacks = [
            channel
            for channel in customer.preferred_channels or []
            if channel != row.channel
            and channel not in self._contact.internal_channels
            # Consented: the policy reaches the channel itself, not one of its fallbacks.
            and reachable_channel(profile, self._contact, channel) == channel
        ]
        return [row.channel, *fallbacks]

    async def _attempt(self, row: OutboxMessage, customer: Customer | None, channel: str) -> None:
        route = self._routes[channel]
        copy = render(row.content_key, row.offer_id)
        delivery = Delivery(
            idempotency_key=row.idempotency_key,
            customer_id=row.customer_id,
            channel=channel,
            content_key=row.content_key,
            offer_id=row.offer_id,
            email=customer.email if customer else None,
            subject=copy.subject,
            text=copy.text,
        )
        attempts = (row.attempts if channel == row.channel_used else 0) + 1
        context = {
            "customer_id": row.customer_id,
            "idempotency_key": row.idempotency_key,
            "channel": channel,
            "attempt": attempts,
            "courier": self.name,
        }
        try:
            reference = await route.channel.deliver(delivery)
        except DeliveryRefused as err:
            log.warning("delivery.refused", **context, error=str(err))
            outcome = self._give_up(row, customer, channel, attempts, str(err))
        except DeliveryFailed as err:
            outcome = self._retry(row, customer, channel, attempts, str(err), route.policy)
        except Exception as err:  # a provider's own bug: retried as what may pass, loudly
            log.exception("delivery.channel_error", **context)
            outcome = self._retry(row, customer, channel, attempts, repr(err), route.policy)
        else:
            log.info("delivery.delivered", **context, provider_ref=reference)
            outcome = _Outcome(
                row,
                {
                    "status": "delivered",
                    "channel_used": channel,
                    "attempts": attempts,
                    "provider_ref": reference[:256],
                    "delivered_at": utcnow(),
                },
            )
        await self._record([outcome])

    def _retry(
        self,
        row: OutboxMessage,
        customer: Customer | None,
        channel: str,
        attempts: int,
        reason: str,
        policy: DeliveryPolicy,
    ) -> _Outcome:
        now = utcnow()
        if attempts >= policy.maximum_attempts or now - row.created_at >= policy.give_up_after:
            return self._give_up(row, customer, channel, attempts, f"gave up: {reason}")
        wait = policy.retry_in(attempts)
        log.info(
            "delivery.retrying",
            customer_id=row.customer_id,
            idempotency_key=row.idempotency_key,
            channel=channel,
            attempt=attempts,
            retry_in=wait.total_seconds(),
            error=reason,
        )
        return _Outcome(
            row,
            {
                "status": "pending",
                "channel_used": channel,
                "attempts": attempts,
                "next_attempt_at": now + wait,
                "last_error": reason[:512],
            },
        )

    def _give_up(
        self,
        row: OutboxMessage,
        customer: Customer | None,
        channel: str,
        attempts: int,
        reason: str,
    ) -> _Outcome:
        """Leave ``channel`` for the customer's next, at once; with none left, failed."""
        tried = [*row.tried, channel]
        following = self._channel_for(row, customer, tried)
        values: dict[str, Any] = {"tried": tried, "last_error": f"{channel}: {reason}"[:512]}
        context = {"customer_id": row.customer_id, "idempotency_key": row.idempotency_key}
        if following is None:
            log.warning("delivery.failed", **context, tried=tried)
            values |= {"status": "failed", "channel_used": channel, "attempts": attempts}
        else:
            log.info("delivery.falling_back", **context, channel=channel, to=following)
            values |= {
                "status": "pending",
                "channel_used": following,
                "attempts": 0,
                "next_attempt_at": utcnow(),
            }
        return _Outcome(row, values)

    def _nowhere(self, row: OutboxMessage) -> _Outcome:
        """Nothing configured can take the row: ``no_channel`` (it is the delivery, for
        a relay or a person), or ``failed`` if providers were tried (and have gone from
        the configuration since)."""
        context = {"customer_id": row.customer_id, "idempotency_key": row.idempotency_key}
        if row.tried:
            log.warning("delivery.failed", **context, tried=row.tried)
            return _Outcome(row, {"status": "failed"})
        # Debug: with nothing configured (the default) that is every send, already told
        # by ``engagement.outboxed``.
        log.debug("delivery.no_channel", **context, channel=row.channel)
        reason = f"no provider configured for {row.channel!r} or a fallback"
        return _Outcome(row, {"status": "no_channel", "last_error": reason})

    async def _record(self, outcomes: list[_Outcome]) -> None:
        """Write outcomes and end their leases, where the lease is still this courier's
        (one that lost it leaves the row to the courier that has it). Rows given the same
        values go in one UPDATE: with no provider configured that is a whole round's."""
        alike: dict[str, tuple[dict[str, Any], list[int | None]]] = {}
        for outcome in outcomes:
            key = repr(sorted(outcome.values.items()))
            alike.setdefault(key, (outcome.values, []))[1].append(outcome.row.id)
        async with self._store.transaction() as session:
            connection = await session.connection()
            for values, ids in alike.values():
                await connection.execute(
                    update(OutboxMessage)
                    .where(
                        col(OutboxMessage.id).in_(ids),
                        col(OutboxMessage.claimed_by) == self.name,
                    )
                    .values(**values, claimed_by=None, claimed_until=None)
                )
