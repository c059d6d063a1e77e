"""Remediation: pulling a customer back from below the line, one ladder at a time.

Silence measured against the customer's own cadence (a flatline) starts the silence
ladder; an event a ladder is ``started_by`` (a return, a complaint) starts that one, or
escalates to it if it outranks the climb under way. Steps climb in cost within a
ceiling that scales with the customer's value; each waits out a response window, and a
response of a grade the ladder counts wins it (a recovery, for the silence ladder: an
open or a browse is filed as the step's response and the climb goes on). An exhausted
ladder leads to a dormant cadence with a periodic check-in, never to the end. A VIP's
climb (and, with pivot care, a loyal or repeat customer's) starts with a service ticket,
and while a service ladder (or that care) climbs, marketing waits.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal

from pydantic import BaseModel

from workflows.alive import p_alive, silent_from
from workflows.catalogue import CATALOGUE, learnable
from workflows.config import JourneyConfig
from workflows.events import CustomerEvent, EventType, Response, polarity, traits
from workflows.ladders import DORMANT, SILENCE, VIP_CARE_TICKET, Ladder, LadderStep
from workflows.patches import Patch
from workflows.programme import Contact, Deadline, Engagement, Journey, Programme
from workflows.programmes.pivot_care import cared_for
from workflows.silence import feed_out, silence_window
from workflows.state import LinePosition
from workflows.timeline import lasting, money, when


class LadderRun(BaseModel):
    """One climb of one ladder. ``run_id`` keys its engagements, so none is sent twice."""

    run_id: str
    cause: str
    started_at: datetime
    ceiling: Decimal
    step: int = 0
    spent: Decimal = Decimal(0)
    # Set once the current step's engagement has gone out; the window then runs.
    response_deadline: datetime | None = None
    # A VIP's climb: a service ticket comes before the ladder's own steps.
    vip_care: bool = False
    # The customer answered the current step (an open, a browse) without recovering.
    responded: bool = False

    @property
    def step_key(self) -> str:
        """The current step's engagement key."""
        return f"{self.run_id}/step-{self.step + 1}"


class RemediationState(BaseModel):
    # When silence becomes a flatline (or, while dormant, the next check-in is due).
    silence_deadline: datetime | None = None
    # How far the deadline was moved for the feed's outages within this silence.
    feed_out: timedelta = timedelta(0)
    dormant: bool = False
    ladder: LadderRun | None = None
    runs: int = 0
    spend: Decimal = Decimal(0)
    won: int = 0


def cost_ceiling(lifetime_value: Decimal, config: JourneyConfig) -> Decimal:
    """The most one ladder run may cost for this customer: it scales with value."""
    scaled = config.cost_ceiling_base + config.cost_ceiling_ltv_share * lifetime_value
    return min(scaled, config.cost_ceiling_max).quantize(Decimal("0.01"))


def move_line(position: LinePosition, direction: int) -> LinePosition:
    """One notch: a lift puts the customer above the line, a drop takes them down one."""
    if direction > 0:
        return LinePosition.ABOVE
    if direction < 0:
        return LinePosition.EQUATOR if position == LinePosition.ABOVE else LinePosition.BELOW
    return position


