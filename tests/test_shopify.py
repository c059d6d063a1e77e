"""Shopify's webhooks: payloads shaped as Shopify documents them (fixtures written here,
one per topic, in tests/fixtures/shopify), signed as Shopify signs them, sent over real
HTTP to the API with a dev server, a worker and SQLite or Postgres: verified, named by
what they are (so redeliveries are duplicates), applied once; tampered ones refused."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from service.shopify import Delivery, Ignored, Refund, refund_event, to_events, verify
from tests.ingest import WEBHOOK_SECRET, Ingest
from tests.servers import eventually

FIXTURES = Path(__file__).parent / "fixtures" / "shopify"
SHOP = "north-knits.myshopify.com"


def fixture(topic: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / f"{topic.replace('/', '_')}.json").read_text())
    return loaded


def signature(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


# The mapping, without a server.


def test_a_signature_is_checked_against_each_secret_in_constant_time() -> None:
    body = json.dumps(fixture("orders/paid")).encode()
    assert verify(body, signature(body), ["old-secret", WEBHOOK_SECRET])
    assert not verify(body + b" ", signature(body), [WEBHOOK_SECRET])
    assert not verify(body, signature(body, "another"), [WEBHOOK_SECRET])
    assert not verify(body, None, [WEBHOOK_SECRET])
    assert not verify(body, signature(body), [])


def test_a_paid_order_is_one_purchase_however_it_arrives() -> None:
    created = to_events(Delivery("orders/create", SHOP, "w1", fixture("orders/create")))
    paid = to_events(Delivery("orders/paid", SHOP, "w2", fixture("orders/paid")))
    assert isinstance(created, list)
    assert isinstance(paid, list)
    [purchase] = created
    assert [e.event_id for e in paid] == [purchase.event_id]
    assert purchase.event_id == f"shopify:{SHOP}:order:820982911946154508"
    assert purchase.customer_id == "706405506930370084"
    assert purchase.properties.model_dump(exclude_none=True) == {
        "amount": Decimal("119.85"),
        "order_id": "820982911946154508",
    }
    unpaid = fixture("orders/create") | {"financial_status": "pending"}
    assert to_events(Delivery("orders/create", SHOP, "w3", unpaid)) == Ignored(
        "order not paid yet (pending)"
    )
    guest = {k: v for k, v in fixture("orders/paid").items() if k != "customer"}
    assert isinstance(to_events(Delivery("orders/paid", SHOP, "w4", guest)), Ignored)


def test_lines_that_carry_a_product_type_give_the_costliest_ones_as_category() -> None:
    order = copy.deepcopy(fixture("orders/paid"))
    order["line_items"][0]["product_type"] = "scarves"
    order["line_items"][1]["product_type"] = "boots"
    [purchase] = to_events(Delivery("orders/paid", SHOP, "w5", order))  # type: ignore[misc]
    assert purchase.properties.model_dump(exclude_none=True)["category"] == "boots"


def test_a_refund_is_a_return_of_what_was_refunded_for_the_orders_customer() -> None:
    refund = to_events(Delivery("refunds/create", SHOP, "w6", fixture("refunds/create")))
    assert isinstance(refund, Refund)
    assert refund.order_event_id == f"shopify:{SHOP}:order:820982911946154508"
    made = refund_event(refund, "706405506930370084")
    assert made.type == "return"
    assert made.properties.model_dump(exclude_none=True) == {
        "amount": Decimal("87.19"),
        "order_id": "820982911946154508",
    }


def test_a_customer_update_is_their_email_and_email_consent() -> None:
    update = to_events(Delivery("customers/update", SHOP, "w7", fixture("customers/update")))
    assert isinstance(update, list)
    profile, consent = update
    assert profile.properties.model_dump(exclude_none=True) == {"email": "jon.snow@example.org"}
    assert consent.properties.model_dump() == {"channel": "email", "granted": False}
    assert (profile.event_id, consent.event_id) == (
        f"shopify:{SHOP}:webhook:w7",
        f"shopify:{SHOP}:webhook:w7:consent",
    )


# Over HTTP.


async def deliver(
    api: Ingest, topic: str, payload: dict[str, Any], webhook_id: str, signed: bytes | None = None
) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = {
        "X-Shopify-Hmac-Sha256": signature(signed if signed is not None else body),
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": SHOP,
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Triggered-At": "2026-11-28T14:15:03.123Z",
        "Content-Type": "application/json",
        "Authorization": "",
    }
    return await api.http.post("/v1/webhooks/pos/shopify", content=body, headers=headers)


def for_a_new_customer(payload: dict[str, Any], customer: str, order: str) -> dict[str, Any]:
    """The fixture for a customer and order of this test's own (the servers are shared)."""
    copied = copy.deepcopy(payload)
    if "customer" in copied:
        copied["customer"]["id"] = customer
    if "order_id" in copied:
        copied["order_id"] = order
        for transaction in copied["transactions"]:
            transaction["order_id"] = order
    elif "line_items" in copied:
        copied["id"] = order
    else:
        copied["id"] = customer
    return copied


