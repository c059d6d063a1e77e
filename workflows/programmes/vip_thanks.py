"""VIP thanks: feedback is a gift, and a VIP who gives it is thanked for it (with pivot
care, a loyal or repeat customer too: its care cohorts).

A reply to something the customer just did: consent applies, the marketing cap and
quiet hours do not, and it is never counted against the cap.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from workflows.events import CustomerEvent, EventType
from workflows.patches import Patch
from workflows.programme import Contact, Engagement, Journey, Programme
from workflows.programmes.pivot_care import cared_for


class ThanksRules(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str = "thank-you note"
    channel: str = "email"
    cost: Decimal = Decimal("0.05")


class ThanksState(BaseModel):
    # The feedback event the customer is owed a thank-you for.
    feedback_event_id: str


class VipThanks(Programme[ThanksState]):
    name = "vip_thanks"
    state_model = ThanksState
    hears = frozenset({EventType.FEEDBACK})
    turn = 20
    since = Patch.VIP_CARE

    def heard(
        self, journey: Journey, state: ThanksState | None, event: CustomerEvent
    ) -> ThanksState | None:
        if cared_for(journey):
            return ThanksState(feedback_event_id=event.event_id)
        return state

    def wants(self, journey: Journey, state: ThanksState) -> list[Engagement]:
        feedback = state.feedback_event_id
        thanks = self.rules(journey.config, ThanksRules)
        return [
            Engagement(
                cause="vip_care",
                series=f"thanks-{feedback}",
                name=thanks.name,
                channel=thanks.channel,
                cost=thanks.cost,
                label="thank-you",
                what=f"VIP care: {thanks.name}",
                after=f" for feedback {feedback}",
                contact=Contact.CONSENT,
                event_id=feedback,
            )
        ]

    def sent(self, journey: Journey, state: ThanksState, engagement: Engagement) -> None:
        return None

    def failed(
        self, journey: Journey, state: ThanksState, engagement: Engagement, reason: str
    ) -> None:
        return None

    def skipped(
        self, journey: Journey, state: ThanksState, engagement: Engagement, reason: str
    ) -> None:
        return None

    def describe(self, state: ThanksState) -> str | None:
        return f"owes a thank-you for feedback {state.feedback_event_id}"
