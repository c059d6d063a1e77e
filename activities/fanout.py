"""Signalling a page of a campaign's audience, at the campaign's rate, once each.

Journeys are signalled with up to ``IN_FLIGHT`` calls open at once, each started no
sooner than the rate allows. The activity heartbeats how far the page is done without
a gap, so a retry (a worker that crashed or stopped) carries on from there instead of
signalling the page again; the few signalled past that point are signalled again,
which the journeys absorb (they deduplicate by campaign).
"""

from __future__ import annotations

import asyncio
import time

import structlog
from pydantic import BaseModel
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from activities.journeys import JourneyClosedError, signal_with_start
from workflows.config import JourneyConfig
from workflows.contracts import SIGNAL_AUDIENCE, SignalAudienceRequest, SignalAudienceResult
from workflows.journey import CAMPAIGN_SIGNAL

log = structlog.get_logger(__name__)

# Calls to Temporal open at once: enough to hide the round trip.
IN_FLIGHT = 100
# How often the place is heartbeated, in seconds.
HEARTBEAT_EVERY = 0.5


class Place(BaseModel):
    """How far the page has got: the heartbeat's details."""

    done: int = 0
    signalled: int = 0
    closed: int = 0


class FanOutActivities:
    def __init__(self, client: Client, task_queue: str, config: JourneyConfig) -> None:
        self._client = client
        self._task_queue = task_queue
        self._config = config

    @activity.defn(name=SIGNAL_AUDIENCE)
    async def signal_audience(self, request: SignalAudienceRequest) -> SignalAudienceResult:
        details = activity.info().heartbeat_details
        place = Place.model_validate(details[0]) if details else Place()
        ids = request.customer_ids
        # True: signalled; False: the journey has ended; None: not yet.
        outcomes: list[bool | None] = [None] * len(ids)
        gate = asyncio.Semaphore(IN_FLIGHT)

        async def signal(index: int) -> None:
            try:
                outcomes[index] = await self._signal(request, ids[index])
            finally:
                gate.release()

        def advance() -> None:
            """Move the place over everything done without a gap, and heartbeat it."""
            while place.done < len(ids) and outcomes[place.done] is not None:
                place.signalled += outcomes[place.done] is True
                place.closed += outcomes[place.done] is False
                place.done += 1
            activity.heartbeat(place)

        resumed_at = place.done
        started = last_beat = time.monotonic()
        calls: list[asyncio.Task[None]] = []
        try:
            for index in range(resumed_at, len(ids)):
                if activity.is_worker_shutdown():
                    break
                allowed_at = started + (index - resumed_at) / request.rate
                if (wait := allowed_at - time.monotonic()) > 0:
                    await asyncio.sleep(wait)
                await gate.acquire()
                calls.append(asyncio.create_task(signal(index)))
                if time.monotonic() - last_beat > HEARTBEAT_EVERY:
                    advance()
                    last_beat = time.monotonic()
            await asyncio.gather(*calls)
        finally:
            # A failed call or a cancelled activity (the worker stopping): leave no call
            # behind; the retry resumes from the last heartbeat.
            for call in calls:
                call.cancel()
        advance()
        if place.done < len(ids):
            # The worker is stopping: hand the rest of the page to the retry, on this
            # worker's successor or another, from the place just heartbeated.
            raise ApplicationError(f"worker stopping at {place.done} of {len(ids)}")
        log.info(
            "campaign.page_signalled",
            campaign=request.campaign.name,
            signalled=place.signalled,
            closed=place.closed,
            resumed_from=resumed_at,
        )
        return SignalAudienceResult(signalled=place.signalled, closed=place.closed)

    async def _signal(self, request: SignalAudienceRequest, customer_id: str) -> bool:
        """True once the journey has the campaign; False if the journey has ended."""
        try:
            await signal_with_start(
                self._client,
                self._task_queue,
                self._config,
                customer_id,
                CAMPAIGN_SIGNAL,
                request.campaign,
            )
        except JourneyClosedError:
            return False
        return True
