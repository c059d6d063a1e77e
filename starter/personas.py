"""Personas: a synthetic population for ``equator simulate``, as data (``personas.toml``).

A persona says how its customers buy (when they start, the gap between orders and the
basket as distributions, the chance of stopping after each order), what else they do
(complain, return), and how they answer what the journeys send them: the chance of a
purchase after an engagement, by offer, by step or for anything, and of opening an
email. Drawing a member's life is pure: the seed and the member's name decide it.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from activities.store import Engagement
from starter.datafiles import load_toml
from starter.population import Act
from workflows.events import Label

# The catch-all key of ``Persona.responds``.
ANYTHING = "*"
# How long a member takes to answer an engagement, in days after the tick that reads it
# (a quarter of a day after the send, on average): drawn per engagement, so that answers
# do not all land a whole number of days after a send, where a ladder's next step falls
# due too (which of the two came first would then be a matter of milliseconds).
ANSWER_AFTER = (0.0, 1.5)
# Causes whose steps a member may answer with feedback (service).
SERVICE_CAUSES = frozenset({"complaint", "return", "delivery_late"})


class PersonaError(Exception):
    """A personas file that cannot be read or is not valid: the message says where."""


class Spread(BaseModel):
    """A positive quantity as a gamma distribution with this mean and standard
    deviation (a standard deviation of 0: always the mean)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mean: float = Field(gt=0)
    sd: float = Field(default=0, ge=0)

    def draw(self, rng: random.Random) -> float:
        if self.sd == 0:
            return self.mean
        shape = (self.mean / self.sd) ** 2
        return rng.gammavariate(shape, self.sd**2 / self.mean)


class Persona(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Label
    count: int = Field(ge=1, le=1_000_000)
    # The first order falls uniformly within this many days of the start.
    starts_within: float = Field(default=30, ge=0)
    gap_days: Spread
    basket: Spread
    # The chance of buying no more after each order (1: a one-time buyer).
    churn: float = Field(default=0, ge=0, le=1)
    categories: tuple[str, ...] = ("basics",)
    # Per order: the chance of a complaint, and of returning it, a few days later.
    complains: float = Field(default=0, ge=0, le=1)
    returns: float = Field(default=0, ge=0, le=1)
    # The chance of a purchase soon after an engagement, by offer id, by step name or
    # for anything (``"*"``); the first that matches counts.
    responds: dict[str, float] = Field(default_factory=dict)
    # The chance of opening an email, and of answering a service step with feedback.
    opens: float = Field(default=0, ge=0, le=1)
    feedback: float = Field(default=0, ge=0, le=1)

    @model_validator(mode="after")
    def _chances(self) -> Persona:
        for key, chance in self.responds.items():
            if not 0 <= chance <= 1:
                raise ValueError(f"responds.{key} must be a chance in [0, 1], not {chance}")
        return self

    def answer_chance(self, offer_id: str | None, step_name: str) -> float:
        for key in (offer_id, step_name, ANYTHING):
            if key is not None and key in self.responds:
                return self.responds[key]
        return 0.0


class Personas(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    personas: tuple[Persona, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _names_unique(self) -> Personas:
        names = [p.name for p in self.personas]
        if len(set(names)) != len(names):
            raise ValueError("persona names must be unique")
        return self

    def scaled(self, customers: int | None) -> Personas:
        """The same mix with about ``customers`` members in all (each persona keeps one)."""
        if customers is None:
            return self
        total = sum(p.count for p in self.personas)
        return self.model_copy(
            update={
                "personas": tuple(
                    p.model_copy(update={"count": max(1, round(p.count * customers / total))})
                    for p in self.personas
                )
            }
        )

    def members(self) -> Iterator[tuple[str, Persona]]:
        """Every member's customer id and persona, in a fixed order."""
        for persona in self.personas:
            for n in range(persona.count):
                yield f"{persona.name}-{n:05d}", persona


def life(customer_id: str, persona: Persona, days: float, seed: int) -> list[Act]:
    """What a member does of their own accord within ``days``: orders at their cadence
    until they stop, with the complaints and returns that follow some."""
    rng = random.Random(f"{seed}\x1f{customer_id}")
    acts: list[Act] = []

    def act(day: float, type: str, properties: dict[str, Any]) -> None:
        acts.append(Act(day, customer_id, type, f"life-{len(acts)}", properties))

    day = rng.uniform(0, persona.starts_within)
    while day < days:
        amount = _basket(persona, rng)
        act(day, "purchase", {"amount": amount, "category": rng.choice(persona.categories)})
        if rng.random() < persona.returns:
            act(day + 3, "return", {"amount": amount, "reason": "fit"})
        if rng.random() < persona.complains:
            act(day + 2, "complaint", {"reason": "damaged", "severity": "high"})
        if rng.random() < persona.churn:
            break
        day += persona.gap_days.draw(rng)
    return [a for a in acts if a.day < days]


def _basket(persona: Persona, rng: random.Random) -> str:
    return str(Decimal(round(persona.basket.draw(rng), 2)).quantize(Decimal("0.01")))


class PersonaPopulation:
    """Personas as a simulation's population: members live their lives, and answer what
    reaches them by their persona's chances, each answer drawn from the seed and the
    engagement's name. A ghost reached no one and is not answered."""

    def __init__(self, personas: Personas) -> None:
        self.members = dict(personas.members())
        self.personas = personas

    def groups(self) -> dict[str, int]:
        return {p.name: p.count for p in self.personas.personas}

    def lives(self, days: float, seed: int) -> Iterator[Act]:
        for customer_id, persona in self.members.items():
            yield from life(customer_id, persona, days, seed)

    def answer(self, engagement: Engagement, day: float, seed: int) -> Iterator[Act]:
        persona = self.members.get(engagement.customer_id)
        if persona is None or engagement.held_back:
            return
        # An event id's alphabet: the engagement's name with its separators made safe.
        name = re.sub(r"[^A-Za-z0-9._:@-]", ":", f"{engagement.ladder_run_id}/{engagement.step}")
        rng = random.Random(f"{seed}\x1f{engagement.customer_id}\x1f{name}")
        customer = engagement.customer_id
        after = day + rng.uniform(*ANSWER_AFTER)
        if engagement.channel == "email" and rng.random() < persona.opens:
            yield Act((day + after) / 2, customer, "email_opened", f"open-{name}", {})
        if engagement.cause in SERVICE_CAUSES and rng.random() < persona.feedback:
            yield Act(after, customer, "feedback", f"rate-{name}", {"rating": 5})
        if rng.random() < persona.answer_chance(engagement.offer_id, engagement.step_name):
            bought = {"amount": _basket(persona, rng), "category": rng.choice(persona.categories)}
            yield Act(after, customer, "purchase", f"back-{name}", bought)


def load_personas(path: Path) -> Personas:
    return load_toml(path, Personas, "personas", "personas file", "personas", PersonaError)
