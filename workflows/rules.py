"""Journey rules: pure functions that move a journey's state.

No I/O, no clock, no randomness: the workflow passes the time in. Every rule is
therefore testable without a server and replays identically.
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from workflows import contact, offers
from workflows.catalogue import CATALOGUE
from workflows.cohorts import Cohort, cohort_of
from workflows.config import JourneyConfig
from workflows.events import CustomerEvent, EventType
from workflows.ladders import LADDERS, VIP_CARE_TICKET, VIP_THANK_YOU, Cause, Ladder, LadderStep
from workflows.profile import CUSTOMER_INITIATED, update_profile
from workflows.state import (
    JourneyState,
    LadderRun,
    LinePosition,
    OutcomeDue,
    TimelineEntry,
    WalletOffer,
)


@dataclass(frozen=True)
class Features:
    """Behaviours a journey has only if it began after they existed (``workflow.patched``
    in the journey decides): older journeys keep behaving as they always did."""

    vip_care: bool = False
    above_the_line: bool = False
    engagement_outcomes: bool = False


@dataclass(frozen=True)
class EventRule:
    # +1 lifts the customer, -1 drops them, 0 leaves the line where it is.
    polarity: int
    # The ladder this event starts (or escalates to).
    cause: Cause | None = None


EVENT_RULES: dict[EventType, EventRule] = {
    EventType.PURCHASE: EventRule(+1),
    EventType.RETURN: EventRule(-1, Cause.RETURN),
    EventType.OFFER_REDEEMED: EventRule(+1),
    EventType.EMAIL_DELIVERED: EventRule(0),
    EventType.EMAIL_OPENED: EventRule(+1),
    EventType.EMAIL_UNOPENED: EventRule(-1),
    # A bounce says nothing of the customer's mood; contact policy reads it.
    EventType.EMAIL_BOUNCED: EventRule(0),
    EventType.COMPLAINT: EventRule(-1, Cause.COMPLAINT),
    EventType.SOCIAL_SHARE: EventRule(+1),
    EventType.ACHIEVEMENT: EventRule(+1),
    EventType.APP_BROWSE: EventRule(+1),
    EventType.CS_CONTACT: EventRule(0),
    EventType.DELIVERY_LATE: EventRule(-1, Cause.DELIVERY_LATE),
    EventType.FEEDBACK: EventRule(0),
    EventType.CONSENT_CHANGED: EventRule(0),
    EventType.PROFILE_UPDATED: EventRule(0),
}


def polarity(event: CustomerEvent) -> int:
    if event.type == EventType.FEEDBACK:
        rating = event.properties.rating
        return 1 if rating >= 4 else -1 if rating <= 2 else 0
    return EVENT_RULES[event.type].polarity


def median_gap(purchase_times: list[datetime]) -> timedelta | None:
    """The customer's typical time between purchases; None until there are two."""
    gaps = [b - a for a, b in itertools.pairwise(purchase_times)]
    if not gaps:
        return None
    return timedelta(seconds=statistics.median(gap.total_seconds() for gap in gaps))


def silence_window(purchase_times: list[datetime], config: JourneyConfig) -> timedelta:
    """How long a silence must last to be a flatline: k times the customer's own
    cadence (a weekly buyer is silent far sooner than a twice-a-year one), in bounds."""
    gap = median_gap(purchase_times)
    if gap is None:
        return config.silence_default
    window = gap * config.silence_multiplier
    return min(max(window, config.silence_min), config.silence_max)


def cost_ceiling(lifetime_value: Decimal, config: JourneyConfig) -> Decimal:
    """The most one ladder run may cost for this customer: it scales with value."""
    scaled = config.cost_ceiling_base + config.cost_ceiling_ltv_share * lifetime_value
    return min(scaled, config.cost_ceiling_max).quantize(Decimal("0.01"))


def money(amount: Decimal) -> str:
    return f"${amount:,.2f}"


def note(
    state: JourneyState,
    config: JourneyConfig,
    at: datetime,
    kind: str,
    summary: str,
    event_id: str | None = None,
) -> None:
    state.timeline.append(TimelineEntry(at=at, kind=kind, summary=summary, event_id=event_id))
    del state.timeline[: -config.timeline_length]


