"""Calendared campaigns: an entry of the calendar, and what it means for one journey.

A campaign (Spring Sale, Summer Clearance, Holiday) runs across every journey in its
audience. Each journey decides for its own customer, with the pure functions here:
suppressed (a complaint or service remediation under way, a paused journey, the contact
policy says no), held back until quiet hours end, or sent, personalised by the
categories the customer buys. A purchase while the campaign runs, after it reached the
customer, is its conversion.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from workflows import contact
from workflows.calendar import Campaign
from workflows.config import JourneyConfig
from workflows.contracts import CampaignContact, ContactOutcome
from workflows.ladders import Cause
from workflows.rules import note, touched
from workflows.state import CampaignDue, CampaignReached, JourneyState, OutcomeDue

# Content for a customer whose categories say nothing the campaign features.
GENERAL = "general"
# Ladders during which a sale blast would be tone-deaf: the customer is owed service.
_SERVICE_REMEDIATION = frozenset({Cause.COMPLAINT, Cause.DELIVERY_LATE})


@dataclass(frozen=True)
class Send:
    channel: str
    content_key: str
    category: str | None


@dataclass(frozen=True)
class Hold:
    until: datetime
    reason: str


@dataclass(frozen=True)
class Suppress:
    reason: str


Decision = Send | Hold | Suppress


def decide(
    state: JourneyState, config: JourneyConfig, campaign: Campaign, now: datetime
) -> Decision:
    """What the campaign means for this customer now."""
    if now >= campaign.ends_at:
        return Suppress("campaign over")
    run = state.ladder
    if run is not None and (run.cause in _SERVICE_REMEDIATION or run.vip_care):
        cause = "service" if run.vip_care else run.cause.value.replace("_", " ")
        return Suppress(f"in {cause} remediation")
    if state.paused:
        return Suppress("journey paused")
    decision = contact.decide(
        state.profile, config.contact, campaign.channel, state.marketing_touches, now
    )
    match decision:
        case contact.Skip(reason=reason):
            return Suppress(reason)
        case contact.Defer(until=until, reason=reason):
            if until >= campaign.ends_at:
                return Suppress(reason)
            return Hold(until, reason)
        case contact.Send(channel=channel):
            category = personal_category(state.profile.categories, campaign.categories)
            return Send(channel, f"{campaign.content_key}/{category or GENERAL}", category)
    raise AssertionError(decision)  # pragma: no cover - the match is exhaustive


def personal_category(bought: list[str], featured: tuple[str, ...]) -> str | None:
    """The category to speak to: the first featured one the customer buys, else (when
    the campaign features none) the latest they took up, else none."""
    if featured:
        return next((category for category in featured if category in bought), None)
    return bought[-1] if bought else None


def receive(state: JourneyState, config: JourneyConfig, campaign: Campaign, now: datetime) -> None:
    """Take a campaign in, once: the fan-out may signal a journey twice after a crash."""
    if campaign.name in state.campaigns_seen:
        state.duplicates_ignored += 1
        note(state, config, now, "campaign_duplicate", f"{campaign.title} again: ignored")
        return
    state.campaigns_seen = [*state.campaigns_seen, campaign.name][-config.dedupe_window :]
    state.campaigns_due.append(CampaignDue(campaign=campaign))
    note(
        state,
        config,
        now,
        "campaign_received",
        f"{campaign.title} ({campaign.name}) until {campaign.ends_at:%Y-%m-%d %H:%M} UTC",
    )


def next_send(
    state: JourneyState, config: JourneyConfig, now: datetime
) -> tuple[Campaign, Send] | None:
    """Decide the campaigns due: hold back or suppress as decided, and return the first
    to send now (``done`` then closes it)."""
    for due in list(state.campaigns_due):
        if due.deferred_until is not None and now < due.deferred_until:
            continue
        match decide(state, config, due.campaign, now):
            case Send() as send:
                return due.campaign, send
            case Hold(until=until, reason=reason):
                if due.deferred_until != until:
                    when = f"{until:%Y-%m-%d %H:%M} UTC"
                    note(
                        state,
                        config,
                        now,
                        "campaign_held",
                        f"{due.campaign.title} waits until {when}: {reason}",
                    )
                due.deferred_until = until
            case Suppress(reason=reason):
                _close(state, due.campaign, now, ContactOutcome.SUPPRESSED, reason=reason)
                note(state, config, now, "campaign_suppressed", f"{due.campaign.title}: {reason}")
    return None


def done(
    state: JourneyState,
    config: JourneyConfig,
    campaign: Campaign,
    send: Send,
    now: datetime,
    failure: str | None,
) -> None:
    """The campaign's message went out (or its channel failed for good)."""
    summary = f"{campaign.title}: {send.content_key} by {send.channel}"
    if failure is not None:
        _close(state, campaign, now, ContactOutcome.FAILED, reason=failure, send=send)
        note(state, config, now, "campaign_failed", f"{summary} failed: {failure}")
        return
    _close(state, campaign, now, ContactOutcome.SENT, send=send)
    touched(state, config, send.channel, now)
    state.campaigns_reached = [
        *(reached for reached in state.campaigns_reached if reached.ends_at > now),
        CampaignReached(name=campaign.name, ends_at=campaign.ends_at),
    ]
    note(state, config, now, "campaign_sent", summary)


def purchased(state: JourneyState, config: JourneyConfig, now: datetime) -> None:
    """A purchase while a campaign runs, after it reached the customer, converts it."""
    for reached in state.campaigns_reached:
        if now < reached.ends_at:
            state.campaign_contacts_due.append(
                CampaignContact(
                    campaign=reached.name,
                    customer_id=state.customer_id,
                    outcome=ContactOutcome.CONVERTED,
                    at=now,
                )
            )
            state.outcomes_due.append(
                OutcomeDue(
                    engagement=f"campaign-{reached.name}/step-1", outcome="converted", at=now
                )
            )
            note(state, config, now, "campaign_converted", f"{reached.name} converted")
    state.campaigns_reached = []


def _close(
    state: JourneyState,
    campaign: Campaign,
    now: datetime,
    outcome: ContactOutcome,
    reason: str | None = None,
    send: Send | None = None,
) -> None:
    state.campaigns_due = [d for d in state.campaigns_due if d.campaign.name != campaign.name]
    state.campaign_contacts_due.append(
        CampaignContact(
            campaign=campaign.name,
            customer_id=state.customer_id,
            outcome=outcome,
            at=now,
            reason=reason,
            channel=send.channel if send else None,
            content_key=send.content_key if send else None,
        )
    )
