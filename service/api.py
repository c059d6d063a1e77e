"""The ingest API: event sources send customer events over HTTP, without knowing Temporal;
journeys and the programme report are read from it.

Every ``/v1`` call is authenticated before its body is read: a bearer API key whose source
holds the route's scope, or, for webhooks, an HMAC signature. Bodies are parsed here
rather than by FastAPI so that a caller without credentials learns nothing about
validation, and so that each event of a batch is validated (and may fail) on its own.
The OpenAPI document still describes every body, from the same models
(``service/openapi.py``).
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BeforeValidator, ValidationError, WithJsonSchema
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException

from activities.signatures import SIGNATURE_HEADER
from runtime.credentials import Source
from runtime.settings import IngestSettings
from runtime.temporal import journey_pollers
from service import actions, cdp, commerce, tracking
from service.api_models import (
    Accepted,
    BatchResult,
    EmailWebhook,
    EventBatch,
    EventResult,
    Health,
    JourneyAnswer,
    LadderStart,
    LiveJourney,
    OperatorAction,
    PublishedJourney,
    Status,
)
from service.dependencies import (
    EventsWriter,
    JourneysReader,
    ReportsReader,
    Services,
    ServicesDep,
    SignedSource,
    problem_responses,
)
from service.email_webhook import EmailNotification, to_event
from service.ingest import Conflict, Delivered, Outcome, Unavailable
from service.journey_view import journey_answer
from service.middleware import BodyLimit, InFlightLimit, RequestLog
from service.openapi import document_body, install_openapi
from service.problems import (
    PROBLEM_MEDIA_TYPE,
    Problem,
    ProblemError,
    invalid,
    parse_body,
    parse_json,
)
from service.report_chart import page
from service.reports import MOMENT_PATTERN, ProgrammeReport, parse_since, programme_report
from workflows.events import CustomerEvent, Identifier, customer_event_adapter
from workflows.journey import journey_id

log = structlog.get_logger(__name__)


def create_app(services: Services) -> FastAPI:
    app = FastAPI(
        title="Equator ingest API",
        version="1",
        summary="Customer events in, durable customer journeys out.",
        description=(
            "Every `/v1` call needs `Authorization: Bearer <API key>`, and the key's source "
            "needs the route's scope (`403` names the one missing); webhooks are signed "
            f"instead (`{SIGNATURE_HEADER}`). Errors are RFC 9457 problem details that "
            "name each field at fault."
        ),
    )
    app.state.services = services
    app.add_middleware(BodyLimit, max_bytes=services.settings.max_body_bytes)
    app.add_middleware(
        InFlightLimit,
        limit=services.settings.max_in_flight,
        budget=services.settings.in_flight_budget.total_seconds(),
        retry_after=lambda: services.retry_after,
    )
    app.add_middleware(RequestLog)
    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(RequestValidationError, _on_invalid_request)
    app.add_exception_handler(HTTPException, _on_http_error)
    app.include_router(router)
    app.include_router(actions.router)
    app.include_router(cdp.router)
    app.include_router(commerce.router)
    install_openapi(
        app,
        {
            "CustomerEvent": customer_event_adapter,
            "EventBatch": EventBatch,
            "EmailNotification": EmailNotification,
            "EmailWebhook": EmailWebhook,
            "OperatorAction": OperatorAction,
            "LadderStart": LadderStart,
            "TrackingBatch": tracking.Batch,
            "TrackingMessage": tracking.Message,
        },
    )
    return app


def _partly_unavailable(what: str) -> dict[int | str, dict[str, Any]]:
    return {503: {"model": BatchResult, "description": f"Some {what} were not delivered: resend."}}


router = APIRouter()
CustomerReturned = Annotated[
    bool,
    Query(
        description="The customer's journey has ended (they were erased) and the source "
        "says they came back: start a new, blank journey instead of answering 409."
    ),
]


@router.post(
    "/v1/events",
    status_code=202,
    response_model=Accepted,
    summary="Send one customer event",
    responses=problem_responses(400, 401, 403, 409, 413, 422, 503),
    openapi_extra=document_body("CustomerEvent"),
    tags=["events"],
)
async def post_event(
    request: Request,
    source: EventsWriter,
    services: ServicesDep,
    customer_returned: CustomerReturned = False,
) -> Accepted:
    """Scope `events:write`. Durable before acknowledged: a 202 means the event reached
    Temporal and will reach the journey, even if no worker is running. Resending the same
    `event_id` answers 202 with `duplicate: true` and changes nothing."""
    event = _admit(parse_json(await request.body()), source, services.settings)
    structlog.contextvars.bind_contextvars(customer_id=event.customer_id, event_id=event.event_id)
    [outcome] = await services.ingest.deliver([event], customer_returned)
    structlog.contextvars.bind_contextvars(outcome=_status(outcome).value)
    if not isinstance(outcome, Delivered):
        raise ProblemError(_problem_of(outcome), services.retry_after)
    return Accepted(
        event_id=event.event_id,
        journey_id=journey_id(event.customer_id),
        duplicate=outcome.duplicate,
    )


@router.post(
    "/v1/events:batch",
    response_model=BatchResult,
    summary="Send up to 500 customer events",
    responses={**problem_responses(400, 401, 403, 413, 422), **_partly_unavailable("events")},
    openapi_extra=document_body("EventBatch"),
    tags=["events"],
)
async def post_batch(
    request: Request,
    source: EventsWriter,
    services: ServicesDep,
    customer_returned: CustomerReturned = False,
) -> JSONResponse:
    """Scope `events:write`. One result per event, in order: accepted, duplicate, rejected
    (with the problem) or unavailable. One bad event does not reject the others. If any
    event is unavailable the answer is 503 with `Retry-After`: resend the whole batch;
    what was accepted comes back as duplicates."""
    batch = parse_body(EventBatch, await request.body(), "Invalid batch")
    return await _deliver_batch(
        batch.events,
        lambda index, raw: _admit(raw, source, services.settings, ("events", index)),
        services,
        customer_returned,
    )


@router.post(
    "/v1/webhooks/{source}/email",
    response_model=BatchResult,
    summary="Email provider notifications: delivered, opened, bounced, unsubscribed",
    responses={**problem_responses(400, 401, 413, 422), **_partly_unavailable("notifications")},
    openapi_extra=document_body("EmailWebhook", signed=True),
    tags=["webhooks"],
)
async def post_email_webhook(
    request: Request, source: SignedSource, services: ServicesDep
) -> JSONResponse:
    """Signed with HMAC-SHA256: `Equator-Signature: t=<unix seconds>,v1=<hex>` over
    `<t>.<raw body>` with the source's webhook secret, and refused once `t` is more
    than the tolerance (5 minutes) away. Opened, delivered and bounced become the email
    events of the same names; unsubscribed withdraws the customer's email consent."""
    webhook = parse_body(EmailWebhook, await request.body(), "Invalid webhook")

    def to_engine(index: int, raw: object) -> CustomerEvent:
        try:
            notification = EmailNotification.model_validate(raw)
        except ValidationError as err:
            raise ProblemError(
                invalid(err.errors(), "Invalid notification", ("events", index))
            ) from None
        event = to_event(notification, source.name).model_dump(mode="json")
        return _admit(event, source, services.settings, ("events", index))

    return await _deliver_batch(webhook.events, to_engine, services)


