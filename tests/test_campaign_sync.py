"""The campaign calendar as Temporal Schedules: loading ``campaigns.toml`` (plain tests)
and ``sync`` / ``equator campaigns`` against the dev server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import (
    Client,
    ScheduleActionStartWorkflow,
    ScheduleDescription,
    ScheduleOverlapPolicy,
    ScheduleRange,
)
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from starter.campaigns import (
    CATCHUP_WINDOW,
    CalendarError,
    load_calendar,
    schedule_for,
    schedule_id,
    sync,
)
from tests.servers import equator as run_equator
from tests.servers import eventually
from workflows.calendar import Calendar, Campaign
from workflows.cohorts import Cohort
from workflows.fanout import FanOutInput, FanOutPace, fan_out_id

pytestmark = pytest.mark.devserver

CHECKED_IN = Path(__file__).resolve().parent.parent / "campaigns.toml"
FAN_OUT = FanOutPace(rate=50, page_size=200)
# Far ahead, so that nothing these tests schedule fires.
LATER = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


def campaign(name: str, starts_at: datetime, days: float = 14, **fields: Any) -> Campaign:
    return Campaign(
        name=name,
        title=fields.pop("title", name.title()),
        starts_at=starts_at,
        ends_at=starts_at + timedelta(days=days),
        content_key=fields.pop("content_key", "test"),
        **fields,
    )


# --- the calendar file ---------------------------------------------------------------


def test_schedule_ids_are_the_fan_outs_ids() -> None:
    assert schedule_id("spring-sale") == fan_out_id("spring-sale") == "campaign-spring-sale"


def test_the_checked_in_calendar_loads() -> None:
    calendar = load_calendar(CHECKED_IN)
    by_name = {campaign.name: campaign for campaign in calendar.campaigns}
    assert list(by_name) == ["spring-sale", "summer-clearance", "holiday"]
    spring = by_name["spring-sale"]
    assert spring.starts_at == datetime(2027, 3, 15, 8, tzinfo=UTC)
    assert (spring.audience, spring.channel, spring.offer_id) == (frozenset(), "email", "pct10")
    assert spring.categories == ("dresses", "knitwear")
    assert by_name["summer-clearance"].categories == ()
    assert by_name["summer-clearance"].offer_id is None
    assert by_name["holiday"].audience == {Cohort.VIP, Cohort.LOYAL}
    assert by_name["holiday"].offer_id == "free-shipping"


ENTRY = """
[[campaigns]]
name = "{name}"
title = "A campaign"
starts_at = {starts_at}
ends_at = 2030-02-01T00:00:00Z
content_key = "test"
offer_id = "{offer_id}"
"""


def entry(name: str = "one", starts_at: str = "2030-01-01T08:00:00Z", offer: str = "pct10") -> str:
    return ENTRY.format(name=name, starts_at=starts_at, offer_id=offer)


@pytest.mark.parametrize(
    ("content", "fault"),
    [
        pytest.param(
            entry("twice") + entry("twice"),
            "calendar: campaign names must be unique: twice",
            id="duplicate names",
        ),
        pytest.param(
            entry(starts_at="2030-03-01T08:00:00Z"),
            "campaigns[0] (one): ends_at must be after starts_at",
            id="ends before it starts",
        ),
        pytest.param(
            entry() + entry("two", offer="pct99"),
            "campaigns[1] (two): offer_id 'pct99' is not in the catalogue",
            id="unknown offer",
        ),
        pytest.param(
            entry(starts_at="2030-01-01T08:00:00"),
            "campaigns[0] (one).starts_at: Input should have timezone info",
            id="naive datetime",
        ),
        pytest.param(
            "[[campaign]]\nname = 'typo'\n",
            "campaign: Extra inputs are not permitted",
            id="unknown table",
        ),
    ],
)
def test_an_invalid_calendar_is_refused_naming_the_file_and_field(
    tmp_path: Path, content: str, fault: str
) -> None:
    path = tmp_path / "campaigns.toml"
    path.write_text(content)
    with pytest.raises(CalendarError) as refusal:
        load_calendar(path)
    assert str(refusal.value).splitlines() == [
        f"{path}: not a valid campaign calendar:",
        f"  {fault}",
    ]


def test_a_missing_or_malformed_file_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    with pytest.raises(CalendarError, match=f"^{missing}: no such file$"):
        load_calendar(missing)
    broken = tmp_path / "broken.toml"
    broken.write_text("[[campaigns]\n")
    with pytest.raises(CalendarError, match=f"^{broken}: not valid TOML: .*line 1"):
        load_calendar(broken)


# --- Schedules on the dev server ---------------------------------------------------------


class Owned:
    """Campaign names unique to one test, whose Schedules (and fan-outs) it removes."""

    def __init__(self) -> None:
        self.prefix = f"t{uuid.uuid4().hex[:8]}"
        self.names: list[str] = []
        self.workflow_ids: list[str] = []

    def __call__(self, name: str) -> str:
        self.names.append(f"{self.prefix}-{name}")
        return self.names[-1]


@pytest.fixture
async def owned(dev_env: WorkflowEnvironment) -> AsyncIterator[Owned]:
    owned = Owned()
    yield owned
    client = dev_env.client
    for workflow_id in owned.workflow_ids:
        try:
            await client.get_workflow_handle(workflow_id).terminate(reason="test over")
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
    for name in owned.names:
        if await described(client, name) is not None:
            await client.get_schedule_handle(schedule_id(name)).delete()


async def described(client: Client, name: str) -> ScheduleDescription | None:
    try:
        return await client.get_schedule_handle(schedule_id(name)).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise


async def listed_ids(client: Client) -> set[str]:
    return {schedule.id async for schedule in await client.list_schedules()}


async def assert_scheduled(client: Client, campaign: Campaign, task_queue: str) -> None:
    """The campaign's Schedule: one start at the campaign's start, the fan-out, the note."""
    description = await described(client, campaign.name)
    assert description is not None
    schedule, start = description.schedule, campaign.starts_at
    assert description.info.next_action_times == [start]
    assert (schedule.spec.start_at, schedule.spec.end_at) == (start, campaign.ends_at)
    assert schedule.spec.time_zone_name == "UTC"
    [calendar] = schedule.spec.calendars
    at = {
        "year": start.year,
        "month": start.month,
        "day_of_month": start.day,
        "hour": start.hour,
        "minute": start.minute,
        "second": start.second,
    }
    assert {field: getattr(calendar, field) for field in at} == {
        field: (ScheduleRange(value),) for field, value in at.items()
    }
    assert schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
    assert schedule.policy.catchup_window == CATCHUP_WINDOW
    expected = schedule_for(campaign, task_queue, FAN_OUT).state.note
    assert expected is not None
    assert expected.startswith("calendar sha256:")
    assert schedule.state.note == expected
    assert (schedule.state.limited_actions, schedule.state.remaining_actions) == (True, 1)

    action = schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert (action.workflow, action.id, action.task_queue) == (
        "CampaignFanOut",
        fan_out_id(campaign.name),
        task_queue,
    )
    payloads = [arg for arg in action.args if isinstance(arg, Payload)]
    [fan_out_input] = await client.data_converter.decode(payloads, [FanOutInput])
    assert fan_out_input == FanOutInput(campaign=campaign, pace=FAN_OUT)
    assert isinstance(action.static_summary, Payload)
    summary = client.data_converter.payload_converter.from_payload(action.static_summary, str)
    assert summary == f"Campaign fan-out: {campaign.title}"


async def test_sync_makes_the_schedules_match_the_calendar(
    dev_env: WorkflowEnvironment, owned: Owned
) -> None:
    client, queue, now = dev_env.client, f"campaigns-{owned.prefix}", datetime.now(UTC)
    spring = campaign(owned("spring"), LATER, offer_id="pct10", categories=("dresses",))
    summer = campaign(owned("summer"), LATER + timedelta(days=180))
    holiday = campaign(owned("holiday"), LATER + timedelta(days=330), audience={Cohort.VIP})
    calendar = Calendar(campaigns=(spring, summer, holiday))

    report = await sync(client, calendar, queue, FAN_OUT, now)
    assert report.created == [spring.name, summer.name, holiday.name]
    assert report.updated == report.deleted == report.unchanged == report.triggered == []
    for each in calendar.campaigns:
        await assert_scheduled(client, each, queue)

    heard: list[float] = []
    again = await sync(client, calendar, queue, FAN_OUT, now, heard.append)
    assert again.unchanged == [spring.name, summer.name, holiday.name]
    assert heard == [1, 2, 3]  # what a terminal's bar shows
    assert again.created == again.updated == again.deleted == []

    # Summer moves a week, holiday is dropped, a flash sale is added. Deleting relies on
    # listing, which is eventually consistent: wait until holiday is listed.
    await eventually(lambda: listed_ids(client), lambda ids: schedule_id(holiday.name) in ids)
    moved = summer.model_copy(update={"starts_at": summer.starts_at + timedelta(days=7)})
    flash = campaign(owned("flash"), LATER + timedelta(days=30), days=1)
    changed = Calendar(campaigns=(spring, moved, flash))
    report = await sync(client, changed, queue, FAN_OUT, now)
    assert (report.created, report.updated, report.deleted, report.unchanged) == (
        [flash.name],
        [summer.name],
        [holiday.name],
        [spring.name],
    )
    assert [outcome for outcome, name in report.outcomes() if name.startswith(owned.prefix)] == [
        "created",
        "deleted",
        "unchanged",
        "updated",
    ]
    await assert_scheduled(client, moved, queue)
    await assert_scheduled(client, flash, queue)
    with pytest.raises(RPCError) as gone:
        await client.get_schedule_handle(schedule_id(holiday.name)).describe()
    assert gone.value.status == RPCStatusCode.NOT_FOUND

    # Other fan-out settings change every Schedule.
    faster = FanOutPace(rate=100, page_size=200)
    report = await sync(client, changed, queue, faster, now)
    assert report.updated == [spring.name, moved.name, flash.name]
    assert report.created == report.deleted == report.unchanged == []


async def fan_out_started(client: Client, name: str) -> str:
    """The id of the fan-out the campaign's Schedule started (once it has)."""
    description = await eventually(
        lambda: described(client, name),
        lambda found: found is not None and len(found.info.recent_actions) == 1,
    )
    assert description is not None
    [result] = description.info.recent_actions
    workflow_id: str = getattr(result.action, "workflow_id", "")
    # The Schedule appends the action's time to the workflow id.
    assert workflow_id.startswith(fan_out_id(name) + "-")
    return workflow_id


