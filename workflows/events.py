"""Customer events: the contract between event sources and journeys.

Every event carries an id (delivery is at-least-once, so the id is what makes it apply
once), the customer it belongs to, its type, when it happened, and properties typed per
type. The envelope is the same for every type; the properties are a discriminated union
on ``type``, so a schema (and later the OpenAPI document) names every field per type.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
)

Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@-]+$")]
Label = Annotated[str, Field(min_length=1, max_length=64)]
Money = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2)]
# Someone, an @, a domain with a dot: the provider is the judge of the rest.
EmailAddress = Annotated[str, Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]

# Times outside these bounds are data errors (and some cannot even be moved to UTC).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2999, 12, 31, tzinfo=UTC)


class EventType(StrEnum):
    PURCHASE = "purchase"
    RETURN = "return"
    OFFER_REDEEMED = "offer_redeemed"
    EMAIL_DELIVERED = "email_delivered"
    EMAIL_OPENED = "email_opened"
    EMAIL_UNOPENED = "email_unopened"
    EMAIL_BOUNCED = "email_bounced"
    COMPLAINT = "complaint"
    SOCIAL_SHARE = "social_share"
    ACHIEVEMENT = "achievement"
    APP_BROWSE = "app_browse"
    CS_CONTACT = "cs_contact"
    DELIVERY_LATE = "delivery_late"
    FEEDBACK = "feedback"
    CONSENT_CHANGED = "consent_changed"
    PROFILE_UPDATED = "profile_updated"
    PAYMENT_FAILED = "payment_failed"


class Response(StrEnum):
    """What an event says of the customer's answer to an engagement."""

    NONE = "none"
    # Attention: an open, a browse.
    RESPONDED = "responded"
    # The customer told us how we did.
    FEEDBACK = "feedback"
    # Money: a purchase, a redeemed offer.
    RECOVERED = "recovered"


@dataclass(frozen=True)
class EventTraits:
    """How the journey reads one event type, whichever programme hears it."""

    # +1 lifts the customer above the line, -1 drops them, 0 leaves the line alone.
    # A feedback event's polarity comes from its rating instead (``polarity``).
    polarity: int
    # Something the customer did themselves: it restarts the silence clock.
    customer_initiated: bool
    response: Response = Response.NONE


# One line per event type. A type left out fails at import, in the worker's start-up and
# in every test, never as a KeyError inside a workflow task.
EVENT_TABLE: dict[EventType, EventTraits] = {
    EventType.PURCHASE: EventTraits(+1, True, Response.RECOVERED),
    EventType.RETURN: EventTraits(-1, True),
    EventType.OFFER_REDEEMED: EventTraits(+1, True, Response.RECOVERED),
    EventType.EMAIL_DELIVERED: EventTraits(0, False),
    EventType.EMAIL_OPENED: EventTraits(+1, True, Response.RESPONDED),
    EventType.EMAIL_UNOPENED: EventTraits(-1, False),
    # A bounce says nothing of the customer's mood; the contact policy reads it.
    EventType.EMAIL_BOUNCED: EventTraits(0, False),
    EventType.COMPLAINT: EventTraits(-1, True),
    EventType.SOCIAL_SHARE: EventTraits(+1, True),
    EventType.ACHIEVEMENT: EventTraits(+1, True),
    EventType.APP_BROWSE: EventTraits(+1, True, Response.RESPONDED),
    EventType.CS_CONTACT: EventTraits(0, True),
    EventType.DELIVERY_LATE: EventTraits(-1, False),
    EventType.FEEDBACK: EventTraits(0, True, Response.FEEDBACK),
    EventType.CONSENT_CHANGED: EventTraits(0, False),
    EventType.PROFILE_UPDATED: EventTraits(0, False),
    # The payment provider's, not the customer's: it does not restart the silence clock.
    EventType.PAYMENT_FAILED: EventTraits(-1, False),
}
_untabled = set(EventType) - EVENT_TABLE.keys()
if _untabled:
    raise RuntimeError(f"EVENT_TABLE has no line for: {', '.join(sorted(_untabled))}")


