"""The payment-failed ladder on simulated time, on SQLite and Postgres."""

from __future__ import annotations

from testkit import Scenario
from tests.journeys import NEVER_QUIET, NO_HOLDOUTS
from workflows.config import JourneyConfig
from workflows.registry import REMEDIATION

# SMS by consent (granted below); a cap that the other programmes' messages leave room in.
CONFIG = JourneyConfig(
    holdouts=NO_HOLDOUTS, contact=NEVER_QUIET.model_copy(update={"marketing_cap": 10})
)


async def test_a_declined_payment_climbs_until_the_customer_pays(kit: Scenario) -> None:
    await kit.event("pat", "purchase", day=0, amount=80)
    await kit.event("pat", "consent_changed", day=0, channel="sms", granted=True)
    await kit.event("pat", "payment_failed", day=1, order_id="o-1", reason="card-expired")
    await kit.at(day=3.5)  # email at once, SMS a day later, then two days for an answer
    await kit.event("pat", "purchase", day=3.5, amount=80, order_id="o-1")
    await kit.at(day=10)

    sent = await kit.sent("pat")
    assert [(m.day, m.name, m.channel, m.outcome) for m in sent if m.cause == "payment_failed"] == [
        (1, "update your payment method", "email", "no_response"),
        (2, "payment reminder", "sms", "converted"),
    ]
    remediation = await kit.state("pat", REMEDIATION)
    assert remediation is not None
    assert (remediation.ladder, remediation.won) == (None, 1)
    [won] = await kit.timeline("pat", kind="ladder_won")
    assert won.summary == "payment_failed ladder won at step 2 by purchase; cost $0.15"
