"""The tracking spec (Segment's, which RudderStack, mParticle and most CDPs speak): its
messages as they arrive, the moment each happened, and the mapping onto Equator's events,
as data. Pure: no HTTP and no store here (``service/cdp.py`` serves it).

The mapping is a table from a ``track`` event's name to an Equator event type
(``EVENTS``, which configuration extends), and, per type, where each of the type's
properties is read from in the spec's (``READS``). A name without a line is
``unmapped``: kept and counted, never refused.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from runtime.settings import EventMapping
from workflows.events import (
    CustomerEvent,
    EventType,
    Identifier,
    customer_event_adapter,
    describe_errors,
)

# The spec's limits: a message, and a whole batch, as JSON.
MAX_MESSAGE_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024


class MessageType(StrEnum):
    TRACK = "track"
    IDENTIFY = "identify"
    PAGE = "page"
    SCREEN = "screen"
    ALIAS = "alias"
    GROUP = "group"


def _text(value: Any) -> Any:
    """Ids arrive as numbers too (a database's keys): they are the same ids as text."""
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def _moment(value: Any) -> Any:
    """ISO 8601; without an offset, UTC (what the spec's libraries mean by it)."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value  # refused by the field, naming it
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return value


Id = Annotated[str, Field(max_length=1024)] | None
Moment = Annotated[datetime | None, BeforeValidator(_moment)]


class Message(BaseModel):
    """One message of the spec: the fields Equator reads; the rest is ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    type: MessageType
    message_id: Annotated[Id, BeforeValidator(_text)] = Field(default=None, alias="messageId")
    user_id: Annotated[Id, BeforeValidator(_text)] = Field(default=None, alias="userId")
    anonymous_id: Annotated[Id, BeforeValidator(_text)] = Field(default=None, alias="anonymousId")
    # An alias's earlier id (an anonymous id, usually).
    previous_id: Annotated[Id, BeforeValidator(_text)] = Field(default=None, alias="previousId")
    event: str | None = Field(default=None, max_length=200)  # a track's name
    name: str | None = Field(default=None, max_length=200)  # a page's or a screen's
    properties: dict[str, Any] = {}
    traits: dict[str, Any] = {}
    context: dict[str, Any] = {}
    timestamp: Moment = None
    original_timestamp: Moment = Field(default=None, alias="originalTimestamp")
    sent_at: Moment = Field(default=None, alias="sentAt")

    @field_validator("properties", "traits", "context", mode="before")
    @classmethod
    def _nothing_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value


class Batch(BaseModel):
    """``POST /v1/batch``: messages, validated one by one (a bad one is dropped alone),
    and what the batch says for all of them."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    batch: Annotated[list[Any], Field(max_length=2_500)]
    sent_at: Moment = Field(default=None, alias="sentAt")
    context: dict[str, Any] = {}
    write_key: str | None = Field(default=None, alias="writeKey")


def occurred_at(
    message: Message, batch_sent_at: datetime | None, received_at: datetime
) -> datetime:
    """When it happened, by the spec's rule: the client's clock, corrected by how far off
    it was when it sent, ``receivedAt - (sentAt - originalTimestamp)``. A message's own
    ``timestamp`` stands for ``originalTimestamp`` when it has none (the server-side
    libraries send only ``timestamp``). Without ``sentAt`` nothing tells how far off the
    client's clock is: its time stands. Without any time, it happened when it arrived."""
    original = message.original_timestamp or message.timestamp
    sent = message.sent_at or batch_sent_at
    if original is None:
        return received_at
    if sent is None:
        return original
    return received_at - (sent - original)


# The spec's names (its e-commerce v2 and email events), and what they become. Page and
# screen views are browsing, named by their type.
EVENTS: dict[str, EventMapping] = {
    "Order Completed": EventMapping(type=EventType.PURCHASE),
    "Order Refunded": EventMapping(type=EventType.RETURN),
    "Product Viewed": EventMapping(type=EventType.APP_BROWSE),
    "Product List Viewed": EventMapping(type=EventType.APP_BROWSE),
    "Coupon Applied": EventMapping(type=EventType.OFFER_REDEEMED),
    "Email Delivered": EventMapping(type=EventType.EMAIL_DELIVERED),
    "Email Opened": EventMapping(type=EventType.EMAIL_OPENED),
    "Email Bounced": EventMapping(type=EventType.EMAIL_BOUNCED),
    "Unsubscribed": EventMapping(
        type=EventType.CONSENT_CHANGED, fixed={"channel": "email", "granted": False}
    ),
    MessageType.PAGE: EventMapping(type=EventType.APP_BROWSE),
    MessageType.SCREEN: EventMapping(type=EventType.APP_BROWSE),
}

# The main product of a basket: the category of its costliest line.
PRODUCTS_CATEGORY = "products[].category"

# Per type, each of its properties and the spec's properties it is read from, the first
# present winning. A type without a line takes its own property names as they are.
READS: dict[EventType, dict[str, tuple[str, ...]]] = {
    EventType.PURCHASE: {
        "amount": ("revenue", "total", "value", "amount"),
        "category": ("category", PRODUCTS_CATEGORY),
        "order_id": ("order_id",),
    },
    EventType.RETURN: {
        "amount": ("total", "revenue", "value", "amount"),
        "category": ("category", PRODUCTS_CATEGORY),
        "order_id": ("order_id",),
        "reason": ("reason",),
    },
    EventType.OFFER_REDEEMED: {
        "offer_id": ("coupon_id", "coupon", "promotion_id", "offer_id"),
        "amount": ("discount", "amount"),
    },
    EventType.APP_BROWSE: {
        "category": ("category", PRODUCTS_CATEGORY),
        "product_id": ("product_id",),
    },
    EventType.EMAIL_DELIVERED: {"message_id": ("email_id", "message_id")},
    EventType.EMAIL_OPENED: {"message_id": ("email_id", "message_id")},
    EventType.EMAIL_BOUNCED: {"message_id": ("email_id", "message_id")},
}

# Each type's own property names: what a type without a line in READS keeps.
PROPERTIES: dict[EventType, frozenset[str]] = {
    get_args(model.model_fields["type"].annotation)[0]: frozenset(
        model.model_fields["properties"].annotation.model_fields
    )
    for model in get_args(get_args(CustomerEvent)[0])
}

_MONEY = {"amount"}
_IDS = {"order_id", "offer_id", "product_id", "message_id"}


@dataclass(frozen=True)
class Unmapped:
    """A tracked event no mapping names: kept in the ledger under its name, counted."""

    name: str


@dataclass(frozen=True)
class Invalid:
    """Not a message Equator can use (no id of a customer, a value it cannot read)."""

    reason: str


def event_id(message_id: str | None, suffix: str = "") -> str | None:
    """The event's id: the message's, so that a client's retry is a duplicate. One that
    is no Equator identifier (too long, other characters) is replaced by its digest, the
    same every time."""
    if message_id is None:
        return None
    wanted = f"{message_id}{suffix}"
    if is_identifier(wanted):
        return wanted
    return "seg-" + hashlib.sha256(wanted.encode()).hexdigest()[:40]


_IDENTIFIER: TypeAdapter[str] = TypeAdapter(Identifier)


def is_identifier(value: str) -> bool:
    """Whether Equator takes it as an id (a customer's, an event's)."""
    try:
        _IDENTIFIER.validate_python(value)
    except ValidationError:
        return False
    return True


def track_events(
    message: Message, customer_id: str, at: datetime, events: Mapping[str, EventMapping]
) -> list[CustomerEvent] | Unmapped | Invalid:
    """The events a ``track``, ``page`` or ``screen`` becomes for ``customer_id``."""
    name = message.event if message.type == MessageType.TRACK else message.type.value
    if not name:
        return Invalid("a track without its event name")
    mapping = events.get(name)
    if mapping is None:
        return Unmapped(name)
    properties = {**_read(mapping.type, message.properties), **mapping.fixed}
    return _events(message, customer_id, at, [(mapping.type, properties, "")])


def identify_events(
    message: Message, customer_id: str, at: datetime
) -> list[CustomerEvent] | Invalid:
    """An ``identify``'s traits: the profile (email, timezone, preferred channels, home
    store, location), and email consent when the traits state it (``email_consent``, or
    ``unsubscribed`` as Customer.io and others send it)."""
    traits = message.traits
    timezone = message.context.get("timezone") or traits.get("timezone")
    given = traits.get("address")
    address: dict[str, Any] = given if isinstance(given, dict) else {}
    profile = {
        "email": traits.get("email"),
        "timezone": timezone,
        "preferred_channels": traits.get("preferred_channels"),
        "home_store": _text(traits.get("home_store")),
        "location": traits.get("location") or address.get("city"),
    }
    profile = {field: value for field, value in profile.items() if value not in (None, "", [])}
    wanted: list[tuple[EventType, dict[str, Any], str]] = []
    if profile:
        wanted.append((EventType.PROFILE_UPDATED, profile, ""))
    consent = traits.get("email_consent")
    if consent is None and isinstance(traits.get("unsubscribed"), bool):
        consent = not traits["unsubscribed"]
    if isinstance(consent, bool):
        wanted.append(
            (EventType.CONSENT_CHANGED, {"channel": "email", "granted": consent}, ":consent")
        )
    if not wanted:
        return []
    return _events(message, customer_id, at, wanted)


def _events(
    message: Message,
    customer_id: str,
    at: datetime,
    wanted: list[tuple[EventType, dict[str, Any], str]],
) -> list[CustomerEvent] | Invalid:
    made = []
    for type, properties, suffix in wanted:
        raw = {
            "event_id": event_id(message.message_id, suffix),
            "customer_id": customer_id,
            "type": type.value,
            "occurred_at": at,
            "properties": properties,
        }
        try:
            made.append(customer_event_adapter.validate_python(raw))
        except ValidationError as err:
            return Invalid(describe_errors(err))
    return made


def _read(type: EventType, spec: Mapping[str, Any]) -> dict[str, Any]:
    """The type's properties from the spec's, as ``READS`` says (or those of the type's
    own names); values Equator cannot use are left out (a required one missing then
    refuses the message, naming it)."""
    reads = READS.get(type)
    if reads is None:
        return {field: spec[field] for field in PROPERTIES[type] if field in spec}
    found: dict[str, Any] = {}
    for field, sources in reads.items():
        for source in sources:
            value = (
                main_category(spec.get("products"))
                if source == PRODUCTS_CATEGORY
                else spec.get(source)
            )
            value = money(value) if field in _MONEY else _text(value) if field in _IDS else value
            if value not in (None, ""):
                found[field] = value
                break
    return found


def money(value: Any) -> Decimal | None:
    """An amount as the spec sends it (a number, or its text), to the cent; negative or
    unreadable amounts are left out."""
    if value is None or isinstance(value, bool):
        return None
    try:
        amount = Decimal(str(value)).quantize(Decimal("0.01"), ROUND_HALF_UP)
    except InvalidOperation:
        return None
    return amount if amount.is_finite() and amount >= 0 else None


def main_category(lines: Any, category: str = "category") -> str | None:
    """The category of a basket's costliest line (price times quantity), from each
    line's ``category`` field; lines without one are passed over."""
    best: tuple[Decimal, str] | None = None
    for line in lines if isinstance(lines, list) else []:
        if not isinstance(line, dict) or not isinstance(line.get(category), str):
            continue
        if not line[category]:
            continue
        price = money(line.get("price")) or Decimal(0)
        quantity = line.get("quantity")
        total = price * (quantity if isinstance(quantity, int) else 1)
        if best is None or total > best[0]:
            best = (total, line[category])
    return best[1] if best else None