@router.get(
    "/v1/customers/{customer_id}/journey",
    response_model=JourneyAnswer,
    summary="A customer's journey: line position, ladder and step, recent events",
    responses=problem_responses(401, 403, 404, 422, 503),
    tags=["journeys"],
)
async def get_journey(
    customer_id: Annotated[Identifier, Path()], _: JourneysReader, services: ServicesDep
) -> LiveJourney | PublishedJourney:
    """Scope `journeys:read`. The journey's own answer (`freshness: live`) when it gives
    one within `EQUATOR_INGEST__JOURNEY_QUERY_TIMEOUT` (2 s); else, with no worker or a
    worker behind, what it last published (`freshness: published`): its standing from
    Temporal and the single customer view from the store, with how old each is."""
    structlog.contextvars.bind_contextvars(customer_id=customer_id)
    answer = await journey_answer(services, customer_id)
    structlog.contextvars.bind_contextvars(freshness=answer.freshness)
    return answer


Since = Annotated[
    Annotated[
        datetime,
        BeforeValidator(parse_since),
        WithJsonSchema(
            {
                "type": "string",
                "pattern": f"^{MOMENT_PATTERN}$",
                "examples": ["2026-11-01", "2026-11-01T09:00:00+01:00"],
            }
        ),
    ]
    | None,
    Query(
        description="Only engagements sent from this moment on: a date (its midnight, UTC) "
        "or a date and time (RFC 3339; without an offset, UTC)."
    ),
]


