"""Above the line: the offer a moment justifies for a customer doing well.

Browsing a category suggests its complement (double points on shoes for a customer who
only buys dresses: the Samantha loop); a basket just under the perk's threshold gets a
nudge. Generative offers come before dilutive ones (``workflows/offers.py``). Offers
made sit in the customer's wallet until they expire; a redemption closes the loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, Field

from workflows import offers
from workflows.catalogue import CATALOGUE
from workflows.events import CustomerEvent, EventType
from workflows.patches import Patch
from workflows.programme import Deadline, Engagement, Journey, Programme
from workflows.state import LinePosition


class WalletOffer(BaseModel):
    """An offer made to the customer above the line, and what became of it."""

    # Names its engagement (unique in the journey), so it is never sent twice.
    key: str
    offer_id: str
    # While due: the offers it may give way to, ``offer_id`` first (learned as it goes out).
    arms: tuple[str, ...] = ()
    category: str | None = None
    why: str
    issued_at: datetime | None = None
    expires_at: datetime | None = None
    redeemed_at: datetime | None = None

    @property
    def target(self) -> str:
        return f" on {self.category}" if self.category else ""


class OffersState(BaseModel):
    # The offer chosen and not yet sent.
    offer_due: WalletOffer | None = None
    # The offers made, and how many were redeemed.
    wallet: list[WalletOffer] = Field(default_factory=list)
    conversions: int = 0
    # The purchases the threshold nudge counts.
    recent_purchases: list[tuple[datetime, Decimal]] = Field(default_factory=list)


class AboveTheLine(Programme[OffersState]):
    name = "above_the_line"
    state_model = OffersState
    hears = frozenset({EventType.APP_BROWSE, EventType.PURCHASE, EventType.OFFER_REDEEMED})
    turn = 30
    since = Patch.ABOVE_THE_LINE

    def heard(
        self, journey: Journey, state: OffersState | None, event: CustomerEvent
    ) -> OffersState | None:
        return _kept(self._heard(journey, state or OffersState(), event))

    def _heard(self, journey: Journey, state: OffersState, event: CustomerEvent) -> OffersState:
        rules, now = journey.config.above_the_line, journey.now
        if event.type == EventType.OFFER_REDEEMED:
            self._redeem(journey, state, event.properties.offer_id, event.event_id)
        if event.type == EventType.PURCHASE:
            counted = offers.spend_in_period(state.recent_purchases, rules, now)
            happened = min(event.occurred_at, now)
            state.recent_purchases = [*counted, (happened, event.properties.amount)]
        # Above the line means no climb is under way and the customer is not dormant.
        if journey.state.line_position != LinePosition.ABOVE:
            return state
        spend = sum((amount for _, amount in state.recent_purchases), Decimal(0))
        found = [
            candidate
            for candidate in offers.candidates(journey.state.profile, rules, event, spend)
            if not self._holds(state, candidate.offer.offer_id, candidate.category, now)
        ]
        chosen = offers.choose(found, rules)
        if chosen is None:
            return state
        passed = [c for c in found if c is not chosen]
        over = (
            " over " + ", ".join(f"{c.offer.offer_id} ({c.offer.kind.value})" for c in passed)
            if passed
            else ""
        )
        target = f" on {chosen.category}" if chosen.category else ""
        journey.note(
            "offer_chosen",
            f"{chosen.offer.offer_id}{target} ({chosen.offer.kind.value}){over}: {chosen.why}",
            programme=self.name,
        )
        rivals = offers.rivals(found, chosen)
        # Several offers for one moment: the journey learns which (journeys of 0.2).
        learned = len(rivals) > 1 and journey.patched(Patch.RELEASE_0_2)
        state.offer_due = WalletOffer(
            key=f"offer-{journey.state.events_applied}",
            offer_id=chosen.offer.offer_id,
            arms=rivals if learned else (),
            category=chosen.category,
            why=chosen.why,
        )
        return state

    @staticmethod
    def _holds(state: OffersState, offer_id: str, category: str | None, now: datetime) -> bool:
        """Whether the customer already holds this offer, unredeemed and unexpired."""
        return any(
            held.offer_id == offer_id
            and held.category == category
            and held.redeemed_at is None
            and (held.expires_at is None or held.expires_at > now)
            for held in state.wallet
        )

    def _redeem(self, journey: Journey, state: OffersState, offer_id: str, event_id: str) -> None:
        held = next(
            (o for o in state.wallet if o.offer_id == offer_id and o.redeemed_at is None), None
        )
        if held is None or (held.expires_at is not None and held.expires_at < journey.now):
            return
        held.redeemed_at = journey.now
        state.conversions += 1
        journey.outcome(f"{held.key}/step-1", "converted")
        journey.note(
            "offer_converted",
            f"{offer_id}{held.target} redeemed",
            event_id=event_id,
            programme=self.name,
        )

    def wants(self, journey: Journey, state: OffersState) -> list[Engagement]:
        offer = state.offer_due
        if offer is None:
            return []
        listed = CATALOGUE[offer.offer_id]
        return [
            Engagement(
                cause="above_line",
                series=offer.key,
                # A learned moment's content is the offer chosen as it goes out.
                name="cross-sell" if offer.arms else listed.description,
                channel=listed.channel,
                cost=listed.cost,
                offer_id=offer.offer_id,
                arms=offer.arms,
                decision="above_line/cross-sell" if offer.arms else None,
                offer_category=offer.category,
                label=f"{offer.offer_id} offer",
                what=f"above the line: {offer.offer_id}{offer.target}",
                after=f" ({offer.why})",
            )
        ]

    def sent(self, journey: Journey, state: OffersState, engagement: Engagement) -> OffersState:
        """The chosen offer went out: it is in the customer's wallet until it expires."""
        offer, now = state.offer_due, journey.now
        if offer is None:
            return state
        # The offer that went out: a learned moment's choice.
        offer_id = engagement.offer_id or offer.offer_id
        valid_for = CATALOGUE[offer_id].valid_for
        state.wallet = [
            held for held in state.wallet if held.expires_at is None or held.expires_at > now
        ][-journey.config.timeline_length :]
        made = {"offer_id": offer_id, "arms": (), "issued_at": now, "expires_at": now + valid_for}
        state.wallet.append(offer.model_copy(update=made))
        state.offer_due = None
        return state

    def failed(
        self, journey: Journey, state: OffersState, engagement: Engagement, reason: str
    ) -> OffersState:
        state.offer_due = None
        return state

    def skipped(
        self, journey: Journey, state: OffersState, engagement: Engagement, reason: str
    ) -> OffersState:
        state.offer_due = None
        return state

    def deadline(self, state: OffersState, held: Mapping[str, datetime]) -> Deadline | None:
        offer = state.offer_due
        until = held.get(f"{offer.key}/step-1") if offer is not None else None
        if offer is None or until is None:
            return None
        return Deadline(until, f"send the {offer.offer_id} offer")

    def describe(self, state: OffersState) -> str | None:
        if not state.wallet:
            return None
        redeemed = sum(held.redeemed_at is not None for held in state.wallet)
        return f"offers made {len(state.wallet)}, redeemed {redeemed}"


def _kept(state: OffersState) -> OffersState | None:
    """Nothing held, nothing due, nothing counted: nothing to remember."""
    return state if state != OffersState() else None
