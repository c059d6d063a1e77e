"""Welcome and activation: a first purchase gets a welcome; a customer who has not come
back for a second order within the activation window gets a nudge, then one more,
cheapest first. The second order ends it (and converts the last nudge)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, model_validator

from workflows import sequence
from workflows.events import CustomerEvent, EventType
from workflows.patches import Patch
from workflows.programme import Deadline, Engagement, Journey, Programme
from workflows.sequence import SequenceRun, SequenceStep


class WelcomeRules(BaseModel):
    model_config = ConfigDict(frozen=True)

    welcome: SequenceStep = SequenceStep(name="welcome", channel="email", cost=Decimal("0.01"))
    # Sent while no second order has come, each ``activation_after`` the one before.
    nudges: tuple[SequenceStep, ...] = (
        SequenceStep(name="activation-picks", channel="email", cost=Decimal("0.05")),
        SequenceStep(
            name="activation-free-shipping",
            channel="email",
            cost=Decimal("1.00"),
            offer_id="threshold-free-shipping",
        ),
    )
    activation_after: timedelta = timedelta(days=14)

    @model_validator(mode="after")
    def _cheapest_first(self) -> WelcomeRules:
        sequence.climbing_in_cost(self.nudges, "activation nudges")
        return self

    @property
    def steps(self) -> tuple[SequenceStep, ...]:
        waited = tuple(n.model_copy(update={"wait": self.activation_after}) for n in self.nudges)
        return (self.welcome, *waited)


class WelcomeState(BaseModel):
    run: SequenceRun


class Welcome(Programme[WelcomeState]):
    name = "welcome"
    state_model = WelcomeState
    hears = frozenset({EventType.PURCHASE})
    turn = 50
    since = Patch.RELEASE_0_2

    def _rules(self, journey: Journey) -> WelcomeRules:
        return self.rules(journey.config, WelcomeRules)

    def heard(
        self, journey: Journey, state: WelcomeState | None, event: CustomerEvent
    ) -> WelcomeState | None:
        orders = journey.state.profile.order_count
        if state is None:
            if orders != 1:
                return None
            steps = self._rules(journey).steps
            journey.note("welcome_started", "first order: welcome", programme=self.name)
            return WelcomeState(run=sequence.start("welcome", steps, journey.now))
        sequence.answer(journey, state.run, "converted")
        journey.note(
            "activated", f"second order after {state.run.step} message(s)", programme=self.name
        )
        return None

    def tick(self, journey: Journey, state: WelcomeState) -> WelcomeState | None:
        if sequence.over(journey, state.run):
            journey.note("welcome_over", "no second order yet", programme=self.name)
            return None
        return state

    def wants(self, journey: Journey, state: WelcomeState) -> list[Engagement]:
        step = sequence.due(journey, state.run, self._rules(journey).steps, self.name)
        return [step] if step is not None else []

    def sent(self, journey: Journey, state: WelcomeState, engagement: Engagement) -> WelcomeState:
        rules = self._rules(journey)
        sequence.advance(journey, state.run, rules.steps, rules.activation_after, engagement)
        return state

    def failed(
        self, journey: Journey, state: WelcomeState, engagement: Engagement, reason: str
    ) -> WelcomeState:
        rules = self._rules(journey)
        sequence.advance(journey, state.run, rules.steps, rules.activation_after)
        return state

    skipped = failed

    def deadline(self, state: WelcomeState, held: Mapping[str, datetime]) -> Deadline | None:
        return sequence.deadline(state.run, held, "the welcome")

    def describe(self, state: WelcomeState) -> str | None:
        return f"{state.run.step} of {state.run.length} sent; waiting for a second order"
