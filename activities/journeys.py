"""Reaching a customer's journey from outside a workflow: signal-with-start.

The ingest API delivers events this way and the campaign fan-out delivers campaigns.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from workflows.config import JourneyConfig
from workflows.journey import CustomerJourney, journey_id
from workflows.state import JourneyInput


class JourneyClosedError(Exception):
    """The customer's journey has ended (erased or terminated by an operator)."""


async def signal_with_start(
    client: Client,
    task_queue: str,
    config: JourneyConfig,
    customer_id: str,
    signal: str,
    payload: Any,
    rpc_timeout: timedelta | None = None,
    customer_returned: bool = False,
) -> WorkflowHandle[CustomerJourney, None]:
    """Signal the customer's journey, starting it if there is none.

    Journeys run for years and close only on purpose (an erasure, an operator's
    terminate). REJECT_DUPLICATE keeps a closed journey closed: a signal for it is
    refused here rather than silently starting a blank journey that has forgotten the
    customer, unless the caller says the customer came back (``customer_returned``):
    then a new, blank journey starts under the same id.
    """
    reuse = (
        WorkflowIDReusePolicy.ALLOW_DUPLICATE
        if customer_returned
        else WorkflowIDReusePolicy.REJECT_DUPLICATE
    )
    try:
        return await client.start_workflow(
            CustomerJourney.run,
            JourneyInput(customer_id=customer_id, config=config),
            id=journey_id(customer_id),
            task_queue=task_queue,
            id_reuse_policy=reuse,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            start_signal=signal,
            start_signal_args=[payload],
            static_summary=f"Customer journey of {customer_id}",
            rpc_timeout=rpc_timeout,
        )
    except WorkflowAlreadyStartedError as err:
        raise JourneyClosedError(
            f"the journey of customer {customer_id} has ended; it is not restarted implicitly"
        ) from err
