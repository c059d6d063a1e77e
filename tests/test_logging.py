"""Log lines carry the ids that find their journey, and only ids."""

from __future__ import annotations

from structlog.testing import capture_logs
from temporalio.testing import ActivityEnvironment

from activities.engagements import EngagementActivities
from activities.store import Store
from runtime.logging import add_temporal_ids
from tests.journeys import engagement_request


def test_outside_an_activity_nothing_is_added() -> None:
    assert add_temporal_ids(None, "info", {"event": "x"}) == {"event": "x"}


async def test_activity_lines_carry_customer_workflow_and_run_ids(store: Store) -> None:
    with capture_logs(processors=[add_temporal_ids]) as lines:
        activities = EngagementActivities(store)
        request = engagement_request("customer-kim/run/silence-1/step-1", "kim")
        await ActivityEnvironment().run(activities.send_engagement, request)
    [sent] = [line for line in lines if line["event"] == "engagement.sent"]
    assert sent["customer_id"] == "kim"
    # ActivityEnvironment's ids, as a worker would give the journey's.
    assert (sent["workflow_id"], sent["run_id"], sent["activity"]) == (
        "test",
        "test-run",
        "unknown",
    )
