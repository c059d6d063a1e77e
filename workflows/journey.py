"""CustomerJourney: one long-lived workflow per customer.

Signal handlers only queue what arrives (a workflow task is force-failed when more than
100 events buffer behind a slow one); the main loop applies events, notices silence,
climbs ladders through activities, and continues as new before history grows large,
carrying its state and every event not yet applied.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from workflows import campaigns, details, operator, rules, search
    from workflows.calendar import Campaign
    from workflows.catalogue import CATALOGUE
    from workflows.config import JourneyConfig
    from workflows.contracts import (
        ERASE_CUSTOMER,
        RECORD_CAMPAIGN_CONTACTS,
        RECORD_EVENTS,
        RECORD_OUTCOMES,
        SEND_ENGAGEMENT,
        EngagementRequest,
        EngagementResult,
        EraseRequest,
        EraseResult,
        ErasureRequest,
        Outcome,
        RecordCampaignContactsRequest,
        RecordEventsRequest,
        RecordEventsResult,
        RecordOutcomesRequest,
    )
    from workflows.events import CustomerEvent, EventType, describe_errors, parse_event
    from workflows.ladders import VIP_THANK_YOU, Cause, LadderStep
    from workflows.operator import OperatorRequest, StartLadderRequest
    from workflows.state import JourneyInput, JourneyState, JourneyView, LadderRun
    from workflows.telemetry import JourneyTelemetry

EVENT_SIGNAL = "event"
CAMPAIGN_SIGNAL = "campaign"
STATE_QUERY = "state"
CONTACT_POLICY_PATCH = "contact-policy"
VIP_CARE_PATCH = "vip-care"
ABOVE_THE_LINE_PATCH = "above-the-line"
OUTCOMES_PATCH = "engagement-outcomes"
SEARCH_ATTRIBUTES_PATCH = "search-attributes"
CAMPAIGNS_PATCH = "campaigns"
ERASE_SIGNAL = "erase"
PAUSE_UPDATE = "pause"
RESUME_UPDATE = "resume"
SKIP_STEP_UPDATE = "skip_step"
START_LADDER_UPDATE = "start_ladder"
END_LADDER_UPDATE = "end_ladder"

# The store may be down for a while: keep trying, never drop the batch.
LEDGER_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)
# A channel that keeps failing should not hold the ladder forever: give up, climb on.
ENGAGEMENT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    maximum_attempts=8,
    non_retryable_error_types=["UnknownChannel", "DeliveryRefused"],
)


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
        self._inbox: deque[Any] = deque(input.pending)
        self._campaign_inbox: deque[Any] = deque(input.pending_campaigns)
        self._received_this_run = 0
        self._features = rules.Features()
        # Set by an erase request: the journey erases the customer's data and ends.
        self._erasure: str | None = None
        # Set by an operator's update: the main loop looks again.
        self._steered = False
        # While an engagement is in flight, the ladder is not to be moved under it.
        self._sending = False
        # The search attributes as last upserted (a new run starts from none).
        self._indexed: dict[str, Any] = {}
        self._telemetry = JourneyTelemetry(self._state.customer_id)

    @workflow.run
    async def run(self, input: JourneyInput) -> None:
        # Journeys that began before these existed keep behaving as they did.
        self._features = rules.Features(
            vip_care=workflow.patched(VIP_CARE_PATCH),
            above_the_line=workflow.patched(ABOVE_THE_LINE_PATCH),
            engagement_outcomes=workflow.patched(OUTCOMES_PATCH),
        )
        state = self._state
        if state.silence_deadline is None:
            state.silence_deadline = rules.silence_deadline(state, workflow.now(), self._config)
        while True:
            await self._wait_for_work()
            if self._erasure is not None:
                await self._erase(self._erasure)
                return
            if self._inbox:
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
                workflow.continue_as_new(
                    JourneyInput(
                        customer_id=state.customer_id,
                        config=self._config,
                        state=state,
                        pending=list(self._inbox),
                        pending_campaigns=list(self._campaign_inbox),
                    )
                )

    @workflow.signal(name=EVENT_SIGNAL)
    def event(self, payload: RawValue) -> None:
        self._queue(self._inbox, payload, "event")

    @workflow.signal(name=CAMPAIGN_SIGNAL)
    def campaign(self, payload: RawValue) -> None:
        """A calendared campaign has started (the fan-out): decided in the main loop."""
        self._queue(self._campaign_inbox, payload, "campaign")

    def _queue(self, inbox: deque[Any], payload: RawValue, what: str) -> None:
        """Queue a signal's payload for the main loop, which validates it."""
        self._received_this_run += 1
        try:
            inbox.append(workflow.payload_converter().from_payload(payload.payload))
        except Exception as err:  # any undecodable payload is refused, never raised
            rules.reject(self._state, self._config, workflow.now(), f"undecodable {what}: {err}")

    @workflow.signal(name=ERASE_SIGNAL)
    def erase(self, payload: RawValue) -> None:
        """The right to be forgotten. The first valid request wins; the rest are moot."""
        self._received_this_run += 1
        try:
            request = ErasureRequest.model_validate(
                workflow.payload_converter().from_payload(payload.payload)
            )
        except Exception as err:  # a bad request is refused, never raised
            rules.reject(self._state, self._config, workflow.now(), f"invalid erase: {err}")
            return
        self._erasure = self._erasure or request.request_id

    @workflow.signal(dynamic=True)
    def unknown_signal(self, name: str, args: Sequence[RawValue]) -> None:
        self._received_this_run += 1
        rules.reject(self._state, self._config, workflow.now(), f"unknown signal {name!r}")

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
        operator.start(self._state, self._config, request, workflow.now())
        if self._state.ladder is not None:
            self._telemetry.ladder_started(self._state.ladder)
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
        self,
        action: Callable[[JourneyState, JourneyConfig, OperatorRequest, datetime], None],
        request: OperatorRequest,
    ) -> JourneyView:
        action(self._state, self._config, request, workflow.now())
        self._steered = True
        return self._view()

    @workflow.query(name=STATE_QUERY)
    def state(self) -> JourneyView:
        return self._view()

    def _view(self) -> JourneyView:
        at, action = rules.next_deadline(self._state)
        return JourneyView(
            state=self._state,
            pending_events=len(self._inbox),
            next_action=action,
            next_action_at=at,
        )

    async def _wait_for_work(self) -> None:
        woken = self._steered
        self._steered = False
        if woken or self._has_news() or self._continue_as_new_due():
            return
        if self._state.paused:  # no deadline acts while paused: wait for a reason
            await workflow.wait_condition(self._has_news)
            return
        at, action = rules.next_deadline(self._state)
        if at is None:  # never the case once run() has set the silence clock
            return
        remaining = (at - workflow.now()).total_seconds()
        if remaining <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(self._has_news, timeout=remaining, timeout_summary=action)

    def _has_news(self) -> bool:
        return bool(self._inbox or self._campaign_inbox or self._erasure or self._steered)

    async def _apply_inbox(self) -> None:
        state, config, now = self._state, self._config, workflow.now()
        candidates: dict[str, CustomerEvent] = {}
        while self._inbox:
            raw = self._inbox.popleft()
            try:
                event = parse_event(raw)
            except ValidationError as err:
                rules.reject(state, config, now, f"invalid event: {describe_errors(err)}")
                continue
            if event.customer_id != state.customer_id:
                rules.reject(state, config, now, f"event {event.event_id} is for another customer")
            elif rules.is_duplicate(state, event.event_id) or event.event_id in candidates:
                rules.ignore_duplicate(state, config, now, event.event_id)
            else:
                candidates[event.event_id] = event
        if not candidates:
            return
        fresh = await self._record(list(candidates.values()))
        now = workflow.now()
        for event_id, event in candidates.items():
            if event_id in fresh:
                ladder, won = state.ladder, state.remediations_won
                rules.apply_event(state, config, event, now, self._features)
                if event.type == EventType.PURCHASE:
                    campaigns.purchased(state, config, now)
                self._telemetry.event_applied(event.type.value)
                self._ladder_moved(ladder, won)
            else:
                rules.remember(state, config, event_id)
                rules.ignore_duplicate(state, config, now, event_id)

    async def _record(self, events: list[CustomerEvent]) -> set[str]:
        """Write the batch to the ledger; the ledger says which ids are new to it, which
        catches redeliveries older than the in-state dedupe window."""
        request = RecordEventsRequest(
            customer_id=self._state.customer_id,
            application_id=str(workflow.uuid4()),
            events=events,
            cohort_rules=self._config.cohorts,
        )
        try:
            result = await workflow.execute_activity(
                RECORD_EVENTS,
                request,
                result_type=RecordEventsResult,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=LEDGER_RETRY,
                summary=f"record {len(events)} event(s) in the ledger",
            )
        except ActivityError as err:
            # Only a non-retryable failure lands here; the window still dedupes.
            rules.reject(self._state, self._config, workflow.now(), f"ledger refused: {err}")
            return {event.event_id for event in events}
        return set(result.fresh_event_ids)

    def _receive_campaigns(self) -> None:
        state, config, now = self._state, self._config, workflow.now()
        # Journeys that began before campaigns existed refused the signal as unknown.
        known = workflow.patched(CAMPAIGNS_PATCH)
        while self._campaign_inbox:
            raw = self._campaign_inbox.popleft()
            if not known:
                rules.reject(state, config, now, f"unknown signal {CAMPAIGN_SIGNAL!r}")
                continue
            try:
                campaign = Campaign.model_validate(raw)
            except ValidationError as err:
                rules.reject(state, config, now, f"invalid campaign: {describe_errors(err)}")
                continue
            campaigns.receive(state, config, campaign, now)

    def _ladder_moved(self, before: LadderRun | None, won_before: int) -> None:
        """Tell ops what an event did to the ladder: won it, or started another."""
        state = self._state
        if before is not None and state.remediations_won > won_before:
            self._telemetry.remediation_won(before)
        if state.ladder is not None and (before is None or state.ladder.run_id != before.run_id):
            self._telemetry.ladder_started(state.ladder)

    async def _advance(self) -> None:
        state, config = self._state, self._config
        rules.update_cohort(state, config, workflow.now())
        if state.outcomes_due:
            await self._file_outcomes()
        while (send := campaigns.next_send(state, config, workflow.now())) is not None:
            await self._send_campaign(*send)
        if state.campaign_contacts_due:
            await self._file_campaign_contacts()
        if state.paused:
            return
        if state.thanks_due is not None:
            await self._thank(state.thanks_due)
        if state.offer_due is not None:
            await self._offer()
        flatlined = rules.flatline_if_silent(state, config, workflow.now(), self._features)
        if flatlined and state.ladder is not None:
            self._telemetry.flatline(state.ladder)
        run = state.ladder
        step = rules.step_due(state, config, workflow.now())
        if run is None or step is None:
            return
        # Journeys that began before the contact policy existed keep sending as they did.
        if workflow.patched(CONTACT_POLICY_PATCH):
            channel = rules.contact_channel(state, config, run, step, workflow.now())
            if channel is None:
                return
            step = step.model_copy(update={"channel": channel})
        await self._send(run, step)

    async def _send(self, run: LadderRun, step: LadderStep) -> None:
        summary = rules.step_summary(run, step)
        failure = await self._engage(run.cause, run.run_id, run.step + 1, step, summary)
        if failure is not None:
            rules.step_failed(self._state, self._config, run, step, workflow.now(), failure)
        else:
            rules.step_sent(self._state, self._config, run, step, workflow.now())

    async def _thank(self, feedback_event_id: str) -> None:
        state, config = self._state, self._config
        channel = rules.thank_you_channel(state, config, workflow.now())
        if channel is None:
            return
        step = VIP_THANK_YOU.model_copy(update={"channel": channel})
        summary = f"VIP care: {step.name} by {channel} for feedback {feedback_event_id}"
        failure = await self._engage(
            Cause.VIP_CARE, f"thanks-{feedback_event_id}", 1, step, summary
        )
        rules.thanked(
            state, config, workflow.now(), summary + (f" failed: {failure}" if failure else "")
        )

    async def _file_outcomes(self) -> None:
        """Tell the store what became of engagements (journeys that began before this
        existed only forget them)."""
        due, self._state.outcomes_due = self._state.outcomes_due, []
        if not self._features.engagement_outcomes:
            return
        outcomes = [
            Outcome(idempotency_key=self._key(o.engagement), outcome=o.outcome, at=o.at)
            for o in due
        ]
        await workflow.execute_activity(
            RECORD_OUTCOMES,
            RecordOutcomesRequest(outcomes=outcomes),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=LEDGER_RETRY,
            summary=", ".join(f"{o.engagement}: {o.outcome}" for o in due),
        )

    async def _send_campaign(self, campaign: Campaign, send: campaigns.Send) -> None:
        step = LadderStep(
            name=send.content_key,
            channel=send.channel,
            cost=campaign.cost,
            offer_id=campaign.offer_id,
        )
        summary = f"campaign {campaign.title}: {send.content_key} by {send.channel}"
        failure = await self._engage(
            Cause.CAMPAIGN, campaign.run_id, 1, step, summary, send.category
        )
        campaigns.done(self._state, self._config, campaign, send, workflow.now(), failure)

    async def _file_campaign_contacts(self) -> None:
        """Tell the single customer view what campaigns came to for this customer."""
        due, self._state.campaign_contacts_due = self._state.campaign_contacts_due, []
        await workflow.execute_activity(
            RECORD_CAMPAIGN_CONTACTS,
            RecordCampaignContactsRequest(contacts=due),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=LEDGER_RETRY,
            summary=", ".join(f"{c.campaign}: {c.outcome.value}" for c in due),
        )

    def _key(self, engagement: str) -> str:
        """An engagement's idempotency key: journey, first run, then its own name."""
        info = workflow.info()
        return f"{info.workflow_id}/{info.first_execution_run_id}/{engagement}"

    async def _offer(self) -> None:
        state, config = self._state, self._config
        offer = state.offer_due
        channel = rules.offer_channel(state, config, workflow.now())
        if offer is None or channel is None:
            return
        listed = CATALOGUE[offer.offer_id]
        step = LadderStep(
            name=listed.description, channel=channel, cost=listed.cost, offer_id=offer.offer_id
        )
        target = f" on {offer.category}" if offer.category else ""
        summary = f"above the line: {offer.offer_id}{target} by {channel} ({offer.why})"
        failure = await self._engage(Cause.ABOVE_LINE, offer.key, 1, step, summary, offer.category)
        if failure is not None:
            rules.offer_not_sent(state, config, workflow.now(), failure)
        else:
            rules.offer_sent(state, config, offer, channel, workflow.now())

    async def _engage(
        self,
        cause: Cause,
        run_id: str,
        step_number: int,
        step: LadderStep,
        summary: str,
        offer_category: str | None = None,
    ) -> str | None:
        """Send one engagement, at most once (the key); returns why it failed, if it did."""
        request = EngagementRequest(
            idempotency_key=self._key(f"{run_id}/step-{step_number}"),
            customer_id=self._state.customer_id,
            cause=cause,
            ladder_run_id=run_id,
            step=step_number,
            step_name=step.name,
            channel=step.channel,
            cost=step.cost,
            offer_id=step.offer_id,
            offer_category=offer_category,
        )
        self._sending = True
        try:
            await workflow.execute_activity(
                SEND_ENGAGEMENT,
                request,
                result_type=EngagementResult,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=ENGAGEMENT_RETRY,
                summary=summary,
            )
        except ActivityError as err:
            failure = str(err.cause) if err.cause else str(err)
            self._telemetry.engagement_failed(summary, failure)
            return failure
        finally:
            self._sending = False
        self._telemetry.engagement_sent(cause, step_number, step.channel, step.cost, summary)
        return None

    async def _erase(self, request_id: str) -> None:
        """Delete the customer's data from the store (retried until it succeeds), then
        forget it here too: queued events are dropped and the state is blanked. Events
        that arrive during a pass are dropped too; another pass removes what the ingest
        recorded of them."""
        passes = 0
        while passes == 0 or self._inbox:
            self._inbox.clear()
            self._campaign_inbox.clear()
            passes += 1
            await workflow.execute_activity(
                ERASE_CUSTOMER,
                EraseRequest(customer_id=self._state.customer_id, request_id=request_id),
                result_type=EraseResult,
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=LEDGER_RETRY,
                summary=f"erase customer data (request {request_id}, pass {passes})",
            )
        self._state = JourneyState(customer_id=self._state.customer_id)
        rules.note(self._state, self._config, workflow.now(), "erased", f"request {request_id}")
        workflow.set_current_details(f"Erased (request {request_id}); this journey has ended.")

    def _index(self) -> None:
        """Upsert the search attributes that changed (journeys that began before they
        existed do not index themselves)."""
        if not workflow.patched(SEARCH_ATTRIBUTES_PATCH):
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