class Remediation(Programme[RemediationState]):
    name = "remediation"
    state_model = RemediationState
    # Every event moves the line or the silence clock.
    hears = frozenset(EventType)
    turn = 40
    always_on = True

    def __init__(self, ladders: tuple[Ladder, ...]) -> None:
        super().__init__()
        self.ladders = {ladder.cause: ladder for ladder in ladders}
        if len(self.ladders) != len(ladders):
            raise ValueError("two ladders share a cause")
        for needed in (SILENCE, DORMANT):
            if self.ladders.get(needed.cause) is None:
                raise ValueError(f"the {needed.cause} ladder must be registered")
        self.started_by = {
            event_type: ladder for ladder in ladders for event_type in ladder.started_by
        }

    def begin(self, journey: Journey) -> RemediationState:
        state = RemediationState()
        self.rearm(journey, state)
        return state

    def steps_of(self, run: LadderRun) -> tuple[LadderStep, ...]:
        """The run's steps: its ladder's, after a service ticket when the run is VIP care."""
        ladder = self.ladders.get(run.cause)
        steps = ladder.steps if ladder else ()
        return (VIP_CARE_TICKET, *steps) if run.vip_care else steps

    def rearm(self, journey: Journey, state: RemediationState) -> None:
        """A new silence (or dormant cadence) starts now."""
        state.silence_deadline = self.silence_deadline(journey, state)
        state.feed_out = timedelta(0)

    def silence_deadline(self, journey: Journey, state: RemediationState) -> datetime:
        if state.dormant:
            return journey.now + journey.config.dormant_cadence
        profile, config = journey.state.profile, journey.config
        start = profile.last_activity_at or journey.now
        silent = _silent_by_model(journey)
        if silent is None:
            return start + silence_window(profile.purchase_times, config)
        # Whatever the model says, anything the customer does buys the shortest window.
        return max(silent, start + config.silence_min)

    def heard(
        self, journey: Journey, state: RemediationState | None, event: CustomerEvent
    ) -> RemediationState:
        state = state or self.begin(journey)
        direction = polarity(event)
        if state.dormant and traits(event).customer_initiated:
            state.dormant = False
            journey.note("woke", "back from dormancy", programme=self.name)
        run = state.ladder
        climbing = self.ladders.get(run.cause) if run else None
        cause = self.started_by.get(event.type)
        response = traits(event).response
        if (
            run is not None
            and direction > 0
            and climbing is not None
            and response in self._resolved_by(journey, climbing)
        ):
            self._win(journey, state, run, event)
        elif cause is not None and (climbing is None or cause.priority > climbing.priority):
            if run is not None:
                journey.note(
                    "ladder_superseded",
                    f"{run.cause} ladder gives way to {cause.cause}",
                    programme=self.name,
                )
            why = f"{event.type.value} {event.event_id}"
            self.start(journey, state, cause, why, care=self._cares(journey, cause))
            assert state.ladder is not None
            journey.report("journey.ladder_started", cause=cause.cause, ladder=state.ladder.run_id)
        elif run is None:
            journey.state.line_position = move_line(journey.state.line_position, direction)
        elif response is not Response.NONE and journey.patched(Patch.RELEASE_0_2):
            self._responded(journey, run, event)
        if state.ladder is None:
            self.rearm(journey, state)
        return state

    @staticmethod
    def _resolved_by(journey: Journey, ladder: Ladder) -> frozenset[Response]:
        if ladder.resolved_by_0_1 is None or journey.patched(Patch.RELEASE_0_2):
            return ladder.resolved_by
        return ladder.resolved_by_0_1

    @staticmethod
    def _responded(journey: Journey, run: LadderRun, event: CustomerEvent) -> None:
        """An answer that does not win the ladder (an open of a "we miss you") is filed
        as the step's response, once; the climb goes on."""
        if run.response_deadline is None or run.responded:
            return
        run.responded = True
        journey.outcome(run.step_key, "responded")
        journey.note(
            "step_answered",
            f"{event.type.value} answers step {run.step + 1} of {run.cause} ladder; "
            "not a recovery, so the climb goes on",
            event_id=event.event_id,
            programme="remediation",
        )

    def _cares(self, journey: Journey, ladder: Ladder) -> bool:
        """A VIP's climb (not a dormant check-in) starts with a service ticket; since the
        programmes patch, that of anyone in a care cohort (``pivot_care``)."""
        return (
            journey.patched(Patch.VIP_CARE) and ladder.cause != DORMANT.cause and cared_for(journey)
        )

    def start(
        self, journey: Journey, state: RemediationState, ladder: Ladder, why: str, care: bool
    ) -> None:
        state.runs += 1
        run = LadderRun(
            run_id=f"{ladder.cause}-{state.runs}",
            cause=ladder.cause,
            started_at=journey.now,
            ceiling=cost_ceiling(journey.state.profile.lifetime_value, journey.config),
            vip_care=care,
        )
        state.ladder = run
        journey.state.line_position = LinePosition.BELOW
        journey.note(
            "ladder_started",
            f"{ladder.cause} ladder started ({why}); budget {money(run.ceiling)}"
            + ("; VIP care: a service ticket before any marketing" if care else ""),
            programme=self.name,
        )

    def _win(
        self, journey: Journey, state: RemediationState, run: LadderRun, event: CustomerEvent
    ) -> None:
        if run.response_deadline is not None:
            recovered = traits(event).response is Response.RECOVERED
            converted = recovered and journey.patched(Patch.RELEASE_0_2)
            journey.outcome(run.step_key, "converted" if converted else "responded")
        state.ladder = None
        journey.state.line_position = LinePosition.ABOVE
        state.won += 1
        journey.note(
            "ladder_won",
            f"{run.cause} ladder won at step {run.step + 1} by {event.type.value}; "
            f"cost {money(run.spent)}",
            event_id=event.event_id,
            programme=self.name,
        )
        journey.report(
            "journey.ladder_won",
            counter="equator_remediations_won",
            labels={"cause": run.cause},
            cause=run.cause,
            ladder=run.run_id,
            step=run.step + 1,
        )

    def silent_since(self, journey: Journey, state: RemediationState) -> datetime | None:
        deadline = state.silence_deadline
        if state.ladder is not None or state.dormant or deadline is None or journey.now < deadline:
            return None
        return journey.state.profile.last_activity_at

    def tick(self, journey: Journey, state: RemediationState) -> RemediationState:
        self._flatline_if_silent(journey, state)
        return state

    def wants(self, journey: Journey, state: RemediationState) -> list[Engagement]:
        step = self._step_due(journey, state)
        run = state.ladder
        if run is None or step is None:
            return []
        # Journeys that began before the contact policy existed keep sending as they did.
        contact = Contact.POLICY if journey.patched(Patch.CONTACT_POLICY) else Contact.NONE
        offer_id, cost = step.offer_id, step.cost
        arms: tuple[str, ...] = ()
        # A step with alternatives learns which recovers more (journeys of 0.2).
        if step.alternatives and journey.patched(Patch.RELEASE_0_2):
            arms = learnable(step.offers, journey.state.profile.lifetime_value)
            offer_id, cost = arms[0], CATALOGUE[arms[0]].cost
        return [
            Engagement(
                cause=run.cause,
                series=run.run_id,
                step=run.step + 1,
                name=step.name,
                channel=step.channel,
                cost=cost,
                offer_id=offer_id,
                arms=arms,
                # The same step of every run of the ladder (by name: a run that begins
                # with a care ticket numbers the ladder's steps one later).
                decision=f"{run.cause}/{step.name}" if arms else None,
                label=f"step {run.step + 1} of {run.cause} ladder",
                what=self.step_what(run, step),
                after=f" ({money(cost)})",
                contact=contact,
            )
        ]

    def _flatline_if_silent(self, journey: Journey, state: RemediationState) -> None:
        """Start the silence ladder (or the dormant check-in) once the silence is long
        enough."""
        deadline = state.silence_deadline
        if state.ladder is not None or deadline is None or journey.now < deadline:
            return
        if state.dormant:
            self.start(journey, state, DORMANT, "dormant cadence elapsed", care=False)
        elif self._feed_was_out(journey, state):
            return
        else:
            profile = journey.state.profile
            last = profile.last_activity_at
            since = f"{last:%Y-%m-%d %H:%M:%S}" if last else "the start"
            window = silence_window(profile.purchase_times, journey.config)
            why = f"silent since {since}, " + (
                f"window {window}"
                if _silent_by_model(journey) is None
                else f"chance still a customer {_alive_now(journey):.0%}"
            )
            self.start(journey, state, SILENCE, why, care=self._cares(journey, SILENCE))
        assert state.ladder is not None
        journey.report(
            "journey.flatline",
            counter="equator_flatlines_detected",
            labels={"cause": state.ladder.cause},
            cause=state.ladder.cause,
            ladder=state.ladder.run_id,
        )

    def _feed_was_out(self, journey: Journey, state: RemediationState) -> bool:
        """Moves the deadline on by the feed's outages within the silence not yet counted
        (the customer's events could not have arrived then); whether it is still ahead."""
        since = journey.state.profile.last_activity_at
        if since is None or state.silence_deadline is None:
            return False
        out = feed_out(journey.feed_outages, since, journey.now)
        if out <= state.feed_out:
            return False
        state.silence_deadline += out - state.feed_out
        state.feed_out = out
        if journey.now >= state.silence_deadline:
            return False
        causes = ", ".join(sorted({o.cause for o in journey.feed_outages}))
        journey.note(
            "silence_excused",
            f"the feed was out for {lasting(out)} of the silence ({causes}): "
            f"no flatline before {when(state.silence_deadline)}",
            programme=self.name,
        )
        return True

    def _step_due(self, journey: Journey, state: RemediationState) -> LadderStep | None:
        """The step to send now, if any. Closes an expired response window first, and
        retires the ladder (to dormancy) when it is exhausted or the next step is over
        budget."""
        run = state.ladder
        if run is None:
            return None
        if run.response_deadline is not None:
            if journey.now < run.response_deadline:
                return None
            if run.responded:
                why = f"step {run.step + 1} answered but no recovery"
                journey.note("no_recovery", why, programme=self.name)
            else:
                why = f"no response to step {run.step + 1}"
                journey.note("no_response", why, programme=self.name)
                journey.outcome(run.step_key, "no_response")
            run.step += 1
            run.response_deadline = None
            run.responded = False
        if journey.held(run.step_key):
            return None
        steps = self.steps_of(run)
        if run.step >= len(steps):
            self._retire(journey, state, f"{run.cause} ladder exhausted")
            return None
        step = steps[run.step]
        if run.spent + step.cost > run.ceiling:
            self._retire(
                journey,
                state,
                f"cost ceiling {money(run.ceiling)} reached before step {run.step + 1} "
                f"({step.name}, {money(step.cost)})",
            )
            return None
        return step

    def _retire(self, journey: Journey, state: RemediationState, why: str) -> None:
        """No customer is ever done: an ended climb leads to a dormant cadence."""
        state.ladder = None
        state.dormant = True
        journey.state.line_position = LinePosition.BELOW
        self.rearm(journey, state)
        journey.note("dormant", why, programme=self.name)

    def sent(
        self, journey: Journey, state: RemediationState, engagement: Engagement
    ) -> RemediationState:
        run = state.ladder
        if run is None or engagement.series != run.run_id:
            return state
        window = self.steps_of(run)[run.step].response_window
        # A ghost counts against the run's budget as if sent, so that a control group's
        # ladder climbs as a treated one does; nothing was spent on it.
        run.spent += engagement.cost
        state.spend += engagement.cost
        run.response_deadline = journey.now + (window or journey.config.response_window)
        if not engagement.held_back:
            journey.report(
                None,
                counter="equator_remediation_cost_cents",
                labels={"cause": run.cause},
                value=int(engagement.cost * 100),
            )
        return state

    def failed(
        self, journey: Journey, state: RemediationState, engagement: Engagement, reason: str
    ) -> RemediationState:
        """A step that could not be delivered costs nothing; the climb goes on."""
        return self._next_step(state, engagement)

    def skipped(
        self, journey: Journey, state: RemediationState, engagement: Engagement, reason: str
    ) -> RemediationState:
        return self._next_step(state, engagement)

    def _next_step(self, state: RemediationState, engagement: Engagement) -> RemediationState:
        run = state.ladder
        if run is not None and engagement.series == run.run_id:
            run.step += 1
        return state

    def deadline(self, state: RemediationState, held: Mapping[str, datetime]) -> Deadline | None:
        run = state.ladder
        if run is not None:
            if run.response_deadline is None:
                at = held.get(run.step_key, run.started_at)
                return Deadline(at, f"send step {run.step + 1} of {run.cause} ladder")
            return Deadline(run.response_deadline, f"close step {run.step + 1} response window")
        if state.silence_deadline is None:
            return None
        action = "dormant check-in" if state.dormant else "flatline if still silent"
        return Deadline(state.silence_deadline, action)

    def care(self, state: RemediationState) -> str | None:
        run = state.ladder
        if run is None:
            return None
        if run.vip_care:
            return "service"
        ladder = self.ladders.get(run.cause)
        return run.cause.replace("_", " ") if ladder is not None and ladder.service else None

    def describe(self, state: RemediationState) -> str | None:
        run = state.ladder
        if run is not None:
            return (
                f"climbing the **{run.cause}** ladder: step {run.step + 1} of "
                f"{len(self.steps_of(run))}, spent {money(run.spent)} of {money(run.ceiling)}"
            )
        if state.dormant:
            return "dormant: a check-in each dormant cadence until the customer is back"
        return None

    def step_what(self, run: LadderRun, step: LadderStep) -> str:
        return (
            f"step {run.step + 1} of {len(self.steps_of(run))} of {run.cause} ladder: {step.name}"
        )


def _silent_by_model(journey: Journey) -> datetime | None:
    """When the BG/NBD model calls the customer silent, if the journey uses it and it can
    (a repeat purchase is needed)."""
    model, profile = journey.config.alive, journey.state.profile
    if model is None or profile.first_purchase_at is None or not profile.purchase_times:
        return None
    last = profile.purchase_times[-1]
    return silent_from(model, profile.first_purchase_at, last, profile.order_count - 1)


def _alive_now(journey: Journey) -> float:
    model, profile = journey.config.alive, journey.state.profile
    assert model is not None
    assert profile.first_purchase_at is not None
    first, last = profile.first_purchase_at, profile.purchase_times[-1]
    day = timedelta(days=1)
    recency, age = (last - first) / day, (journey.now - first) / day
    return p_alive(model, profile.order_count - 1, recency, age)
