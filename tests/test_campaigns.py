"""What a campaign means for one customer, as plain functions: no server."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest

from tests.journeys import NEVER_QUIET
from workflows import campaigns
from workflows.calendar import Campaign
from workflows.campaigns import Hold, Send, Suppress, decide, personal_category
from workflows.config import JourneyConfig
from workflows.contracts import CampaignResults, ContactOutcome
from workflows.fanout import FanOutProgress, details
from workflows.ladders import Cause
from workflows.state import JourneyState, LadderRun

NOW = datetime(2027, 3, 15, 12, 0, tzinfo=UTC)
CONFIG = JourneyConfig(contact=NEVER_QUIET)
SALE = Campaign(
    name="spring-sale",
    title="Spring Sale",
    starts_at=NOW - timedelta(hours=4),
    ends_at=NOW + timedelta(days=14),
    content_key="spring-sale",
    categories=("knitwear", "shoes"),
)


def customer(*categories: str) -> JourneyState:
    state = JourneyState(customer_id="c1")
    state.profile.categories = list(categories)
    return state


def on_ladder(cause: Cause, vip_care: bool = False) -> JourneyState:
    state = customer("shoes")
    state.ladder = LadderRun(
        run_id=f"{cause.value}-1",
        cause=cause,
        started_at=NOW,
        ceiling=Decimal(10),
        vip_care=vip_care,
    )
    return state


@pytest.mark.parametrize(
    ("bought", "featured", "chosen"),
    [
        (["dresses", "shoes"], ("knitwear", "shoes"), "shoes"),
        (["shoes", "knitwear"], ("knitwear", "shoes"), "knitwear"),  # the campaign's order
        (["garden"], ("knitwear", "shoes"), None),
        (["dresses", "garden"], (), "garden"),  # none featured: the latest taken up
        ([], (), None),
    ],
)
def test_the_category_spoken_to(
    bought: list[str], featured: tuple[str, ...], chosen: str | None
) -> None:
    assert personal_category(bought, featured) == chosen


def test_a_customer_hears_about_what_they_buy_or_the_general_message() -> None:
    assert decide(customer("dresses", "shoes"), CONFIG, SALE, NOW) == Send(
        "email", "spring-sale/shoes", "shoes"
    )
    assert decide(customer(), CONFIG, SALE, NOW) == Send("email", "spring-sale/general", None)


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (on_ladder(Cause.COMPLAINT), "in complaint remediation"),
        (on_ladder(Cause.DELIVERY_LATE), "in delivery late remediation"),
        (on_ladder(Cause.RETURN, vip_care=True), "in service remediation"),
    ],
)
def test_no_sale_blast_during_service_remediation(state: JourneyState, reason: str) -> None:
    assert decide(state, CONFIG, SALE, NOW) == Suppress(reason)


def test_a_silence_ladder_does_not_suppress_a_campaign() -> None:
    assert isinstance(decide(on_ladder(Cause.SILENCE), CONFIG, SALE, NOW), Send)


def test_paused_over_or_unreachable_customers_are_suppressed() -> None:
    paused = customer()
    paused.paused_by = "alice"
    assert decide(paused, CONFIG, SALE, NOW) == Suppress("journey paused")
    assert decide(customer(), CONFIG, SALE, SALE.ends_at) == Suppress("campaign over")
    withdrawn = customer()
    withdrawn.profile.consent = {"email": False, "push": False, "sms": False}
    assert decide(withdrawn, CONFIG, SALE, NOW) == Suppress("no consent for email or its fallbacks")


def test_quiet_hours_hold_and_a_cap_past_the_end_suppresses() -> None:
    quiet = CONFIG.model_copy(
        update={
            "contact": CONFIG.contact.model_copy(
                update={"quiet_start": time(11), "quiet_end": time(13)}
            )
        }
    )
    assert decide(customer(), quiet, SALE, NOW) == Hold(
        NOW.replace(hour=13), "quiet hours until 13:00 UTC"
    )
    capped = CONFIG.model_copy(
        update={
            "contact": CONFIG.contact.model_copy(
                update={"marketing_cap": 1, "cap_window": timedelta(days=30)}
            )
        }
    )
    touched = customer()
    touched.marketing_touches = [NOW - timedelta(days=1)]
    decision = decide(touched, capped, SALE, NOW)
    assert isinstance(decision, Suppress)
    assert decision.reason.startswith("frequency cap")


def test_a_campaign_is_taken_in_once_and_closed_with_its_outcome() -> None:
    state = customer("shoes")
    campaigns.receive(state, CONFIG, SALE, NOW)
    campaigns.receive(state, CONFIG, SALE, NOW)
    assert state.duplicates_ignored == 1
    assert [due.campaign.name for due in state.campaigns_due] == ["spring-sale"]
    found = campaigns.next_send(state, CONFIG, NOW)
    assert found == (SALE, Send("email", "spring-sale/shoes", "shoes"))
    campaigns.done(state, CONFIG, SALE, found[1], NOW, failure=None)
    assert state.campaigns_due == []
    assert [(c.outcome, c.content_key) for c in state.campaign_contacts_due] == [
        (ContactOutcome.SENT, "spring-sale/shoes")
    ]
    assert state.marketing_touches == [NOW]
    campaigns.purchased(state, CONFIG, NOW + timedelta(days=1))
    assert state.campaign_contacts_due[-1].outcome == ContactOutcome.CONVERTED
    assert state.outcomes_due[-1].engagement == "campaign-spring-sale/step-1"
    campaigns.purchased(state, CONFIG, NOW + timedelta(days=2))  # converts once
    assert len(state.campaign_contacts_due) == 2


def test_the_fan_out_details_say_how_far_it_got_and_what_came_of_it() -> None:
    progress = FanOutProgress(
        pages=1,
        reached=9,
        reached_all_at=NOW,
        results=CampaignResults(
            sent=7, converted=3, suppressed={"in complaint remediation": 1, "journey paused": 1}
        ),
    )
    text = details(SALE, progress)
    assert "reached **9** journeys in 1 page\n" in text
    assert "- sent 7, suppressed 2, failed 0, converted 3" in text
    assert "- suppressed (in complaint remediation): 1" in text
    assert "$" not in text
