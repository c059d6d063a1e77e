"""The journey's timeline: what happened to the customer and why, newest last, bounded."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from pydantic import BaseModel


class TimelineEntry(BaseModel):
    at: datetime
    kind: str
    summary: str
    event_id: str | None = None
    # The programme that wrote it, if one did.
    programme: str | None = None
    # The engagement it is about ("silence-1/step-2"), if any.
    engagement: str | None = None


def append(timeline: list[TimelineEntry], entry: TimelineEntry, length: int) -> None:
    timeline.append(entry)
    del timeline[:-length]


def money(amount: Decimal) -> str:
    return f"${amount:,.2f}"


def when(at: datetime) -> str:
    """A moment in a summary, to the second: a step due at 10:07:32 does not read as
    due at 10:07."""
    return f"{at:%Y-%m-%d %H:%M:%S} UTC"


def lasting(span: timedelta) -> str:
    """A length of time in a summary, in its two largest units: "10 days", "2 days 3
    hours", "45 minutes"."""
    seconds = int(span.total_seconds())
    parts = []
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60), ("second", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}{'s' if count > 1 else ''}")
    return " ".join(parts[:2]) or "0 seconds"
