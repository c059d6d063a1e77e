"""The journey's interpreter as pure functions: events to programmes, the one decision
every engagement goes through, and when the journey next acts. The workflow
(``workflows/journey.py``) adds only timers, activities and continue-as-new.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from workflows import contact, holdout
from workflows.cohorts import cohort_of, lapses_at
from workflows.events import CustomerEvent, EventType
from workflows.patches import Patch
from workflows.profile import update_profile
from workflows.programme import Contact, Deadline, Engagement, Journey, Programme
from workflows.state import AttributionDue, JourneyView, ProgrammeView, Touch
from workflows.timeline import when


@dataclass(frozen=True)
class Programmes:
    """The registered programmes one journey runs: those whose patch it has."""

    # In hearing order (the registry's).
    enabled: tuple[Programme[Any], ...]
    by_turn: tuple[Programme[Any], ...]
    by_event: dict[EventType, tuple[Programme[Any], ...]]
    hearing_cohort: tuple[Programme[Any], ...]

    @classmethod
    def of(
        cls,
        registered: Sequence[Programme[Any]],
        patched: Callable[[Patch], bool],
        chosen: frozenset[str] | None = None,
    ) -> Programmes:
        """``chosen``: the configuration's ``enabled`` (remediation always runs)."""
        # Every programme's patch is asked, in order, as it always was (a marker is
        # recorded where it is first asked); what they answer picks a shared instance.
        has = tuple(p.since is None or patched(p.since) for p in registered)
        return _programmes(tuple(registered), has, chosen)


# Shared by every journey with the same answers: a cached journey holds one reference,
# not its own dict of every event type (a worker sees a few combinations at most).
@functools.lru_cache(maxsize=64)
def _programmes(
    registered: tuple[Programme[Any], ...], has: tuple[bool, ...], chosen: frozenset[str] | None
) -> Programmes:
    enabled = tuple(
        p
        for p, patched in zip(registered, has, strict=True)
        if patched and (chosen is None or p.name in chosen or p.always_on)
    )
    return Programmes(
        enabled=enabled,
        by_turn=tuple(sorted(enabled, key=lambda p: p.turn)),
        by_event={
            event_type: tuple(p for p in enabled if event_type in p.hears)
            for event_type in EventType
        },
        hearing_cohort=tuple(p for p in enabled if p.hears_cohort),
    )


def begin(journey: Journey, programmes: Programmes) -> None:
    """Give each programme that starts with the journey its state."""
    for programme in programmes.enabled:
        if programme.state_in(journey.state) is None:
            programme.put(journey.state, programme.begin(journey))


def apply_event(journey: Journey, programmes: Programmes, event: CustomerEvent) -> None:
    """Apply one fresh event: the shared profile, the credit for a purchase, then every
    programme that hears it."""
    state = journey.state
    remember(journey, event.event_id)
    state.events_applied += 1
    update_profile(state.profile, event, journey.now)
    journey.note("event", describe_event(event), event_id=event.event_id)
    attribute(journey, event)
    for programme in programmes.by_event[event.type]:
        programme.put(state, programme.heard(journey, programme.state_in(state), event))


def attribute(journey: Journey, event: CustomerEvent) -> None:
    """Credit a purchase, or a redemption with an amount, to each programme's last touch
    within the attribution window before it (a ghost's too: treated and control are
    measured alike)."""
    amount = getattr(event.properties, "amount", None)
    if event.type not in (EventType.PURCHASE, EventType.OFFER_REDEEMED) or amount is None:
        return
    window = journey.config.attribution_window
    for touch in journey.state.last_touch.values():
        if touch.at <= event.occurred_at <= touch.at + window:
            journey.state.attributions_due.append(
                AttributionDue(
                    engagement=touch.engagement,
                    event_id=event.event_id,
                    amount=amount,
                    at=event.occurred_at,
                )
            )


