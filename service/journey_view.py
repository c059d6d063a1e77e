"""A customer's journey as the API shows it: live when the journey answers in time, else
as last published.

The live view is the journey's state query, which a worker answers: with no worker, or a
worker behind a backlog of workflow tasks, it waits. So the query gets a short deadline
(``IngestSettings.journey_query_timeout``), and past it the answer is built from what
needs no worker: the standing the journey keeps in its search attributes (Temporal's
describe, which the server answers alone) and the single customer view the journey
writes to the store. The answer says which it is (``freshness``) and how old.
"""

from __future__ import annotations

import asyncio
from datetime import UTC
from enum import Enum
from typing import Any

import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import select
from temporalio.client import WorkflowExecutionDescription, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from activities.store import Customer
from runtime.temporal import describe_journey, journey_view
from service.api_models import LiveJourney, PublishedJourney, Standing
from service.dependencies import Services
from service.problems import Problem, ProblemError
from workflows import search

log = structlog.get_logger(__name__)


async def journey_answer(services: Services, customer_id: str) -> LiveJourney | PublishedJourney:
    timeout = services.settings.journey_query_timeout
    try:
        view = await journey_view(services.client, customer_id, timeout)
    except (RPCError, RuntimeError, WorkflowQueryFailedError) as err:
        if isinstance(err, RPCError) and err.status == RPCStatusCode.NOT_FOUND:
            raise _not_found(customer_id) from None
        log.info("journey.query_unanswered", error=str(err), answer="published")
        return await _published(services, customer_id)
    return LiveJourney(**dict(view))


class _Temporal(Enum):
    """Why there is no description: Temporal says there is no journey, or did not answer."""

    NO_JOURNEY = "no journey"
    UNREACHABLE = "unreachable"


async def _published(services: Services, customer_id: str) -> PublishedJourney:
    described, customer = await asyncio.gather(
        _described(services, customer_id), _customer(services, customer_id)
    )
    if described is _Temporal.NO_JOURNEY and customer is None:
        raise _not_found(customer_id)
    if described is _Temporal.UNREACHABLE and customer is None:
        detail = "neither the journey, Temporal nor the store answered; retry"
        raise ProblemError(
            Problem(title="Unavailable", status=503, detail=detail), services.retry_after
        )
    published = PublishedJourney(customer_id=customer_id, customer=customer)
    if isinstance(described, WorkflowExecutionDescription):
        published.status = described.status.name.lower() if described.status else None
        published.standing = _standing(described)
        pending = described.raw_description.pending_workflow_task
        if pending.HasField("original_scheduled_time"):
            published.waiting_since = pending.original_scheduled_time.ToDatetime(tzinfo=UTC)
    return published


async def _described(
    services: Services, customer_id: str
) -> WorkflowExecutionDescription | _Temporal:
    try:
        return await describe_journey(
            services.client, customer_id, services.settings.temporal_timeout
        )
    except (RPCError, RuntimeError) as err:
        if isinstance(err, RPCError) and err.status == RPCStatusCode.NOT_FOUND:
            return _Temporal.NO_JOURNEY
        log.warning("journey.describe_failed", error=str(err))
        return _Temporal.UNREACHABLE


async def _customer(services: Services, customer_id: str) -> Customer | None:
    try:
        async with services.store.reading() as session:
            found: Customer | None = (
                await session.exec(select(Customer).where(Customer.customer_id == customer_id))
            ).first()
            return found
    except (SQLAlchemyError, OSError) as err:
        log.warning("journey.store_unavailable", error=str(err))
        return None


def _standing(described: WorkflowExecutionDescription) -> Standing:
    found: dict[str, Any] = {
        key.name: described.typed_search_attributes.get(key) for key in search.KEYS
    }
    return Standing(
        tier=found[search.TIER.name],
        line_position=found[search.LINE_POSITION.name],
        ladder=found[search.LADDER.name],
        ladder_step=found[search.LADDER_STEP.name],
        last_event_at=found[search.LAST_EVENT_AT.name],
        lifetime_value=found[search.LIFETIME_VALUE.name],
        held_back_from=found[search.HELD_BACK_FROM.name] or [],
    )


def _not_found(customer_id: str) -> ProblemError:
    return ProblemError(
        Problem(title="Not found", status=404, detail=f"no journey for {customer_id}")
    )
