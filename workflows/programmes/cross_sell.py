"""Post-purchase cross-sell: bought a pair of trousers, may we suggest a sweater?

A purchase in a category suggests its complement a little later (timely, not
instant), unless the customer already bought the complement. A suggestion made stands
for a quiet period: the same complement is not suggested again meanwhile, and a
purchase in it converts the suggestion. Each suggestion is a one-step sequence
(``workflows/sequence.py``): marketing, so it is dropped while the customer is in care.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from workflows import sequence
from workflows.events import CustomerEvent, EventType
from workflows.offers import AboveTheLine
from workflows.patches import Patch
from workflows.programme import Deadline, Engagement, Journey, Programme
from workflows.sequence import SequenceRun, SequenceStep
from workflows.timeline import when


def _complements() -> dict[str, str]:
    # Browsing's complements (``workflows/offers.py``), and the pants that want a sweater.
    return {**AboveTheLine().complements, "trousers": "knitwear"}


class CrossSellRules(BaseModel):
    model_config = ConfigDict(frozen=True)

    # Bought category -> the category it suggests.
    complements: dict[str, str] = Field(default_factory=_complements)
    # After the purchase: timely, not instant.
    delay: timedelta = Field(default=timedelta(days=1), ge=timedelta(0))
    channel: str = "email"
    cost: Decimal = Decimal("0.05")
    # How long a suggestion stands: not repeated meanwhile, converted by a purchase in it.
    quiet_for: timedelta = Field(default=timedelta(days=30), gt=timedelta(0))

    @property
    def steps(self) -> tuple[SequenceStep, ...]:
        return (
            SequenceStep(name="cross-sell", channel=self.channel, cost=self.cost, wait=self.delay),
        )


class Suggestion(BaseModel):
    bought: str
    complement: str
    run: SequenceRun

    @property
    def content(self) -> str:
        """What its copy key says: "cross-sell/trousers/knitwear"."""
        return f"{self.bought}/{self.complement}"


class CrossSellState(BaseModel):
    # Suggestions due or standing, one per complement.
    suggestions: list[Suggestion] = Field(default_factory=list)


class CrossSell(Programme[CrossSellState]):
    name = "cross_sell"
    state_model = CrossSellState
    hears = frozenset({EventType.PURCHASE})
    turn = 70
    since = Patch.RELEASE_0_2

    def _rules(self, journey: Journey) -> CrossSellRules:
        return self.rules(journey.config, CrossSellRules)

    def heard(
        self, journey: Journey, state: CrossSellState | None, event: CustomerEvent
    ) -> CrossSellState | None:
        state = state or CrossSellState()
        if event.type == EventType.PURCHASE and event.properties.category:
            bought = event.properties.category
            self._converted(journey, state, bought, event.event_id)
            self._suggest(journey, state, bought, min(event.occurred_at, journey.now))
        return self._kept(state)

    def _suggest(
        self, journey: Journey, state: CrossSellState, bought: str, happened: datetime
    ) -> None:
        """Plan the complement's suggestion ``delay`` after the purchase, unless it was
        bought already or is standing, or the purchase is so old that its suggestion
        would be over by now (history being loaded, not a moment)."""
        rules = self._rules(journey)
        complement = rules.complements.get(bought)
        if (
            complement is None
            or complement in journey.state.profile.categories
            or self._standing(state, complement) is not None
            or happened + rules.delay + rules.quiet_for <= journey.now
        ):
            return
        run = sequence.start(f"cross-sell-{journey.state.events_applied}", rules.steps, happened)
        state.suggestions.append(Suggestion(bought=bought, complement=complement, run=run))
        journey.note(
            "cross_sell_planned",
            f"bought {bought}: {complement} to suggest {when(run.due_at)}",
            programme=self.name,
        )

    @staticmethod
    def _standing(state: CrossSellState, complement: str) -> Suggestion | None:
        return next((s for s in state.suggestions if s.complement == complement), None)

    @staticmethod
    def _kept(state: CrossSellState) -> CrossSellState | None:
        return state if state.suggestions else None

    def _converted(
        self, journey: Journey, state: CrossSellState, bought: str, event_id: str
    ) -> None:
        """A purchase in a suggested category: she has it now, whether or not we said so."""
        suggestion = self._standing(state, bought)
        if suggestion is None:
            return
        state.suggestions.remove(suggestion)
        if suggestion.run.awaiting is not None:
            sequence.answer(journey, suggestion.run, "converted")
            journey.note(
                "cross_sell_converted",
                f"bought {bought} after the suggestion",
                event_id=event_id,
                programme=self.name,
            )

    def tick(self, journey: Journey, state: CrossSellState) -> CrossSellState | None:
        """A suggestion whose quiet period is over is forgotten (no_response, if sent)."""
        state.suggestions = [s for s in state.suggestions if not sequence.over(journey, s.run)]
        return self._kept(state)

    def wants(self, journey: Journey, state: CrossSellState) -> list[Engagement]:
        steps = self._rules(journey).steps
        due = (sequence.due(journey, s.run, steps, self.name, s.content) for s in state.suggestions)
        return [engagement for engagement in due if engagement is not None]

    def sent(
        self, journey: Journey, state: CrossSellState, engagement: Engagement
    ) -> CrossSellState:
        rules = self._rules(journey)
        for suggestion in state.suggestions:
            if suggestion.run.series == engagement.series:
                sequence.advance(journey, suggestion.run, rules.steps, rules.quiet_for, engagement)
        return state

    def failed(
        self, journey: Journey, state: CrossSellState, engagement: Engagement, reason: str
    ) -> CrossSellState | None:
        """Nothing went out (care, consent, a channel that failed): dropped, nothing to
        keep quiet about."""
        state.suggestions = [s for s in state.suggestions if s.run.series != engagement.series]
        return self._kept(state)

    skipped = failed

    def deadline(self, state: CrossSellState, held: Mapping[str, datetime]) -> Deadline | None:
        deadlines = (
            sequence.deadline(s.run, held, f"the {s.complement} cross-sell")
            for s in state.suggestions
        )
        return min(deadlines, key=lambda d: d.at, default=None)

    def describe(self, state: CrossSellState) -> str | None:
        return "cross-sell: " + ", ".join(
            f"{s.complement} for {s.bought}" for s in state.suggestions
        )