def is_duplicate(state: JourneyState, event_id: str) -> bool:
    return event_id in state.recent_event_ids


def remember(state: JourneyState, config: JourneyConfig, event_id: str) -> None:
    state.recent_event_ids.append(event_id)
    del state.recent_event_ids[: -config.dedupe_window]


def reject(state: JourneyState, config: JourneyConfig, now: datetime, reason: str) -> None:
    """An event that cannot be applied is counted and shown, never raised."""
    state.events_rejected += 1
    note(state, config, now, "rejected", reason)


def ignore_duplicate(
    state: JourneyState, config: JourneyConfig, now: datetime, event_id: str
) -> None:
    state.duplicates_ignored += 1
    note(state, config, now, "duplicate", "already applied", event_id=event_id)


def silence_deadline(state: JourneyState, now: datetime, config: JourneyConfig) -> datetime:
    if state.dormant:
        return now + config.dormant_cadence
    start = state.profile.last_activity_at or now
    return start + silence_window(state.profile.purchase_times, config)


def _describe(event: CustomerEvent) -> str:
    props = event.properties.model_dump(exclude_none=True)
    details = ", ".join(f"{key} {value}" for key, value in props.items())
    text = f"{event.type.value}: {details}" if details else event.type.value
    return f"{text} (from {event.source})" if event.source else text


def _move_line(state: JourneyState, direction: int) -> None:
    if direction > 0:
        state.line_position = LinePosition.ABOVE
    elif direction < 0:
        state.line_position = (
            LinePosition.EQUATOR
            if state.line_position == LinePosition.ABOVE
            else LinePosition.BELOW
        )


def ladder_of(run: LadderRun) -> Ladder:
    return LADDERS[run.cause]


def steps_of(run: LadderRun) -> tuple[LadderStep, ...]:
    """The run's steps: its ladder's, after a service ticket when the run is VIP care."""
    steps = ladder_of(run).steps
    return (VIP_CARE_TICKET, *steps) if run.vip_care else steps


def start_ladder(
    state: JourneyState,
    config: JourneyConfig,
    cause: Cause,
    now: datetime,
    why: str,
    features: Features = Features(),
) -> None:
    state.ladder_runs += 1
    care = features.vip_care and state.cohort == Cohort.VIP and cause != Cause.DORMANT
    state.ladder = LadderRun(
        run_id=f"{cause.value}-{state.ladder_runs}",
        cause=cause,
        started_at=now,
        ceiling=cost_ceiling(state.profile.lifetime_value, config),
        vip_care=care,
    )
    state.line_position = LinePosition.BELOW
    note(
        state,
        config,
        now,
        "ladder_started",
        f"{cause.value} ladder started ({why}); budget {money(state.ladder.ceiling)}"
        + ("; VIP care: a service ticket before any marketing" if care else ""),
    )


def apply_event(
    state: JourneyState,
    config: JourneyConfig,
    event: CustomerEvent,
    now: datetime,
    features: Features = Features(),
) -> None:
    """Apply one fresh event: profile, silence clock, line position, ladders, offers."""
    rule = EVENT_RULES[event.type]
    direction = polarity(event)
    remember(state, config, event.event_id)
    state.events_applied += 1
    update_profile(state.profile, event, now)
    note(state, config, now, "event", _describe(event), event_id=event.event_id)

    if state.dormant and event.type in CUSTOMER_INITIATED:
        state.dormant = False
        note(state, config, now, "woke", "back from dormancy")

    run = state.ladder
    if run is not None and direction > 0 and event.type in ladder_of(run).resolved_by:
        _win(state, config, run, event, now)
    elif rule.cause is not None and (
        run is None or LADDERS[rule.cause].priority > ladder_of(run).priority
    ):
        if run is not None:
            note(
                state,
                config,
                now,
                "ladder_superseded",
                f"{run.cause.value} ladder gives way to {rule.cause.value}",
            )
        why = f"{event.type.value} {event.event_id}"
        start_ladder(state, config, rule.cause, now, why, features)
    elif run is None:
        _move_line(state, direction)

    if features.vip_care and event.type == EventType.FEEDBACK and state.cohort == Cohort.VIP:
        state.thanks_due = event.event_id
    if features.above_the_line:
        _above_the_line(state, config, event, now)
    if state.ladder is None:
        state.silence_deadline = silence_deadline(state, now, config)


