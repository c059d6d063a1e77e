"""The ingest API's request and response bodies, shared by the API and its client."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, SkipValidation

from service.problems import Problem

MAX_BATCH = 500


# A batch's items are validated one by one by the route (so that one bad item fails
# alone): the list only checks its length, and names its items' schema for the OpenAPI
# document (``service/openapi.py`` turns the name into a reference).
ITEMS_MARKER = "x-items-schema"


def _items_are(schema: str) -> Any:
    return Field(json_schema_extra={ITEMS_MARKER: schema})


class EventBatch(BaseModel):
    events: Annotated[list[SkipValidation[Any]], Field(min_length=1, max_length=MAX_BATCH)] = (
        _items_are("CustomerEvent")
    )


class EmailWebhook(BaseModel):
    events: Annotated[list[SkipValidation[Any]], Field(min_length=1, max_length=MAX_BATCH)] = (
        _items_are("EmailNotification")
    )


class Accepted(BaseModel):
    event_id: str
    journey_id: str
    # True when this event_id was accepted before: nothing was changed this time.
    duplicate: bool


class ErasureAccepted(BaseModel):
    journey_id: str
    # Quoted in the journey's history and the logs; no personal data in it.
    request_id: str


class Status(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    UNAVAILABLE = "unavailable"


class EventResult(BaseModel):
    index: int
    event_id: str | None = None
    status: Status
    journey_id: str | None = None
    problem: Problem | None = None


class BatchResult(BaseModel):
    accepted: int
    duplicates: int
    rejected: int
    unavailable: int
    results: list[EventResult]


class Health(BaseModel):
    status: str
    checks: dict[str, str] = {}


class OperatorAction(BaseModel):
    """An operator action's body: why, for the journey's timeline (not the audit, which
    keeps no free text). The key's source is recorded as who asked."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=200)


class LadderStart(OperatorAction):
    # A registered ladder's cause: silence, return, complaint, delivery_late, dormant.
    cause: str = Field(min_length=1, max_length=32)