async def test_a_running_campaign_fans_out_when_synced(
    dev_env: WorkflowEnvironment, owned: Owned
) -> None:
    client, queue, now = dev_env.client, f"campaigns-{owned.prefix}", datetime.now(UTC)
    running = campaign(owned("running"), now - timedelta(hours=1), days=2)
    upcoming = campaign(owned("upcoming"), LATER)
    calendar = Calendar(campaigns=(running, upcoming))

    report = await sync(client, calendar, queue, FAN_OUT, now)
    assert report.created == [running.name, upcoming.name]
    assert report.triggered == [running.name]
    workflow_id = await fan_out_started(client, running.name)
    owned.workflow_ids.append(workflow_id)

    async def fan_outs() -> list[tuple[str, str]]:
        query = f"WorkflowType = 'CampaignFanOut' AND TaskQueue = '{queue}'"
        return [(w.id, w.task_queue) async for w in client.list_workflows(query)]

    await eventually(fan_outs, lambda found: found == [(workflow_id, queue)])
    upcoming_now = await described(client, upcoming.name)
    assert upcoming_now is not None
    assert upcoming_now.info.num_actions == 0

    # Synced again, nothing fans out twice.
    again = await sync(client, calendar, queue, FAN_OUT, datetime.now(UTC))
    assert again.unchanged == [running.name, upcoming.name]
    assert again.triggered == []

    # A campaign moved to have started already is not taken by its Schedule (its start
    # is past): the sync fans it out.
    brought_forward = upcoming.model_copy(update={"starts_at": now - timedelta(minutes=5)})
    moved = Calendar(campaigns=(running, brought_forward))
    report = await sync(client, moved, queue, FAN_OUT, datetime.now(UTC))
    assert (report.updated, report.triggered) == ([upcoming.name], [upcoming.name])
    owned.workflow_ids.append(await fan_out_started(client, upcoming.name))