def _above_the_line(
    state: JourneyState, config: JourneyConfig, event: CustomerEvent, now: datetime
) -> None:
    """Close the loop on a redeemed offer; count purchases for the threshold nudge; and,
    for a customer above the line with no climb under way, choose the offer (if any)
    this moment justifies."""
    rules = config.above_the_line
    if event.type == EventType.OFFER_REDEEMED:
        _redeem(state, config, event.properties.offer_id, event.event_id, now)
    if event.type == EventType.PURCHASE:
        counted = offers.spend_in_period(state.recent_purchases, rules, now)
        state.recent_purchases = [*counted, (min(event.occurred_at, now), event.properties.amount)]
    if state.line_position != LinePosition.ABOVE or state.ladder or state.dormant:
        return
    spend = sum((amount for _, amount in state.recent_purchases), Decimal(0))
    found = [
        candidate
        for candidate in offers.candidates(state.profile, rules, event, spend)
        if not _holds(state, candidate.offer.offer_id, candidate.category, now)
    ]
    chosen = offers.choose(found, rules)
    if chosen is None:
        return
    passed = [c for c in found if c is not chosen]
    over = (
        " over " + ", ".join(f"{c.offer.offer_id} ({c.offer.kind.value})" for c in passed)
        if passed
        else ""
    )
    target = f" on {chosen.category}" if chosen.category else ""
    note(
        state,
        config,
        now,
        "offer_chosen",
        f"{chosen.offer.offer_id}{target} ({chosen.offer.kind.value}){over}: {chosen.why}",
    )
    state.offer_due = WalletOffer(
        key=f"offer-{state.events_applied}",
        offer_id=chosen.offer.offer_id,
        category=chosen.category,
        why=chosen.why,
    )


def _holds(state: JourneyState, offer_id: str, category: str | None, now: datetime) -> bool:
    """Whether the customer already holds this offer, unredeemed and unexpired."""
    return any(
        held.offer_id == offer_id
        and held.category == category
        and held.redeemed_at is None
        and (held.expires_at is None or held.expires_at > now)
        for held in state.wallet
    )


def _redeem(
    state: JourneyState, config: JourneyConfig, offer_id: str, event_id: str, now: datetime
) -> None:
    held = next((o for o in state.wallet if o.offer_id == offer_id and o.redeemed_at is None), None)
    if held is None or (held.expires_at is not None and held.expires_at < now):
        return
    held.redeemed_at = now
    state.conversions += 1
    _outcome(state, f"{held.key}/step-1", "converted", now)
    target = f" on {held.category}" if held.category else ""
    note(state, config, now, "offer_converted", f"{offer_id}{target} redeemed", event_id=event_id)


def offer_sent(
    state: JourneyState, config: JourneyConfig, offer: WalletOffer, channel: str, now: datetime
) -> None:
    """The chosen offer went out: it is in the customer's wallet until it expires."""
    valid_for = CATALOGUE[offer.offer_id].valid_for
    state.wallet = [
        held for held in state.wallet if held.expires_at is None or held.expires_at > now
    ][-config.timeline_length :]
    state.wallet.append(offer.model_copy(update={"issued_at": now, "expires_at": now + valid_for}))
    state.offer_due = None
    touched(state, config, channel, now)
    target = f" on {offer.category}" if offer.category else ""
    note(state, config, now, "offer_sent", f"{offer.offer_id}{target} by {channel}")


def offer_channel(state: JourneyState, config: JourneyConfig, now: datetime) -> str | None:
    """Where the chosen offer may go now, or None: held back until a time (a cap, quiet
    hours), or dropped (no consented channel)."""
    offer = state.offer_due
    if offer is None or (offer.deferred_until is not None and now < offer.deferred_until):
        return None
    channel = CATALOGUE[offer.offer_id].channel
    decision = contact.decide(state.profile, config.contact, channel, state.marketing_touches, now)
    match decision:
        case contact.Send(channel=reachable):
            return reachable
        case contact.Defer(until=until, reason=reason):
            _hold_back(state, config, now, offer, "offer_deferred", offer.offer_id, until, reason)
        case contact.Skip(reason=reason):
            offer_not_sent(state, config, now, reason)
    return None


