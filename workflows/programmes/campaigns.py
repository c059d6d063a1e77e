"""Calendared campaigns, as one journey sees them.

A campaign (Spring Sale, Summer Clearance, Holiday) runs across every journey in its
audience; the fan-out signals each one. Each journey decides for its own customer:
suppressed (care under way, a paused journey, the contact policy says no), held back
until quiet hours end, or sent, personalised by the categories the customer buys. A
purchase while the campaign runs, after it reached the customer, is its conversion.
Every decision is filed in the single customer view.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from pydantic import BaseModel, Field

from workflows.calendar import Campaign
from workflows.contracts import (
    RECORD_CAMPAIGN_CONTACTS,
    CampaignContact,
    ContactOutcome,
    RecordCampaignContactsRequest,
)
from workflows.events import CustomerEvent, EventType
from workflows.programme import Deadline, Engagement, Filing, Journey, Programme
from workflows.timeline import when

# Content for a customer whose categories say nothing the campaign features.
GENERAL = "general"


class CampaignReached(BaseModel):
    """A campaign sent to the customer, converted by a purchase until it ends."""

    name: str
    ends_at: datetime


class CampaignsState(BaseModel):
    # The names received (the dedupe window), the campaigns not yet decided, those that
    # reached the customer and may yet convert, and what is still to be filed.
    seen: list[str] = Field(default_factory=list)
    due: list[Campaign] = Field(default_factory=list)
    reached: list[CampaignReached] = Field(default_factory=list)
    contacts_due: list[CampaignContact] = Field(default_factory=list)


def personal_category(bought: list[str], featured: tuple[str, ...]) -> str | None:
    """The category to speak to: the first featured one the customer buys, else (when
    the campaign features none) the latest they took up, else none."""
    if featured:
        return next((category for category in featured if category in bought), None)
    return bought[-1] if bought else None


class Campaigns(Programme[CampaignsState]):
    name = "campaigns"
    state_model = CampaignsState
    hears = frozenset({EventType.PURCHASE})
    turn = 10
    # A paused journey's campaigns are suppressed, not kept for later.
    runs_while_paused = True

    def received(
        self, journey: Journey, state: CampaignsState | None, campaign: Campaign
    ) -> CampaignsState:
        """Take a campaign in, once: the fan-out may signal a journey twice after a crash."""
        state = state or CampaignsState()
        if campaign.name in state.seen:
            journey.state.duplicates_ignored += 1
            journey.note(
                "campaign_duplicate", f"{campaign.title} again: ignored", programme=self.name
            )
            return state
        state.seen = [*state.seen, campaign.name][-journey.config.dedupe_window :]
        state.due.append(campaign)
        journey.note(
            "campaign_received",
            f"{campaign.title} ({campaign.name}) until {when(campaign.ends_at)}",
            programme=self.name,
        )
        return state

    def wants(self, journey: Journey, state: CampaignsState) -> list[Engagement]:
        wanted = []
        for campaign in list(state.due):
            if journey.now >= campaign.ends_at:
                self._close(journey, state, campaign, ContactOutcome.SUPPRESSED, "campaign over")
                journey.note(
                    "campaign_suppressed", f"{campaign.title}: campaign over", programme=self.name
                )
                continue
            category = personal_category(journey.state.profile.categories, campaign.categories)
            content_key = f"{campaign.content_key}/{category or GENERAL}"
            wanted.append(
                Engagement(
                    cause="campaign",
                    series=campaign.run_id,
                    name=content_key,
                    channel=campaign.channel,
                    cost=campaign.cost,
                    offer_id=campaign.offer_id,
                    offer_category=category,
                    label=f"{campaign.title} campaign",
                    what=f"campaign {campaign.title}: {content_key}",
                    care_first=True,
                    expires_at=campaign.ends_at,
                )
            )
        return wanted

    def sent(
        self, journey: Journey, state: CampaignsState, engagement: Engagement
    ) -> CampaignsState:
        campaign = self._campaign(state, engagement)
        if campaign is not None:
            outcome = ContactOutcome.HELD_BACK if engagement.held_back else ContactOutcome.SENT
            self._close(journey, state, campaign, outcome, sent=engagement)
            state.reached = [
                *(reached for reached in state.reached if reached.ends_at > journey.now),
                CampaignReached(name=campaign.name, ends_at=campaign.ends_at),
            ]
        return state

    def failed(
        self, journey: Journey, state: CampaignsState, engagement: Engagement, reason: str
    ) -> CampaignsState:
        campaign = self._campaign(state, engagement)
        if campaign is not None:
            self._close(journey, state, campaign, ContactOutcome.FAILED, reason, engagement)
        return state

    def skipped(
        self, journey: Journey, state: CampaignsState, engagement: Engagement, reason: str
    ) -> CampaignsState:
        campaign = self._campaign(state, engagement)
        if campaign is not None:
            self._close(journey, state, campaign, ContactOutcome.SUPPRESSED, reason)
        return state

    def heard(
        self, journey: Journey, state: CampaignsState | None, event: CustomerEvent
    ) -> CampaignsState | None:
        """A purchase while a campaign runs, after it reached the customer, converts it."""
        if state is None:
            return None
        for reached in state.reached:
            if journey.now < reached.ends_at:
                state.contacts_due.append(
                    CampaignContact(
                        campaign=reached.name,
                        customer_id=journey.state.customer_id,
                        outcome=ContactOutcome.CONVERTED,
                        at=journey.now,
                    )
                )
                journey.outcome(f"campaign-{reached.name}/step-1", "converted")
                journey.note("campaign_converted", f"{reached.name} converted", programme=self.name)
        state.reached = []
        return state

    def filings(self, state: CampaignsState) -> list[Filing]:
        due, state.contacts_due = state.contacts_due, []
        if not due:
            return []
        summary = ", ".join(f"{c.campaign}: {c.outcome.value}" for c in due)
        return [
            Filing(RECORD_CAMPAIGN_CONTACTS, RecordCampaignContactsRequest(contacts=due), summary)
        ]

    def deadline(self, state: CampaignsState, held: Mapping[str, datetime]) -> Deadline | None:
        waiting = [
            Deadline(held[campaign.run_id + "/step-1"], f"send the {campaign.title} campaign")
            for campaign in state.due
            if campaign.run_id + "/step-1" in held
        ]
        return min(waiting, key=lambda deadline: deadline.at, default=None)

    def describe(self, state: CampaignsState) -> str | None:
        if not state.due:
            return None
        return "campaigns waiting: " + ", ".join(campaign.title for campaign in state.due)

    @staticmethod
    def _campaign(state: CampaignsState, engagement: Engagement) -> Campaign | None:
        return next((c for c in state.due if c.run_id == engagement.series), None)

    def _close(
        self,
        journey: Journey,
        state: CampaignsState,
        campaign: Campaign,
        outcome: ContactOutcome,
        reason: str | None = None,
        sent: Engagement | None = None,
    ) -> None:
        state.due = [due for due in state.due if due.name != campaign.name]
        state.contacts_due.append(
            CampaignContact(
                campaign=campaign.name,
                customer_id=journey.state.customer_id,
                outcome=outcome,
                at=journey.now,
                reason=reason,
                channel=sent.channel if sent else None,
                content_key=sent.name if sent else None,
            )
        )
