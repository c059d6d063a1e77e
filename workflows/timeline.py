"""The journey's timeline: what happened to the customer and why, newest last, bounded."""

from __future__ import annotations

from datetime import datetime
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