class Properties(BaseModel):
    """Base of every event's properties: unknown fields are refused, not dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class PurchaseProperties(Properties):
    amount: Money
    category: Label | None = None
    order_id: Identifier | None = None
    store_id: Identifier | None = None


class ReturnProperties(Properties):
    amount: Money
    category: Label | None = None
    order_id: Identifier | None = None
    reason: Label | None = None


class OfferRedeemedProperties(Properties):
    offer_id: Identifier
    amount: Money | None = None
    category: Label | None = None


class EmailProperties(Properties):
    """Email-provider events; ``engagement_key`` ties them to the engagement that sent."""

    message_id: Identifier | None = None
    engagement_key: Annotated[str, Field(max_length=256)] | None = None


class ComplaintProperties(Properties):
    reason: Label | None = None
    severity: Literal["low", "medium", "high"] = "medium"


class SocialShareProperties(Properties):
    network: Label | None = None
    product_id: Identifier | None = None


class AchievementProperties(Properties):
    name: Label


class AppBrowseProperties(Properties):
    category: Label | None = None
    product_id: Identifier | None = None


class CsContactProperties(Properties):
    reason: Label | None = None
    channel: Label | None = None


class DeliveryLateProperties(Properties):
    order_id: Identifier | None = None
    days_late: Annotated[int, Field(ge=0, le=365)] = 1


class FeedbackProperties(Properties):
    rating: Annotated[int, Field(ge=1, le=5)]


class ConsentChangedProperties(Properties):
    channel: Label
    granted: bool


class ProfileUpdatedProperties(Properties):
    """What a CRM or the app knows about the customer, beyond their purchases."""

    # An IANA zone name such as "Europe/Paris"; quiet hours are kept in it.
    timezone: (
        Annotated[str, Field(max_length=64, pattern=r"^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$")] | None
    ) = None
    home_store: Identifier | None = None
    location: Label | None = None
    preferred_channels: Annotated[list[Label], Field(max_length=8)] | None = None
    # Where email goes; a new one lifts the stop a bounce put on email.
    email: EmailAddress | None = None


class PaymentFailedProperties(Properties):
    """A payment the provider declined (a card expired, funds short)."""

    order_id: Identifier | None = None
    amount: Money | None = None
    reason: Label | None = None


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Unique per customer: a second event with the same id is the same event, redelivered.
    event_id: Identifier
    customer_id: Identifier
    occurred_at: AwareDatetime
    # Where the event came from; the ingest API sets it from the caller's API key.
    source: Label | None = None

    @field_validator("occurred_at", mode="after")
    @classmethod
    def _plausible(cls, value: datetime) -> datetime:
        # Compared before any conversion: year 1 at +05:00 cannot be moved to UTC at all.
        if not EARLIEST <= value <= LATEST:
            raise ValueError(f"must lie between {EARLIEST:%Y} and {LATEST:%Y}")
        return value


class PurchaseEvent(_Envelope):
    type: Literal[EventType.PURCHASE]
    properties: PurchaseProperties


class ReturnEvent(_Envelope):
    type: Literal[EventType.RETURN]
    properties: ReturnProperties


class OfferRedeemedEvent(_Envelope):
    type: Literal[EventType.OFFER_REDEEMED]
    properties: OfferRedeemedProperties


class EmailDeliveredEvent(_Envelope):
    type: Literal[EventType.EMAIL_DELIVERED]
    properties: EmailProperties = EmailProperties()


class EmailBouncedEvent(_Envelope):
    type: Literal[EventType.EMAIL_BOUNCED]
    properties: EmailProperties = EmailProperties()


class EmailOpenedEvent(_Envelope):
    type: Literal[EventType.EMAIL_OPENED]
    properties: EmailProperties = EmailProperties()


class EmailUnopenedEvent(_Envelope):
    type: Literal[EventType.EMAIL_UNOPENED]
    properties: EmailProperties = EmailProperties()


class ComplaintEvent(_Envelope):
    type: Literal[EventType.COMPLAINT]
    properties: ComplaintProperties = ComplaintProperties()


class SocialShareEvent(_Envelope):
    type: Literal[EventType.SOCIAL_SHARE]
    properties: SocialShareProperties = SocialShareProperties()


class AchievementEvent(_Envelope):
    type: Literal[EventType.ACHIEVEMENT]
    properties: AchievementProperties


class AppBrowseEvent(_Envelope):
    type: Literal[EventType.APP_BROWSE]
    properties: AppBrowseProperties = AppBrowseProperties()


class CsContactEvent(_Envelope):
    type: Literal[EventType.CS_CONTACT]
    properties: CsContactProperties = CsContactProperties()


class DeliveryLateEvent(_Envelope):
    type: Literal[EventType.DELIVERY_LATE]
    properties: DeliveryLateProperties = DeliveryLateProperties()


class FeedbackEvent(_Envelope):
    type: Literal[EventType.FEEDBACK]
    properties: FeedbackProperties


class ConsentChangedEvent(_Envelope):
    type: Literal[EventType.CONSENT_CHANGED]
    properties: ConsentChangedProperties


class ProfileUpdatedEvent(_Envelope):
    type: Literal[EventType.PROFILE_UPDATED]
    properties: ProfileUpdatedProperties


class PaymentFailedEvent(_Envelope):
    type: Literal[EventType.PAYMENT_FAILED]
    properties: PaymentFailedProperties = PaymentFailedProperties()


CustomerEvent = Annotated[
    PurchaseEvent
    | ReturnEvent
    | OfferRedeemedEvent
    | EmailDeliveredEvent
    | EmailOpenedEvent
    | EmailUnopenedEvent
    | EmailBouncedEvent
    | ComplaintEvent
    | SocialShareEvent
    | AchievementEvent
    | AppBrowseEvent
    | CsContactEvent
    | DeliveryLateEvent
    | FeedbackEvent
    | ConsentChangedEvent
    | ProfileUpdatedEvent
    | PaymentFailedEvent,
    Field(discriminator="type"),
]

_EVENT_TYPES_IN_ORDER = tuple(EventType)
_EVENT_TYPES = frozenset(EventType)

customer_event_adapter: TypeAdapter[CustomerEvent] = TypeAdapter(CustomerEvent)


def parse_event(data: object) -> CustomerEvent:
    """Validate raw JSON-like data as a customer event; raises pydantic.ValidationError."""
    return customer_event_adapter.validate_python(data)


def make_event(
    event_id: str,
    customer_id: str,
    type: str,
    occurred_at: datetime | str,
    properties: Mapping[str, Any],
) -> CustomerEvent:
    """Build and validate an event from its parts, as a source would send it."""
    return parse_event(
        {
            "event_id": event_id,
            "customer_id": customer_id,
            "type": type,
            "occurred_at": occurred_at,
            "properties": dict(properties),
        }
    )


def located_errors(
    errors: Iterable[Mapping[str, Any]], prefix: Sequence[str | int] = ()
) -> list[tuple[str, str]]:
    """Validation errors as (field, reason), the field a dotted path into the event as
    its sender wrote it (the type tag that the union puts in the location is dropped)."""
    located = []
    for error in errors:
        location = [str(part) for part in (*prefix, *error["loc"])]
        tag = len(prefix)
        reason = str(error["msg"])
        if len(location) > tag and location[tag] in _EVENT_TYPES:
            del location[tag]
        elif error.get("type") in ("union_tag_invalid", "union_tag_not_found"):
            location.append("type")
            reason = "must be one of: " + ", ".join(_EVENT_TYPES_IN_ORDER)
        located.append((".".join(location) or "event", reason))
    return located


def summarize(located: Sequence[tuple[str, str]], limit: int = 3) -> str:
    parts = [f"{field}: {reason}" for field, reason in located[:limit]]
    more = len(located) - limit
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def describe_errors(error: ValidationError) -> str:
    """A short, field-naming account of why an event was refused."""
    return summarize(located_errors(error.errors()))


def traits(event: CustomerEvent) -> EventTraits:
    return EVENT_TABLE[event.type]


def polarity(event: CustomerEvent) -> int:
    """Which way the event moves the customer: feedback by its rating, the rest by type."""
    if event.type == EventType.FEEDBACK:
        rating = event.properties.rating
        return 1 if rating >= 4 else -1 if rating <= 2 else 0
    return EVENT_TABLE[event.type].polarity
