"""The signed webhook channel, through the courier, against a real local HTTP server that
misbehaves on purpose: failures that may pass are retried under the same idempotency
key and the message is taken once; a 4xx is not retried; every request's signature
verifies with the ingest API's own verifier."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from activities.delivery.webhook import WebhookConfig
from activities.store import Store
from tests.delivery import (
    QUICK,
    WEBHOOK_SECRET,
    WebhookSink,
    add_customer,
    courier,
    send,
    settled,
)
from tests.delivery import webhook_sink as sink

TIMEOUT = timedelta(seconds=1)


# The provider is under test, not the store: conftest's store, on SQLite only.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def sms(receiver: WebhookSink, secret: str = WEBHOOK_SECRET) -> WebhookConfig:
    """The receiver as the sms provider, signing with ``secret``."""
    return WebhookConfig(
        kind="webhook", url=receiver.url, secret=secret, timeout=TIMEOUT, policy=QUICK
    )


async def test_a_delivery_is_signed_json_under_its_idempotency_key(store: Store) -> None:
    await add_customer(store, "ann", email="ann@example.com")
    key = await send(store, "ann", channel="sms")
    with sink() as receiver:
        async with courier(store, sms=sms(receiver)):
            row = await settled(store, key)
    assert (row.status, row.channel_used, row.attempts) == ("delivered", "sms", 1)
    assert row.provider_ref == "msg-1"
    [request] = receiver.requests
    assert request.idempotency_key == key
    assert request.signature_refused is None
    assert json.loads(request.body) == {
        "idempotency_key": key,
        "customer_id": "ann",
        "channel": "sms",
        "content_key": "silence/we miss you",
        "offer_id": None,
        "email": "ann@example.com",
        "subject": "We miss you",
        "text": "It has been a while. Come and see what is new.",
    }


@pytest.mark.parametrize("misbehaviour", [500, 503, 429, "close", "hang"])
async def test_what_may_pass_is_retried_under_the_same_key_and_taken_once(
    store: Store, misbehaviour: int | str
) -> None:
    await add_customer(store, "bob")
    key = await send(store, "bob", channel="sms")
    with sink() as receiver:
        receiver.script = [misbehaviour, misbehaviour]
        async with courier(store, sms=sms(receiver)):
            row = await settled(store, key)
    assert (row.status, row.attempts) == ("delivered", 3)
    assert receiver.keys() == {key: 3}
    assert all(request.signature_refused is None for request in receiver.requests)
    # A hung request arrived whole and only its answer was lost: the resends carried its
    # key, so the provider kept one message and answered with its id each time.
    assert receiver.taken == {key: 3 if misbehaviour == "hang" else 1}
    assert receiver.accepted == {key: "msg-1"}
    assert row.provider_ref == "msg-1"


@pytest.mark.parametrize("status", [400, 404, 422])
async def test_a_4xx_is_not_retried(store: Store, status: int) -> None:
    await add_customer(store, "cy")
    key = await send(store, "cy", channel="sms")
    with sink() as receiver:
        receiver.script = [status]
        async with courier(store, sms=sms(receiver)):
            row = await settled(store, key)
    assert (row.status, row.attempts, row.tried) == ("failed", 1, ["sms"])
    assert f"HTTP {status}" in (row.last_error or "")
    assert receiver.keys() == {key: 1}
    assert receiver.taken == {}


async def test_a_signature_the_provider_cannot_verify_is_refused(store: Store) -> None:
    await add_customer(store, "dee")
    key = await send(store, "dee", channel="sms")
    with sink() as receiver:
        async with courier(store, sms=sms(receiver, secret="not-the-providers-secret")):
            row = await settled(store, key)
    assert (row.status, row.attempts) == ("failed", 1)
    [request] = receiver.requests
    assert request.signature_refused == "signature does not match"