async def test_the_cli_syncs_and_lists_the_calendar(
    dev_env: WorkflowEnvironment, owned: Owned, tmp_path: Path
) -> None:
    name = owned("cli")
    calendar_file = tmp_path / "campaigns.toml"
    calendar_file.write_text(entry(name, starts_at="2030-01-02T03:04:05Z"))
    environment = {
        "EQUATOR_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "EQUATOR_TASK_QUEUE": f"campaigns-{owned.prefix}",
        "EQUATOR_CAMPAIGNS__FILE": str(calendar_file),
    }

    async def equator(*args: str) -> tuple[int, str, str]:
        return await run_equator(*args, environment=environment)

    assert await equator("campaigns", "sync") == (0, f"created   {name}\n", "")
    assert await equator("campaigns", "sync", "--file", str(calendar_file)) == (
        0,
        f"unchanged {name}\n",
        "",
    )
    description = await described(dev_env.client, name)
    assert description is not None
    note = description.schedule.state.note

    def shows(found: tuple[int, str, str]) -> bool:
        return found[0] == 0 and f"{name:<24} 2030-01-02T03:04:05Z {note}" in found[1].splitlines()

    await eventually(lambda: equator("campaigns", "list"), shows)

    bad = tmp_path / "bad.toml"
    bad.write_text(entry(name, starts_at="2030-01-02T03:04:05"))
    code, out, err = await equator("campaigns", "sync", "--file", str(bad))
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"equator: {bad}: not a valid campaign calendar:",
        f"  campaigns[0] ({name}).starts_at: Input should have timezone info",
    ]