async def test_each_topic_is_verified_deduplicated_and_applied_once(api: Ingest) -> None:
    customer, order = str(uuid.uuid4().int % 10**18), str(uuid.uuid4().int % 10**18)
    created = for_a_new_customer(fixture("orders/create"), customer, order)
    first = await deliver(api, "orders/create", created, "w-create")
    assert first.status_code == 200
    assert first.json()["status"] == "accepted"
    # Shopify redelivers, and then says the order was paid: the same purchase.
    assert (await deliver(api, "orders/create", created, "w-create")).json()[
        "status"
    ] == "duplicate"
    paid = for_a_new_customer(fixture("orders/paid"), customer, order)
    assert (await deliver(api, "orders/paid", paid, "w-paid")).json()["status"] == "duplicate"

    refund = for_a_new_customer(fixture("refunds/create"), customer, order)
    refunded = await deliver(api, "refunds/create", refund, "w-refund")
    assert refunded.json()["events"][0]["type"] == "return"
    update = for_a_new_customer(fixture("customers/update"), customer, order)
    assert (await deliver(api, "customers/update", update, "w-update")).json()[
        "status"
    ] == "accepted"

    answer = await eventually(
        lambda: api.http.get(f"/v1/customers/{customer}/journey"),
        lambda r: r.status_code == 200 and r.json()["state"]["events_applied"] >= 4,
    )
    state = answer.json()["state"]
    assert state["events_applied"] == 4
    assert state["profile"]["order_count"] == 1
    assert state["profile"]["email"] == "jon.snow@example.org"
    assert state["profile"]["consent"]["email"] is False
    ledger = sorted(row.type for row in await api.ledger(customer))
    assert ledger == ["consent_changed", "profile_updated", "purchase", "return"]


async def test_tampered_unsigned_or_unknown_deliveries_are_refused(api: Ingest) -> None:
    payload = fixture("orders/paid")
    tampered = copy.deepcopy(payload)
    tampered["total_price"] = "0.01"
    original = json.dumps(payload).encode()
    assert (await deliver(api, "orders/paid", tampered, "w-t", signed=original)).status_code == 401
    body = json.dumps(payload).encode()
    unsigned = await api.http.post(
        "/v1/webhooks/pos/shopify", content=body, headers={"X-Shopify-Topic": "orders/paid"}
    )
    assert unsigned.status_code == 401
    # A source with no webhook secret takes no delivery, signed or not.
    elsewhere = await api.http.post(
        "/v1/webhooks/till/shopify",
        content=body,
        headers={"X-Shopify-Hmac-Sha256": signature(body)},
    )
    assert elsewhere.status_code == 401
    odd = await deliver(api, "products/update", {"id": 1}, "w-odd")
    assert odd.status_code == 422
    assert "orders/paid" in odd.json()["detail"]
    unknown_order = for_a_new_customer(fixture("refunds/create"), "1", "999")
    ignored = await deliver(api, "refunds/create", unknown_order, "w-r")
    assert ignored.json() == {
        "status": "ignored",
        "reason": "the refunded order never reached Equator",
    }
