"""CustomerJourney: one long-lived workflow per customer, a small interpreter over the
registered programmes (``workflows/registry.py``).

Signal handlers only queue what arrives (a workflow task is force-failed when more than
100 events buffer behind a slow one). Each pass of the main loop applies queued events
(one ledger write per batch), hands each fresh event to the programmes that hear it,
then asks the programmes in turn what they want: every engagement goes through one path
(care, pause and contact policy, the idempotency key, the activity with its retry
policy, telemetry, the timeline). It then waits for the earliest deadline or the next
signal, and continues as new before history grows large, carrying its state and every
event not yet applied.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ValidationError

    from workflows import contact, details, engine, operator, search
    from workflows.bandit import Choice
    from workflows.calendar import Campaign
    from workflows.catalogue import CATALOGUE
    from workflows.contracts import (
        CHOOSE_OFFER,
        ERASE_CUSTOMER,
        FEED_OUTAGES,
        RECORD_ATTRIBUTIONS,
        RECORD_AUDIT,
        RECORD_EVENTS,
        RECORD_HOLDOUTS,
        RECORD_OUTCOMES,
        SEND_ENGAGEMENT,
        Attribution,
        AuditRecord,
        EngagementRequest,
        EngagementResult,
        EraseRequest,
        EraseResult,
        ErasureRequest,
        FeedOutage,
        FeedOutages,
        FeedOutagesRequest,
        OfferChoiceRequest,
        Outcome,
        RecordAttributionsRequest,
        RecordAuditRequest,
        RecordEventsRequest,
        RecordEventsResult,
        RecordHoldoutsRequest,
        RecordOutcomesRequest,
    )
    from workflows.events import CustomerEvent, describe_errors, parse_event
    from workflows.operator import OperatorRequest, StartLadderRequest
    from workflows.patches import AT_START, RELEASE, Patch, has_patch
    from workflows.programme import Engagement, Journey, Programme
    from workflows.registry import CAMPAIGNS, PROGRAMMES
    from workflows.state import JourneyInput, JourneyState, JourneyView
    from workflows.telemetry import JourneyTelemetry
    from workflows.timeline import money

EVENT_SIGNAL = "event"
CAMPAIGN_SIGNAL = "campaign"
STATE_QUERY = "state"
ERASE_SIGNAL = "erase"
PAUSE_UPDATE = "pause"
RESUME_UPDATE = "resume"
SKIP_STEP_UPDATE = "skip_step"
START_LADDER_UPDATE = "start_ladder"
END_LADDER_UPDATE = "end_ladder"

LEDGER_WRITE_TIMEOUT = timedelta(seconds=30)
# The store may be down for a while: keep trying, never drop the batch.
LEDGER_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)
# A channel that keeps failing should not hold a programme forever: give up, move on.
ENGAGEMENT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    maximum_attempts=8,
    non_retryable_error_types=["UnknownChannel", "DeliveryRefused"],
)
# Reads the journey can do without (a choice among offers, the feed's outages): if the
# store cannot answer soon, it goes on without (the step's own offer, no outage known).
READ_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3)


def journey_id(customer_id: str) -> str:
    return f"customer-{customer_id}"


@workflow.defn
class CustomerJourney:
    @workflow.init
    def __init__(self, input: JourneyInput) -> None:
        # Initialised here, not in run(): signal-with-start delivers the first event
        # before run() begins.
        self._config = input.config
        self._state = input.state or JourneyState(customer_id=input.customer_id)
        # Lists, not deques: a deque's first block costs 0.7 KiB in every cached journey,
        # and an inbox holds a few items at most between passes.
        self._inbox: list[Any] = list(input.pending)
        self._campaign_inbox: list[Any] = list(input.pending_campaigns)
        self._received_this_run = 0
        # The programmes this journey runs with; set as run() starts (patches decide).
        self._programmes = engine.Programmes.of(PROGRAMMES, lambda patch: False)
        # Set by an erase request: the journey erases the customer's data and ends.
        self._erasure: ErasureRequest | None = None
        # Operator actions applied, for the main loop to file in the audit.
        self._audit_due: list[AuditRecord] = []
        # Set by an operator's update: the main loop looks again.
        self._steered = False
        # While an engagement is in flight, the ladder is not to be moved under it.
        self._sending = False
        # The search attributes as last upserted (a new run starts from none).
        self._indexed: dict[str, Any] = {}
        # The timer set to wake the journey, and for when (``_alarm_for``).
        self._alarm: asyncio.Task[None] | None = None
        self._alarm_at = datetime.min.replace(tzinfo=UTC)
        self._telemetry = JourneyTelemetry(self._state.customer_id)

    @workflow.run
    async def run(self, input: JourneyInput) -> None:
        # Journeys that began before a patch keep behaving as they did.
        if not workflow.patched(RELEASE):
            for patch in AT_START:
                workflow.patched(patch)
        self._programmes = engine.Programmes.of(PROGRAMMES, self._patched, self._config.enabled)
        engine.begin(self._journey(), self._programmes)
        while True:
            await self._wait_for_work()
            if self._audit_due:
                await self._file_audit()
            if self._erasure is not None:
                await self._erase(self._erasure)
                return
            if self._inbox:
                await self._apply_inbox()
                # Events that arrived while the batch was recorded (a store slow or down)
                # are applied before time acts: their silence is not the customer's.
                while self._inbox and workflow.patched(Patch.DRAIN_BEFORE_TIME):
                    await self._apply_inbox()
            if self._campaign_inbox:
                self._receive_campaigns()
            await self._advance()
            workflow.set_current_details(
                details.for_temporal_ui(details.current_details(self._view()))
            )
            self._index()
            if self._continue_as_new_due():
                await workflow.wait_condition(workflow.all_handlers_finished)
                # Nothing waits between the last filing and the new run: no action is lost.
                while self._audit_due:
                    await self._file_audit()
                workflow.continue_as_new(
                    JourneyInput(
                        customer_id=self._state.customer_id,
                        config=self._config,
                        state=self._state,
                        pending=list(self._inbox),
                        pending_campaigns=list(self._campaign_inbox),
                    )
                )

    @staticmethod
    def _patched(patch: Patch) -> bool:
        return has_patch(patch, workflow.patched)

    def _journey(self) -> Journey:
        """The journey as programmes see it now."""
        return Journey(self._state, self._config, workflow.now(), self._patched)

    def _told(self, journey: Journey) -> None:
        """Take what programmes said: reports go to telemetry, events they raised to the
        inbox (applied next pass, like any event)."""
        for report in journey.reports:
            self._telemetry.report(report)
        journey.reports.clear()
        self._inbox.extend(journey.raised)
        journey.raised.clear()

    @workflow.signal(name=EVENT_SIGNAL)
    def event(self, payload: RawValue) -> None:
        self._queue(self._inbox, payload, "event")

    @workflow.signal(name=CAMPAIGN_SIGNAL)
    def campaign(self, payload: RawValue) -> None:
        """A calendared campaign has started (the fan-out): decided in the main loop."""
        self._queue(self._campaign_inbox, payload, "campaign")

    def _queue(self, inbox: list[Any], payload: RawValue, what: str) -> None:
        """Queue a signal's payload for the main loop, which validates it."""
        self._received_this_run += 1
        try:
            inbox.append(workflow.payload_converter().from_payload(payload.payload))
        except Exception as err:  # any undecodable payload is refused, never raised
            engine.reject(self._journey(), f"undecodable {what}: {err}")

    @workflow.signal(name=ERASE_SIGNAL)
    def erase(self, payload: RawValue) -> None:
        """The right to be forgotten. The first valid request wins; the rest are moot."""
        self._received_this_run += 1
        try:
            request = ErasureRequest.model_validate(
                workflow.payload_converter().from_payload(payload.payload)
            )
        except Exception as err:  # a bad request is refused, never raised
            engine.reject(self._journey(), f"invalid erase: {err}")
            return
        self._erasure = self._erasure or request

    @workflow.signal(dynamic=True)
    def unknown_signal(self, name: str, args: Sequence[RawValue]) -> None:
        self._received_this_run += 1
        engine.reject(self._journey(), f"unknown signal {name!r}")

    @workflow.update(name=PAUSE_UPDATE)
    def pause(self, request: OperatorRequest) -> JourneyView:
        return self._steer(operator.pause, request)

    @pause.validator
    def _may_pause(self, request: OperatorRequest) -> None:
        operator.check_pause(self._state)

    @workflow.update(name=RESUME_UPDATE)
    def resume(self, request: OperatorRequest) -> JourneyView:
        return self._steer(operator.resume, request)

    @resume.validator
    def _may_resume(self, request: OperatorRequest) -> None:
        operator.check_resume(self._state)

    @workflow.update(name=SKIP_STEP_UPDATE)
    def skip_step(self, request: OperatorRequest) -> JourneyView:
        return self._steer(operator.skip, request)

    @skip_step.validator
    def _may_skip_step(self, request: OperatorRequest) -> None:
        self._not_sending()
        operator.check_skip(self._state)

    @workflow.update(name=START_LADDER_UPDATE)
    def start_ladder(self, request: StartLadderRequest) -> JourneyView:
        journey = self._journey()
        operator.start(journey, request)
        self._told(journey)
        self._audited(request, f"cause {request.cause}")
        self._steered = True
        return self._view()

    @start_ladder.validator
    def _may_start_ladder(self, request: StartLadderRequest) -> None:
        self._not_sending()
        operator.check_start(self._state, request.cause)

    @workflow.update(name=END_LADDER_UPDATE)
    def end_ladder(self, request: OperatorRequest) -> JourneyView:
        return self._steer(operator.end, request)

    @end_ladder.validator
    def _may_end_ladder(self, request: OperatorRequest) -> None:
        self._not_sending()
        operator.check_end(self._state)

    def _not_sending(self) -> None:
        if self._sending:
            raise operator.Refused("an engagement is being sent right now; try again")

    def _steer(
        self, action: Callable[[Journey, OperatorRequest], None], request: OperatorRequest
    ) -> JourneyView:
        action(self._journey(), request)
        self._audited(request)
        self._steered = True
        return self._view()

    def _audited(self, request: OperatorRequest, detail: str = "") -> None:
        """An operator action applied, whoever sent it: an entry for the audit."""
        update = workflow.current_update_info()
        if update is None:  # only ever called by an update's handler
            return
        entry = AuditRecord(
            entry_key=f"{update.id}:applied",
            at=workflow.now(),
            actor=request.by,
            via=request.via,
            action=f"journey.{update.name}",
            customer_id=self._state.customer_id,
            request_id=update.id,
            outcome="applied",
            detail=detail,
        )
        self._audit_due.append(entry)

    @workflow.query(name=STATE_QUERY)
    def state(self) -> JourneyView:
        return self._view()

    def _view(self) -> JourneyView:
        return engine.view(self._journey(), self._programmes, len(self._inbox))

    async def _wait_for_work(self) -> None:
        woken = self._steered
        self._steered = False
        if woken or self._has_news() or self._continue_as_new_due():
            return
        if self._state.paused:  # no deadline acts while paused: wait for a reason
            await workflow.wait_condition(self._has_news)
            return
        at, action = engine.next_deadline(self._journey(), self._programmes)
        if at is None:  # never the case once remediation watches for silence
            return
        remaining = (at - workflow.now()).total_seconds()
        if remaining <= 0:
            return
        if not self._patched(Patch.RELEASE_0_2):
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    self._has_news, timeout=remaining, timeout_summary=action
                )
            return
        alarm = self._alarm_for(at, remaining, action)
        await workflow.wait_condition(lambda: self._has_news() or alarm.done())

    def _alarm_for(self, at: datetime, remaining: float, action: str) -> asyncio.Task[None]:
        """The timer that wakes the journey by ``at``. One set for an earlier time is kept:
        an event that moves the deadline on (every purchase moves the flatline) then costs
        no timer cancelled and started again; the journey wakes early once, finds nothing
        due, and sets the next."""
        alarm = self._alarm
        if alarm is not None and not alarm.done() and self._alarm_at <= at:
            return alarm
        if alarm is not None:
            alarm.cancel()
        self._alarm_at = at
        self._alarm = asyncio.create_task(workflow.sleep(remaining, summary=action))
        return self._alarm

    def _has_news(self) -> bool:
        return bool(self._inbox or self._campaign_inbox or self._erasure or self._steered)

    async def _apply_inbox(self) -> None:
        journey = self._journey()
        candidates: dict[str, CustomerEvent] = {}
        arrived, self._inbox = self._inbox, []
        for raw in arrived:
            try:
                event = parse_event(raw)
            except ValidationError as err:
                engine.reject(journey, f"invalid event: {describe_errors(err)}")
                continue
            if event.customer_id != self._state.customer_id:
                engine.reject(journey, f"event {event.event_id} is for another customer")
            elif engine.is_duplicate(journey, event.event_id) or event.event_id in candidates:
                engine.ignore_duplicate(journey, event.event_id)
            else:
                candidates[event.event_id] = event
        if not candidates:
            return
        fresh = await self._record(list(candidates.values()))
        journey = self._journey()
        for event_id, event in candidates.items():
            if event_id in fresh:
                engine.apply_event(journey, self._programmes, event)
                self._telemetry.event_applied(event.type.value)
            else:
                engine.remember(journey, event_id)
                engine.ignore_duplicate(journey, event_id)
        self._told(journey)

    async def _record(self, events: list[CustomerEvent]) -> set[str]:
        """Write the batch to the ledger; the ledger says which ids are new to it, which
        catches redeliveries older than the in-state dedupe window."""
        request = RecordEventsRequest(
            customer_id=self._state.customer_id,
            application_id=str(workflow.uuid4()),
            events=events,
            cohort_rules=self._config.cohorts,
        )
        summary = f"record {len(events)} event(s) in the ledger"
        try:
            result = await self._write_activity()(
                RECORD_EVENTS,
                request,
                result_type=RecordEventsResult,
                start_to_close_timeout=LEDGER_WRITE_TIMEOUT,
                retry_policy=LEDGER_RETRY,
                summary=summary,
            )
        except ActivityError as err:
            # Only a non-retryable failure lands here; the window still dedupes.
            engine.reject(self._journey(), f"ledger refused: {err}")
            return {event.event_id for event in events}
        return set(result.fresh_event_ids)

    def _receive_campaigns(self) -> None:
        journey = self._journey()
        # Journeys that began before campaigns existed refused the signal as unknown.
        known = journey.patched(Patch.CAMPAIGNS)
        arrived, self._campaign_inbox = self._campaign_inbox, []
        for raw in arrived:
            if not known:
                engine.reject(journey, f"unknown signal {CAMPAIGN_SIGNAL!r}")
                continue
            try:
                campaign = Campaign.model_validate(raw)
            except ValidationError as err:
                engine.reject(journey, f"invalid campaign: {describe_errors(err)}")
                continue
            received = CAMPAIGNS.received(journey, CAMPAIGNS.state_in(self._state), campaign)
            CAMPAIGNS.put(self._state, received)

    async def _advance(self) -> None:
        """Let time act, then give each programme its turn."""
        journey = self._journey()
        engine.update_cohort(journey, self._programmes)
        self._told(journey)
        engine.forget_expired_holds(journey)
        if journey.patched(Patch.RELEASE_0_2) and engine.draw_holdouts(journey, self._programmes):
            await self._file_holdouts()
        if self._state.outcomes_due:
            await self._file_outcomes()
        if self._state.attributions_due:
            await self._file_attributions()
        for programme in self._programmes.by_turn:
            if self._state.paused and not programme.runs_while_paused:
                continue
            await self._turn(programme)

    async def _turn(self, programme: Programme[Any]) -> None:
        """One programme's turn: what it wants goes out (or waits, or is dropped), then
        what it has to file is filed."""
        journey = self._journey()
        state = programme.state_in(self._state)
        if state is None:
            return
        since = programme.silent_since(journey, state)
        if since is not None and workflow.patched(Patch.FEED_OUTAGES):
            journey.feed_outages = await self._feed_outages(since)
        state = programme.tick(journey, state)
        programme.put(self._state, state)
        self._told(journey)
        if state is None:
            return
        wanted = programme.wants(journey, state)
        programme.put(self._state, state)
        self._told(journey)
        for engagement in wanted:
            await self._engage(programme, engagement)
        state = programme.state_in(self._state)
        for filing in programme.filings(state) if state is not None else []:
            await self._file(filing.activity, filing.request, filing.summary)

    async def _engage(self, programme: Programme[Any], engagement: Engagement) -> None:
        """The one path every engagement takes: care, pause and contact policy decide;
        then it is sent at most once (its key), and the programme is told how it went."""
        journey = self._journey()
        if journey.held(engagement.key):
            return
        decision = engine.decide(journey, self._programmes, engagement)
        state = programme.state_in(self._state)
        if state is None:
            return
        match decision:
            case contact.Defer(until=until, reason=reason):
                engine.hold(journey, programme.name, engagement, until, reason)
                return
            case contact.Skip(reason=reason):
                self._state.held.pop(engagement.key, None)
                skipped = f"{engagement.summary} skipped: {reason}"
                engine.note_engagement(
                    journey, programme.name, engagement, "engagement_skipped", skipped
                )
                programme.put(self._state, programme.skipped(journey, state, engagement, reason))
                return
            case contact.Send(channel=channel):
                self._state.held.pop(engagement.key, None)
                # A customer in the programme's control group gets a ghost: the same
                # decision, recorded, not delivered (journeys of 0.2).
                held_back = self._patched(Patch.RELEASE_0_2) and engine.holds_back(
                    journey, programme.name, engagement
                )
                engagement = engagement.model_copy(
                    update={"channel": channel, "held_back": held_back}
                )
        if len(engagement.arms) > 1 and not engagement.held_back and self._config.learning.enabled:
            engagement = await self._choose_offer(programme.name, engagement)
        failure = await self._send(engagement)
        journey = self._journey()
        state = programme.state_in(self._state)
        if failure is not None:
            failed = f"{engagement.summary} failed: {failure}"
            engine.note_engagement(journey, programme.name, engagement, "engagement_failed", failed)
            after = programme.failed(journey, state, engagement, failure) if state else None
        else:
            if engagement.held_back:
                ghost = f"{engagement.summary} held back: {programme.name} control group"
                engine.note_engagement(
                    journey, programme.name, engagement, "engagement_held_back", ghost
                )
            else:
                engine.touched(journey, engagement)
                engine.note_engagement(
                    journey, programme.name, engagement, "engagement_sent", engagement.summary
                )
            # What a purchase soon after is credited to (journeys of 0.2).
            if self._patched(Patch.RELEASE_0_2):
                engine.touch(journey, programme.name, engagement)
            after = programme.sent(journey, state, engagement) if state else None
        programme.put(self._state, after)
        self._told(journey)

    async def _feed_outages(self, since: datetime) -> list[FeedOutage]:
        """The feed's known outages since ``since``, read in a local activity (replay
        reads the answer from history). None known if the store cannot say in time: a
        flatline is then judged as it always was."""
        try:
            found: FeedOutages = await workflow.execute_local_activity(
                FEED_OUTAGES,
                FeedOutagesRequest(since=since),
                result_type=FeedOutages,
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=READ_RETRY,
                summary="the feed's outages within the silence",
            )
        except ActivityError:
            return []
        return found.outages

    async def _choose_offer(self, programme: str, engagement: Engagement) -> Engagement:
        """Which of the engagement's offers to make, by Thompson sampling over what each
        recovered for the customer's cohort. Drawn in an activity, so that replay reads
        the choice from history and never draws again."""
        cohort = self._state.cohort.value if self._state.cohort else "none"
        assert engagement.decision is not None  # an engagement with arms names it
        request = OfferChoiceRequest(
            decision=engagement.decision,
            cohort=cohort,
            arms=list(engagement.arms),
            rules=self._config.learning,
            draw_key=f"{self._state.customer_id}/{engagement.key}",
            at=workflow.now(),
        )
        try:
            choice = await workflow.execute_local_activity(
                CHOOSE_OFFER,
                request,
                result_type=Choice,
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=READ_RETRY,
                summary=f"choose among {', '.join(engagement.arms)}",
            )
        except ActivityError as err:
            why = f"{engagement.offer_id}, the step's own offer: no choice ({err.cause or err})"
            engine.note_engagement(self._journey(), programme, engagement, "offer_chosen", why)
            return engagement.model_copy(update={"arms": ()})
        engine.note_engagement(self._journey(), programme, engagement, "offer_chosen", choice.why())
        cost = CATALOGUE[choice.offer_id].cost
        chosen = engagement.model_copy(
            update={
                "offer_id": choice.offer_id,
                "cost": cost,
                "after": f" ({choice.offer_id}, {money(cost)})",
                "learned_in": cohort,
            }
        )
        self._telemetry.offer_chosen(chosen, choice.explored)
        return chosen

    async def _send(self, engagement: Engagement) -> str | None:
        """Send one engagement, at most once (the key); returns why it failed, if it did."""
        request = EngagementRequest(
            idempotency_key=self._key(engagement.key),
            customer_id=self._state.customer_id,
            cause=engagement.cause,
            ladder_run_id=engagement.series,
            step=engagement.step,
            step_name=engagement.name,
            channel=engagement.channel,
            cost=engagement.cost,
            offer_id=engagement.offer_id,
            offer_category=engagement.offer_category,
            held_back=engagement.held_back,
            decision=engagement.decision if engagement.learned_in else None,
            arm_cohort=engagement.learned_in,
            at=workflow.now(),
        )
        self._sending = True
        try:
            await self._write_activity()(
                SEND_ENGAGEMENT,
                request,
                result_type=EngagementResult,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=ENGAGEMENT_RETRY,
                summary=engagement.summary,
            )
        except ActivityError as err:
            failure = str(err.cause) if err.cause else str(err)
            self._telemetry.engagement_failed(engagement, failure)
            return failure
        finally:
            self._sending = False
        if engagement.held_back:
            self._telemetry.engagement_held_back(engagement)
        else:
            self._telemetry.engagement_sent(engagement)
        return None

    async def _file_outcomes(self) -> None:
        """Tell the store what became of engagements (journeys that began before this
        existed only forget them)."""
        due, self._state.outcomes_due = self._state.outcomes_due, []
        if not self._patched(Patch.ENGAGEMENT_OUTCOMES):
            return
        outcomes = [
            Outcome(idempotency_key=self._key(o.engagement), outcome=o.outcome, at=o.at)
            for o in due
        ]
        summary = ", ".join(f"{o.engagement}: {o.outcome}" for o in due)
        await self._file(RECORD_OUTCOMES, RecordOutcomesRequest(outcomes=outcomes), summary)

    async def _file_holdouts(self) -> None:
        """Tell the store which control groups the customer is in (the draw changed)."""
        held_back_from = self._state.held_back_from
        request = RecordHoldoutsRequest(
            customer_id=self._state.customer_id,
            held_back_from=held_back_from,
            at=workflow.now(),
        )
        summary = f"held back from {', '.join(held_back_from) or 'nothing'}"
        await self._file(RECORD_HOLDOUTS, request, summary)

    async def _file_attributions(self) -> None:
        """Tell the store which purchases engagements are credited with."""
        due, self._state.attributions_due = self._state.attributions_due, []
        credited = [
            Attribution(
                idempotency_key=self._key(a.engagement),
                event_id=a.event_id,
                amount=a.amount,
                at=a.at,
            )
            for a in due
        ]
        summary = ", ".join(f"{a.engagement}: {a.event_id} {a.amount}" for a in due)
        request = RecordAttributionsRequest(attributions=credited)
        await self._file(RECORD_ATTRIBUTIONS, request, f"credit {summary}")

    async def _file_audit(self) -> None:
        """File the operator actions applied (a history from before the audit replays
        without the filing)."""
        due, self._audit_due = self._audit_due, []
        if workflow.patched(Patch.OPERATOR_AUDIT):
            summary = ", ".join(f"{entry.action} by {entry.actor}" for entry in due)
            await self._file(RECORD_AUDIT, RecordAuditRequest(entries=due), f"audit: {summary}")

    async def _file(self, activity: str, request: BaseModel, summary: str) -> None:
        """A write to the single customer view, retried until the store takes it."""
        await self._write_activity()(
            activity,
            request,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=LEDGER_RETRY,
            summary=summary,
        )

    def _write_activity(self) -> Callable[..., Awaitable[Any]]:
        """How the journey runs its writes to the store (the ledger, a send through the
        outbox, a filing): since 0.2 as local activities, inside the workflow task that
        asks. Each is a short write; locally it costs a marker, where an activity costs a
        task through the server, three history events and another workflow task."""
        if self._patched(Patch.RELEASE_0_2):
            return workflow.execute_local_activity
        return workflow.execute_activity

    def _key(self, engagement: str) -> str:
        """An engagement's idempotency key: journey, first run, then its own name."""
        info = workflow.info()
        return f"{info.workflow_id}/{info.first_execution_run_id}/{engagement}"

    async def _erase(self, request: ErasureRequest) -> None:
        """Delete the customer's data from the store (retried until it succeeds), then
        forget it here too: queued events are dropped and the state is blanked. Events
        that arrive during a pass are dropped too; another pass removes what the ingest
        recorded of them."""
        request_id = request.request_id
        passes = 0
        while passes == 0 or self._inbox:
            self._inbox.clear()
            self._campaign_inbox.clear()
            passes += 1
            await workflow.execute_activity(
                ERASE_CUSTOMER,
                EraseRequest(
                    customer_id=self._state.customer_id,
                    request_id=request_id,
                    by=request.by,
                    via=request.via,
                ),
                result_type=EraseResult,
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=LEDGER_RETRY,
                summary=f"erase customer data (request {request_id}, pass {passes})",
            )
        self._state = JourneyState(customer_id=self._state.customer_id)
        self._journey().note("erased", f"request {request_id}")
        workflow.set_current_details(f"Erased (request {request_id}); this journey has ended.")
        # Search attributes are never encrypted and Temporal keeps them until retention.
        if self._patched(Patch.SEARCH_ATTRIBUTES) and workflow.patched(Patch.ERASURE_UNINDEXED):
            workflow.upsert_search_attributes(search.erased())

    def _index(self) -> None:
        """Upsert the search attributes that changed (journeys that began before they
        existed do not index themselves)."""
        if not self._patched(Patch.SEARCH_ATTRIBUTES):
            return
        now = search.values(self._state)
        changed = {name: value for name, value in now.items() if self._indexed.get(name) != value}
        if changed:
            workflow.upsert_search_attributes(search.updates(changed))
            self._indexed = now

    def _continue_as_new_due(self) -> bool:
        return (
            workflow.info().is_continue_as_new_suggested()
            or self._received_this_run >= self._config.max_events_per_run
        )
