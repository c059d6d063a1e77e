"""Logging, in one place: structlog's pipeline renders every line, JSON when not on a
terminal, readable when on one.

Two kinds of line go through it: structlog's own (the API, the activities, the CLI) and
the standard library's (the journeys, which log through the SDK's replay-safe
``workflow.logger``, and the SDK itself). Every line carries what its context knows:
the request's source, customer and event id (bound by the ingest API), inside an
activity the journey's workflow and run ids, and from a journey its customer, workflow
and run ids.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import TextIO

import structlog
from temporalio import activity, workflow

JOURNEY_LOGGER = "temporalio.workflow"


def add_temporal_ids(
    logger: object, method: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """Inside an activity, say which journey run it works for and what it is."""
    if activity.in_activity():
        info = activity.info()
        event_dict.setdefault("workflow_id", info.workflow_id)
        event_dict.setdefault("run_id", info.workflow_run_id)
        event_dict.setdefault("activity", info.activity_type)
        event_dict.setdefault("attempt", info.attempt)
    return event_dict


def lift_workflow_ids(
    logger: object, method: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """A line from ``workflow.logger`` carries the SDK's ``temporal_workflow`` extra:
    keep its workflow and run ids as fields of their own."""
    found = event_dict.pop("temporal_workflow", None)
    if isinstance(found, dict):
        event_dict.setdefault("workflow_id", found.get("workflow_id"))
        event_dict.setdefault("run_id", found.get("run_id"))
    return event_dict


_SHARED: list[structlog.typing.Processor] = [
    structlog.contextvars.merge_contextvars,
    add_temporal_ids,
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]

# Every line of the process is written whole, by one write, under this lock: structlog's
# and the standard library's alike, whatever thread writes it.
_WRITING = threading.Lock()


def write_line(stream: TextIO, line: str) -> None:
    with _WRITING:
        stream.write(line + "\n")
        stream.flush()


class LineLogger:
    """structlog's logger: writes each rendered line whole (``print`` writes the line,
    then its newline: another thread's line could land between the two)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def msg(self, message: str) -> None:
        write_line(self._stream, message)

    log = debug = info = warn = warning = error = err = critical = exception = fatal = msg


class LineHandler(logging.StreamHandler[TextIO]):
    """The standard library's records, each written whole, under the same lock."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # a record that cannot be rendered is reported, never raised
            self.handleError(record)
            return
        write_line(self.stream, line)


def _json(json: bool | None, stream: TextIO) -> bool:
    return json if json is not None else not stream.isatty()


def _rendering(json: bool | None, stream: TextIO) -> list[structlog.typing.Processor]:
    """JSON carries an exception as one formatted stack trace (``exception``); so does
    the console, plainly: rich's tracebacks, with every frame's locals, took seconds a
    trace, on the event loop, when the store was down and each retry logged one."""
    if _json(json, stream):
        return [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    return [
        structlog.dev.ConsoleRenderer(
            colors=stream.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    ]


def standard_library_handler(
    json: bool | None = None, stream: TextIO = sys.stderr
) -> logging.Handler:
    """A handler that renders standard-library records (journeys, the SDK and its core)
    through the same pipeline, with their extras (``customer_id=``…) as fields."""
    handler = LineHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.ExtraAdder(), lift_workflow_ids, *_SHARED],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *_rendering(json, stream),
            ],
        )
    )
    return handler


def configure_logging(level: int = logging.INFO, json: bool | None = None) -> None:
    structlog.configure(
        processors=[*_SHARED, *_rendering(json, sys.stderr)],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=lambda *_: LineLogger(sys.stderr),
        cache_logger_on_first_use=True,
    )
    root = logging.getLogger()
    root.handlers = [standard_library_handler(json)]
    root.setLevel(logging.WARNING)
    # The journeys' own lines: the ids go in fields, not appended to the message.
    logging.getLogger(JOURNEY_LOGGER).setLevel(level)
    workflow.logger.workflow_info_on_message = False