def _hold_back(
    state: JourneyState,
    config: JourneyConfig,
    now: datetime,
    held: LadderRun | WalletOffer,
    kind: str,
    what: str,
    until: datetime,
    reason: str,
) -> None:
    """The contact policy holds ``held`` back until ``until``; said once in the timeline."""
    if held.deferred_until != until:
        note(state, config, now, kind, f"{what} waits until {until:%Y-%m-%d %H:%M} UTC: {reason}")
    held.deferred_until = until


def _outcome(state: JourneyState, engagement: str, outcome: str, now: datetime) -> None:
    state.outcomes_due.append(OutcomeDue(engagement=engagement, outcome=outcome, at=now))


def touched(state: JourneyState, config: JourneyConfig, channel: str, now: datetime) -> None:
    """Count a marketing engagement against the cap (service ones are not counted)."""
    if channel not in config.contact.service_channels:
        touches = contact.recent_touches(state.marketing_touches, config.contact, now)
        state.marketing_touches = [*touches, now]


def offer_not_sent(state: JourneyState, config: JourneyConfig, now: datetime, why: str) -> None:
    """The chosen offer is dropped: no consented channel, or its channel failed."""
    if state.offer_due is not None:
        note(state, config, now, "offer_dropped", f"{state.offer_due.offer_id}: {why}")
    state.offer_due = None


def _win(
    state: JourneyState,
    config: JourneyConfig,
    run: LadderRun,
    event: CustomerEvent,
    now: datetime,
) -> None:
    if run.response_deadline is not None:
        _outcome(state, f"{run.run_id}/step-{run.step + 1}", "responded", now)
    state.ladder = None
    state.line_position = LinePosition.ABOVE
    state.remediations_won += 1
    note(
        state,
        config,
        now,
        "ladder_won",
        f"{run.cause.value} ladder won at step {run.step + 1} by {event.type.value}; "
        f"cost {money(run.spent)}",
        event_id=event.event_id,
    )


def update_cohort(state: JourneyState, config: JourneyConfig, now: datetime) -> None:
    """Re-evaluate the cohort (value and orders change with events, recency with time);
    a change is a moment in the customer's story, so it goes in the timeline."""
    cohort = cohort_of(state.profile, config.cohorts, now)
    if cohort != state.cohort:
        was = state.cohort.value if state.cohort else "none"
        note(state, config, now, "cohort_changed", f"cohort {was} → {cohort or 'none'}")
        state.cohort = cohort


def flatline_if_silent(
    state: JourneyState, config: JourneyConfig, now: datetime, features: Features = Features()
) -> bool:
    """Start the silence ladder (or the dormant check-in) once the silence is long enough."""
    deadline = state.silence_deadline
    if state.ladder is not None or deadline is None or now < deadline:
        return False
    if state.dormant:
        start_ladder(state, config, Cause.DORMANT, now, "dormant cadence elapsed")
    else:
        last = state.profile.last_activity_at
        since = f"{last:%Y-%m-%d %H:%M:%S}" if last else "the start"
        window = silence_window(state.profile.purchase_times, config)
        why = f"silent since {since}, window {window}"
        start_ladder(state, config, Cause.SILENCE, now, why, features)
    return True


def step_due(state: JourneyState, config: JourneyConfig, now: datetime) -> LadderStep | None:
    """The step to send now, if any. Closes an expired response window first, and
    retires the ladder (to dormancy) when it is exhausted or the next step is over budget."""
    run = state.ladder
    if run is None:
        return None
    if run.response_deadline is not None:
        if now < run.response_deadline:
            return None
        note(state, config, now, "no_response", f"no response to step {run.step + 1}")
        _outcome(state, f"{run.run_id}/step-{run.step + 1}", "no_response", now)
        run.step += 1
        run.response_deadline = None
    if run.deferred_until is not None and now < run.deferred_until:
        return None
    steps = steps_of(run)
    if run.step >= len(steps):
        _retire(state, config, now, f"{run.cause.value} ladder exhausted")
        return None
    step = steps[run.step]
    if run.spent + step.cost > run.ceiling:
        _retire(
            state,
            config,
            now,
            f"cost ceiling {money(run.ceiling)} reached before step {run.step + 1} "
            f"({step.name}, {money(step.cost)})",
        )
        return None
    return step


