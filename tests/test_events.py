"""The event contract as plain functions: what a source may send, and why not."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from workflows.events import describe_errors, parse_event


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"type": "purchase"}, "event_id: Field required"),
        (
            {
                "event_id": "e",
                "customer_id": "c",
                "type": "teleport",
                "occurred_at": "2026-01-01T00:00:00Z",
            },
            "type: must be one of: purchase, return,",
        ),
        (
            {
                "event_id": "e",
                "customer_id": "c",
                "type": "purchase",
                "occurred_at": "2026-01-01T00:00:00",
                "properties": {"amount": 1},
            },
            "occurred_at: Input should have timezone info",
        ),
        (
            {
                "event_id": "e",
                "customer_id": "c",
                "type": "purchase",
                "occurred_at": "2026-01-01T00:00:00Z",
                "properties": {"amount": -1},
            },
            "properties.amount: Input should be greater than or equal to 0",
        ),
        (
            # Cannot even be moved to UTC: refused before anything tries.
            {
                "event_id": "e",
                "customer_id": "c",
                "type": "app_browse",
                "occurred_at": "0001-01-01T00:00:00+05:00",
            },
            "occurred_at: Value error, must lie between 1970 and 2999",
        ),
    ],
)
def test_invalid_events_are_described_by_field(data: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_event(data)
    assert fragment in describe_errors(caught.value)