def touch(journey: Journey, programme: str, engagement: Engagement) -> None:
    """The programme's last touch is now ``engagement``; touches too old to be credited
    any more are forgotten."""
    window = journey.config.attribution_window
    touches = journey.state.last_touch
    touches[programme] = Touch(engagement=engagement.key, at=journey.now)
    journey.state.last_touch = {
        name: t for name, t in touches.items() if t.at + window >= journey.now
    }


def describe_event(event: CustomerEvent) -> str:
    props = event.properties.model_dump(exclude_none=True)
    details = ", ".join(f"{key} {value}" for key, value in props.items())
    text = f"{event.type.value}: {details}" if details else event.type.value
    return f"{text} (from {event.source})" if event.source else text


def is_duplicate(journey: Journey, event_id: str) -> bool:
    return event_id in journey.state.recent_event_ids


def remember(journey: Journey, event_id: str) -> None:
    ids = journey.state.recent_event_ids
    ids.append(event_id)
    del ids[: -journey.config.dedupe_window]


def reject(journey: Journey, reason: str) -> None:
    """Input that cannot be applied is counted and shown, never raised."""
    journey.state.events_rejected += 1
    journey.note("rejected", reason)


def ignore_duplicate(journey: Journey, event_id: str) -> None:
    journey.state.duplicates_ignored += 1
    journey.note("duplicate", "already applied", event_id=event_id)


def update_cohort(journey: Journey, programmes: Programmes) -> None:
    """Re-evaluate the cohort (value and orders change with events, recency with time);
    a change is a moment in the customer's story: it goes in the timeline, and to the
    programmes that hear it."""
    state = journey.state
    cohort = cohort_of(state.profile, journey.config.cohorts, journey.now)
    if cohort == state.cohort:
        return
    was = state.cohort
    journey.note("cohort_changed", f"cohort {was or 'none'} → {cohort or 'none'}")
    state.cohort = cohort
    for programme in programmes.hearing_cohort:
        programme.put(state, programme.cohort_changed(journey, programme.state_in(state), was))


def care(journey: Journey, programmes: Programmes) -> str | None:
    """The care under way (a complaint's ladder, a VIP's ticket), if any."""
    for programme in programmes.enabled:
        programme_state = programme.state_in(journey.state)
        if programme_state is not None and (reason := programme.care(programme_state)):
            return reason
    return None


def blocked(journey: Journey, programmes: Programmes) -> frozenset[str]:
    """Channels some programme says must not be used for now."""
    found: set[str] = set()
    for programme in programmes.enabled:
        programme_state = programme.state_in(journey.state)
        if programme_state is not None:
            found |= programme.blocks(programme_state)
    return frozenset(found)


def decide(journey: Journey, programmes: Programmes, engagement: Engagement) -> contact.Decision:
    """The one decision every engagement goes through before it is sent: care first,
    then a pause, then the contact policy as the engagement asks for it (a channel a
    programme blocks counts as one without consent)."""
    if engagement.care_first and (reason := care(journey, programmes)):
        return contact.Skip(f"in {reason} remediation")
    state, policy = journey.state, journey.config.contact
    if state.paused:
        return contact.Skip("journey paused")
    profile = state.profile
    if blocks := blocked(journey, programmes):
        consent = {**profile.consent, **dict.fromkeys(blocks, False)}
        profile = profile.model_copy(update={"consent": consent})
    match engagement.contact:
        case Contact.NONE:
            return contact.Send(engagement.channel)
        case Contact.CONSENT:
            channel = contact.reachable_channel(profile, policy, engagement.channel)
            if channel is None:
                return contact.Skip(f"no consent for {engagement.channel}")
            return contact.Send(channel)
        case Contact.POLICY:
            decision = contact.decide(
                profile, policy, engagement.channel, state.marketing_touches, journey.now
            )
            expires = engagement.expires_at
            if isinstance(decision, contact.Defer) and expires and decision.until >= expires:
                return contact.Skip(decision.reason)
            return decision


def draw_holdouts(journey: Journey, programmes: Programmes) -> bool:
    """Record the enabled programmes whose control group the customer is in now; says
    whether that changed."""
    rules = journey.config.holdouts
    drawn = [
        p.name
        for p in programmes.enabled
        if holdout.held_back_from(journey.state.customer_id, p.name, journey.now, rules)
    ]
    changed = drawn != journey.state.held_back_from
    journey.state.held_back_from = drawn
    return changed


