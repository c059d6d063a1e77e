"""Email provider notifications become engine events (pure mapping)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from service.email_webhook import EmailActivity, EmailNotification, to_event
from workflows.events import EventType

AT = datetime(2026, 11, 23, 10, tzinfo=UTC)


def notification(type: EmailActivity) -> EmailNotification:
    return EmailNotification(
        id="n-1", type=type, occurred_at=AT, customer_id="c-1", message_id="m-1",
        engagement_key="customer-c-1/run/silence-1/step-1",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("activity", "event_type"),
    [
        (EmailActivity.DELIVERED, EventType.EMAIL_DELIVERED),
        (EmailActivity.OPENED, EventType.EMAIL_OPENED),
        (EmailActivity.BOUNCED, EventType.EMAIL_BOUNCED),
    ],
)
def test_message_events_keep_their_message_and_engagement(
    activity: EmailActivity, event_type: EventType
) -> None:
    event = to_event(notification(activity), "mailer")
    assert (event.type, event.event_id, event.customer_id, event.source) == (
        event_type, "n-1", "c-1", "mailer",
    )  # fmt: skip
    assert event.occurred_at == AT
    assert event.properties.model_dump() == {
        "message_id": "m-1",
        "engagement_key": "customer-c-1/run/silence-1/step-1",
    }


def test_an_unsubscribe_withdraws_email_consent() -> None:
    event = to_event(notification(EmailActivity.UNSUBSCRIBED), "mailer")
    assert event.type == EventType.CONSENT_CHANGED
    assert event.properties.model_dump() == {"channel": "email", "granted": False}
