"""Connecting to Temporal and talking to journeys from outside."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from temporalio.api.enums.v1 import DescribeTaskQueueMode, IndexedValueType, TaskQueueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHandle,
)
from temporalio.service import RetryConfig, RPCError, RPCStatusCode, TLSConfig
from temporalio.workflow import UpdateMethodMultiParam

from activities.journeys import JourneyClosedError, signal_with_start
from runtime import telemetry
from runtime.codec import data_converter
from runtime.settings import Settings
from workflows import search
from workflows.config import JourneyConfig
from workflows.contracts import ErasureRequest, Via
from workflows.events import CustomerEvent
from workflows.journey import ERASE_SIGNAL, EVENT_SIGNAL, STATE_QUERY, CustomerJourney, journey_id
from workflows.operator import OperatorRequest
from workflows.state import JourneyView

Request = TypeVar("Request", bound=OperatorRequest)


class Security(NamedTuple):
    """``Client.connect``'s ``tls`` and ``api_key``."""

    tls: bool | TLSConfig
    api_key: str | None


def security(settings: Settings) -> Security:
    """How to reach the configured Temporal: TLS (with the client's certificate for mTLS,
    a private CA, a server name) and an API key. An API key alone means TLS with the
    system's roots, as Temporal Cloud serves it. The PEM files are read here, so that a
    missing one fails as the client connects, naming its setting."""
    tls = settings.temporal_tls
    key = settings.temporal_api_key
    api_key = key.get_secret_value() if key is not None else None
    if tls.client_cert is None and tls.server_ca is None and tls.server_name is None:
        on = tls.enabled if tls.enabled is not None else api_key is not None
        return Security(tls=on, api_key=api_key)
    config = TLSConfig(
        client_cert=_pem(tls.client_cert, "CLIENT_CERT"),
        client_private_key=_pem(tls.client_key, "CLIENT_KEY"),
        server_root_ca_cert=_pem(tls.server_ca, "SERVER_CA"),
        domain=tls.server_name,
    )
    return Security(tls=config, api_key=api_key)


def _pem(path: Path | None, setting: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as err:
        raise OSError(f"EQUATOR_TEMPORAL_TLS__{setting}={path}: {err.strerror or err}") from err


async def connect(settings: Settings, patience: timedelta | None = None) -> Client:
    """A client for the configured namespace.

    With ``patience`` (the ingest API) the client connects on first use, so the service
    starts, and says it is not ready, while Temporal is down; and a call retries for at
    most that long before it fails, so callers get their 503 promptly."""
    tls, api_key = security(settings)
    common: dict[str, Any] = {
        "namespace": settings.temporal_namespace,
        "tls": tls,
        "api_key": api_key,
        "data_converter": data_converter(settings),
        "interceptors": telemetry.client_interceptors(),
        "runtime": telemetry.runtime(settings.telemetry),
    }
    if patience is None:
        return await Client.connect(settings.temporal_address, **common)
    return await Client.connect(
        settings.temporal_address,
        lazy=True,
        retry_config=RetryConfig(max_elapsed_time_millis=int(patience.total_seconds() * 1000)),
        **common,
    )


async def missing_search_attributes(client: Client) -> list[str] | None:
    """The journeys' search attributes not registered in the client's namespace; None
    where the server cannot say (the time-skipping test server lists none)."""
    try:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
    except RPCError as err:
        if err.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        return None
    return sorted(key.name for key in search.KEYS if key.name not in listed.custom_attributes)


async def register_search_attributes(client: Client) -> list[str]:
    """Register the journeys' search attributes in the client's namespace; those already
    there are left alone. Returns the names it added."""
    missing = await missing_search_attributes(client)
    adding = {
        key.name: IndexedValueType.ValueType(key.indexed_value_type)
        for key in search.KEYS
        if missing is None or key.name in missing
    }
    if adding:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=client.namespace, search_attributes=adding)
        )
    return sorted(adding)


async def send_event(
    client: Client,
    task_queue: str,
    config: JourneyConfig,
    event: CustomerEvent,
    rpc_timeout: timedelta | None = None,
    customer_returned: bool = False,
) -> WorkflowHandle[CustomerJourney, None]:
    """Signal-with-start: the first event of a customer starts their journey."""
    return await signal_with_start(
        client,
        task_queue,
        config,
        event.customer_id,
        EVENT_SIGNAL,
        event,
        rpc_timeout,
        customer_returned,
    )