def holds_back(journey: Journey, programme: str, engagement: Engagement) -> bool:
    """Whether ``engagement`` goes out as a ghost: the customer is in the programme's
    control group (as drawn this pass), and it is marketing, or the rules hold back
    service too."""
    rules, policy = journey.config.holdouts, journey.config.contact
    service = (
        engagement.contact is not Contact.POLICY or engagement.channel in policy.internal_channels
    )
    if service and not rules.service:
        return False
    return programme in journey.state.held_back_from


def note_engagement(
    journey: Journey, programme: str, engagement: Engagement, kind: str, summary: str
) -> None:
    """A moment of one engagement in the timeline, with what it answers and whose it is."""
    journey.note(
        kind, summary, event_id=engagement.event_id, programme=programme, engagement=engagement.key
    )


def hold(
    journey: Journey, programme: str, engagement: Engagement, until: datetime, reason: str
) -> None:
    """The contact policy holds ``engagement`` back until ``until``; said once."""
    held = journey.state.held
    if held.get(engagement.key) != until:
        waits = f"{engagement.label} waits until {when(until)}: {reason}"
        note_engagement(journey, programme, engagement, "engagement_held", waits)
    held[engagement.key] = until


def touched(journey: Journey, engagement: Engagement) -> None:
    """Count a marketing engagement against the cap (service ones and replies are not,
    nor, since the programmes patch, a ticket: work for staff, not a message)."""
    policy = journey.config.contact
    if engagement.channel in policy.internal_channels and journey.patched(Patch.RELEASE_0_2):
        return
    if engagement.contact != Contact.CONSENT and engagement.channel not in policy.service_channels:
        touches = contact.recent_touches(journey.state.marketing_touches, policy, journey.now)
        journey.state.marketing_touches = [*touches, journey.now]


def forget_expired_holds(journey: Journey) -> None:
    journey.state.held = {k: t for k, t in journey.state.held.items() if t > journey.now}


def next_deadline(journey: Journey, programmes: Programmes) -> tuple[datetime | None, str]:
    """When the journey next acts on its own (on its alarm grid, if it has one), and
    what it will do then."""
    state = journey.state
    if state.paused:
        return None, f"nothing until resumed (paused by {state.paused_by})"
    soonest: Deadline | None = None
    # Time alone moves the cohort (to lapsed): journeys with programmes that hear it wake
    # for it, the others never did.
    lapses = lapses_at(state.profile, journey.config.cohorts)
    if programmes.hearing_cohort and lapses is not None and lapses > journey.now:
        soonest = Deadline(lapses, "see whether the customer has lapsed")
    for programme in programmes.enabled:
        programme_state = programme.state_in(state)
        if programme_state is None:
            continue
        deadline = programme.deadline(programme_state, state.held)
        if deadline is not None and (soonest is None or deadline.at < soonest.at):
            soonest = deadline
    if soonest is None:
        return None, "wait for the next event"
    grid = journey.config.alarm_grid
    return (soonest.at if grid is None else grid.next_at(soonest.at)), soonest.action


def view(journey: Journey, programmes: Programmes, pending_events: int) -> JourneyView:
    """The journey as the query answers it: each active programme, where it stands and
    what it waits for."""
    state = journey.state
    active = []
    for programme in programmes.enabled:
        programme_state = programme.state_in(state)
        if programme_state is None:
            continue
        deadline = programme.deadline(programme_state, state.held)
        active.append(
            ProgrammeView(
                name=programme.name,
                standing=programme.describe(programme_state),
                next_action=deadline.action if deadline else None,
                next_action_at=deadline.at if deadline else None,
            )
        )
    at, action = next_deadline(journey, programmes)
    return JourneyView(
        state=state,
        pending_events=pending_events,
        next_action=action,
        next_action_at=at,
        programmes=active,
    )
