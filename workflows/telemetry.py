"""What a journey tells ops as it goes: counters through the workflow metric meter, and
lines (``journey.*``, the customer id a field) through the SDK's workflow logger. Both
are replay-safe (silent while a journey replays its history), so each moment is counted
and logged once, and neither adds anything to the history: changing them needs no patch.

Programmes report their moments (``Journey.report``); the journey's one engagement path
reports what it sends. The counters, as Prometheus shows them (``_total`` added), each
also labelled with the namespace, task queue and workflow type:

- ``equator_events_applied{event_type}``: fresh events applied.
- ``equator_engagements_sent{cause, channel, step}``: engagements that went out.
- ``equator_remediation_cost_cents{cause}``: what remediation ladders spent.
- ``equator_remediations_won{cause}``: ladders won by the customer's response.
- ``equator_flatlines_detected{cause}``: silences long enough to start a ladder.
- ``equator_offers_chosen{decision, offer_id, explored}``: choices the offers that learn
  made (``explored``: over the leader's head).
"""

from __future__ import annotations

import logging

from temporalio import workflow
from temporalio.common import MetricAttributes, MetricCounter

with workflow.unsafe.imports_passed_through():
    from workflows.programme import Engagement, Report


# Each counter's name and what it counts.
COUNTERS = {
    "equator_events_applied": "Customer events applied by journeys",
    "equator_engagements_sent": "Engagements sent, by ladder step and channel",
    "equator_engagements_held_back": "Ghost engagements for customers in a control group",
    "equator_remediation_cost_cents": "What remediation ladders spent, in cents",
    "equator_remediations_won": "Remediation ladders won by the customer's response",
    "equator_flatlines_detected": "Silences long enough to start a ladder",
    "equator_offers_chosen": "Offers chosen by Thompson sampling, by decision",
}


class JourneyTelemetry:
    def __init__(self, customer_id: str) -> None:
        self._customer_id = customer_id
        # Made on first use: most journeys never need most of them.
        self._counters: dict[str, MetricCounter] = {}

    def _add(self, name: str, value: int, attributes: MetricAttributes) -> None:
        counter = self._counters.get(name)
        if counter is None:
            counter = workflow.metric_meter().create_counter(name, COUNTERS[name])
            self._counters[name] = counter
        counter.add(value, attributes)

    def event_applied(self, event_type: str) -> None:
        self._add("equator_events_applied", 1, {"event_type": event_type})

    def engagement_sent(self, engagement: Engagement) -> None:
        self._add(
            "equator_engagements_sent",
            1,
            {"cause": engagement.cause, "channel": engagement.channel, "step": engagement.step},
        )
        self._log("journey.engagement_sent", summary=engagement.summary)

    def engagement_held_back(self, engagement: Engagement) -> None:
        self._add(
            "equator_engagements_held_back",
            1,
            {"cause": engagement.cause, "channel": engagement.channel, "step": engagement.step},
        )
        self._log("journey.engagement_held_back", summary=engagement.summary)

    def offer_chosen(self, engagement: Engagement, explored: bool) -> None:
        attributes = {"decision": engagement.decision or "", "offer_id": engagement.offer_id or ""}
        self._add("equator_offers_chosen", 1, {**attributes, "explored": str(explored).lower()})

    def engagement_failed(self, engagement: Engagement, failure: str) -> None:
        self._log(
            "journey.engagement_failed",
            logging.WARNING,
            summary=engagement.summary,
            error=failure,
        )

    def report(self, report: Report) -> None:
        if report.counter is not None:
            self._add(report.counter, report.value, dict(report.labels))
        if report.what is not None:
            self._log(report.what, **report.fields)

    def _log(self, what: str, level: int = logging.INFO, /, **fields: object) -> None:
        workflow.logger.log(level, what, extra={"customer_id": self._customer_id, **fields})
