"""Who a simulation runs: a population's own lives and how its members answer what
reaches them (``starter/personas.py``, ``starter/history.py``), on the simulation's
time axis (``EPOCH``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from activities.store import Engagement

# Every run starts here (a Monday, midnight UTC), whatever the day it runs: quiet hours,
# holdout periods and weeks fall alike in every run of a seed.
EPOCH = datetime(2040, 1, 2, tzinfo=UTC)


@dataclass(frozen=True)
class Act:
    """Something a member does, ``day`` days into the run."""

    day: float
    customer_id: str
    type: str
    event_id: str
    properties: dict[str, Any]


class Population(Protocol):
    """Who is simulated: their own lives, and how they answer what reaches them."""

    def groups(self) -> dict[str, int]:
        """Members per group (persona), for the summary."""
        ...

    def lives(self, days: float, seed: int) -> Iterable[Act]:
        """What every member does of their own accord within ``days``."""
        ...

    def answer(self, engagement: Engagement, day: float, seed: int) -> Iterable[Act]:
        """What the member does about an engagement sent to them, read on ``day`` (the
        first tick after the send)."""
        ...
