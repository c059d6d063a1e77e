"""`equator`: run the embedded stack, send events, show journeys."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from temporalio.service import RPCError

from starter.demo import run_demo
from starter.devstack import DevServerError, dev_server
from starter.logging import configure_logging
from starter.settings import Settings
from starter.temporal import JourneyClosedError, connect, journey_view, send_event
from worker import main as worker_main
from worker import running_worker
from workflows.config import JourneyConfig
from workflows.details import current_details
from workflows.events import describe_errors, make_event
from workflows.journey import journey_id


def _property(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    with contextlib.suppress(json.JSONDecodeError):
        return key, json.loads(value)
    return key, value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="equator", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="dev server + UI, a worker and the demo population")
    run.add_argument("--no-demo", action="store_true", help="start the stack without the demo")

    commands.add_parser("worker", help="run a worker against the configured Temporal")

    send = commands.add_parser("send", help="send one event to a customer's journey")
    send.add_argument("customer_id")
    send.add_argument("type", help="purchase, return, complaint, email_opened, …")
    send.add_argument("properties", nargs="*", type=_property, metavar="key=value")
    send.add_argument("--event-id", help="defaults to a new id; reuse one to test dedupe")
    send.add_argument("--at", help="when it happened (RFC 3339 with offset); default now")

    show = commands.add_parser("show", help="show a customer's journey")
    show.add_argument("customer_id")
    show.add_argument("--json", action="store_true", help="the full state as JSON")
    return parser


async def _run(settings: Settings, demo: bool) -> None:
    # SIGTERM (a supervisor, `kill`) stops as cleanly as Ctrl-C: the server goes down too.
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    async with dev_server(settings) as client, running_worker(client, settings):
        ui = f"http://localhost:{settings.ui_port}/namespaces/{settings.temporal_namespace}"
        print(f"Temporal UI: {ui}/workflows", flush=True)
        print("Ctrl-C stops everything.", flush=True)
        if demo:
            print(
                "Demo: ladders climb within a minute; try "
                "`equator show lapsing-lena` in another terminal.",
                flush=True,
            )
            await run_demo(client, settings.task_queue, JourneyConfig.demo())
        else:
            await asyncio.Event().wait()


async def _send(settings: Settings, args: argparse.Namespace) -> int:
    try:
        event = make_event(
            args.event_id or f"cli-{uuid.uuid4()}",
            args.customer_id,
            args.type,
            args.at or datetime.now(UTC),
            dict(args.properties),
        )
    except ValidationError as err:
        print(f"invalid event: {describe_errors(err)}", file=sys.stderr)
        return 2
    client = await connect(settings)
    try:
        await send_event(client, settings.task_queue, settings.journey, event)
    except JourneyClosedError as err:
        print(str(err), file=sys.stderr)
        return 1
    print(f"sent {event.event_id} to {journey_id(event.customer_id)}")
    return 0


async def _show(settings: Settings, customer_id: str, as_json: bool) -> int:
    client = await connect(settings)
    try:
        view = await journey_view(client, customer_id)
    except RPCError as err:
        print(f"no journey for customer {customer_id}: {err.message}", file=sys.stderr)
        return 1
    if as_json:
        print(view.model_dump_json(indent=2))
        return 0
    print(current_details(view))
    print("\nrecent timeline:")
    for entry in view.state.timeline[-10:]:
        print(f"  {entry.at:%Y-%m-%d %H:%M:%S} {entry.kind:<17} {entry.summary}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings()
    configure_logging()
    try:
        match args.command:
            case "run":
                asyncio.run(_run(settings, demo=not args.no_demo))
            case "worker":
                asyncio.run(worker_main())
            case "send":
                return asyncio.run(_send(settings, args))
            case "show":
                return asyncio.run(_show(settings, args.customer_id, args.json))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("stopped", file=sys.stderr)
    except (DevServerError, RuntimeError) as err:
        print(f"equator: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
