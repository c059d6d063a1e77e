"""Milestones: moments in a customer's story worth a message of their own: the second
order, the tenth, a move up a cohort, an achievement. Each is said once, as data: a
new milestone is a line in the rules, not code."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from workflows.cohorts import Cohort
from workflows.events import CustomerEvent, EventType
from workflows.patches import Patch
from workflows.programme import Deadline, Engagement, Journey, Programme

# Moving up means into one of these, from one before it.
_LADDER_OF_COHORTS = (Cohort.NEW, Cohort.REPEAT, Cohort.LOYAL, Cohort.VIP)


class MilestoneRules(BaseModel):
    model_config = ConfigDict(frozen=True)

    # Order count → the message's copy key.
    orders: dict[int, str] = Field(
        default_factory=lambda: {2: "second-order-thanks", 10: "tenth-order-thanks"}
    )
    # A cohort reached by moving up → the message's copy key.
    cohorts: dict[Cohort, str] = Field(
        default_factory=lambda: {
            Cohort.REPEAT: "welcome-to-repeat",
            Cohort.LOYAL: "welcome-to-loyal",
            Cohort.VIP: "welcome-to-vip",
        }
    )
    # An achievement's message: the copy key, then "/<achievement name>".
    achievement: str | None = "congratulations"
    channel: str = "email"
    cost: Decimal = Decimal("0.01")


class Reached(BaseModel):
    """A milestone reached and not yet said."""

    key: str
    copy_key: str
    event_id: str | None = None


class MilestonesState(BaseModel):
    due: list[Reached] = Field(default_factory=list)


class Milestones(Programme[MilestonesState]):
    name = "milestones"
    state_model = MilestonesState
    hears = frozenset({EventType.PURCHASE, EventType.ACHIEVEMENT})
    hears_cohort = True
    turn = 60
    since = Patch.RELEASE_0_2

    def heard(
        self, journey: Journey, state: MilestonesState | None, event: CustomerEvent
    ) -> MilestonesState | None:
        rules = self.rules(journey.config, MilestoneRules)
        if event.type == EventType.ACHIEVEMENT and rules.achievement:
            name = event.properties.name
            reached = Reached(
                key=f"achievement-{event.event_id}",
                copy_key=f"{rules.achievement}/{name}",
                event_id=event.event_id,
            )
            return self._reached(journey, state, reached, f"achievement: {name}")
        orders = journey.state.profile.order_count
        copy_key = rules.orders.get(orders) if event.type == EventType.PURCHASE else None
        if copy_key is None:
            return state
        reached = Reached(key=f"order-{orders}", copy_key=copy_key, event_id=event.event_id)
        return self._reached(journey, state, reached, f"order number {orders}")

    def cohort_changed(
        self, journey: Journey, state: MilestonesState | None, was: Cohort | None
    ) -> MilestonesState | None:
        now = journey.state.cohort
        moved_up = (
            now in _LADDER_OF_COHORTS
            and was in _LADDER_OF_COHORTS
            and _LADDER_OF_COHORTS.index(now) > _LADDER_OF_COHORTS.index(was)
        )
        copy_key = self.rules(journey.config, MilestoneRules).cohorts.get(now) if now else None
        if not moved_up or copy_key is None or now is None:
            return state
        reached = Reached(key=f"cohort-{now.value}", copy_key=copy_key)
        return self._reached(journey, state, reached, f"now {now.value}")

    def _reached(
        self, journey: Journey, state: MilestonesState | None, reached: Reached, why: str
    ) -> MilestonesState:
        state = state or MilestonesState()
        state.due.append(reached)
        journey.note("milestone", why, event_id=reached.event_id, programme=self.name)
        return state

    def wants(self, journey: Journey, state: MilestonesState) -> list[Engagement]:
        rules = self.rules(journey.config, MilestoneRules)
        return [
            Engagement(
                cause=self.name,
                series=reached.key,
                name=reached.copy_key,
                channel=rules.channel,
                cost=rules.cost,
                label=f"{reached.copy_key} message",
                what=f"milestone: {reached.copy_key}",
                event_id=reached.event_id,
                care_first=True,
            )
            for reached in state.due
        ]

    def sent(
        self, journey: Journey, state: MilestonesState, engagement: Engagement
    ) -> MilestonesState | None:
        state.due = [reached for reached in state.due if reached.key != engagement.series]
        return state if state.due else None

    def failed(
        self, journey: Journey, state: MilestonesState, engagement: Engagement, reason: str
    ) -> MilestonesState | None:
        return self.sent(journey, state, engagement)

    skipped = failed

    def deadline(self, state: MilestonesState, held: Mapping[str, datetime]) -> Deadline | None:
        """A message the contact policy holds back goes when the hold ends."""
        waiting = [held[f"{r.key}/step-1"] for r in state.due if f"{r.key}/step-1" in held]
        return Deadline(min(waiting), "send a milestone message") if waiting else None

    def describe(self, state: MilestonesState) -> str | None:
        return "to say: " + ", ".join(reached.copy_key for reached in state.due)