@router.get(
    "/v1/reports/programmes",
    response_model=ProgrammeReport,
    summary="The programme report: per ladder and step, reach, cost, and uplift",
    responses=problem_responses(401, 403, 422, 503),
    tags=["reports"],
)
async def get_programme_report(
    _: ReportsReader, services: ServicesDep, since: Since = None
) -> ProgrammeReport:
    """Scope `reports:read`. Per ladder (or programme) and step: customers reached and held
    back, who responded, who recovered (treated against control), revenue credited, cost,
    and the incremental recovery rate and revenue per customer over the control group with
    95% intervals (`null`: not enough data, below 30 customers in either group)."""
    return await _programme_report(services, since)


@router.get(
    "/v1/reports/programmes.html",
    response_class=HTMLResponse,
    summary="The programme report as a page: charts per ladder, and the table",
    responses={
        200: {"description": "A self-contained page (plotly.js inlined): it works offline."},
        **problem_responses(401, 403, 422, 503),
    },
    tags=["reports"],
)
async def get_programme_report_page(
    request: Request, _: ReportsReader, services: ServicesDep, since: Since = None
) -> HTMLResponse:
    """Scope `reports:read`. Per ladder (or programme): recovery rate by step, treated
    against control, and cumulative cost against cumulative incremental revenue; then the
    figures of `GET /v1/reports/programmes` as a table."""
    report = await _programme_report(services, since)
    compress = "gzip" in request.headers.get("accept-encoding", "")
    body, headers = await asyncio.to_thread(_page, report, compress)
    return HTMLResponse(body, headers=headers)


async def _programme_report(services: Services, since: datetime | None) -> ProgrammeReport:
    try:
        return await programme_report(services.store, since)
    except (SQLAlchemyError, OSError) as err:
        log.warning("report.failed", error=str(err))
        raise ProblemError(
            Problem(title="Unavailable", status=503, detail="the store is unreachable; retry"),
            services.retry_after,
        ) from None


def _page(report: ProgrammeReport, compress: bool) -> tuple[bytes, dict[str, str]]:
    """Drawn, and compressed when the caller takes gzip, off the event loop: the page
    carries plotly.js (4.8 MB, 1.5 MB compressed)."""
    body = page(report).encode()
    if not compress:
        return body, {"Vary": "Accept-Encoding"}
    return gzip.compress(body, 5), {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"}


@router.get("/healthz", response_model=Health, summary="The process is up", tags=["health"])
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    summary="Temporal is reachable and a worker works on the journeys",
    responses={503: {"model": Health}},
    tags=["health"],
)
async def readyz(services: ServicesDep) -> JSONResponse:
    """Ready: Temporal answers and some worker has polled the journeys' task queue within
    the last 70 seconds (events taken now would otherwise wait). With the store
    unreachable the API is `degraded` but still ready: events for running journeys are
    accepted and their receipts held until it returns. The process being up at all is
    `/healthz`."""
    timeout = services.settings.temporal_timeout
    checks = {
        "temporal": await _check(
            lambda: services.client.service_client.check_health(timeout=timeout)
        ),
        "store": await _check(services.store.ping),
        "workers": await _workers(services),
    }
    if checks["temporal"] == "ok" and services.ingest.temporal_circuit_open:
        # Reachable again; events are refused until the circuit's probe sees it (a second).
        checks["temporal"] = "reachable, circuit still open"
    held = services.ingest.receipts_held
    if held:
        checks["receipts_held"] = str(held)
    ready = checks["temporal"] == checks["workers"] == "ok"
    status = "not ready" if not ready else "ready" if checks["store"] == "ok" else "degraded"
    body = Health(status=status, checks=checks)
    return JSONResponse(
        body.model_dump(),
        status_code=200 if ready else 503,
        headers=None if ready else services.retry_after,
    )


