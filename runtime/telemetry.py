"""Traces and metrics, configured in one place.

Traces: OpenTelemetry, from the ingest request through the signal into the journey and
each activity (the SDK's TracingInterceptor on the client, and so on its workers). They
go to an OTLP endpoint when one is configured, else to the terminal when asked, else
nowhere, and then no interceptor is installed at all.

Metrics: the Temporal runtime's own and the journeys' counters (recorded through the
replay-safe workflow metric meter, see ``workflows.telemetry``), served for Prometheus
on one address per process.
"""

from __future__ import annotations

import logging
from functools import cache

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
)
from pydantic import BaseModel, ConfigDict
from temporalio.client import Client, Interceptor
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
)

tracer = trace.get_tracer("equator")

# Where the ingest's deliveries spend their time (``service/ingest.py``), in buckets
# from a healthy few milliseconds to a stalled half minute.
INGEST_PHASE_SECONDS = "equator_ingest_phase_seconds"
_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class TelemetrySettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    # OTLP over HTTP, e.g. http://collector:4318/v1/traces; unset: no export.
    otlp_endpoint: str | None = None
    # With no endpoint: print each span on stderr (a look on a terminal, not production).
    console_traces: bool = False
    # host:port where /metrics is served for Prometheus; unset: no endpoint
    # (`equator run` serves it on 127.0.0.1:9464 unless told otherwise).
    metrics_address: str | None = None
    service_name: str = "equator"


def configure_tracing(settings: TelemetrySettings) -> None:
    """Install the process's tracer provider, if traces go anywhere."""
    if settings.otlp_endpoint is None and not settings.console_traces:
        return
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: settings.service_name}))
    if settings.otlp_endpoint is not None:
        # Imported only when used: it brings protobuf and requests with it.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otlp_endpoint))
        )
    else:
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)


def client_interceptors() -> list[Interceptor]:
    """The tracing interceptor when a tracer provider is installed (by
    ``configure_tracing`` or by a test), else nothing: no headers, no cost."""
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return [TracingInterceptor()]
    return []


def runtime_of(client: Client) -> Runtime:
    """The runtime serving ``client``'s process's metrics, where its meters belong."""
    return client.service_client.config.runtime or Runtime.default()


@cache
def runtime(settings: TelemetrySettings, core_log_level: str = "WARN") -> Runtime:
    """One Temporal runtime per metrics address and core log level, shared by the
    process's clients (it owns the metrics endpoint, where one is configured). The SDK
    core's own log lines, from ``core_log_level`` up, go through Python's logging
    (``temporalio.core``): rendered and written as every other line is, never printed
    in between them (or to stdout, where a command's output goes)."""
    forwarding = LogForwardingConfig(logger=logging.getLogger("temporalio.core"))
    metrics = None
    if settings.metrics_address is not None:
        metrics = PrometheusConfig(
            bind_address=settings.metrics_address,
            counters_total_suffix=True,
            histogram_bucket_overrides={INGEST_PHASE_SECONDS: _SECONDS_BUCKETS},
        )
    return Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(filter=core_log_level, forwarding=forwarding),
            metrics=metrics,
            global_tags={"service_name": settings.service_name},
        )
    )
