"""Ops can follow one event end to end: a trace from the ingest request through the
journey to its activities, the journeys' counters on the Prometheus endpoint, and the
journeys' own log lines with the ids that find them. Real dev server, worker and API."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio import workflow
from temporalio.testing import WorkflowEnvironment

from runtime.credentials import new_key
from runtime.logging import JOURNEY_LOGGER, standard_library_handler
from runtime.telemetry import TelemetrySettings
from runtime.temporal import connect, journey_view, send_event
from runtime.worker import running_worker
from tests.ingest import ingest_api, raw_event, settings_for
from tests.journeys import NEVER_QUIET, NO_HOLDOUTS, PROGRAMMES_0_1, event, remediation
from tests.servers import eventually, free_port
from workflows.config import JourneyConfig
from workflows.journey import journey_id
from workflows.programmes.remediation import RemediationState

pytestmark = pytest.mark.devserver

# Silence of two seconds is a flatline; no quiet hours whatever the hour.
QUICK = JourneyConfig(
    holdouts=NO_HOLDOUTS,
    enabled=PROGRAMMES_0_1,
    silence_min=timedelta(seconds=1),
    silence_default=timedelta(seconds=2),
    response_window=timedelta(minutes=5),
    contact=NEVER_QUIET,
)


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    """The process's tracer provider, recording in memory (OpenTelemetry allows one per
    process; the clients this module connects trace because it is installed)."""
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


async def test_one_event_is_one_trace_from_ingest_to_activity(
    spans: InMemorySpanExporter, dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    key = new_key()
    address = dev_env.client.service_client.config.target_host
    settings = settings_for(address, f"sqlite+aiosqlite:///{tmp_path / 'e.db'}", key)
    client = await connect(settings)  # with the tracing interceptor, as in production
    async with running_worker(client, settings), ingest_api(settings, key) as api:
        who = f"traced-{uuid.uuid4().hex[:8]}"
        response = await api.post("/v1/events", raw_event(who))
        assert response.status_code == 202

        def finished() -> list[ReadableSpan]:
            return list(spans.get_finished_spans())

        async def probe() -> list[ReadableSpan]:
            return finished()

        await eventually(probe, lambda s: any(x.name == "RunActivity:record_events" for x in s))
        await client.get_workflow_handle(journey_id(who)).terminate("test over")

    by_name = {span.name: span for span in finished()}
    # FastAPI's request span and endpoint, our delivery, then the SDK's interceptor: the
    # journey's run, its signal and its activity all descend from the signal-with-start.
    parents = {
        "fastapi.endpoint": "POST /v1/events",
        "deliver event": "fastapi.endpoint",
        "SignalWithStartWorkflow:CustomerJourney": "deliver event",
        "RunWorkflow:CustomerJourney": "SignalWithStartWorkflow:CustomerJourney",
        "HandleSignal:event": "SignalWithStartWorkflow:CustomerJourney",
        "StartActivity:record_events": "SignalWithStartWorkflow:CustomerJourney",
        "RunActivity:record_events": "StartActivity:record_events",
    }
    for child, parent in parents.items():
        found, expected = by_name[child].parent, by_name[parent].context
        assert found is not None, child
        assert expected is not None, parent
        assert (found.trace_id, found.span_id) == (expected.trace_id, expected.span_id), child
    delivered = by_name["deliver event"].attributes or {}
    assert (delivered["equator.customer_id"], delivered["equator.event_type"]) == (
        who,
        "purchase",
    )


@dataclass
class Observed:
    customer_id: str
    metrics: str
    lines: list[dict[str, Any]]


@pytest.fixture(scope="module")
def journey_lines() -> Iterator[io.StringIO]:
    """The journeys' log lines, rendered by the project's pipeline as JSON."""
    stream = io.StringIO()
    handler = standard_library_handler(json=True, stream=stream)
    journey_logger = logging.getLogger(JOURNEY_LOGGER)
    was_level, was_on_message = journey_logger.level, workflow.logger.workflow_info_on_message
    journey_logger.addHandler(handler)
    journey_logger.setLevel(logging.INFO)
    workflow.logger.workflow_info_on_message = False
    yield stream
    journey_logger.removeHandler(handler)
    journey_logger.setLevel(was_level)
    workflow.logger.workflow_info_on_message = was_on_message


@pytest.fixture(scope="module")
async def observed(
    dev_env: WorkflowEnvironment,
    journey_lines: io.StringIO,
    tmp_path_factory: pytest.TempPathFactory,
) -> Observed:
    """A customer buys, falls silent (a flatline), gets the silence ladder's first step
    by email and opens it (the ladder is won), on a worker whose runtime serves metrics."""
    address = f"127.0.0.1:{free_port()}"
    database = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('metrics') / 'e.db'}"
    settings = settings_for(dev_env.client.service_client.config.target_host, database, "k")
    settings = settings.model_copy(
        update={"journey": QUICK, "telemetry": TelemetrySettings(metrics_address=address)}
    )
    client = await connect(settings)
    who = f"metered-{uuid.uuid4().hex[:8]}"

    async def send(type: str, **properties: Any) -> None:
        moment = datetime.now(UTC)
        await send_event(client, settings.task_queue, QUICK, event(who, type, moment, **properties))

    async def climb() -> RemediationState:
        return remediation(await journey_view(client, who))

    async with running_worker(client, settings), httpx.AsyncClient() as http:
        await send("purchase", amount="40", category="shoes")
        await eventually(climb, lambda s: s.ladder is not None and s.ladder.spent > 0)
        await send("purchase", amount="25", category="bags")
        await eventually(climb, lambda s: s.won == 1)

        async def scrape() -> str:
            return (await http.get(f"http://{address}/metrics")).text

        metrics = await eventually(scrape, lambda text: "equator_remediations_won" in text)
        await client.get_workflow_handle(journey_id(who)).terminate("test over")
    lines = [json.loads(line) for line in journey_lines.getvalue().splitlines()]
    return Observed(who, metrics, [line for line in lines if line.get("customer_id") == who])


def sample(metrics: str, name: str, **labels: str) -> float:
    """The value of the one sample of ``name`` whose labels include ``labels``."""
    found = [
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith(name + "{")
        and all(f'{key}="{value}"' in line for key, value in labels.items())
    ]
    assert len(found) == 1, f"{name} {labels}: {found}"
    return found[0]


async def test_the_metrics_endpoint_serves_the_journeys_counters(observed: Observed) -> None:
    metrics = observed.metrics
    assert sample(metrics, "equator_events_applied_total", event_type="purchase") == 2
    assert sample(metrics, "equator_flatlines_detected_total", cause="silence") == 1
    sent = {"cause": "silence", "channel": "email", "step": "1"}
    assert sample(metrics, "equator_engagements_sent_total", **sent) == 1
    assert sample(metrics, "equator_remediation_cost_cents_total", cause="silence") == 5
    assert sample(metrics, "equator_remediations_won_total", cause="silence") == 1
    # The runtime's own, beside ours, under our service name.
    runtime = {"activity_type": "send_engagement", "service_name": "equator"}
    assert sample(metrics, "temporal_local_activity_execution_latency_count", **runtime) >= 1


async def test_journey_log_lines_carry_customer_workflow_and_run_ids(observed: Observed) -> None:
    # Each once: the workflow logger is silent while a journey replays.
    assert [line["event"] for line in observed.lines] == [
        "journey.flatline",
        "journey.engagement_sent",
        "journey.ladder_won",
    ]
    for line in observed.lines:
        assert line["workflow_id"] == journey_id(observed.customer_id)
        assert line["run_id"]
        assert line["level"] == "info"
    won = observed.lines[-1]
    assert (won["cause"], won["ladder"], won["step"]) == ("silence", "silence-1", 1)


async def test_the_api_times_each_phase_of_a_delivery(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    """Where accepted events spent their time, in the API's metrics: reading the receipts,
    waiting for a signal slot, the signal, writing the receipt; once per event each."""
    address = f"127.0.0.1:{free_port()}"
    key = new_key()
    temporal = dev_env.client.service_client.config.target_host
    settings = settings_for(temporal, f"sqlite+aiosqlite:///{tmp_path / 'e.db'}", key)
    settings = settings.model_copy(update={"telemetry": TelemetrySettings(metrics_address=address)})
    who = f"timed-{uuid.uuid4().hex[:8]}"
    async with ingest_api(settings, key) as api:
        for _ in range(3):
            assert (await api.post("/v1/events", raw_event(who))).status_code == 202
        metrics = (await api.http.get(f"http://{address}/metrics")).text
    for phase in ("receipts", "signal_slot", "signal", "record"):
        assert sample(metrics, "equator_ingest_phase_seconds_count", phase=phase) == 3
    assert sample(metrics, "equator_ingest_phase_seconds_sum", phase="signal") > 0
    # In the project's buckets, which reach a stalled half minute.
    assert sample(metrics, "equator_ingest_phase_seconds_bucket", phase="signal", le="30") == 3