def contact_channel(
    state: JourneyState, config: JourneyConfig, run: LadderRun, step: LadderStep, now: datetime
) -> str | None:
    """The channel to send the due step on now (perhaps a fallback), or None: the contact
    policy holds it back until a time, or skips it (no consented channel; no cost)."""
    decision = contact.decide(
        state.profile, config.contact, step.channel, state.marketing_touches, now
    )
    match decision:
        case contact.Defer(until=until, reason=reason):
            what = f"step {run.step + 1} of {run.cause.value} ladder"
            _hold_back(state, config, now, run, "step_deferred", what, until, reason)
        case contact.Skip(reason=reason):
            note(state, config, now, "step_skipped", f"{step_summary(run, step)} skipped: {reason}")
            run.step += 1
            run.deferred_until = None
        case contact.Send(channel=channel):
            run.deferred_until = None
            return channel
    return None


def step_sent(
    state: JourneyState, config: JourneyConfig, run: LadderRun, step: LadderStep, now: datetime
) -> None:
    """``step`` as sent: its channel is the one the contact policy chose."""
    touched(state, config, step.channel, now)
    run.spent += step.cost
    state.remediation_spend += step.cost
    run.response_deadline = now + (step.response_window or config.response_window)
    note(state, config, now, "step_sent", step_summary(run, step))


def step_failed(
    state: JourneyState,
    config: JourneyConfig,
    run: LadderRun,
    step: LadderStep,
    now: datetime,
    reason: str,
) -> None:
    """A step that could not be delivered costs nothing; the climb goes on."""
    note(state, config, now, "step_failed", f"{step_summary(run, step)} failed: {reason}")
    run.step += 1


def thank_you_channel(state: JourneyState, config: JourneyConfig, now: datetime) -> str | None:
    """The channel for the VIP's thank-you, or None (no consent: it is not sent). A
    reply to feedback the customer just gave: consent applies, caps and quiet hours not."""
    channel = contact.reachable_channel(state.profile, config.contact, VIP_THANK_YOU.channel)
    if channel is None:
        note(state, config, now, "thanks_skipped", "thank-you not sent: no consent for email")
        state.thanks_due = None
    return channel


def thanked(state: JourneyState, config: JourneyConfig, now: datetime, summary: str) -> None:
    note(state, config, now, "thanked", summary, event_id=state.thanks_due)
    state.thanks_due = None


def step_summary(run: LadderRun, step: LadderStep) -> str:
    total = len(steps_of(run))
    return (
        f"step {run.step + 1} of {total} of {run.cause.value} ladder: "
        f"{step.name} by {step.channel} ({money(step.cost)})"
    )


def _retire(state: JourneyState, config: JourneyConfig, now: datetime, why: str) -> None:
    """No customer is ever done: an ended climb leads to a dormant cadence."""
    state.ladder = None
    state.dormant = True
    state.line_position = LinePosition.BELOW
    state.silence_deadline = silence_deadline(state, now, config)
    note(state, config, now, "dormant", why)


def next_deadline(state: JourneyState) -> tuple[datetime | None, str]:
    """When the journey next acts on its own, and what it will do then."""
    if state.paused:
        return None, f"nothing until resumed (paused by {state.paused_by})"
    at, action = _next_of_ladder_or_silence(state)
    held = state.offer_due
    waits = held.deferred_until if held is not None else None
    if held is not None and waits is not None and (at is None or waits < at):
        at, action = waits, f"send the {held.offer_id} offer"
    for due in state.campaigns_due:
        waits = due.deferred_until
        if waits is not None and (at is None or waits < at):
            at, action = waits, f"send the {due.campaign.title} campaign"
    return at, action


def _next_of_ladder_or_silence(state: JourneyState) -> tuple[datetime | None, str]:
    run = state.ladder
    if run is not None:
        if run.response_deadline is None:
            at = run.deferred_until or run.started_at
            return at, f"send step {run.step + 1} of {run.cause.value} ladder"
        return run.response_deadline, f"close step {run.step + 1} response window"
    if state.dormant:
        return state.silence_deadline, "dormant check-in"
    return state.silence_deadline, "flatline if still silent"
