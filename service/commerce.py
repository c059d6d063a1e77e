"""Commerce platforms' webhooks: ``POST /v1/webhooks/{source}/shopify``.

A delivery is verified by its signature (``X-Shopify-Hmac-Sha256``, under one of the
source's webhook secrets: the app's client secret) before anything else is read, then
mapped (``service/shopify.py``) and handed to the journeys like any event. Shopify
redelivers what it did not see acknowledged within 5 seconds, for hours: every event is
named by what it is (the order, the refund, the delivery), so a redelivery is a
duplicate that changes nothing. What Equator does not use (an unpaid order, a guest's)
is acknowledged with its reason, so that Shopify stops sending it.
"""

from __future__ import annotations

from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from service.dependencies import Services, ServicesDep, problem_responses, unauthorized
from service.ingest import Conflict, Delivered, Unavailable
from service.problems import Problem, ProblemError, invalid, parse_json
from service.shopify import (
    Delivery,
    Ignored,
    Refund,
    ShopifyError,
    refund_event,
    to_events,
    verify,
)
from workflows.events import CustomerEvent

log = structlog.get_logger(__name__)

router = APIRouter(tags=["webhooks"])
SIGNATURE = "X-Shopify-Hmac-Sha256"
HEADERS = ("X-Shopify-Topic", "X-Shopify-Shop-Domain", "X-Shopify-Webhook-Id")


@router.post(
    "/v1/webhooks/{source}/shopify",
    summary="Shopify: orders/create, orders/paid, refunds/create, customers/update",
    responses=problem_responses(400, 401, 422, 503),
    openapi_extra={
        "parameters": [
            {"name": name, "in": "header", "required": True, "schema": {"type": "string"}}
            for name in (SIGNATURE, *HEADERS)
        ]
    },
)
async def post_shopify(
    request: Request, source: Annotated[str, Path(max_length=64)], services: ServicesDep
) -> JSONResponse:
    """Signed by Shopify: `X-Shopify-Hmac-Sha256`, base64 of the HMAC-SHA256 of the raw
    body under the source's webhook secret (the app's client secret). Answers what each
    delivery became: `accepted`, `duplicate` (a redelivery), or `ignored` with why."""
    body = await request.body()
    found = next((s for s in services.settings.sources if s.name == source), None)
    secrets = [secret.get_secret_value() for secret in found.webhook_secrets] if found else []
    if not verify(body, request.headers.get(SIGNATURE), secrets):
        log.info("auth.refused", reason="Shopify signature refused or no secret configured")
        raise unauthorized(f"{SIGNATURE} refused: not signed with this source's secret", "HMAC")
    assert found is not None
    structlog.contextvars.bind_contextvars(source=found.name)
    topic, shop, webhook_id = (request.headers.get(name) for name in HEADERS)
    if not (topic and shop and webhook_id):
        missing = [name for name in HEADERS if not request.headers.get(name)]
        errors = [{"loc": ("header", name), "msg": "missing"} for name in missing]
        raise ProblemError(invalid(errors, "Invalid delivery"))
    payload = parse_json(body)
    if not isinstance(payload, dict):
        detail = "a Shopify delivery is a JSON object: the topic's resource"
        raise ProblemError(Problem(title="Malformed delivery", status=400, detail=detail))
    structlog.contextvars.bind_contextvars(topic=topic, webhook_id=webhook_id)
    try:
        made = to_events(Delivery(topic, shop, webhook_id, payload))
        if isinstance(made, Refund):
            made = await _refund_of_known_order(made, services)
    except ShopifyError as err:
        raise ProblemError(invalid([{"loc": (), "msg": str(err)}], "Invalid delivery")) from None
    except (SQLAlchemyError, OSError) as err:
        log.error("shopify.store_unavailable", error=str(err))
        raise _unavailable(services) from None
    if isinstance(made, Ignored):
        log.info("shopify.ignored", reason=made.reason)
        return JSONResponse({"status": "ignored", "reason": made.reason})
    events = [event.model_copy(update={"source": found.name}) for event in made]
    outcomes = await services.ingest.deliver(events)
    answer: dict[str, Any] = {"status": "accepted", "events": []}
    for event, outcome in zip(events, outcomes, strict=True):
        match outcome:
            case Delivered(duplicate=duplicate):
                status = "duplicate" if duplicate else "accepted"
            case Conflict(reason=reason):
                # Erased: acknowledged, or Shopify would keep redelivering it.
                status = "refused"
                log.info("shopify.refused", event_id=event.event_id, reason=reason)
            case Unavailable():
                raise _unavailable(services)
        answer["events"].append({"event_id": event.event_id, "type": event.type, "status": status})
    if all(e["status"] == "duplicate" for e in answer["events"]):
        answer["status"] = "duplicate"
    return JSONResponse(answer)


async def _refund_of_known_order(
    refund: Refund, services: Services
) -> list[CustomerEvent] | Ignored:
    customer = await services.ingest.customer_of(refund.order_event_id)
    if customer is None:
        return Ignored("the refunded order never reached Equator")
    return [refund_event(refund, customer)]


def _unavailable(services: Services) -> ProblemError:
    detail = "the store or Temporal is unreachable; Shopify will redeliver"
    return ProblemError(
        Problem(title="Unavailable", status=503, detail=detail), services.retry_after
    )
