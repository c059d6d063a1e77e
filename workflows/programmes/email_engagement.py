"""Email engagement: what the email provider's notifications mean for the journey.

No provider says that an email went unopened: a delivered email not opened within the
open window makes the journey record ``email_unopened`` itself (its id made from the
message, so it applies once), which is then recorded in the ledger and applied like any
event (it lowers the line one notch). An open of the same message, or of the same
engagement, in time clears it. A bounce stops email in the contact policy (fallbacks
apply) until a ``profile_updated`` gives a new address.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from workflows.events import CustomerEvent, EmailProperties, EventType
from workflows.patches import Patch
from workflows.programme import Deadline, Journey, Programme
from workflows.timeline import when

# An event id is at most 128 characters: a longer seed is replaced by its digest.
_SEED_MAX = 100


class EmailEngagementRules(BaseModel):
    model_config = ConfigDict(frozen=True)

    # How long a delivered email may wait to be opened.
    open_window: timedelta = Field(default=timedelta(days=3), gt=timedelta(0))
    # Deliveries waited on at once; past this, the oldest is forgotten.
    deliveries_kept: int = Field(default=20, ge=1, le=200)


class Delivery(BaseModel):
    """A delivered email, waiting to be opened."""

    properties: EmailProperties
    # The delivery's own event id, for an email without a message id.
    event_id: str
    unopened_at: datetime


class Bounce(BaseModel):
    # The address that bounced, if the profile knew it.
    address: str | None
    at: datetime


class EmailEngagementState(BaseModel):
    deliveries: list[Delivery] = Field(default_factory=list)
    bounce: Bounce | None = None


def same_email(a: EmailProperties, b: EmailProperties) -> bool:
    """Whether two notifications are about the same email: its message or engagement."""
    return (a.message_id is not None and a.message_id == b.message_id) or (
        a.engagement_key is not None and a.engagement_key == b.engagement_key
    )


def unopened_event_id(delivery: Delivery) -> str:
    """The id of the ``email_unopened`` event a delivery raises: the same on every replay."""
    seed = delivery.properties.message_id or delivery.event_id
    if len(seed) > _SEED_MAX:
        seed = hashlib.sha256(seed.encode()).hexdigest()
    return f"unopened-{seed}"


def new_address(bounce: Bounce, address: str | None) -> bool:
    return address is not None and (
        bounce.address is None or address.casefold() != bounce.address.casefold()
    )


class EmailEngagement(Programme[EmailEngagementState]):
    name = "email_engagement"
    state_model = EmailEngagementState
    hears = frozenset(
        {
            EventType.EMAIL_DELIVERED,
            EventType.EMAIL_OPENED,
            EventType.EMAIL_BOUNCED,
            EventType.PROFILE_UPDATED,
        }
    )
    turn = 90
    since = Patch.RELEASE_0_2

    def heard(
        self, journey: Journey, state: EmailEngagementState | None, event: CustomerEvent
    ) -> EmailEngagementState | None:
        state = state or EmailEngagementState()
        match event.type:
            case EventType.EMAIL_DELIVERED:
                self._delivered(journey, state, event.properties, event.event_id)
            case EventType.EMAIL_OPENED:
                self._forget(state, event.properties)
            case EventType.EMAIL_BOUNCED:
                self._forget(state, event.properties)
                state.bounce = Bounce(address=journey.state.profile.email, at=journey.now)
                journey.note(
                    "email_stopped",
                    "the address bounced: no email until a new one is known",
                    event_id=event.event_id,
                    programme=self.name,
                )
            case EventType.PROFILE_UPDATED:
                if state.bounce is not None and new_address(state.bounce, event.properties.email):
                    state.bounce = None
                    journey.note(
                        "email_restored",
                        "a new address: email again",
                        event_id=event.event_id,
                        programme=self.name,
                    )
        return self._settled(state)

    def _delivered(
        self, journey: Journey, state: EmailEngagementState, email: EmailProperties, event_id: str
    ) -> None:
        """Wait for an open of it: once, and only if an open could name it."""
        if email.message_id is None and email.engagement_key is None:
            return
        if any(same_email(waiting.properties, email) for waiting in state.deliveries):
            return
        rules = self.rules(journey.config, EmailEngagementRules)
        delivery = Delivery(
            properties=email, event_id=event_id, unopened_at=journey.now + rules.open_window
        )
        state.deliveries = [*state.deliveries, delivery][-rules.deliveries_kept :]

    @staticmethod
    def _forget(state: EmailEngagementState, email: EmailProperties) -> None:
        state.deliveries = [d for d in state.deliveries if not same_email(d.properties, email)]

    @staticmethod
    def _settled(state: EmailEngagementState) -> EmailEngagementState | None:
        return state if state.deliveries or state.bounce is not None else None

    def tick(self, journey: Journey, state: EmailEngagementState) -> EmailEngagementState | None:
        """Each email left unopened past its window becomes an ``email_unopened`` event."""
        for delivery in state.deliveries:
            if journey.now >= delivery.unopened_at:
                journey.raise_event(
                    unopened_event_id(delivery),
                    EventType.EMAIL_UNOPENED,
                    delivery.properties.model_dump(exclude_none=True),
                )
        state.deliveries = [d for d in state.deliveries if journey.now < d.unopened_at]
        return self._settled(state)

    def deadline(
        self, state: EmailEngagementState, held: Mapping[str, datetime]
    ) -> Deadline | None:
        first = min((d.unopened_at for d in state.deliveries), default=None)
        return Deadline(first, "record an unopened email") if first is not None else None

    def blocks(self, state: EmailEngagementState) -> frozenset[str]:
        return frozenset({"email"}) if state.bounce is not None else frozenset()

    def describe(self, state: EmailEngagementState) -> str | None:
        waiting = f"{len(state.deliveries)} email(s) waiting to be opened"
        if state.bounce is None:
            return waiting
        return f"{waiting}; email stopped since a bounce at {when(state.bounce.at)}"
