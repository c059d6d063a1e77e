"""CampaignFanOut: one campaign reaching every journey in its audience.

A Temporal Schedule starts it when the campaign starts. It pages through the single
customer view (an activity per page) and has each page's journeys signalled at the
campaign's rate (another activity, which heartbeats its place, so a retry after a crash
carries on where it was). It continues as new every few pages, carrying its cursor, and
so can reach any number of customers. A journey signalled twice decides once: it
deduplicates by the campaign's name. Once every journey is reached, it keeps the
campaign's results current until the campaign ends, then returns them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ConfigDict, Field

    from workflows.calendar import Campaign
    from workflows.contracts import (
        AUDIENCE_PAGE,
        CAMPAIGN_RESULTS,
        SIGNAL_AUDIENCE,
        AudiencePage,
        AudiencePageRequest,
        CampaignResults,
        SignalAudienceRequest,
        SignalAudienceResult,
    )

PROGRESS_QUERY = "progress"
# The store or Temporal may be away for a while: keep trying, never skip a page.
PATIENT = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))


class FanOutProgress(BaseModel):
    # The last customer id of the last page signalled: where the next page starts.
    cursor: str | None = None
    pages: int = 0
    reached: int = 0
    # Customers whose journey has ended (erased): not restarted.
    closed: int = 0
    started_at: datetime | None = None
    # When every journey in the audience had been reached.
    reached_all_at: datetime | None = None
    results: CampaignResults = Field(default_factory=CampaignResults)


class FanOutPace(BaseModel):
    """How a campaign's fan-out goes (``EQUATOR_CAMPAIGNS__FAN_OUT__*``)."""

    model_config = ConfigDict(frozen=True)

    # Journeys signalled per second, at most.
    rate: float = Field(default=1_000.0, gt=0)
    # Customers read from the single customer view per page.
    page_size: int = Field(default=1_000, ge=1, le=5_000)
    # Once everyone is reached, how often the results are counted until the end.
    results_every: timedelta = Field(default=timedelta(minutes=5), gt=timedelta(0))


class FanOutInput(BaseModel):
    campaign: Campaign
    pace: FanOutPace = Field(default_factory=FanOutPace)
    # Continue as new after this many pages (history stays small at any audience size).
    pages_per_run: int = Field(default=20, ge=1)
    progress: FanOutProgress = Field(default_factory=FanOutProgress)


def fan_out_id(campaign_name: str) -> str:
    return f"campaign-{campaign_name}"


@workflow.defn
class CampaignFanOut:
    @workflow.init
    def __init__(self, input: FanOutInput) -> None:
        self._progress = input.progress

    @workflow.run
    async def run(self, input: FanOutInput) -> FanOutProgress:
        progress, campaign = self._progress, input.campaign
        progress.started_at = progress.started_at or workflow.now()
        pages_this_run = 0
        while progress.reached_all_at is None:
            page = await workflow.execute_activity(
                AUDIENCE_PAGE,
                AudiencePageRequest(
                    cohorts=campaign.audience, after=progress.cursor, limit=input.pace.page_size
                ),
                result_type=AudiencePage,
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=PATIENT,
                summary=f"page {progress.pages + 1} of the audience",
            )
            if not page.customer_ids:
                progress.reached_all_at = workflow.now()
                break
            await self._signal(input, page.customer_ids)
            pages_this_run += 1
            suggested = workflow.info().is_continue_as_new_suggested()
            if pages_this_run >= input.pages_per_run or suggested:
                workflow.continue_as_new(input.model_copy(update={"progress": progress}))
        while True:
            progress.results = await workflow.execute_activity(
                CAMPAIGN_RESULTS,
                campaign.name,
                result_type=CampaignResults,
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=PATIENT,
                summary="count the results",
            )
            self._show(campaign)
            now = workflow.now()
            if now >= campaign.ends_at:
                return progress
            if workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(input.model_copy(update={"progress": progress}))
            wait = min(input.pace.results_every, campaign.ends_at - now)
            await workflow.sleep(wait, summary="until the results are counted again")

    async def _signal(self, input: FanOutInput, customer_ids: list[str]) -> None:
        progress, campaign = self._progress, input.campaign
        # Long enough for the page at the rate, with room for Temporal's own pace.
        rate = input.pace.rate
        at_rate = timedelta(seconds=len(customer_ids) / rate)
        result = await workflow.execute_activity(
            SIGNAL_AUDIENCE,
            SignalAudienceRequest(campaign=campaign, customer_ids=customer_ids, rate=rate),
            result_type=SignalAudienceResult,
            start_to_close_timeout=at_rate * 4 + timedelta(minutes=2),
            heartbeat_timeout=timedelta(seconds=30),
            retry_policy=PATIENT,
            summary=(
                f"signal {len(customer_ids)} journeys ({customer_ids[0]} to "
                f"{customer_ids[-1]}) at {rate:g}/s"
            ),
        )
        progress.cursor = customer_ids[-1]
        progress.pages += 1
        progress.reached += result.signalled
        progress.closed += result.closed
        self._show(campaign)

    def _show(self, campaign: Campaign) -> None:
        workflow.set_current_details(details(campaign, self._progress))

    @workflow.query(name=PROGRESS_QUERY)
    def progress(self) -> FanOutProgress:
        return self._progress


def details(campaign: Campaign, progress: FanOutProgress) -> str:
    """The fan-out as ops read it in the Temporal UI (markdown; ``$`` is not used)."""
    results = progress.results
    lines = [
        f"**{campaign.title}** ({campaign.name}), until {campaign.ends_at:%Y-%m-%d %H:%M} UTC",
        "",
        f"- audience: {', '.join(sorted(campaign.audience)) or 'everyone'}",
        f"- reached **{progress.reached}** journeys in {progress.pages} "
        + ("page" if progress.pages == 1 else "pages")
        + (f"; {progress.closed} ended journeys left alone" if progress.closed else ""),
        "- reached everyone" if progress.reached_all_at else "- reaching…",
    ]
    if progress.reached_all_at is not None:
        suppressed = sum(results.suppressed.values())
        lines.append(
            f"- sent {results.sent}, suppressed {suppressed}, failed {results.failed}, "
            f"converted {results.converted}"
        )
        lines += [f"- suppressed ({why}): {n}" for why, n in sorted(results.suppressed.items())]
        if results.held_back:
            lines.append(
                f"- held back (control group) {results.held_back}, "
                f"of whom converted {results.held_back_converted}"
            )
    return "\n".join(lines)
