"""A journey that continued as new on 0.1 carries its state in the old shape: it must
start its next run with nothing lost."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from workflows.registry import ABOVE_THE_LINE, CAMPAIGNS, REMEDIATION, VIP_THANKS
from workflows.state import JourneyInput

T = datetime(2026, 3, 1, tzinfo=UTC)
SALE = {
    "name": "spring-sale",
    "title": "Spring Sale",
    "starts_at": "2026-03-01T00:00:00Z",
    "ends_at": "2026-03-15T00:00:00Z",
    "content_key": "spring-sale",
}
STATE_0_1 = {
    "customer_id": "old",
    "line_position": "below",
    "cohort": "repeat",
    "profile": {"lifetime_value": "120.00", "order_count": 2},
    "silence_deadline": "2026-04-01T00:00:00Z",
    "dormant": False,
    "ladder": {
        "run_id": "silence-3",
        "cause": "silence",
        "started_at": "2026-02-20T00:00:00Z",
        "ceiling": "11.00",
        "step": 1,
        "spent": "0.05",
        "deferred_until": "2026-03-02T08:00:00Z",
    },
    "ladder_runs": 3,
    "remediation_spend": "4.10",
    "remediations_won": 2,
    "thanks_due": "fb-9",
    "offer_due": None,
    "wallet": [
        {"key": "offer-4", "offer_id": "double-points", "category": "shoes", "why": "browsing"}
    ],
    "conversions": 1,
    "recent_purchases": [],
    "campaigns_seen": ["spring-sale"],
    "campaigns_due": [{"campaign": SALE, "deferred_until": "2026-03-02T08:00:00Z"}],
    "campaigns_reached": [],
    "campaign_contacts_due": [],
    "marketing_touches": ["2026-02-27T10:00:00Z"],
    "timeline": [{"at": "2026-02-20T00:00:00Z", "kind": "ladder_started", "summary": "…"}],
}


def test_a_state_carried_from_0_1_lands_under_its_programmes() -> None:
    carried = JourneyInput.model_validate({"customer_id": "old", "state": STATE_0_1}).state
    assert carried is not None

    remediation = REMEDIATION.state_in(carried)
    assert remediation is not None
    assert remediation.ladder is not None
    assert (remediation.ladder.run_id, remediation.ladder.step) == ("silence-3", 1)
    assert (remediation.runs, remediation.spend, remediation.won) == (3, Decimal("4.10"), 2)
    thanks = VIP_THANKS.state_in(carried)
    assert thanks is not None
    assert thanks.feedback_event_id == "fb-9"
    offers = ABOVE_THE_LINE.state_in(carried)
    assert offers is not None
    assert [(o.offer_id, o.category) for o in offers.wallet] == [("double-points", "shoes")]
    assert offers.conversions == 1
    campaigns = CAMPAIGNS.state_in(carried)
    assert campaigns is not None
    assert [c.name for c in campaigns.due] == ["spring-sale"]
    assert campaigns.seen == ["spring-sale"]
    # The contact policy's holds keep their times, under each engagement's key.
    held = {key: until.isoformat() for key, until in carried.held.items()}
    assert held == {
        "silence-3/step-2": "2026-03-02T08:00:00+00:00",
        "campaign-spring-sale/step-1": "2026-03-02T08:00:00+00:00",
    }
    assert carried.marketing_touches == [datetime(2026, 2, 27, 10, tzinfo=UTC)]
    assert carried.line_position == "below"


def test_a_state_of_today_passes_through_unchanged() -> None:
    carried = JourneyInput.model_validate({"customer_id": "old", "state": STATE_0_1}).state
    assert carried is not None
    again = JourneyInput.model_validate(
        {"customer_id": "old", "state": carried.model_dump(mode="json")}
    ).state
    assert again is not None
    assert again.model_dump(mode="json") == carried.model_dump(mode="json")
