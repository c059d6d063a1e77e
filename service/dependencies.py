"""What the routes of the API depend on: its services, and who the caller is.

A keyed route states its scope in its source's type (``EventsWriter``, ``Operator``, …):
FastAPI checks it on every call and writes it into the OpenAPI document. Webhooks are
signed instead (``SignedSource``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import structlog
from fastapi import Depends, Path, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes
from temporalio.client import Client

from activities.signatures import SIGNATURE_HEADER, SignatureError, verify_signature
from activities.store import Store
from runtime.credentials import Scope, Source, source_for_key
from runtime.settings import IngestSettings
from service.ingest import Ingest
from service.problems import PROBLEM_MEDIA_TYPE, Problem, ProblemError, invalid

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Services:
    """What the routes use; opened and closed by ``service.serving``."""

    settings: IngestSettings
    client: Client
    store: Store
    ingest: Ingest

    @property
    def retry_after(self) -> dict[str, str]:
        """``Retry-After``, jittered: callers told the same moment come back at once."""
        return {"Retry-After": str(jittered(self.settings.retry_after))}


def jittered(seconds: int) -> int:
    """Half as long again or half as long, at random: retries spread over a second or
    more instead of arriving together."""
    return max(1, round(seconds * random.uniform(0.5, 1.5)))


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem answers a route may give."""
    return {status: {"model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}} for status in statuses}


bearer = HTTPBearer(auto_error=False, description="The API key of the event source.")


async def services(request: Request) -> Services:
    # async: FastAPI would run a plain function in a worker thread, on every request.
    found: Services = request.app.state.services
    return found


ServicesDep = Annotated[Services, Depends(services)]


async def api_key_source(
    request: Request,
    security_scopes: SecurityScopes,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    services: ServicesDep,
) -> Source:
    """The caller's source, once its key is known (401) and holds the route's scopes (403)."""
    key = credentials.credentials if credentials else None
    source = authorized(services.settings, key, security_scopes.scopes, BEARER)
    known_query_only(request)
    return source


@dataclass(frozen=True)
class Challenge:
    """How a route wants its key, for a 401 to say."""

    scheme: str
    how: str


BEARER = Challenge("Bearer", "Authorization: Bearer <key>")


def authorized(
    settings: IngestSettings, key: str | None, scopes: Sequence[str], challenge: Challenge
) -> Source:
    """The source whose key this is (else 401), holding ``scopes`` (else 403, naming the
    missing one)."""
    source = source_for_key(settings.sources, key) if key else None
    if not source:
        log.info("auth.refused", reason="missing or unknown API key")
        raise unauthorized(f"a valid API key is required: {challenge.how}", challenge.scheme)
    structlog.contextvars.bind_contextvars(source=source.name)
    missing = [scope for scope in scopes if scope not in source.granted]
    if missing:
        log.info("auth.forbidden", missing_scopes=missing)
        detail = f"the API key of source {source.name!r} lacks the scope {', '.join(missing)}"
        raise ProblemError(Problem(title="Forbidden", status=403, detail=detail))
    return source


async def signed_source(
    request: Request, source: Annotated[str, Path(max_length=64)], services: ServicesDep
) -> Source:
    found = next((s for s in services.settings.sources if s.name == source), None)
    secrets = [secret.get_secret_value() for secret in found.webhook_secrets] if found else []
    try:
        if found is None or not secrets:
            raise SignatureError("no webhook is configured for this source")
        verify_signature(
            request.headers.get(SIGNATURE_HEADER),
            await request.body(),
            secrets,
            time.time(),
            services.settings.signature_tolerance.total_seconds(),
        )
    except SignatureError as err:
        log.info("auth.refused", reason=err.reason)
        raise unauthorized(f"webhook signature refused: {err.reason}") from None
    structlog.contextvars.bind_contextvars(source=found.name)
    known_query_only(request)
    return found


def known_query_only(request: Request) -> None:
    """Refuse query parameters the route does not take: a misspelt
    ``customer_returned`` must not pass silently as an ordinary event."""
    route = request.scope.get("route")
    known = {param.alias for param in route.dependant.query_params} if route else set()
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        errors = [{"loc": ("query", name), "msg": "unknown query parameter"} for name in unknown]
        raise ProblemError(invalid(errors, "Invalid request"))


# A keyed route states its scope in its source's type: checked, and in the OpenAPI document.
EventsWriter = Annotated[Source, Security(api_key_source, scopes=[Scope.EVENTS_WRITE])]
JourneysReader = Annotated[Source, Security(api_key_source, scopes=[Scope.JOURNEYS_READ])]
CustomersEraser = Annotated[Source, Security(api_key_source, scopes=[Scope.CUSTOMERS_ERASE])]
ReportsReader = Annotated[Source, Security(api_key_source, scopes=[Scope.REPORTS_READ])]
Operator = Annotated[Source, Security(api_key_source, scopes=[Scope.OPERATE])]
SignedSource = Annotated[Source, Depends(signed_source)]


def unauthorized(detail: str, scheme: str = "Bearer") -> ProblemError:
    return ProblemError(
        Problem(title="Unauthorized", status=401, detail=detail), {"WWW-Authenticate": scheme}
    )