async def signal_running_journey(
    client: Client, event: CustomerEvent, rpc_timeout: timedelta | None = None
) -> None:
    """Signal the customer's running journey, never starting one: ``RPCError`` (not found)
    when none runs."""
    handle = client.get_workflow_handle(journey_id(event.customer_id))
    await handle.signal(EVENT_SIGNAL, event, rpc_timeout=rpc_timeout)


async def request_erasure(
    client: Client, customer_id: str, request_id: str, by: str = "", via: Via = Via.TEMPORAL
) -> None:
    """Ask the customer's journey to erase them; it does so durably, then ends. ``by``
    and ``via`` say who asked, for the audit. Raises ``JourneyClosedError`` for an ended
    journey, ``RPCError`` (not found) for none."""
    handle = client.get_workflow_handle(journey_id(customer_id))
    request = ErasureRequest(request_id=request_id, by=by, via=via)
    try:
        await handle.signal(ERASE_SIGNAL, request)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND and await _has_ended(handle):
            raise JourneyClosedError(f"the journey of customer {customer_id} has ended") from err
        raise


async def journey_run_ended(client: Client, customer_id: str, run_id: str) -> bool:
    """Whether that run of the customer's journey has ended (gone past retention too)."""
    handle = client.get_workflow_handle(journey_id(customer_id), run_id=run_id)
    try:
        description = await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return True
        raise
    return description.status != WorkflowExecutionStatus.RUNNING


async def _has_ended(handle: WorkflowHandle[Any, Any]) -> bool:
    try:
        description = await handle.describe()
    except RPCError:
        return False
    return description.status != WorkflowExecutionStatus.RUNNING


async def steer(
    client: Client,
    customer_id: str,
    action: UpdateMethodMultiParam[[CustomerJourney, Request], JourneyView],
    request: Request,
    update_id: str | None = None,
    rpc_timeout: timedelta | None = None,
) -> JourneyView:
    """Run an operator update, named by its method (``CustomerJourney.pause``, …), and
    return the journey as it now stands. A refusal raises WorkflowUpdateFailedError.
    ``update_id`` names it in the history and the audit."""
    handle = client.get_workflow_handle(journey_id(customer_id))
    return await handle.execute_update(action, request, id=update_id, rpc_timeout=rpc_timeout)


async def journey_view(
    client: Client, customer_id: str, rpc_timeout: timedelta | None = None
) -> JourneyView:
    handle = client.get_workflow_handle(journey_id(customer_id))
    view: JourneyView = await handle.query(
        STATE_QUERY, result_type=JourneyView, rpc_timeout=rpc_timeout
    )
    return view


async def describe_journey(
    client: Client, customer_id: str, rpc_timeout: timedelta | None = None
) -> WorkflowExecutionDescription:
    """The journey as Temporal itself knows it (status, search attributes, work waiting),
    answered by the server with no worker."""
    handle = client.get_workflow_handle(journey_id(customer_id))
    return await handle.describe(rpc_timeout=rpc_timeout)


# A worker long-polls for at most a minute before it asks again: one seen within this
# is still polling.
POLLED_WITHIN = timedelta(seconds=70)
_WORK = (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)


async def journey_pollers(
    client: Client, task_queue: str, rpc_timeout: timedelta | None = None
) -> frozenset[str]:
    """The identities of the workers that have lately asked the journeys' task queue for
    both workflow and activity tasks: whether, and by whom, journeys are worked on."""
    # A task queue has several partitions (four by default) and a poll waits on one of
    # them; the default mode describes the root partition alone, so a second worker can
    # go unseen for minutes. The enhanced mode (deprecated, with no successor yet that
    # lists pollers) gathers every partition's.
    answer = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            api_mode=DescribeTaskQueueMode.DESCRIBE_TASK_QUEUE_MODE_ENHANCED,
            task_queue_types=_WORK,
            report_pollers=True,
        ),
        timeout=rpc_timeout,
    )
    now = datetime.now(UTC)
    polling: dict[int, set[str]] = {kind: set() for kind in _WORK}
    for version in answer.versions_info.values():  # "" is the unversioned workers
        for kind in _WORK:
            polling[kind].update(
                poller.identity
                for poller in version.types_info[kind].pollers
                if now - poller.last_access_time.ToDatetime(tzinfo=UTC) <= POLLED_WITHIN
            )
    workflows, activities = (polling[kind] for kind in _WORK)
    return frozenset(workflows & activities)
