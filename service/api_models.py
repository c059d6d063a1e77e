"""The ingest API's request and response bodies, shared by the API and its client."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SkipValidation

from activities.store import Customer
from service.problems import Problem
from workflows.state import JourneyView

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
    status: Literal["ok", "ready", "degraded", "not ready"]
    checks: dict[str, str] = {}


class OperatorAction(BaseModel):
    """An operator action's body: why, for the journey's timeline (not the audit, which
    keeps no free text). The key's source is recorded as who asked."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=200)


class LadderStart(OperatorAction):
    # A registered ladder's cause: silence, return, complaint, delivery_late, dormant.
    cause: str = Field(min_length=1, max_length=32)


class LiveJourney(JourneyView):
    """The journey's own answer to its state query: as it stands now."""

    freshness: Literal["live"] = "live"


class Standing(BaseModel):
    """What the journey last published of its standing (its search attributes, which
    Temporal serves without a worker): ids and standing, no personal data."""

    tier: str | None = None
    line_position: str | None = None
    ladder: str | None = None
    ladder_step: int | None = None
    last_event_at: datetime | None = None
    lifetime_value: float | None = None
    held_back_from: list[str] = Field(default_factory=list)


class PublishedJourney(BaseModel):
    """The journey as last published, when it does not answer in time (no worker, or a
    worker behind a backlog): its standing from Temporal and the single customer view
    from the store, each null where its source is unreachable. ``waiting_since`` is when
    the oldest work the journey has not yet taken arrived: what happened since is not
    reflected. ``customer.updated_at`` is when the journey last wrote the view."""

    freshness: Literal["published"] = "published"
    customer_id: str
    # The journey's run: running, completed (an erasure), terminated…
    status: str | None = None
    standing: Standing | None = None
    waiting_since: datetime | None = None
    customer: Customer | None = None


JourneyAnswer = Annotated[LiveJourney | PublishedJourney, Field(discriminator="freshness")]
