"""The campaign calendar: the equator every journey shares.

Campaigns are data, checked in (``campaigns.toml``) and turned into Temporal Schedules
by ``equator campaigns sync``; each one's start runs a fan-out to its audience.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from workflows.catalogue import CATALOGUE
from workflows.cohorts import Cohort

CAMPAIGN_NAME = r"^[a-z0-9][a-z0-9-]{0,62}$"


class Campaign(BaseModel):
    """One entry of the calendar; also the payload of a journey's ``campaign`` signal."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=CAMPAIGN_NAME, description="unique in the calendar")
    title: str = Field(min_length=1, max_length=128)
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    # Empty: everyone in the single customer view.
    audience: frozenset[Cohort] = frozenset()
    channel: str = "email"
    # The message's template; personalised as "<content_key>/<category>".
    content_key: str = Field(min_length=1, max_length=64)
    # Categories the campaign features, in order of preference; empty: any the
    # customer buys.
    categories: tuple[str, ...] = ()
    offer_id: str | None = None
    # What one message costs.
    cost: Decimal = Field(default=Decimal("0.01"), ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> Campaign:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        if self.offer_id is not None and self.offer_id not in CATALOGUE:
            raise ValueError(f"offer_id {self.offer_id!r} is not in the catalogue")
        return self

    @property
    def run_id(self) -> str:
        """Names the campaign's engagement in each journey, so none is sent twice."""
        return f"campaign-{self.name}"

    def running(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at


class Calendar(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    campaigns: tuple[Campaign, ...] = ()

    @model_validator(mode="after")
    def _names_unique(self) -> Calendar:
        names = [campaign.name for campaign in self.campaigns]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"campaign names must be unique: {', '.join(repeated)}")
        return self
