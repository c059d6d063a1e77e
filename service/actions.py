"""Actions on a customer's journey over HTTP: erasure (scope ``customers:erase``) and the
operator actions (scope ``operate``: pause, resume, skip the step, start or end a ladder).

They are the signal and the updates that the CLI and the Temporal UI send, the updates
called by method, with the key's source as who asked. The audit
(``activities/audit.py``) gets every one: the journey files what it applied (the erasure
in the transaction that erases), the API what it was refused or found no journey for.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, TypeVar

import structlog
from fastapi import APIRouter, Path, Request
from sqlalchemy.exc import SQLAlchemyError
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.workflow import UpdateMethodMultiParam

from activities import audit
from activities.journeys import JourneyClosedError
from activities.store import utcnow
from runtime.credentials import Source
from runtime.temporal import request_erasure, steer
from service.api_models import ErasureAccepted, LadderStart, OperatorAction
from service.dependencies import CustomersEraser, Operator, Services, ServicesDep
from service.dependencies import problem_responses as problems
from service.openapi import document_body
from service.problems import Problem, ProblemError, parse_body
from workflows.contracts import AuditRecord, Via
from workflows.events import Identifier
from workflows.journey import (
    END_LADDER_UPDATE,
    PAUSE_UPDATE,
    RESUME_UPDATE,
    SKIP_STEP_UPDATE,
    START_LADDER_UPDATE,
    CustomerJourney,
    journey_id,
)
from workflows.operator import OperatorRequest, StartLadderRequest
from workflows.state import JourneyView

log = structlog.get_logger(__name__)

router = APIRouter(tags=["journeys"])
CustomerId = Annotated[Identifier, Path()]
Request_ = TypeVar("Request_", bound=OperatorRequest)
ERASE = "customer.erase"
STEERING = problems(400, 401, 403, 404, 409, 422, 503)


@router.delete(
    "/v1/customers/{customer_id}",
    status_code=202,
    response_model=ErasureAccepted,
    summary="Erase a customer (the right to be forgotten)",
    responses=problems(401, 403, 404, 409, 422, 503),
)
async def erase_customer(
    customer_id: CustomerId, source: CustomersEraser, services: ServicesDep
) -> ErasureAccepted:
    """Scope `customers:erase`. The journey deletes the customer's personal data from the
    store (profile, events, receipts, messages; engagements stay as anonymous spend),
    leaves a tombstone and ends. Later events for the id are refused with 409 unless
    sent with `customer_returned=true`. The audit keeps the request and the erasure."""
    request_id = f"erase-{uuid.uuid4()}"
    structlog.contextvars.bind_contextvars(customer_id=customer_id, request_id=request_id)
    done = _Audit(services, source, ERASE, customer_id, request_id)
    try:
        if await services.ingest.was_erased(customer_id):
            raise JourneyClosedError(f"customer {customer_id} was erased already")
        await request_erasure(services.client, customer_id, request_id, source.name, Via.API)
    except JourneyClosedError as err:
        await done("refused", "the journey has ended")
        raise ProblemError(Problem(title="Conflict", status=409, detail=str(err))) from None
    except (RPCError, RuntimeError, SQLAlchemyError, OSError) as err:
        raise await _unreachable(err, services, done, "erase.failed") from None
    await done("accepted")
    return ErasureAccepted(journey_id=journey_id(customer_id), request_id=request_id)


Steering = UpdateMethodMultiParam[[CustomerJourney, OperatorRequest], JourneyView]

# The operator actions that take nothing but a reason: path, the update, what it does.
SIMPLE_ACTIONS: list[tuple[str, str, Steering, str]] = [
    ("pause", PAUSE_UPDATE, CustomerJourney.pause,
     "Pause a journey: nothing it would do on its own happens until it is resumed"),
    ("resume", RESUME_UPDATE, CustomerJourney.resume, "Resume a paused journey"),
    ("skip-step", SKIP_STEP_UPDATE, CustomerJourney.skip_step,
     "Skip the current step of the ladder the customer is on"),
    ("end-ladder", END_LADDER_UPDATE, CustomerJourney.end_ladder,
     "End the ladder the customer is on"),
]  # fmt: skip


def _simple_action(path: str, name: str, update: Steering, summary: str) -> None:
    @router.post(
        f"/v1/customers/{{customer_id}}/journey:{path}",
        response_model=JourneyView,
        summary=summary,
        description="Scope `operate`, like every operator action. The body, "
        '`{"reason": …}`, may be left out. The answer is the journey as it now stands; '
        "a 409 says why the action does not apply (a journey paused already, say).",
        responses=STEERING,
        openapi_extra=document_body("OperatorAction", required=False),
        operation_id=name,
    )
    async def steer_journey(
        customer_id: CustomerId, request: Request, source: Operator, services: ServicesDep
    ) -> JourneyView:
        raw = await request.body()
        body = parse_body(OperatorAction, raw, "Invalid request") if raw.strip() else None
        reason = body.reason if body else ""
        asked = OperatorRequest(by=source.name, reason=reason, via=Via.API)
        return await _steer(services, source, customer_id, name, update, asked)


for action in SIMPLE_ACTIONS:
    _simple_action(*action)


@router.post(
    "/v1/customers/{customer_id}/journey:start-ladder",
    response_model=JourneyView,
    summary="Start a ladder for a cause (silence, return, complaint, …)",
    responses=STEERING,
    openapi_extra=document_body("LadderStart"),
)
async def start_ladder(
    customer_id: CustomerId, request: Request, source: Operator, services: ServicesDep
) -> JourneyView:
    """Scope `operate`."""
    body = parse_body(LadderStart, await request.body(), "Invalid request")
    asked = StartLadderRequest(by=source.name, reason=body.reason, cause=body.cause, via=Via.API)
    update = CustomerJourney.start_ladder
    return await _steer(services, source, customer_id, START_LADDER_UPDATE, update, asked)


async def _steer(
    services: Services,
    source: Source,
    customer_id: str,
    name: str,
    update: UpdateMethodMultiParam[[CustomerJourney, Request_], JourneyView],
    asked: Request_,
) -> JourneyView:
    update_id = f"operate-{uuid.uuid4()}"
    structlog.contextvars.bind_contextvars(customer_id=customer_id, request_id=update_id)
    done = _Audit(services, source, f"journey.{name}", customer_id, update_id)
    try:
        return await steer(
            services.client,
            customer_id,
            update,
            asked,
            update_id=update_id,
            rpc_timeout=services.settings.temporal_timeout,
        )
    except WorkflowUpdateFailedError as err:
        reason = err.cause.message if isinstance(err.cause, ApplicationError) else str(err)
        await done("refused", reason)
        raise ProblemError(Problem(title="Conflict", status=409, detail=reason)) from None
    except (RPCError, RuntimeError) as err:
        raise await _unreachable(err, services, done, "operate.failed") from None


async def _unreachable(
    err: Exception, services: Services, done: _Audit, event: str
) -> ProblemError:
    """404 where there is no journey (audited), 503 where the store, Temporal or the
    journey did not answer (nothing was done)."""
    if isinstance(err, RPCError) and err.status == RPCStatusCode.NOT_FOUND:
        await done("not_found")
        detail = f"no running journey for {done.customer_id}"
        return ProblemError(Problem(title="Not found", status=404, detail=detail))
    log.warning(event, error=str(err))
    detail = "the store, Temporal or the journey did not answer (is a worker running?); retry"
    return ProblemError(
        Problem(title="Unavailable", status=503, detail=detail), services.retry_after
    )


class _Audit:
    """Files one request's outcome in the audit, as the API saw it. An audit the store
    cannot take is logged in full, not failed: the action has happened, or not, already."""

    def __init__(
        self, services: Services, source: Source, action: str, customer_id: str, request_id: str
    ) -> None:
        self._store = services.store
        self.customer_id = customer_id
        self._entry: dict[str, Any] = {
            "actor": source.name,
            "via": Via.API,
            "action": action,
            "customer_id": customer_id,
            "request_id": request_id,
        }

    async def __call__(self, outcome: str, detail: str = "") -> None:
        key = f"{self._entry['request_id']}:{outcome}"
        entry = AuditRecord(
            entry_key=key, at=utcnow(), outcome=outcome, detail=detail, **self._entry
        )
        try:
            await audit.record(self._store, [entry])
        except (SQLAlchemyError, OSError) as err:
            log.error("audit.unrecorded", entry=entry.model_dump(mode="json"), error=str(err))
