"""What a campaign means for one customer, as plain functions: no server."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest

from testkit.moments import EVERY, begun, ev
from tests.journeys import NEVER_QUIET, NO_HOLDOUTS
from workflows import contact, engine
from workflows.calendar import Campaign
from workflows.config import JourneyConfig
from workflows.contracts import CampaignResults, ContactOutcome, RecordCampaignContactsRequest
from workflows.fanout import FanOutProgress, details
from workflows.programme import Engagement, Journey
from workflows.programmes.campaigns import personal_category
from workflows.programmes.remediation import LadderRun
from workflows.registry import CAMPAIGNS, REMEDIATION
from workflows.state import JourneyState

NOW = datetime(2027, 3, 15, 12, 0, tzinfo=UTC)
CONFIG = JourneyConfig(holdouts=NO_HOLDOUTS, contact=NEVER_QUIET)
SALE = Campaign(
    name="spring-sale",
    title="Spring Sale",
    starts_at=NOW - timedelta(hours=4),
    ends_at=NOW + timedelta(days=14),
    content_key="spring-sale",
    categories=("knitwear", "shoes"),
)


def customer(*categories: str) -> JourneyState:
    state = begun(NOW, CONFIG)
    state.profile.categories = list(categories)
    return state


def on_ladder(cause: str, vip_care: bool = False) -> JourneyState:
    state = customer("shoes")
    remediation = REMEDIATION.state_in(state)
    assert remediation is not None
    remediation.ladder = LadderRun(
        run_id=f"{cause}-1", cause=cause, started_at=NOW, ceiling=Decimal(10), vip_care=vip_care
    )
    return state


def wanted(state: JourneyState, config: JourneyConfig = CONFIG) -> Engagement:
    journey = Journey(state, config, NOW)
    received = CAMPAIGNS.received(journey, CAMPAIGNS.state_in(state), SALE)
    CAMPAIGNS.put(state, received)
    [engagement] = CAMPAIGNS.wants(journey, received)
    return engagement


def decided(state: JourneyState, config: JourneyConfig = CONFIG) -> contact.Decision:
    return engine.decide(Journey(state, config, NOW), EVERY, wanted(state, config))


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
    shoes = wanted(customer("dresses", "shoes"))
    assert (shoes.name, shoes.offer_category, shoes.key) == (
        "spring-sale/shoes",
        "shoes",
        "campaign-spring-sale/step-1",
    )
    assert wanted(customer()).name == "spring-sale/general"
    assert decided(customer()) == contact.Send("email")


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (on_ladder("complaint"), "in complaint remediation"),
        (on_ladder("delivery_late"), "in delivery late remediation"),
        (on_ladder("return", vip_care=True), "in service remediation"),
    ],
)
def test_no_sale_blast_during_service_remediation(state: JourneyState, reason: str) -> None:
    assert decided(state) == contact.Skip(reason)


def test_a_silence_ladder_does_not_suppress_a_campaign() -> None:
    assert decided(on_ladder("silence")) == contact.Send("email")


def test_paused_or_unreachable_customers_are_suppressed() -> None:
    paused = customer()
    paused.paused_by = "alice"
    assert decided(paused) == contact.Skip("journey paused")
    withdrawn = customer()
    withdrawn.profile.consent = {"email": False, "push": False, "sms": False}
    assert decided(withdrawn) == contact.Skip("no consent for email or its fallbacks")


def test_a_campaign_that_is_over_is_suppressed_and_filed() -> None:
    state = customer()
    over = Journey(state, CONFIG, SALE.ends_at)
    received = CAMPAIGNS.received(over, None, SALE)
    assert CAMPAIGNS.wants(over, received) == []
    [filing] = CAMPAIGNS.filings(received)
    assert isinstance(filing.request, RecordCampaignContactsRequest)
    [filed] = filing.request.contacts
    assert (filed.outcome, filed.reason) == (ContactOutcome.SUPPRESSED, "campaign over")


def test_quiet_hours_hold_and_a_cap_past_the_end_suppresses() -> None:
    quiet = CONFIG.model_copy(
        update={
            "contact": CONFIG.contact.model_copy(
                update={"quiet_start": time(11), "quiet_end": time(13)}
            )
        }
    )
    assert decided(customer(), quiet) == contact.Defer(
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
    decision = decided(touched, capped)
    assert isinstance(decision, contact.Skip)
    assert decision.reason.startswith("frequency cap")


def test_a_campaign_is_taken_in_once_and_closed_with_its_outcome() -> None:
    state = customer("shoes")
    journey = Journey(state, CONFIG, NOW)
    received = CAMPAIGNS.received(journey, None, SALE)
    received = CAMPAIGNS.received(journey, received, SALE)
    assert state.duplicates_ignored == 1
    assert [campaign.name for campaign in received.due] == ["spring-sale"]
    [engagement] = CAMPAIGNS.wants(journey, received)
    CAMPAIGNS.sent(journey, received, engagement)
    assert received.due == []
    assert [(c.outcome, c.content_key) for c in received.contacts_due] == [
        (ContactOutcome.SENT, "spring-sale/shoes")
    ]
    later = Journey(state, CONFIG, NOW + timedelta(days=1))
    CAMPAIGNS.heard(later, received, ev("purchase", later.now, amount=10))
    assert received.contacts_due[-1].outcome == ContactOutcome.CONVERTED
    assert state.outcomes_due[-1].engagement == "campaign-spring-sale/step-1"
    CAMPAIGNS.heard(later, received, ev("purchase", later.now, "e2", amount=10))  # converts once
    assert len(received.contacts_due) == 2


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
