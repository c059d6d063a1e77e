"""Email over SMTP, through the courier, against a real SMTP server (aiosmtpd) on a free
port: accepted, refused for good (the next preferred channel, or failed), refused for
now (retried, delivered once), a server that never answers (timed out, retried)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from activities.delivery.smtp import IDEMPOTENCY_HEADER, SmtpConfig
from activities.delivery.webhook import WebhookConfig
from activities.store import Store
from tests.delivery import (
    QUICK,
    WEBHOOK_SECRET,
    SmtpSink,
    add_customer,
    courier,
    outbox,
    send,
    settled,
    silent_smtp_server,
    smtp_sink,
    webhook_sink,
)
from tests.servers import eventually

TIMEOUT = timedelta(seconds=1)


# The provider is under test, not the store: conftest's store, on SQLite only.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def email_on(port: int) -> SmtpConfig:
    return SmtpConfig(
        kind="smtp",
        host="127.0.0.1",
        port=port,
        starttls=False,
        from_address="news@shop.example",
        timeout=TIMEOUT,
        policy=QUICK,
    )


def message_id(key: str) -> str:
    return email_on(1).channel().message_id(key)


async def test_a_delivered_email_carries_its_key_as_message_id(store: Store) -> None:
    await add_customer(store, "ann", email="ann@example.com")
    key = await send(store, "ann")
    with smtp_sink() as sink:
        async with courier(store, email=email_on(sink.port)):
            row = await settled(store, key)
    assert row.status == "delivered"
    assert (row.channel_used, row.attempts, row.tried) == ("email", 1, [])
    assert row.provider_ref == "2.0.0 Ok: queued as Q1"
    assert row.delivered_at is not None
    [message] = sink.messages
    assert message["To"] == "ann@example.com"
    assert message["From"] == "news@shop.example"
    assert message["Subject"] == "We miss you"
    assert message["Message-ID"] == message_id(key)
    assert message_id(key) == "<customer-ann/run/silence-1/step-1@shop.example>"
    assert message[IDEMPOTENCY_HEADER] == key
    assert "It has been a while" in message.get_content()


@pytest.mark.parametrize(
    ("email", "rcpt_refusals", "why"),
    [
        ("bob@example.com", ["550 5.1.1 no such mailbox"], "550 5.1.1 no such mailbox"),
        (None, [], "no email address"),
        ("bob-at-example.com", [], "invalid email address"),
    ],
)
async def test_a_permanent_refusal_falls_back_to_the_next_preferred_channel(
    store: Store, email: str | None, rcpt_refusals: list[str], why: str
) -> None:
    await add_customer(store, "bob", email=email, preferred=["email", "push"])
    key = await send(store, "bob")
    with smtp_sink() as sink, webhook_sink() as push:
        sink.rcpt_refusals = list(rcpt_refusals)
        app = WebhookConfig(kind="webhook", url=push.url, secret=WEBHOOK_SECRET, policy=QUICK)
        async with courier(store, email=email_on(sink.port), push=app):
            row = await settled(store, key)
    assert (row.status, row.channel_used, row.tried) == ("delivered", "push", ["email"])
    assert why in (row.last_error or "")
    # Not retried: a retry would have been accepted (the refusal is used up).
    assert sink.messages == []
    assert push.keys() == {key: 1}


async def test_a_permanent_refusal_with_no_fallback_fails(store: Store) -> None:
    await add_customer(store, "cy", email="cy@example.com", preferred=["email", "sms"])
    key = await send(store, "cy")
    with smtp_sink() as sink:
        sink.rcpt_refusals = ["550 5.1.1 no such mailbox"]
        # sms is preferred but has no provider (nor the customer's consent).
        async with courier(store, email=email_on(sink.port)):
            row = await settled(store, key)
    assert (row.status, row.channel_used, row.attempts, row.tried) == (
        "failed",
        "email",
        1,
        ["email"],
    )
    assert "550" in (row.last_error or "")
    assert sink.messages == []


async def test_a_temporary_refusal_is_retried_and_delivered_once(store: Store) -> None:
    await add_customer(store, "dee", email="dee@example.com")
    keys = [await send(store, "dee", step=step) for step in (1, 2)]
    with smtp_sink() as sink:
        sink.refusals = ["451 4.3.0 try again later"] * 3
        async with courier(store, email=email_on(sink.port)):
            rows = [await settled(store, key) for key in keys]
    assert [row.status for row in rows] == ["delivered", "delivered"]
    # Three refusals among two messages: five attempts in all, two messages taken.
    assert sum(row.attempts for row in rows) == 5
    assert sink.message_ids() == {message_id(key): 1 for key in keys}


async def test_a_server_that_never_answers_times_out_and_is_retried(store: Store) -> None:
    await add_customer(store, "eve", email="eve@example.com")
    key = await send(store, "eve")
    async with silent_smtp_server() as port, courier(store, email=email_on(port)):
        row = (await eventually(lambda: outbox(store), lambda rows: rows[key].attempts >= 2))[key]
        assert row.status == "pending"
        assert "Timeout" in (row.last_error or "")
    # The server comes back on the same port: delivered, once.
    sink = SmtpSink(port)
    sink.start()
    try:
        async with courier(store, email=email_on(port)):
            row = await settled(store, key)
    finally:
        sink.stop()
    assert row.status == "delivered"
    assert row.attempts >= 3
    assert sink.message_ids() == {message_id(key): 1}
