"""The tracking spec: its rules as pure functions, then the official Segment client,
unchanged, feeding journeys through the API over real HTTP (dev server, worker, SQLite and
Postgres), an API restart in the middle of its flush included."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
import segment.analytics as segment
from sqlmodel import col, func, select
from temporalio.testing import WorkflowEnvironment

from activities.store import AnonymousEvent, IngestReceipt
from runtime.credentials import new_key
from runtime.settings import EventMapping, TrackingSettings
from runtime.telemetry import TelemetrySettings
from runtime.worker import running_worker
from service.serving import running_api
from service.tracking import (
    EVENTS,
    Invalid,
    Message,
    Unmapped,
    event_id,
    identify_events,
    occurred_at,
    track_events,
)
from tests.conftest import postgres_database
from tests.ingest import TILL_KEY, Ingest, ingest_api, settings_for
from tests.servers import eventually, free_port

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def message(**fields: Any) -> Message:
    return Message.model_validate({"type": "track", "messageId": "m-1", **fields})


# The rules, without a server.


def test_the_clients_clock_is_corrected_by_how_far_off_it_was_when_it_sent() -> None:
    # The client's clock runs 10 minutes fast: it says it sent at 12:10, it is 12:00.
    fast = message(timestamp="2026-11-30T12:05:00Z", sentAt="2026-11-30T12:10:00Z")
    assert occurred_at(fast, None, NOW) == NOW - timedelta(minutes=5)
    # originalTimestamp, when given, is the client's time of the call; the batch's sentAt
    # stands for a message without one.
    both = message(originalTimestamp="2026-11-30T12:07:00Z", timestamp="2026-11-30T12:00:00Z")
    assert occurred_at(both, datetime(2026, 11, 30, 12, 10, tzinfo=UTC), NOW) == NOW - timedelta(
        minutes=3
    )
    # Nothing says how far off the clock is: its time stands; no time at all: arrival.
    assert occurred_at(message(timestamp="2026-11-30T09:00:00Z"), None, NOW) == NOW - timedelta(
        hours=3
    )
    assert occurred_at(message(), None, NOW) == NOW
    # No offset means UTC, as the spec's libraries mean it.
    assert message(timestamp="2026-11-30T09:00:00").timestamp == NOW - timedelta(hours=3)


def test_an_order_is_a_purchase_of_its_revenue_and_its_costliest_lines_category() -> None:
    order = message(
        event="Order Completed",
        properties={
            "order_id": 50314,
            "revenue": 25.004,
            "total": 27.5,
            "products": [
                {"category": "socks", "price": 4.5, "quantity": 2},
                {"category": "shoes", "price": 16},
            ],
        },
    )
    [purchase] = track_events(order, "c1", NOW, EVENTS)  # type: ignore[misc]
    assert purchase.type == "purchase"
    assert purchase.properties.model_dump(exclude_none=True) == {
        "amount": Decimal("25.00"),
        "category": "shoes",
        "order_id": "50314",
    }
    assert (purchase.event_id, purchase.customer_id, purchase.occurred_at) == ("m-1", "c1", NOW)


def test_what_each_name_becomes_is_data_and_configurable() -> None:
    unsubscribed = track_events(message(event="Unsubscribed"), "c1", NOW, EVENTS)
    assert isinstance(unsubscribed, list)
    assert unsubscribed[0].properties.model_dump() == {"channel": "email", "granted": False}
    opened = track_events(
        message(event="Email Opened", properties={"email_id": "e9"}), "c1", NOW, EVENTS
    )
    assert isinstance(opened, list)
    assert opened[0].properties.model_dump(exclude_none=True) == {"message_id": "e9"}
    own = message(event="Purchase Made", properties={"amount": "9.99"})
    assert track_events(own, "c1", NOW, EVENTS) == Unmapped("Purchase Made")
    mapped = EVENTS | {"Purchase Made": EventMapping.model_validate("purchase")}
    [purchase] = track_events(own, "c1", NOW, mapped)  # type: ignore[misc]
    assert purchase.properties.model_dump(exclude_none=True) == {"amount": Decimal("9.99")}
    # With values set (the README's example); what the type does not know is left out.
    left = EventMapping.model_validate(
        {"type": "consent_changed", "fixed": {"channel": "email", "granted": False}}
    )
    newsletter = message(event="Newsletter Left", properties={"list": "weekly"})
    [withdrawn] = track_events(newsletter, "c1", NOW, {"Newsletter Left": left})  # type: ignore[misc]
    assert withdrawn.properties.model_dump() == {"channel": "email", "granted": False}
    # A required value missing refuses the message, naming it.
    refused = track_events(message(event="Order Completed"), "c1", NOW, EVENTS)
    assert isinstance(refused, Invalid)
    assert "amount" in refused.reason


def test_an_identify_updates_the_profile_and_states_consent() -> None:
    identify = Message.model_validate(
        {
            "type": "identify",
            "messageId": "m-2",
            "userId": "c1",
            "traits": {"email": "c1@example.com", "unsubscribed": True, "name": "Ann"},
            "context": {"timezone": "Europe/Paris"},
        }
    )
    profile, consent = identify_events(identify, "c1", NOW)  # type: ignore[misc]
    assert profile.properties.model_dump(exclude_none=True) == {
        "email": "c1@example.com",
        "timezone": "Europe/Paris",
    }
    assert (consent.event_id, consent.properties.model_dump()) == (
        "m-2:consent",
        {"channel": "email", "granted": False},
    )


def test_a_message_id_equator_cannot_take_is_replaced_by_its_digest_always_the_same() -> None:
    assert event_id("ajs-1f2e") == "ajs-1f2e"
    odd = event_id("id with spaces/and slashes")
    assert odd == event_id("id with spaces/and slashes")
    assert odd is not None
    assert odd.startswith("seg-")


# Over HTTP, with the official client.


@dataclass
class Stack:
    api: Ingest
    metrics: str


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
async def stack(
    request: pytest.FixtureRequest,
    dev_env: WorkflowEnvironment,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stack]:
    async with AsyncExitStack() as opened:
        if request.param == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('tracking') / 'equator.db'}"
        else:
            url = await opened.enter_async_context(postgres_database())
        key = new_key()
        tracking = TrackingSettings.model_validate({"events": {"Purchase Made": "purchase"}})
        address = dev_env.client.service_client.config.target_host
        settings = settings_for(address, url, key, tracking=tracking)
        metrics = f"127.0.0.1:{free_port()}"
        settings = settings.model_copy(
            update={"telemetry": TelemetrySettings(metrics_address=metrics)}
        )
        await opened.enter_async_context(running_worker(dev_env.client, settings))
        api = await opened.enter_async_context(ingest_api(settings, key))
        yield Stack(api, f"http://{metrics}/metrics")


@asynccontextmanager
async def official_client(url: str, key: str) -> AsyncIterator[segment.Client]:
    """The Segment library as a retailer's code uses it, pointed at Equator. Its calls
    that wait (flush, shutdown) run in a thread: the API serves from this event loop."""
    errors: list[Exception] = []
    client = segment.Client(
        key,
        host=url,
        gzip=True,
        on_error=lambda error, _: errors.append(error),
        upload_interval=0.05,
    )
    try:
        yield client
    finally:
        await asyncio.to_thread(client.shutdown)
    assert errors == []


async def state_of(api: Ingest, customer: str, applied: int) -> dict[str, Any]:
    answer = await eventually(
        lambda: api.http.get(f"/v1/customers/{customer}/journey"),
        lambda r: r.status_code == 200 and r.json()["state"]["events_applied"] >= applied,
    )
    state: dict[str, Any] = answer.json()["state"]
    return state


async def test_the_official_client_feeds_journeys_unchanged(stack: Stack) -> None:
    api = stack.api
    ann, visitor = f"ann-{uuid.uuid4().hex[:6]}", f"anon-{uuid.uuid4().hex[:6]}"
    async with official_client(api.url, api.key) as client:
        # Before she logs in: a visitor, held.
        client.track(anonymous_id=visitor, event="Product Viewed", properties={"category": "hats"})
        await asyncio.to_thread(client.flush)
        client.identify(
            ann,
            {"email": "ann@example.com", "email_consent": True},
            context={"timezone": "Europe/Rome"},
            anonymous_id=visitor,
        )
        client.track(
            ann,
            "Order Completed",
            {
                "order_id": "o-1",
                "revenue": 42.5,
                "products": [{"category": "coats", "price": 42.5}],
            },
        )
        client.track(ann, "Purchase Made", {"amount": "10.00", "category": "socks"})
        client.track(ann, "Wishlist Added", {"product_id": "p-9"})
        client.page(ann, name="Home")
        await asyncio.to_thread(client.flush)

    # browse (released), profile, consent, purchase, own purchase, page; the wishlist is
    # unmapped and kept in the ledger only.
    state = await state_of(api, ann, 6)
    assert state["events_applied"] == 6
    assert state["profile"]["order_count"] == 2
    assert state["profile"]["email"] == "ann@example.com"
    assert state["profile"]["timezone"] == "Europe/Rome"
    ledger = {row.type: row for row in await api.ledger(ann)}
    assert ledger["unmapped"].properties == {"name": "Wishlist Added"}
    assert ledger["unmapped"].source == "pos"
    assert {"app_browse", "purchase", "profile_updated", "consent_changed"} <= ledger.keys()
    async with api.store.reading() as session:
        held = await session.exec(select(func.count()).select_from(AnonymousEvent))
        assert held.one() == 0
    async with httpx.AsyncClient() as http:
        scraped = (await http.get(stack.metrics)).text
    assert 'event="Wishlist Added"' in scraped
    assert "equator_tracking_unmapped_total" in scraped


async def test_a_resent_batch_changes_nothing_and_bad_messages_drop_alone(stack: Stack) -> None:
    api = stack.api
    bob = f"bob-{uuid.uuid4().hex[:6]}"
    sent_at = datetime.now(UTC).isoformat()
    batch = {
        "batch": [
            {"type": "track", "messageId": f"{bob}-1", "userId": bob, "event": "Order Completed",
             "properties": {"total": "12.00"}, "timestamp": sent_at},
            {"type": "track", "messageId": f"{bob}-2", "event": "Order Completed"},
            {"type": "track", "messageId": f"{bob}-3", "userId": bob, "event": "Order Completed"},
            "not a message",
        ],
        "sentAt": sent_at,
    }  # fmt: skip
    basic = {"Authorization": "Basic " + base64.b64encode(f"{api.key}:".encode()).decode()}
    first = await api.http.post("/v1/batch", json=batch, headers=basic)
    assert first.status_code == 200
    answer = first.json()
    assert (answer["success"], answer["accepted"], answer["invalid"]) == (True, 1, 3)
    assert [d["index"] for d in answer["dropped"]] == [1, 2, 3]
    assert "neither userId nor anonymousId" in answer["dropped"][0]["reason"]
    # gzip, the key in the body instead: the same batch is a duplicate.
    body = gzip.compress(json.dumps(batch | {"writeKey": api.key}).encode())
    again = await api.http.post(
        "/v1/batch",
        content=body,
        headers={
            "Content-Encoding": "gzip",
            "Content-Type": "application/json",
            "Authorization": "",
        },
    )
    assert again.status_code == 200
    assert again.json()["duplicate"] == 1
    await state_of(api, bob, 1)
    async with api.store.reading() as session:
        receipts = await session.exec(
            select(func.count())
            .select_from(IngestReceipt)
            .where(col(IngestReceipt.customer_id) == bob)
        )
        assert receipts.one() == 1


async def test_the_spec_s_limits_and_keys_are_answered_as_its_clients_expect(stack: Stack) -> None:
    api = stack.api
    basic = {"Authorization": "Basic " + base64.b64encode(f"{api.key}:".encode()).decode()}
    assert (await api.http.post("/v1/batch", content=b"{", headers=basic)).status_code == 400
    assert (await api.http.post("/v1/batch", json={"batch": 3}, headers=basic)).status_code == 400
    big = {
        "batch": [{"type": "track", "userId": "x", "event": "e", "properties": {"p": "x" * 30_000}}]
        * 20
    }
    assert (await api.http.post("/v1/batch", json=big, headers=basic)).status_code == 413
    bomb = gzip.compress(b" " * 5_000_000)
    inflated = await api.http.post(
        "/v1/batch", content=bomb, headers=basic | {"Content-Encoding": "gzip"}
    )
    assert inflated.status_code == 413
    nobody = await api.http.post(
        "/v1/track", json={"userId": "x", "event": "e"}, headers={"Authorization": ""}
    )
    assert nobody.status_code == 401
    assert nobody.headers["WWW-Authenticate"].startswith("Basic")
    reporting = {"Authorization": "Basic " + base64.b64encode(b"eqk_test-reporting:").decode()}
    refused = await api.http.post(
        "/v1/track", json={"userId": "x", "event": "e"}, headers=reporting
    )
    assert refused.status_code == 403
    till = {"Authorization": "Basic " + base64.b64encode(f"{TILL_KEY}:".encode()).decode()}
    single = await api.http.post(
        "/v1/track",
        json={"userId": f"t-{uuid.uuid4().hex[:6]}", "event": "Signed Up"},
        headers=till,
    )
    assert single.json() == {"success": True, "unmapped": 1}


async def test_an_api_restart_in_the_middle_of_a_flush_loses_and_repeats_nothing(
    stack: Stack,
) -> None:
    """The client's own retries carry its batches over the restart; each event is applied
    once."""
    api = stack.api
    port = free_port()
    settings = api.settings.model_copy(
        update={"ingest": api.settings.ingest.model_copy(update={"port": port})}
    )
    customers = [f"cara-{uuid.uuid4().hex[:6]}" for _ in range(10)]
    url = f"http://127.0.0.1:{port}"
    async with official_client(url, api.key) as client:
        async with running_api(settings):
            for n in range(30):
                for who in customers:
                    client.track(
                        who, "Order Completed", {"revenue": n + 1, "order_id": f"{who}-{n}"}
                    )
            flushing = asyncio.create_task(asyncio.to_thread(client.flush))
            await eventually(lambda: api.ledger(customers[0]), lambda rows: len(rows) > 0)
        # The API is down and the client retries; then it is up again on the same port.
        async with running_api(settings):
            await asyncio.wait_for(flushing, timeout=60)
    for who in customers:
        state = await state_of(api, who, 30)
        assert state["events_applied"] == 30
        assert state["profile"]["order_count"] == 30
        assert len(await api.ledger(who)) == 30