def _admit(
    raw: object, source: Source, settings: IngestSettings, at: Sequence[str | int] = ()
) -> CustomerEvent:
    """Validate one event as its source sent it, then apply the edge's own rules (which
    need the wall clock or the caller, so the engine's model cannot hold them)."""
    try:
        event = customer_event_adapter.validate_python(raw)
    except ValidationError as err:
        raise ProblemError(invalid(err.errors(), prefix=at)) from None
    errors = []
    if event.source not in (None, source.name):
        reason = f"must be {source.name!r} (the source of your API key) or left out"
        errors.append({"loc": ("source",), "msg": reason})
    if event.occurred_at > datetime.now(UTC) + settings.max_future_skew:
        reason = f"is more than {settings.max_future_skew} in the future"
        errors.append({"loc": ("occurred_at",), "msg": reason})
    if errors:
        raise ProblemError(invalid(errors, prefix=at))
    return event.model_copy(update={"source": source.name})


async def _deliver_batch(
    items: list[Any],
    to_engine: Callable[[int, object], CustomerEvent],
    services: Services,
    customer_returned: bool = False,
) -> JSONResponse:
    results: dict[int, EventResult] = {}
    admitted: list[tuple[int, CustomerEvent]] = []
    for index, raw in enumerate(items):
        try:
            admitted.append((index, to_engine(index, raw)))
        except ProblemError as err:
            event_id = raw.get("event_id", raw.get("id")) if isinstance(raw, dict) else None
            results[index] = EventResult(
                index=index,
                event_id=event_id if isinstance(event_id, str) else None,
                status=Status.REJECTED,
                problem=err.problem,
            )
    outcomes = await services.ingest.deliver([event for _, event in admitted], customer_returned)
    for (index, event), outcome in zip(admitted, outcomes, strict=True):
        status = _status(outcome)
        log.info(
            "ingest.event",
            customer_id=event.customer_id,
            event_id=event.event_id,
            outcome=status.value,
        )
        results[index] = EventResult(
            index=index,
            event_id=event.event_id,
            status=status,
            journey_id=journey_id(event.customer_id),
            problem=None if isinstance(outcome, Delivered) else _problem_of(outcome),
        )
    ordered = [results[index] for index in range(len(items))]
    counts = {status: sum(r.status == status for r in ordered) for status in Status}
    structlog.contextvars.bind_contextvars(
        events=len(items), **{status.value: count for status, count in counts.items()}
    )
    body = BatchResult(
        accepted=counts[Status.ACCEPTED],
        duplicates=counts[Status.DUPLICATE],
        rejected=counts[Status.REJECTED],
        unavailable=counts[Status.UNAVAILABLE],
        results=ordered,
    )
    unavailable = counts[Status.UNAVAILABLE] > 0
    return JSONResponse(
        body.model_dump(mode="json", exclude_none=True),
        status_code=503 if unavailable else 200,
        headers=services.retry_after if unavailable else None,
    )


def _status(outcome: Outcome) -> Status:
    match outcome:
        case Delivered(duplicate=True):
            return Status.DUPLICATE
        case Delivered():
            return Status.ACCEPTED
        case Conflict():
            return Status.REJECTED
        case Unavailable():
            return Status.UNAVAILABLE


def _problem_of(outcome: Conflict | Unavailable) -> Problem:
    if isinstance(outcome, Conflict):
        return Problem(title="Conflict", status=409, detail=outcome.reason)
    return Problem(title="Unavailable", status=503, detail=f"{outcome.reason}; retry")


async def _workers(services: Services) -> str:
    queue = services.ingest.task_queue
    try:
        polling = await journey_pollers(services.client, queue, services.settings.temporal_timeout)
    except Exception as err:  # readiness reports any failure; it never raises
        return f"unreachable: {type(err).__name__}"
    return "ok" if polling else f"no worker polls {queue}"


async def _check(probe: Callable[[], Awaitable[Any]]) -> str:
    try:
        await probe()
    except Exception as err:  # readiness reports any failure; it never raises
        return f"unreachable: {type(err).__name__}"
    return "ok"


def _answer(problem: Problem, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        problem.model_dump(),
        status_code=problem.status,
        headers=headers,
        media_type=PROBLEM_MEDIA_TYPE,
    )


async def on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    structlog.contextvars.bind_contextvars(problem=exc.problem.title)
    return _answer(exc.problem, exc.headers)


async def _on_invalid_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return _answer(invalid(exc.errors(), "Invalid request"))


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    problem = Problem(title=str(exc.detail), status=exc.status_code, detail=str(exc.detail))
    return _answer(problem, dict(exc.headers or {}))
