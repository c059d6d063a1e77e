"""Holdouts: the share of customers a programme leaves alone, so that what it achieves
can be told from what would have happened anyway.

A held-back customer is treated in every way but the send: the programme decides,
the contact policy answers, the engagement is recorded as a ghost (no delivery, no
cost, no touch counted against the cap) and its outcome is filed by the same rules.
Treated and control customers are then measured alike.

Assignment is a hash of customer, programme and period: the same on replay, after a
restart and on every worker, with no state to keep. Each period draws afresh, so no
customer stays in a control group for ever.

Service (care tickets, thank-yous: anything outside the marketing contact policy) is
never held back unless the rules say so: withholding care from a customer who
complained measures nothing a retailer would act on. The engagement path decides what
is service and what goes out as a ghost (``engine.holds_back``).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Period(StrEnum):
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


class HoldoutRules(BaseModel):
    model_config = ConfigDict(frozen=True)

    # Share of customers held back, by programme name; a programme not named holds back
    # no one (``EQUATOR_JOURNEY__HOLDOUTS__SHARES='{"remediation": 0.1}'``).
    shares: dict[str, float] = Field(default_factory=lambda: {"remediation": 0.10, "winback": 0.10})
    # How long an assignment lasts: customers are drawn again each period.
    period: Period = Period.QUARTER
    # Hold back service (tickets, thank-yous) too, for programmes with a share.
    service: bool = False
    # Customers never held back: staff and seed accounts, a QA inbox, a demo's cast.
    exempt: frozenset[str] = frozenset()

    @field_validator("shares")
    @classmethod
    def _shares_in_range(cls, shares: dict[str, float]) -> dict[str, float]:
        for name, share in shares.items():
            if not 0 <= share < 1:
                raise ValueError(f"the holdout share of {name} must be in [0, 1), not {share}")
        return shares


def period_of(at: datetime, period: Period) -> str:
    """The period ``at`` falls in, as it names the draw: ``2026``, ``2026-Q4``, ``2026-11``."""
    match period:
        case Period.YEAR:
            return f"{at.year}"
        case Period.QUARTER:
            return f"{at.year}-Q{(at.month - 1) // 3 + 1}"
        case Period.MONTH:
            return f"{at.year}-{at.month:02d}"


def draw(customer_id: str, programme: str, period: str) -> float:
    """Where the customer falls in [0, 1) for this programme and period: uniform, stable,
    independent across programmes and periods."""
    digest = hashlib.sha256(f"{customer_id}\x1f{programme}\x1f{period}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def held_back_from(customer_id: str, programme: str, at: datetime, rules: HoldoutRules) -> bool:
    """Whether the customer is in the programme's control group at ``at``."""
    share = rules.shares.get(programme, 0.0)
    if share == 0 or customer_id in rules.exempt:
        return False
    return draw(customer_id, programme, period_of(at, rules.period)) < share
