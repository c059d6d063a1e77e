"""The tracking spec's endpoints: Equator as a destination that a retailer's customer data
platform (Segment, RudderStack, mParticle, …) or the spec's own libraries send to,
unchanged. ``POST /v1/batch`` (and ``/v1/import``), ``/v1/track``, ``/v1/identify``,
``/v1/page``, ``/v1/screen``, ``/v1/alias``, ``/v1/group``.

As the spec's clients expect: the write key as HTTP Basic's user name (or ``writeKey``
in the body), gzip bodies, ``200 {"success": true}`` once the batch is
taken, 400 for what is not a batch, 413 past the spec's sizes, 503 with ``Retry-After``
when Temporal is out of reach (the client resends the batch; every message of it is then
a duplicate or new, never applied twice). A message Equator cannot use is dropped alone
and named in the answer, as the spec's servers do: one bad message never costs the
batch. ``service/tracking.py`` says what each message becomes.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials, SecurityScopes
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from temporalio.common import MetricCounter
from temporalio.runtime import Runtime

from runtime.credentials import Scope, Source
from runtime.settings import EventMapping
from runtime.telemetry import runtime_of
from service.dependencies import (
    Challenge,
    Services,
    ServicesDep,
    authorized,
    problem_responses,
)
from service.identities import Held, Identities
from service.ingest import Conflict, Delivered, Unavailable, UnmappedEvent
from service.openapi import document_body
from service.problems import Problem, ProblemError, parse_json
from service.tracking import (
    EVENTS,
    MAX_BATCH_BYTES,
    MAX_MESSAGE_BYTES,
    Batch,
    Invalid,
    Message,
    MessageType,
    Unmapped,
    event_id,
    identify_events,
    is_identifier,
    occurred_at,
    track_events,
)
from workflows.events import CustomerEvent

log = structlog.get_logger(__name__)

router = APIRouter(tags=["tracking spec"])
basic = HTTPBasic(auto_error=False, description="The write key as the user name, no password.")
BASIC = Challenge(
    'Basic realm="equator"', "HTTP Basic with the write key as the user name, or writeKey"
)
# Distinct event names counted per process before the rest are counted together: a source
# naming every event differently must not grow the metrics without bound.
MAX_NAMES_COUNTED = 200


async def basic_source(
    security_scopes: SecurityScopes,
    credentials: Annotated[HTTPBasicCredentials | None, Depends(basic)],
    services: ServicesDep,
) -> Source | None:
    """The caller's source from HTTP Basic, if it sent that; the route checks the rest."""
    if credentials is None:
        return None
    return authorized(services.settings, credentials.username, security_scopes.scopes, BASIC)


TrackingSource = Annotated[Source | None, Security(basic_source, scopes=[Scope.EVENTS_WRITE])]


@dataclass
class Taken:
    """What became of a request's messages, for the answer, the log and the metrics."""

    counts: Counter[str] = field(default_factory=Counter)
    dropped: list[dict[str, Any]] = field(default_factory=list)

    def drop(self, index: int | None, raw: Any, outcome: str, reason: str) -> None:
        self.counts[outcome] += 1
        message_id = raw.get("messageId") if isinstance(raw, dict) else None
        self.dropped.append({"index": index, "messageId": message_id, "reason": reason})


@router.post(
    "/v1/batch",
    summary="Tracking spec: a batch of messages (what the spec's libraries send)",
    openapi_extra=document_body("TrackingBatch"),
    responses=problem_responses(400, 401, 403, 413, 415, 503),
)
async def post_batch(
    request: Request, caller: TrackingSource, services: ServicesDep
) -> JSONResponse:
    """Scope `events:write`. `{"batch": [...], "sentAt"?, "context"?, "writeKey"?}`, at
    most 500 KB (gzip allowed), each message at most 32 KB."""
    source, raw = await _read(request, caller, services, MAX_BATCH_BYTES)
    try:
        batch = Batch.model_validate(raw)
    except ValidationError as err:
        detail = f"not a batch of the tracking spec: {err.errors()[0]['msg']}"
        raise ProblemError(Problem(title="Malformed batch", status=400, detail=detail)) from None
    return await _take(services, source, batch.batch, batch.sent_at, batch.context)


router.add_api_route(
    "/v1/import",
    post_batch,
    methods=["POST"],
    openapi_extra=document_body("TrackingBatch"),
    summary="Tracking spec: the same as /v1/batch",
    responses=problem_responses(400, 401, 403, 413, 415, 503),
)


def _single(type: MessageType) -> None:
    async def post_message(
        request: Request, caller: TrackingSource, services: ServicesDep
    ) -> JSONResponse:
        source, raw = await _read(request, caller, services, MAX_MESSAGE_BYTES)
        if not isinstance(raw, dict):
            detail = "a message of the tracking spec is a JSON object"
            raise ProblemError(Problem(title="Malformed message", status=400, detail=detail))
        return await _take(services, source, [raw | {"type": type.value}], None, {})

    router.add_api_route(
        f"/v1/{type.value}",
        post_message,
        methods=["POST"],
        summary=f"Tracking spec: one {type.value}",
        description="Scope `events:write`. One message, at most 32 KB (gzip allowed).",
        responses=problem_responses(400, 401, 403, 413, 415, 503),
        openapi_extra=document_body("TrackingMessage"),
        operation_id=f"tracking_{type.value}",
    )


