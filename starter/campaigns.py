"""The campaign calendar and its Temporal Schedules: one Schedule per campaign, kept in
step with the checked-in ``campaigns.toml`` by ``equator campaigns sync``.

Each Schedule fires once, at its campaign's start, and starts the campaign's
``CampaignFanOut``. Its note carries a digest of what it was made from, so a sync
changes only the Schedules whose campaign (or fan-out settings) changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleCalendarSpec,
    ScheduleDescription,
    ScheduleHandle,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from starter.datafiles import load_toml
from workflows.calendar import Calendar, Campaign
from workflows.fanout import CampaignFanOut, FanOutInput, FanOutPace, fan_out_id

# Every campaign's Schedule id starts so; a sync owns the namespace's Schedules that do.
SCHEDULE_PREFIX = fan_out_id("")
# A start missed while Temporal was away is still taken this long after.
CATCHUP_WINDOW = timedelta(days=1)
NOTE_PREFIX = "calendar sha256:"


class CalendarError(ValueError):
    """The calendar file is missing or not a valid calendar; the message names the
    file and every field at fault."""


def load_calendar(path: Path) -> Calendar:
    return load_toml(path, Calendar, "campaigns", "campaign calendar", "calendar", CalendarError)


def schedule_id(campaign_name: str) -> str:
    """The campaign's Schedule id; the fan-outs it starts are named after it too."""
    return fan_out_id(campaign_name)


def campaign_name(schedule: str) -> str:
    return schedule.removeprefix(SCHEDULE_PREFIX)


def digest(campaign: Campaign, task_queue: str, fan_out: FanOutPace) -> str:
    """What a Schedule was made from, as its note: equal digests, equal Schedules."""
    made_from = {
        # Sets sorted and times in UTC, so that the same calendar digests the same in
        # every process (a frozenset's order follows the string hash seed).
        "campaign": campaign.model_dump(mode="json")
        | {
            "audience": sorted(campaign.audience),
            "starts_at": campaign.starts_at.astimezone(UTC).isoformat(),
            "ends_at": campaign.ends_at.astimezone(UTC).isoformat(),
        },
        "task_queue": task_queue,
        "fan_out": fan_out.model_dump(mode="json"),
    }
    text = json.dumps(made_from, sort_keys=True, separators=(",", ":"))
    return NOTE_PREFIX + hashlib.sha256(text.encode()).hexdigest()[:16]


def schedule_for(campaign: Campaign, task_queue: str, fan_out: FanOutPace) -> Schedule:
    """One action, at the campaign's start (to the second, UTC), then nothing more."""
    # The calendar matches whole seconds: a start_at with a fraction would skip it.
    start = campaign.starts_at.astimezone(UTC).replace(microsecond=0)
    return Schedule(
        action=ScheduleActionStartWorkflow(
            CampaignFanOut.run,
            FanOutInput(campaign=campaign, pace=fan_out),
            id=fan_out_id(campaign.name),
            task_queue=task_queue,
            static_summary=f"Campaign fan-out: {campaign.title}",
        ),
        spec=ScheduleSpec(
            calendars=[
                ScheduleCalendarSpec(
                    year=[ScheduleRange(start.year)],
                    month=[ScheduleRange(start.month)],
                    day_of_month=[ScheduleRange(start.day)],
                    hour=[ScheduleRange(start.hour)],
                    minute=[ScheduleRange(start.minute)],
                    second=[ScheduleRange(start.second)],
                    comment=f"{campaign.title} starts",
                )
            ],
            start_at=start,
            end_at=campaign.ends_at.astimezone(UTC),
            time_zone_name="UTC",
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=CATCHUP_WINDOW),
        state=ScheduleState(
            note=digest(campaign, task_queue, fan_out), limited_actions=True, remaining_actions=1
        ),
    )


@dataclass
class SyncReport:
    """Campaign names, by what a sync did to their Schedules."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    # Running campaigns whose fan-out the sync started (created or moved into the past).
    triggered: list[str] = field(default_factory=list)

    def outcomes(self) -> list[tuple[str, str]]:
        """(outcome, name) for every campaign, by name."""
        done: Sequence[tuple[str, list[str]]] = (
            ("created", self.created),
            ("updated", self.updated),
            ("deleted", self.deleted),
            ("unchanged", self.unchanged),
        )
        return sorted(
            ((outcome, name) for outcome, names in done for name in names),
            key=lambda pair: pair[1],
        )


async def sync(
    client: Client,
    calendar: Calendar,
    task_queue: str,
    fan_out: FanOutPace,
    now: datetime,
    progress: Callable[[float], None] | None = None,
) -> SyncReport:
    """Make the namespace's campaign Schedules (ids ``campaign-…``) match the calendar:
    create the missing (a campaign already running fans out at once), update those made
    from something else, delete those the calendar no longer has. ``progress`` hears
    how many of the calendar's campaigns are done."""
    report = SyncReport()
    for done, campaign in enumerate(calendar.campaigns, start=1):
        wanted = schedule_for(campaign, task_queue, fan_out)
        handle = client.get_schedule_handle(schedule_id(campaign.name))
        # Describe is strongly consistent: it decides between create and update.
        current = await _described(handle)
        running = campaign.running(now)
        if current is None:
            await client.create_schedule(handle.id, wanted, trigger_immediately=running)
            report.created.append(campaign.name)
            if running:
                report.triggered.append(campaign.name)
        elif current.schedule.state.note != wanted.state.note:
            await handle.update(_replace_with(wanted))
            report.updated.append(campaign.name)
            # A start moved into the past is not taken by the Schedule: fan out now,
            # unless this Schedule has fanned out already.
            if running and current.info.num_actions == 0:
                await handle.trigger()
                report.triggered.append(campaign.name)
        else:
            report.unchanged.append(campaign.name)
        if progress is not None:
            progress(done)
    # Listing is eventually consistent (visibility): a Schedule created a moment ago may
    # be missing, one deleted a moment ago may still be listed. It only finds Schedules
    # to delete; one already gone is skipped.
    names = {campaign.name for campaign in calendar.campaigns}
    async for listed in await client.list_schedules():
        name = campaign_name(listed.id)
        if not listed.id.startswith(SCHEDULE_PREFIX) or name in names:
            continue
        try:
            await client.get_schedule_handle(listed.id).delete()
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            continue
        report.deleted.append(name)
    return report


def _replace_with(schedule: Schedule) -> Callable[[ScheduleUpdateInput], ScheduleUpdate]:
    def update(_: ScheduleUpdateInput) -> ScheduleUpdate:
        return ScheduleUpdate(schedule=schedule)

    return update


async def _described(handle: ScheduleHandle) -> ScheduleDescription | None:
    try:
        return await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise


@dataclass(frozen=True)
class CampaignSchedule:
    """A campaign's Schedule as ``equator campaigns list`` shows it."""

    name: str
    # None once it has nothing left to do.
    next_run: datetime | None
    note: str | None


async def campaign_schedules(client: Client) -> list[CampaignSchedule]:
    """The namespace's campaign Schedules, by name. Found by listing (eventually
    consistent: one made or deleted a moment ago may be missing or still there), each
    then described for its current next run and note."""
    found = []
    async for listed in await client.list_schedules():
        if not listed.id.startswith(SCHEDULE_PREFIX):
            continue
        description = await _described(client.get_schedule_handle(listed.id))
        if description is None:
            continue
        times = description.info.next_action_times
        found.append(
            CampaignSchedule(
                name=campaign_name(listed.id),
                next_run=times[0] if times else None,
                note=description.schedule.state.note,
            )
        )
    return sorted(found, key=lambda schedule: schedule.name)
