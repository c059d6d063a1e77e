"""Winback (Penny's): a customer who turns lapsed is first asked why they left, then
shown what is new in what they used to buy, then made an offer, dearer each time.

Every copy key carries their latest category and usual cadence
("winback-why/dresses/monthly"): the copy speaks to their buying history. The answer to
the survey (a feedback event) is filed as its outcome and moves the sequence on at once;
an unhappy answer goes straight to the last step, to make amends. An order (no longer
lapsed) or a redeemed offer wins the customer back.

Unlike the silence ladder (a flatline weeks in, against the customer's own cadence),
this is for a customer gone for months. The journey wakes for the day the customer
would lapse (``engine.next_deadline``), so the winback starts on time.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, model_validator

from workflows import sequence
from workflows.cohorts import Cohort
from workflows.events import CustomerEvent, EventType, FeedbackEvent, polarity
from workflows.patches import Patch
from workflows.programme import Deadline, Engagement, Journey, Programme
from workflows.sequence import SequenceRun, SequenceStep
from workflows.silence import median_gap

# The usual gap between orders, at most this long, and what the copy calls it; longer
# is "yearly", a single order "once".
CADENCES: tuple[tuple[timedelta, str], ...] = (
    (timedelta(days=14), "weekly"),
    (timedelta(days=45), "monthly"),
    (timedelta(days=135), "quarterly"),
)


def cadence(purchase_times: list[datetime]) -> str:
    """The customer's usual cadence as the copy names it, from the median gap between
    orders."""
    gap = median_gap(purchase_times)
    if gap is None:
        return "once"
    return next((label for longest, label in CADENCES if gap <= longest), "yearly")


class WinbackRules(BaseModel):
    model_config = ConfigDict(frozen=True)

    # First, a short survey: why did they leave? A feedback event answers it.
    why: SequenceStep = SequenceStep(name="winback-why", channel="email", cost=Decimal("0.05"))
    # Then, while the customer has not come back, each its ``wait`` after the one before.
    follow_ups: tuple[SequenceStep, ...] = (
        SequenceStep(
            name="winback-new-in", channel="email", cost=Decimal("0.10"), wait=timedelta(days=10)
        ),
        SequenceStep(
            name="winback-offer",
            channel="email",
            cost=Decimal("2.00"),
            wait=timedelta(days=10),
            offer_id="pct10",
        ),
    )
    # How long the last step may take to win the customer back before the winback is over.
    answer_within: timedelta = timedelta(days=14)

    @model_validator(mode="after")
    def _cheapest_first(self) -> WinbackRules:
        sequence.climbing_in_cost(self.steps, "winback steps")
        return self

    @property
    def steps(self) -> tuple[SequenceStep, ...]:
        return (self.why, *self.follow_ups)


class WinbackState(BaseModel):
    """A customer being won back: the sequence, and what its copy keys carry."""

    run: SequenceRun
    content: str


class Winback(Programme[WinbackState]):
    name = "winback"
    state_model = WinbackState
    # An order moves the cohort out of lapsed (``cohort_changed``).
    hears = frozenset({EventType.FEEDBACK, EventType.OFFER_REDEEMED})
    hears_cohort = True
    turn = 80
    since = Patch.RELEASE_0_2

    def _rules(self, journey: Journey) -> WinbackRules:
        return self.rules(journey.config, WinbackRules)

    def heard(
        self, journey: Journey, state: WinbackState | None, event: CustomerEvent
    ) -> WinbackState | None:
        if state is None:
            return None
        if event.type == EventType.FEEDBACK:
            self._answered(journey, state.run, event)
        elif event.type == EventType.OFFER_REDEEMED:
            self._won_back(journey, state, f"redeemed {event.properties.offer_id}")
            return None
        return state

    def _answered(self, journey: Journey, run: SequenceRun, event: FeedbackEvent) -> None:
        """Feedback while the survey awaits an answer is the answer: the next step
        follows at once, or, for a customer who left unhappy, the last one."""
        if run.step != 1 or run.awaiting is None:
            return
        sequence.answer(journey, run, "responded")
        unhappy = polarity(event) < 0
        if unhappy:
            run.step = max(run.step, run.length - 1)
        run.due_at = journey.now
        next_step = "unhappy: straight to the last step" if unhappy else "the next step follows"
        journey.note(
            "winback_answered",
            f"survey answered: rated {event.properties.rating} of 5; {next_step}",
            event_id=event.event_id,
            programme=self.name,
        )

    def cohort_changed(
        self, journey: Journey, state: WinbackState | None, was: Cohort | None
    ) -> WinbackState | None:
        cohort = journey.state.cohort
        # A history applied at once may arrive lapsed: that is no customer turning.
        if cohort == Cohort.LAPSED and was is not None:
            return self._start(journey)
        if state is not None:
            self._won_back(journey, state, f"back as {cohort or 'none'}")
        return None

    def _start(self, journey: Journey) -> WinbackState:
        profile = journey.state.profile
        # The category they took up last (as campaigns speak to it) and their cadence.
        category = profile.categories[-1] if profile.categories else "any"
        content = f"{category}/{cadence(profile.purchase_times)}"
        steps = self._rules(journey).steps
        run = sequence.start(f"winback-{journey.state.events_applied}", steps, journey.now)
        journey.note("winback_started", f"lapsed: winback ({content})", programme=self.name)
        return WinbackState(run=run, content=content)

    def _won_back(self, journey: Journey, state: WinbackState, why: str) -> None:
        """Back: the message that did it converted; nothing left to remember."""
        sequence.answer(journey, state.run, "converted")
        journey.note("won_back", f"after {state.run.step} message(s): {why}", programme=self.name)

    def tick(self, journey: Journey, state: WinbackState) -> WinbackState | None:
        if not sequence.over(journey, state.run):
            return state
        journey.note(
            "winback_over", f"not back after {state.run.step} message(s)", programme=self.name
        )
        return None

    def wants(self, journey: Journey, state: WinbackState) -> list[Engagement]:
        steps = self._rules(journey).steps
        step = sequence.due(journey, state.run, steps, self.name, state.content)
        return [step] if step is not None else []

    def sent(self, journey: Journey, state: WinbackState, engagement: Engagement) -> WinbackState:
        self._advance(journey, state, engagement)
        return state

    def failed(
        self, journey: Journey, state: WinbackState, engagement: Engagement, reason: str
    ) -> WinbackState:
        self._advance(journey, state)
        return state

    skipped = failed

    def _advance(
        self, journey: Journey, state: WinbackState, sent: Engagement | None = None
    ) -> None:
        rules = self._rules(journey)
        sequence.advance(journey, state.run, rules.steps, rules.answer_within, sent)

    def deadline(self, state: WinbackState, held: Mapping[str, datetime]) -> Deadline | None:
        return sequence.deadline(state.run, held, "the winback")

    def describe(self, state: WinbackState) -> str | None:
        return f"winning back ({state.content}): {state.run.step} of {state.run.length} sent"
