"""Shopify's webhooks, as Shopify documents them: how a delivery is verified, and what
each topic becomes. Pure: the route is ``service/commerce.py``.

- ``orders/paid``, and ``orders/create`` for an order paid as it is created: a purchase,
  its amount the order's total, its category the costliest line's product type (when
  the line carries one). Both are named by the order (``shopify:<shop>:order:<id>``): the
  same order, created paid then paid, is one purchase.
- ``refunds/create``: a return of what was refunded (its successful refund transactions,
  else its lines' subtotals), for the customer the order was filed under. Named by the
  refund.
- ``customers/update``: the profile (email) and email consent as Shopify holds it. Named
  by the delivery's ``X-Shopify-Webhook-Id``: each update is its own event, a redelivery
  of it the same one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from service.tracking import event_id, is_identifier, main_category, money
from workflows.events import CustomerEvent, EventType, customer_event_adapter, describe_errors

TOPICS = ("orders/create", "orders/paid", "refunds/create", "customers/update")
# An order is paid, for a purchase, once Shopify says any of these.
PAID = {"paid", "partially_paid", "partially_refunded", "refunded"}


class ShopifyError(ValueError):
    """The delivery is not one Equator can take; the reason says why."""


def verify(body: bytes, signature: str | None, secrets: Sequence[str]) -> bool:
    """Shopify signs the raw body: base64 of its HMAC-SHA256 under the app's secret. Any
    of the source's secrets may match (two during a rotation); compared in constant time."""
    if not signature:
        return False
    given = signature.encode()
    return any(
        hmac.compare_digest(
            base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()), given
        )
        for secret in secrets
    )


@dataclass(frozen=True)
class Delivery:
    topic: str
    shop: str
    webhook_id: str
    payload: Mapping[str, Any]


@dataclass(frozen=True)
class Ignored:
    """Taken and acknowledged, but nothing for a journey (an unpaid order, a guest)."""

    reason: str


@dataclass(frozen=True)
class Refund:
    """A return whose customer is the order's: the route finds who that was."""

    order_event_id: str
    event: dict[str, Any]


def to_events(delivery: Delivery) -> list[CustomerEvent] | Refund | Ignored:
    """What the delivery becomes; ``ShopifyError`` when its payload is not the topic's."""
    match delivery.topic:
        case "orders/create" | "orders/paid":
            return _order(delivery)
        case "refunds/create":
            return _refund(delivery)
        case "customers/update":
            return _customer(delivery)
    raise ShopifyError(f"topic {delivery.topic!r}: Equator takes {', '.join(TOPICS)}")


def order_event_id(shop: str, order_id: Any) -> str:
    found = event_id(f"shopify:{shop}:order:{order_id}")
    assert found is not None
    return found


def _order(delivery: Delivery) -> list[CustomerEvent] | Ignored:
    order = delivery.payload
    if order.get("financial_status") not in PAID and delivery.topic != "orders/paid":
        return Ignored(f"order not paid yet ({order.get('financial_status')})")
    customer = _customer_id(order.get("customer"))
    if customer is None:
        return Ignored("a guest's order (no customer)")
    properties = {
        "amount": money(order.get("total_price")),
        "category": main_category(order.get("line_items"), "product_type"),
        "order_id": _text_id(order.get("id")),
    }
    at = order.get("processed_at") or order.get("created_at")
    return [
        _event(
            order_event_id(delivery.shop, order.get("id")),
            customer,
            EventType.PURCHASE,
            at,
            properties,
        )
    ]


def _refund(delivery: Delivery) -> Refund | Ignored:
    refund = delivery.payload
    refunded = [
        money(transaction.get("amount"))
        for transaction in refund.get("transactions") or []
        if isinstance(transaction, dict)
        and transaction.get("kind") == "refund"
        and transaction.get("status") == "success"
    ]
    if not refunded:
        refunded = [
            money(line.get("subtotal"))
            for line in refund.get("refund_line_items") or []
            if isinstance(line, dict)
        ]
    amounts = [amount for amount in refunded if amount is not None]
    if not amounts:
        return Ignored("nothing was refunded")
    lines = [
        line.get("line_item")
        for line in refund.get("refund_line_items") or []
        if isinstance(line, dict)
    ]
    properties = {
        "amount": sum(amounts, Decimal(0)),
        "category": main_category(lines, "product_type"),
        "order_id": _text_id(refund.get("order_id")),
    }
    name = event_id(f"shopify:{delivery.shop}:refund:{refund.get('id')}")
    assert name is not None
    event = {
        "event_id": name,
        "type": EventType.RETURN.value,
        "occurred_at": refund.get("processed_at") or refund.get("created_at"),
        "properties": {field: value for field, value in properties.items() if value is not None},
    }
    return Refund(order_event_id(delivery.shop, refund.get("order_id")), event)


def refund_event(refund: Refund, customer_id: str) -> CustomerEvent:
    """The return, now that the order's customer is known."""
    return _validated({**refund.event, "customer_id": customer_id})


def _customer(delivery: Delivery) -> list[CustomerEvent] | Ignored:
    customer = delivery.payload
    customer_id = _customer_id(customer)
    if customer_id is None:
        return Ignored("no customer id")
    at = customer.get("updated_at") or customer.get("created_at")
    named = event_id(f"shopify:{delivery.shop}:webhook:{delivery.webhook_id}")
    assert named is not None
    events = []
    if customer.get("email"):
        profile = {"email": customer["email"]}
        events.append(_event(named, customer_id, EventType.PROFILE_UPDATED, at, profile))
    consent = customer.get("email_marketing_consent")
    state = consent.get("state") if isinstance(consent, dict) else None
    if state in ("subscribed", "unsubscribed"):
        granted = {"channel": "email", "granted": state == "subscribed"}
        events.append(
            _event(f"{named}:consent", customer_id, EventType.CONSENT_CHANGED, at, granted)
        )
    return events or Ignored("nothing Equator keeps changed")


def _event(
    name: str, customer_id: str, type: EventType, at: Any, properties: Mapping[str, Any]
) -> CustomerEvent:
    return _validated(
        {
            "event_id": name,
            "customer_id": customer_id,
            "type": type.value,
            "occurred_at": at,
            "properties": {
                field: value for field, value in properties.items() if value is not None
            },
        }
    )


def _validated(raw: Mapping[str, Any]) -> CustomerEvent:
    try:
        return customer_event_adapter.validate_python(raw)
    except ValidationError as err:
        raise ShopifyError(describe_errors(err)) from None


def _customer_id(customer: Any) -> str | None:
    if not isinstance(customer, dict):
        return None
    found = _text_id(customer.get("id"))
    return found if found is not None and is_identifier(found) else None


def _text_id(value: Any) -> str | None:
    """Shopify's ids are integers, or their text in newer payloads: text either way."""
    if isinstance(value, bool) or value is None:
        return None
    return str(value)
