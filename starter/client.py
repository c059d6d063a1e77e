"""A small client for the ingest API: what the CLI, the demo and the benchmarks call.

Events go out as plain JSON, exactly as any other source would send them: the API, not
the client, decides what is valid.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
from pydantic import TypeAdapter

from runtime.settings import Settings
from service.api_models import (
    Accepted,
    BatchResult,
    JourneyAnswer,
    LiveJourney,
    PublishedJourney,
)
from service.problems import Problem

LOCAL_KEY_FILE = "api-key"


def event_body(
    customer_id: str,
    type: str,
    properties: Mapping[str, Any],
    event_id: str | None = None,
    occurred_at: str | None = None,
    id_prefix: str = "ev",
) -> dict[str, Any]:
    """An event as a source sends it: plain JSON. By default a new id and now."""
    return {
        "event_id": event_id or f"{id_prefix}-{uuid.uuid4()}",
        "customer_id": customer_id,
        "type": type,
        "occurred_at": occurred_at or datetime.now(UTC).isoformat(),
        "properties": dict(properties),
    }


class ApiError(Exception):
    def __init__(self, problem: Problem, retry_after: str | None = None) -> None:
        super().__init__(f"{problem.status} {problem.title}: {problem.detail}")
        self.problem = problem
        self.retry_after = retry_after


def local_key_path(settings: Settings) -> Path:
    return settings.data_dir / LOCAL_KEY_FILE


def api_key(settings: Settings) -> str:
    """The configured key, or the one `equator run` keeps for the local source."""
    if settings.api_key is not None:
        return settings.api_key.get_secret_value()
    path = local_key_path(settings)
    if not path.exists():
        raise ApiError(
            Problem(
                title="No API key",
                status=401,
                detail=f"set EQUATOR_API_KEY, or start `equator run` (it writes {path})",
            )
        )
    return path.read_text().strip()


# Answers that say "not now": the API is saturated (429) or a part behind it is down (503).
RETRIED = frozenset({429, 503})
# The longest one wait, whatever Retry-After says.
LONGEST_WAIT = 30.0


def retry_wait(retry_after: str | None, attempt: int) -> float:
    """How long to wait before the next try: what ``Retry-After`` says (else 0.5 s,
    doubling), capped, and jittered by half either way so that callers refused together
    do not come back together."""
    try:
        wait = float(retry_after) if retry_after is not None else 0.5 * 2**attempt
    except ValueError:
        wait = 0.5 * 2**attempt
    return min(wait, LONGEST_WAIT) * random.uniform(0.5, 1.5)


class EquatorClient:
    """The ingest API's client. A 429 or 503 is tried again (events are idempotent by
    their id), ``retries`` times at most, after the wait the API advised; so is a call
    that found no API or got no answer, after half a second, doubling, jittered."""

    def __init__(self, base_url: str, key: str, timeout: float = 30.0, retries: int = 5) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {key}"},
            timeout=timeout,
        )
        self._retries = retries

    @classmethod
    def from_settings(cls, settings: Settings) -> EquatorClient:
        return cls(settings.api_url, api_key(settings))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._http.aclose()

    async def send(self, event: Mapping[str, Any]) -> Accepted:
        response = await self._request("POST", "/v1/events", json=event)
        return Accepted.model_validate(response.json())

    async def send_batch(self, events: Sequence[Mapping[str, Any]]) -> BatchResult:
        """Per-event results. A 503 (some events undelivered) is resent whole (what was
        taken comes back as duplicates); the last one is raised, not returned."""
        response = await self._request("POST", "/v1/events:batch", json={"events": list(events)})
        return BatchResult.model_validate(response.json())

    async def journey(self, customer_id: str) -> LiveJourney | PublishedJourney:
        """Live when the journey answered in time, else as it last published itself."""
        response = await self._request("GET", f"/v1/customers/{customer_id}/journey")
        return _JOURNEY_ANSWER.validate_python(response.json())

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = await self._http.request(method, path, **kwargs)
            except httpx.TransportError:
                # Not reached, or no answer (the API restarting, say): sending again is
                # safe, events being idempotent by their id.
                if attempt == self._retries:
                    raise
                advice = None
            else:
                if response.status_code not in RETRIED or attempt == self._retries:
                    return self._checked(response)
                advice = response.headers.get("Retry-After")
            await asyncio.sleep(retry_wait(advice, attempt))
            attempt += 1

    @staticmethod
    def _checked(response: httpx.Response) -> httpx.Response:
        if response.is_success:
            return response
        try:
            problem = Problem.model_validate(response.json())
        except ValueError:
            problem = Problem(
                title=response.reason_phrase, status=response.status_code, detail=response.text
            )
        raise ApiError(problem, response.headers.get("Retry-After"))


_JOURNEY_ANSWER: TypeAdapter[LiveJourney | PublishedJourney] = TypeAdapter(JourneyAnswer)