for _type in MessageType:
    _single(_type)


async def _take(
    services: Services,
    source: Source,
    items: Sequence[Any],
    sent_at: datetime | None,
    context: dict[str, Any],
) -> JSONResponse:
    """Every message to its customer's journey (or held for a visitor), then one answer."""
    received_at = datetime.now(UTC)
    taken = Taken()
    messages = _messages(items, context, taken)
    identities = Identities(services.store)
    try:
        links = _links(messages, taken)
        released = await identities.link(links, source.name)
        visitors = {m.anonymous_id for _, _, m in messages if m.anonymous_id and not m.user_id}
        known = await identities.customers_of(visitors - links.keys()) | links
    except (SQLAlchemyError, OSError) as err:
        raise _unavailable(services, "the event store is unreachable", err) from None

    filed = _Filing(source.name, EVENTS | services.settings.tracking.events, taken)
    for visit in released:  # older than anything in the batch
        message = Message.model_validate(visit.message)
        filed.file(message, visit.message_id, known[visit.anonymous_id], visit.occurred_at)
    held: list[Held] = []
    for index, raw, message in messages:
        if message.type in (MessageType.ALIAS, MessageType.GROUP):
            taken.counts["linked" if message.type == MessageType.ALIAS else "ignored"] += 1
            continue
        at = occurred_at(message, sent_at, received_at)
        customer = message.user_id or known.get(message.anonymous_id or "")
        if customer is None:
            assert message.anonymous_id is not None, "checked by _messages"
            held.append(Held(message.anonymous_id, _id_of(message, raw), raw, at))
            taken.counts["held"] += 1
            continue
        filed.file(message, _id_of(message, raw), customer, at, index, raw)
    events, unmapped = filed.events, filed.unmapped

    try:
        outcomes = await services.ingest.deliver(events)
        await services.ingest.record_unmapped(unmapped)
        await identities.hold(held, source.name)
    except (SQLAlchemyError, OSError) as err:
        raise _unavailable(services, "the event store is unreachable", err) from None
    for name in (event.name for event in unmapped):
        _count_unmapped(services, source.name, name)
    for event, origin, outcome in zip(events, filed.indexes, outcomes, strict=True):
        match outcome:
            case Delivered(duplicate=duplicate):
                taken.counts["duplicate" if duplicate else "accepted"] += 1
            case Conflict(reason=reason):
                taken.counts["refused"] += 1
                taken.dropped.append(
                    {"index": origin, "messageId": event.event_id, "reason": reason}
                )
            case Unavailable(reason=reason):
                raise _unavailable(services, reason)
    await identities.release(released)

    _count(services, source.name, taken.counts)
    log.info("tracking.batch", messages=len(items), **taken.counts)
    body: dict[str, Any] = {"success": True, **taken.counts}
    if taken.dropped:
        body["dropped"] = sorted(taken.dropped, key=lambda drop: drop["index"] or -1)
    return JSONResponse(body)


@dataclass
class _Filing:
    """The events of the messages of known customers, and the unmapped ones."""

    source: str
    mappings: dict[str, EventMapping]
    taken: Taken
    events: list[CustomerEvent] = field(default_factory=list)
    # Where each event's message stands in the request (none: a visitor's, held before).
    indexes: list[int | None] = field(default_factory=list)
    unmapped: list[UnmappedEvent] = field(default_factory=list)

    def file(
        self,
        message: Message,
        id: str,
        customer: str,
        at: datetime,
        index: int | None = None,
        raw: dict[str, Any] | None = None,
    ) -> None:
        message = message.model_copy(update={"message_id": id})
        made: list[CustomerEvent] | Unmapped | Invalid
        if message.type == MessageType.IDENTIFY:
            made = identify_events(message, customer, at)
        else:
            made = track_events(message, customer, at, self.mappings)
        match made:
            case Unmapped(name=name):
                self.unmapped.append(UnmappedEvent(customer, id, name, at, self.source))
                self.taken.counts["unmapped"] += 1
            case Invalid(reason=reason):
                self.taken.drop(index, raw, "invalid", reason)
            case list():
                self.events += made
                self.indexes += [index] * len(made)


def _messages(
    items: Sequence[Any], context: dict[str, Any], taken: Taken
) -> list[tuple[int, dict[str, Any], Message]]:
    """The messages Equator can read, the batch's context under each one's own; the
    others dropped, each with its reason."""
    read = []
    for index, raw in enumerate(items):
        if not isinstance(raw, dict):
            taken.drop(index, raw, "invalid", "a message is a JSON object")
            continue
        if len(json.dumps(raw, default=str)) > MAX_MESSAGE_BYTES:
            taken.drop(index, raw, "too_large", f"over {MAX_MESSAGE_BYTES} bytes")
            continue
        if context:
            raw = raw | {"context": context | (raw.get("context") or {})}
        try:
            message = Message.model_validate(raw)
        except ValidationError as err:
            where = ".".join(str(part) for part in err.errors()[0]["loc"])
            taken.drop(index, raw, "invalid", f"{where}: {err.errors()[0]['msg']}")
            continue
        problem = _who_problem(message)
        if problem:
            taken.drop(index, raw, "invalid", problem)
            continue
        read.append((index, raw, message))
    return read


