"""The email provider's webhook: its notifications, and the engine events they become.

The shape is provider-neutral: a relay (or the provider's own templating of its webhook)
sends the notification type, when it happened, the provider's id for it, and the
``customer_id`` and ``engagement_key`` that Equator attached to the message as metadata
when it sent it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from workflows.events import CustomerEvent, EventType, Identifier, make_event


class EmailActivity(StrEnum):
    DELIVERED = "delivered"
    OPENED = "opened"
    BOUNCED = "bounced"
    UNSUBSCRIBED = "unsubscribed"


class EmailNotification(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    # The provider's id for this notification: a redelivered webhook repeats it.
    id: Identifier
    type: EmailActivity
    occurred_at: AwareDatetime
    customer_id: Identifier
    message_id: Identifier | None = None
    engagement_key: Annotated[str, Field(max_length=256)] | None = None


_EVENT_TYPES = {
    EmailActivity.DELIVERED: EventType.EMAIL_DELIVERED,
    EmailActivity.OPENED: EventType.EMAIL_OPENED,
    EmailActivity.BOUNCED: EventType.EMAIL_BOUNCED,
}


def to_event(notification: EmailNotification, source: str) -> CustomerEvent:
    """The engine event for one notification; an unsubscribe withdraws email consent."""
    if notification.type == EmailActivity.UNSUBSCRIBED:
        type, properties = EventType.CONSENT_CHANGED, {"channel": "email", "granted": False}
    else:
        type = _EVENT_TYPES[notification.type]
        properties = notification.model_dump(
            include={"message_id", "engagement_key"}, exclude_none=True
        )
    event = make_event(
        notification.id, notification.customer_id, type, notification.occurred_at, properties
    )
    return event.model_copy(update={"source": source})
