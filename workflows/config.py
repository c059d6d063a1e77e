"""Journey configuration: the windows and budgets every journey runs by.

It travels inside the workflow input (workflow code reads no environment), so a journey
keeps the configuration it was started with across continue-as-new. The starter builds
it from ``EQUATOR_JOURNEY__*`` environment variables (see ``runtime/settings.py``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from workflows.alive import AliveModel
from workflows.bandit import LearningRules
from workflows.cohorts import CohortRules
from workflows.contact import ContactPolicy
from workflows.holdout import HoldoutRules
from workflows.offers import AboveTheLine


class AlarmGrid(BaseModel):
    """The instants a journey may wake at by itself: ``anchor`` plus whole multiples of
    ``every``; a deadline between two waits for the next. For the simulator, which sets
    it: journeys due at nearly the same time wake together, so the time-skipping server
    serves them in one step rather than one after another; and, with the anchor just
    before the driver's ticks, none wakes in the seconds after a tick, when the real
    time a busy worker takes would decide its order against the tick's events."""

    model_config = ConfigDict(frozen=True)

    every: timedelta = Field(gt=timedelta(0))
    anchor: datetime

    def next_at(self, at: datetime) -> datetime:
        """The first instant of the grid at or after ``at``."""
        steps = -((self.anchor - at) // self.every)  # a ceiling, in whole microseconds
        return self.anchor + steps * self.every


class JourneyConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    # Flatline: silence is k times the customer's median purchase gap, within bounds.
    silence_multiplier: float = Field(default=3.0, gt=0)
    silence_min: timedelta = timedelta(days=14)
    silence_max: timedelta = timedelta(days=180)
    # Silence window for a customer whose cadence is not known yet (fewer than 2 purchases).
    silence_default: timedelta = timedelta(days=30)
    # How long each ladder step waits for a positive response, unless the step says.
    response_window: timedelta = timedelta(days=5)
    # After an exhausted ladder: how long before the dormant check-in.
    dormant_cadence: timedelta = timedelta(days=90)

    # Per ladder run, a customer may cost at most base + share * lifetime value, capped.
    cost_ceiling_base: Decimal = Decimal("5.00")
    cost_ceiling_ltv_share: Decimal = Decimal("0.05")
    cost_ceiling_max: Decimal = Decimal("150.00")

    # Bounded state carried across continue-as-new.
    dedupe_window: int = Field(default=500, ge=10, le=5_000)
    timeline_length: int = Field(default=50, ge=5, le=500)
    # Continue as new after this many events in one run, even if the server has not
    # suggested it yet (it does at 4,096 history events); far below 10,000 signals a run.
    max_events_per_run: int = Field(default=1_000, ge=1, le=5_000)

    # Consent, frequency caps and quiet hours, for every engagement (workflows/contact.py).
    contact: ContactPolicy = ContactPolicy()
    # Recency, frequency and value thresholds of the cohorts (workflows/cohorts.py).
    cohorts: CohortRules = CohortRules()
    # Cross-sell and threshold nudges for customers above the line (workflows/offers.py).
    above_the_line: AboveTheLine = AboveTheLine()
    # The programmes to run, by name (``workflows/registry.py``); None runs them all.
    # Remediation always runs: it keeps the silence clock.
    enabled: frozenset[str] | None = None
    # Each programme's own rules, by programme name, over the defaults its module gives
    # (``EQUATOR_JOURNEY__PROGRAMMES__WELCOME__ACTIVATION_AFTER=P10D``).
    programmes: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # A purchase this soon after a programme's last touch is credited to that touch
    # (each programme its own last touch): the customer recovered, and the revenue.
    attribution_window: timedelta = timedelta(days=7)
    # The share of customers each programme holds back as a control group
    # (workflows/holdout.py).
    holdouts: HoldoutRules = HoldoutRules()
    # How decisions with several eligible offers learn which recovers more
    # (workflows/bandit.py).
    learning: LearningRules = LearningRules()
    # Flatline when the chance the customer is still a customer (BG/NBD, fitted by
    # ``equator fit``; workflows/alive.py) falls below its threshold; None: the cadence
    # rule above. A customer with no repeat purchase keeps the cadence rule either way.
    alive: AliveModel | None = None
    # Where a journey may wake by itself; None: at each deadline exactly (production).
    alarm_grid: AlarmGrid | None = None

    @model_validator(mode="after")
    def _programmes_known(self) -> JourneyConfig:
        named = {*(self.enabled or ()), *self.programmes, *self.holdouts.shares}
        if not named:
            return self
        # Imported here: the registry imports the programmes, which import this module.
        from workflows.registry import PROGRAMMES

        known = {programme.name for programme in PROGRAMMES}
        if unknown := named - known:
            raise ValueError(
                f"no programme named {', '.join(sorted(unknown))}; "
                f"programmes: {', '.join(sorted(known))}"
            )
        return self

    @model_validator(mode="after")
    def _bounds_ordered(self) -> JourneyConfig:
        if not self.silence_min <= self.silence_default <= self.silence_max:
            raise ValueError("need silence_min <= silence_default <= silence_max")
        for name in ("silence_min", "response_window", "dormant_cadence"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"{name} must be positive")
        return self