def _who_problem(message: Message) -> str | None:
    """Why the message names no one Equator can file it under, if it does not."""
    for name, value in (("userId", message.user_id), ("anonymousId", message.anonymous_id)):
        if value is not None and not is_identifier(value):
            return f"{name} must be 1-128 of letters, digits and . _ : @ -"
    if message.type == MessageType.ALIAS:
        if not (message.user_id and message.previous_id):
            return "an alias needs userId and previousId"
        if not is_identifier(message.previous_id):
            return "previousId must be 1-128 of letters, digits and . _ : @ -"
    elif not (message.user_id or message.anonymous_id):
        return "neither userId nor anonymousId"
    return None


def _links(messages: Sequence[tuple[int, dict[str, Any], Message]], taken: Taken) -> dict[str, str]:
    """The visitors the batch names customers for: an identify with both ids, an alias."""
    links: dict[str, str] = {}
    for _, _, message in messages:
        visitor = message.previous_id if message.type == MessageType.ALIAS else message.anonymous_id
        if (
            message.type in (MessageType.IDENTIFY, MessageType.ALIAS)
            and message.user_id
            and visitor
        ):
            links.setdefault(visitor, message.user_id)
    return links


def _id_of(message: Message, raw: dict[str, Any]) -> str:
    """The message's id as an event id; a message sent without one is named by its
    content (less the send's own times), so that its resend is still the same."""
    if message.message_id:
        found = event_id(message.message_id)
        assert found is not None
        return found
    content = {k: v for k, v in raw.items() if k not in ("sentAt", "receivedAt", "context")}
    return (
        "seg-"
        + hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:40]
    )


async def _body(request: Request, limit: int) -> bytes:
    """The body, inflated when gzipped, at most ``limit`` bytes either way (413 past it:
    a small gzip can inflate to gigabytes)."""
    raw = await request.body()
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding == "gzip":
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            raw = inflater.decompress(raw, limit + 1)
        except zlib.error:
            detail = "Content-Encoding says gzip; the body is not"
            raise ProblemError(Problem(title="Malformed body", status=400, detail=detail)) from None
    elif encoding != "identity":
        detail = f"Content-Encoding {encoding!r}: gzip or none"
        raise ProblemError(Problem(title="Unsupported encoding", status=415, detail=detail))
    if len(raw) > limit:
        detail = f"over {limit} bytes, the tracking spec's limit"
        raise ProblemError(Problem(title="Payload too large", status=413, detail=detail))
    return raw


async def _read(
    request: Request, caller: Source | None, services: Services, limit: int
) -> tuple[Source, Any]:
    """The caller and the body's JSON. Without Basic credentials the key is the body's
    ``writeKey``, as the spec allows: a body that is no JSON then has none (401)."""
    body = await _body(request, limit)
    if caller is not None:
        return caller, parse_json(body)
    try:
        raw = parse_json(body)
    except ProblemError:
        raw = None
    key = raw.get("writeKey") if isinstance(raw, dict) else None
    given = key if isinstance(key, str) else None
    return authorized(services.settings, given, [Scope.EVENTS_WRITE], BASIC), raw


def _unavailable(services: Services, reason: str, err: Exception | None = None) -> ProblemError:
    if err is not None:
        log.error("tracking.store_unavailable", error=str(err))
    problem = Problem(title="Unavailable", status=503, detail=f"{reason}; resend the batch")
    return ProblemError(problem, services.retry_after)


@dataclass
class _Meters:
    messages: MetricCounter
    unmapped: MetricCounter
    names: set[tuple[str, str]] = field(default_factory=set)


@cache
def _meters(runtime: Runtime) -> _Meters:
    """The counters, once per Temporal runtime (which serves the process's metrics)."""
    meter = runtime.metric_meter
    return _Meters(
        meter.create_counter("equator_tracking_messages", "tracking spec messages, by outcome"),
        meter.create_counter("equator_tracking_unmapped", "tracked events no mapping names"),
    )


def _meters_of(services: Services) -> _Meters:
    return _meters(runtime_of(services.client))


def _count(services: Services, source: str, counts: Counter[str]) -> None:
    meters = _meters_of(services)
    for outcome, count in counts.items():
        meters.messages.with_additional_attributes({"source": source, "outcome": outcome}).add(
            count
        )


def _count_unmapped(services: Services, source: str, name: str) -> None:
    meters = _meters_of(services)
    if (source, name) not in meters.names and len(meters.names) >= MAX_NAMES_COUNTED:
        name = "(other)"
    meters.names.add((source, name))
    meters.unmapped.with_additional_attributes({"source": source, "event": name}).add(1)
