"""`equator`: run the embedded stack or its parts, send events, show journeys."""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import getpass
import ipaddress
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError
from rich.console import Console
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from activities.audit import trail as audit_trail
from activities.data_keys import new_master_key
from activities.feed import Feed, outages_since
from activities.store import Store
from runtime.credentials import Scope, hash_key, new_key
from runtime.logging import configure_logging
from runtime.settings import Settings
from runtime.telemetry import configure_tracing
from runtime.temporal import connect, register_search_attributes, steer
from runtime.worker import run_worker, running_worker
from service.api_models import PublishedJourney
from service.codec_server import running_codec_server
from service.offer_report import offer_table
from service.report_chart import page
from service.reports import parse_since, programme_report, table
from service.serving import running_api
from starter.campaigns import CalendarError, campaign_schedules, load_calendar, sync
from starter.client import ApiError, EquatorClient, api_key, event_body, local_key_path
from starter.demo import demo_campaigns, demo_journey, flash_sale, run_demo
from starter.devstack import (
    DevServerError,
    dev_server,
    with_local_master_key,
    with_local_source,
    with_metrics,
)
from starter.fit import FitError, ledger_purchases, summaries
from starter.fit import fit as fit_model
from starter.history import (
    HistoryError,
    HistoryPopulation,
    SilenceCheck,
    check_silence,
    load_history,
    silence_summary,
    write_history,
)
from starter.personas import PersonaError, PersonaPopulation, Personas, load_personas
from starter.population import Population
from starter.simulation import BATCH, SimulationResult, simulate, simulation_page, summary
from starter.sweep import SweepError, parse_sweep, row, sweep_table, with_setting
from starter.terminal import (
    progress_of,
    show_details,
    show_journey,
    show_published,
    working,
)
from workflows.calendar import Calendar, Campaign
from workflows.config import JourneyConfig
from workflows.journey import CustomerJourney
from workflows.operator import OperatorRequest, StartLadderRequest
from workflows.registry import REMEDIATION
from workflows.state import JourneyView

# Operator actions: Temporal updates on the journey, refused with a reason when invalid.
OPERATOR_ACTIONS = {
    "pause": "pause a journey: events still apply, nothing goes out",
    "resume": "resume a paused journey",
    "skip-step": "skip the current ladder step",
    "start-ladder": "start a ladder (silence, return, complaint, …)",
    "end-ladder": "end the current ladder",
}


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

    run = commands.add_parser(
        "run", help="dev server + UI, a worker, the ingest API and the demo population"
    )
    run.add_argument("--no-demo", action="store_true", help="start the stack without the demo")

    commands.add_parser("worker", help="run a worker against the configured Temporal")
    commands.add_parser("api", help="serve the ingest API against the configured Temporal")
    commands.add_parser(
        "codec-server",
        help="decrypt payloads for the Temporal UI, for keys with payloads:read",
    )

    send = commands.add_parser("send", help="send one event through the ingest API")
    send.add_argument("customer_id")
    send.add_argument("type", help="purchase, return, complaint, email_opened, …")
    send.add_argument("properties", nargs="*", type=_property, metavar="key=value")
    send.add_argument("--event-id", help="defaults to a new id; reuse one to test dedupe")
    send.add_argument("--at", help="when it happened (RFC 3339 with offset); default now")

    show = commands.add_parser("show", help="show a customer's journey (through the API)")
    show.add_argument("customer_id")
    show.add_argument("--json", action="store_true", help="the full state as JSON")

    report = commands.add_parser(
        "report", help="per ladder and step: reach, cost, and uplift over the control group"
    )
    output = report.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="the report as JSON")
    output.add_argument(
        "--html",
        type=Path,
        metavar="FILE",
        help="write the report as a page of charts and its table (works offline)",
    )
    report.add_argument(
        "--since", type=_moment, help="engagements from this time on (RFC 3339, or a date)"
    )

    audit = commands.add_parser(
        "audit", help="who erased customers and steered journeys, when, and how it came out"
    )
    audit.add_argument("--customer", help="only this customer's (erased or not)")
    audit.add_argument("--since", type=_moment, help="from this time on (RFC 3339, or a date)")
    audit.add_argument("--json", action="store_true", help="one JSON object per entry")

    feed = commands.add_parser(
        "feed", help="the feed's outages, which journeys do not take for customers' silence"
    )
    feed_actions = feed.add_subparsers(dest="action", required=True)
    outage = feed_actions.add_parser(
        "outage", help="record that events could not arrive (a source was out) for a while"
    )
    outage.add_argument("--from", dest="started_at", type=_moment, required=True)
    outage.add_argument("--to", dest="ended_at", type=_moment, help="omit while it lasts")
    outage.add_argument("--cause", required=True, help="what was out, for the timelines")
    outages = feed_actions.add_parser("outages", help="the outages known, newest first")
    outages.add_argument("--since", type=_moment, help="those ending from this time on")

    simulate = commands.add_parser(
        "simulate",
        help="run a population through the real journeys on simulated time, and report",
    )
    simulate.add_argument(
        "--personas", type=Path, default=Path("personas.toml"), help="default: personas.toml"
    )
    simulate.add_argument(
        "--customers", type=int, help="scale the personas' mix to about this many customers"
    )
    simulate.add_argument("--days", type=float, default=365, help="simulated days (365)")
    simulate.add_argument(
        "--history",
        type=Path,
        metavar="CSV",
        help="replay a purchase history (customer_id, occurred_at, amount[, category]) "
        "up to --cut instead of personas, and check silence detection against the rest",
    )
    simulate.add_argument("--cut", type=_moment, help="with --history: where the journeys stop")
    simulate.add_argument(
        "--horizon",
        type=float,
        default=90,
        help="with --history: days after the cut a customer must buy in to count as back",
    )
    simulate.add_argument(
        "--write-history",
        type=Path,
        metavar="CSV",
        help="write the personas' own purchases over --days as a history file, and stop",
    )
    simulate.add_argument("--seed", type=int, default=1, help="the same seed, the same run")
    simulate.add_argument(
        "--sweep",
        metavar="NAME=V1,V2",
        help="run once per value of a journey setting (silence_multiplier=1.5,2,3; "
        "alive.threshold=0.3,0.5) and print a table of what each did",
    )
    simulate.add_argument(
        "--processes",
        type=int,
        default=1,
        help="play this many batches of customers at once, each in a process (one per core)",
    )
    simulate.add_argument(
        "--batch",
        type=int,
        default=BATCH,
        help=f"customers per time-skipping server (default {BATCH}: a server slows down "
        "faster than its journeys grow)",
    )
    simulate_output = simulate.add_mutually_exclusive_group()
    simulate_output.add_argument("--json", action="store_true", help="the result as JSON")
    simulate_output.add_argument(
        "--html", type=Path, metavar="FILE", help="also write the result as a page of charts"
    )

    fit = commands.add_parser(
        "fit",
        help="fit the chance-a-customer-is-alive model (BG/NBD) to the purchases, for "
        "EQUATOR_JOURNEY__ALIVE",
    )
    fit.add_argument(
        "--history", type=Path, metavar="CSV", help="a purchase history instead of the store"
    )
    fit.add_argument("--at", type=_moment, help="as of this moment (default: the last purchase)")
    fit.add_argument(
        "--threshold", type=float, default=0.5, help="flatline below this chance alive (0.5)"
    )

    for action, help in OPERATOR_ACTIONS.items():
        steer = commands.add_parser(action, help=help)
        steer.add_argument("customer_id")
        if action == "start-ladder":
            steer.add_argument("cause", choices=list(REMEDIATION.ladders))
        steer.add_argument("--by", default=getpass.getuser(), help="who asks (default: you)")
        steer.add_argument("--reason", default="", help="why, for the timeline")

    temporal = commands.add_parser("temporal", help="prepare a Temporal namespace")
    temporal.add_argument("action", choices=["setup"], help="setup: register search attributes")

    campaigns = commands.add_parser("campaigns", help="the campaign calendar's Schedules")
    campaign_actions = campaigns.add_subparsers(dest="action", required=True)
    campaign_sync = campaign_actions.add_parser(
        "sync", help="make the Schedules match the calendar file"
    )
    campaign_sync.add_argument(
        "--file", type=Path, help="the calendar (default: EQUATOR_CAMPAIGNS__FILE, campaigns.toml)"
    )
    campaign_actions.add_parser("list", help="each campaign's Schedule: next run and note")

    key = commands.add_parser("new-key", help="make an API key for a source, and its hash")
    key.add_argument("source", help="the source's name, e.g. pos or ecommerce")
    key.add_argument(
        "--scope",
        action="append",
        choices=[scope.value for scope in Scope],
        help=f"what the source's keys may do, repeatable (default: {Scope.EVENTS_WRITE})",
    )
    commands.add_parser(
        "new-master-key", help="make a master key for payload encryption, and its settings"
    )
    return parser


def _stop_on(*signals: signal.Signals) -> None:
    """These signals stop the running command cleanly: SIGINT (Ctrl-C), SIGTERM from a
    supervisor (`docker stop`, systemd, `kill`), SIGHUP when the terminal closes. SIGINT
    is handled here rather than left to Python, which leaves it ignored in a process
    started where it was ignored (a script's background job), so Ctrl-C, or a SIGINT to
    the process group, stops the command however it was started."""
    task = asyncio.current_task()
    assert task is not None
    for stop in signals:
        asyncio.get_running_loop().add_signal_handler(stop, task.cancel)


async def _run(settings: Settings, demo: bool) -> None:
    # The dev server, in a session of its own, goes down last.
    _stop_on(signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    settings = with_metrics(with_local_source(settings))
    if demo:
        settings = settings.model_copy(
            update={
                "journey": demo_journey(),
                "campaigns": demo_campaigns(settings.campaigns),
            }
        )
    # With encryption on, the dev server's UI decodes payloads through a codec server.
    codec: contextlib.AbstractAsyncContextManager[str | None] = contextlib.nullcontext()
    if settings.encryption.enabled:
        # The dev server's UI has no login, so no token to pass: on loopback, the embedded
        # codec server asks none (whoever runs the stack holds every key anyway).
        ui_origins = [f"http://{host}:{settings.ui_port}" for host in ("localhost", "127.0.0.1")]
        keys_required = not _loopback(settings.codec_server.host)
        codec = running_codec_server(settings, ui_origins, keys_required)
    async with (
        codec as codec_url,
        dev_server(settings, codec_endpoint=codec_url) as client,
        running_worker(client, settings),
        running_api(settings) as api_url,
    ):
        ui = f"http://localhost:{settings.ui_port}/namespaces/{settings.temporal_namespace}"
        print(f"Temporal UI: {ui}/workflows", flush=True)
        if codec_url:
            print(f"Codec:       {codec_url} (the UI decrypts payloads through it)", flush=True)
        print(f"Ingest API:  {api_url}/docs (key in {local_key_path(settings)})", flush=True)
        print(f"Metrics:     http://{settings.telemetry.metrics_address}/metrics", flush=True)
        print("Ctrl-C stops everything.", flush=True)
        sale = await _run_calendar(client, settings, demo)
        if sale is not None:
            print(
                "Demo: ladders climb within a minute; try "
                "`equator show lapsing-lena` in another terminal. "
                f"The {sale.title} fans out at {sale.starts_at:%H:%M:%S} UTC "
                "(Schedules, then its campaign-… workflow).",
                flush=True,
            )
            async with EquatorClient(api_url, api_key(settings)) as api:
                await run_demo(api)
        else:
            await asyncio.Event().wait()


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name other than localhost
        return False


async def _run_calendar(client: Client, settings: Settings, demo: bool) -> Campaign | None:
    """The embedded stack keeps the checked-in calendar's Schedules (when the file is
    there), plus, with the demo, a Flash Sale about to start; returns that."""
    now = datetime.now(UTC)
    file = settings.campaigns.file
    campaigns = load_calendar(file).campaigns if file.exists() else ()
    sale = flash_sale(now) if demo else None
    calendar = Calendar(campaigns=(*campaigns, *([sale] if sale else [])))
    await sync(client, calendar, settings.task_queue, settings.campaigns.fan_out, now)
    return sale


async def _worker(settings: Settings) -> None:
    # Activities in flight finish (running_worker's grace) before the process exits.
    _stop_on(signal.SIGINT, signal.SIGTERM)
    await run_worker(settings)


async def _api(settings: Settings) -> None:
    _stop_on(signal.SIGINT, signal.SIGTERM)
    if not settings.ingest.sources:
        raise RuntimeError("no sources configured: set EQUATOR_INGEST__SOURCES (see README)")
    async with running_api(settings) as url:
        print(f"Ingest API: {url}/docs", flush=True)
        await asyncio.Event().wait()


async def _codec_server(settings: Settings) -> None:
    _stop_on(signal.SIGINT, signal.SIGTERM)
    if not any(Scope.PAYLOADS_READ in source.granted for source in settings.ingest.sources):
        raise RuntimeError(
            f"no source may read payloads: make a key with `equator new-key ops --scope "
            f"{Scope.PAYLOADS_READ}` and add its entry to EQUATOR_INGEST__SOURCES"
        )
    async with running_codec_server(settings) as url:
        print(f"Codec server: {url} (the Temporal UI's codec endpoint)", flush=True)
        await asyncio.Event().wait()


async def _send(settings: Settings, args: argparse.Namespace) -> int:
    event = event_body(
        args.customer_id, args.type, dict(args.properties), args.event_id, args.at, "cli"
    )
    async with EquatorClient.from_settings(settings) as api:
        accepted = await api.send(event)
    note = " (duplicate: nothing changed)" if accepted.duplicate else ""
    print(f"sent {accepted.event_id} to {accepted.journey_id}{note}")
    return 0


async def _show(settings: Settings, customer_id: str, as_json: bool) -> int:
    async with EquatorClient.from_settings(settings) as api:
        view = await api.journey(customer_id)
    if as_json:
        print(view.model_dump_json(indent=2))
        return 0
    if isinstance(view, PublishedJourney):
        show_published(view, Console())
    else:
        show_journey(view, Console())
    return 0


async def _setup(settings: Settings) -> int:
    client = await connect(settings)
    added = await register_search_attributes(client)
    namespace = settings.temporal_namespace
    print(f"search attributes in {namespace}: " + (", ".join(added) or "all already there"))
    return 0


async def _campaigns_sync(settings: Settings, file: Path | None) -> int:
    try:
        calendar = load_calendar(file or settings.campaigns.file)
    except CalendarError as err:
        print(f"equator: {err}", file=sys.stderr)
        return 2
    client = await connect(settings)
    with progress_of(len(calendar.campaigns), "campaigns synced") as progress:
        report = await sync(
            client,
            calendar,
            settings.task_queue,
            settings.campaigns.fan_out,
            datetime.now(UTC),
            progress,
        )
    for outcome, name in report.outcomes():
        fanned_out = " (running: fanned out now)" if name in report.triggered else ""
        print(f"{outcome:<9} {name}{fanned_out}")
    return 0


async def _report(settings: Settings, args: argparse.Namespace) -> int:
    """Read from the store itself: a report is for whoever can reach the database."""
    store = Store(settings.database_url)
    try:
        with working("reading the engagements and their credit"):
            report = await programme_report(store, args.since)
    finally:
        await store.close()
    if args.json:
        print(report.model_dump_json(indent=2))
    elif args.html:
        await asyncio.to_thread(args.html.write_text, page(report), encoding="utf-8")
        print(f"wrote {args.html}")
    else:
        print(table(report.steps) if report.steps else "no engagements yet")
        if report.offers:
            print(f"\nOffers that learn:\n{offer_table(report.offers)}")
    return 0


async def _feed(settings: Settings, args: argparse.Namespace) -> int:
    """Ops' word on the feed, in the store that journeys ask before a flatline."""
    store = Store(settings.database_url)
    try:
        await store.migrate()
        if args.action == "outage":
            if args.ended_at is not None and args.ended_at <= args.started_at:
                raise FeedError("--to must come after --from")
            await Feed(store, "ops").began(args.started_at, args.cause, args.ended_at)
            print(f"recorded: {outage_line(args.started_at, args.ended_at, args.cause)}")
            return 0
        since = args.since or datetime.min.replace(tzinfo=UTC)
        found = await outages_since(store, since)
    finally:
        await store.close()
    for outage in reversed(found):
        print(outage_line(outage.started_at, outage.ended_at, outage.cause))
    if not found:
        print("no outages known")
    return 0


def outage_line(started_at: datetime, ended_at: datetime | None, cause: str) -> str:
    end = f"{ended_at:%Y-%m-%dT%H:%M:%SZ}" if ended_at else "not over"
    return f"{started_at:%Y-%m-%dT%H:%M:%SZ} to {end}  {cause}"


class FeedError(ValueError):
    pass


async def _audit(settings: Settings, args: argparse.Namespace) -> int:
    """Read from the store itself, like the report."""
    store = Store(settings.database_url)
    try:
        entries = await audit_trail(store, args.customer, args.since)
    finally:
        await store.close()
    for entry in entries:
        if args.json:
            print(entry.model_dump_json(exclude={"id", "entry_key"}))
        else:
            print(
                f"{entry.at:%Y-%m-%dT%H:%M:%SZ}  {entry.action:<22} {entry.outcome:<9} "
                f"{entry.actor} via {entry.via}  {entry.request_id}  {entry.detail}"
            )
    if not entries and not args.json:
        print("nothing audited" + (" for that customer" if args.customer else ""))
    return 0


async def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    """The journeys as configured (``EQUATOR_JOURNEY__*``), on a store of their own."""
    # A line per engagement would be thousands of lines, and time: warnings only.
    configure_logging(logging.WARNING)
    if args.customers is not None and args.customers < 1:
        raise PersonaError("--customers must be at least 1")
    if args.processes < 1:
        raise PersonaError("--processes must be at least 1")
    if args.batch < 1:
        raise PersonaError("--batch must be at least 1")
    personas = load_personas(args.personas).scaled(args.customers)
    if args.write_history:
        rows = write_history(args.write_history, PersonaPopulation(personas), args.days, args.seed)
        print(f"wrote {rows} purchases to {args.write_history}")
        return 0
    run = _simulation(args, personas)
    if args.sweep:
        name, values = parse_sweep(args.sweep)
        configs = [with_setting(settings.journey, name, value) for value in values]
        swept = [row(name, v, *await run(c)) for v, c in zip(values, configs, strict=True)]
        if args.json:
            print(json.dumps([r.model_dump(mode="json") for r in swept], indent=2))
        else:
            print(sweep_table(swept))
        return 0
    result, check = await run(settings.journey)
    if args.json:
        extra = {"silence": check.model_dump(mode="json")} if check else {}
        print(json.dumps({**result.model_dump(mode="json"), **extra}, indent=2))
        return 0
    print(summary(result, table(result.report.steps)))
    if result.report.offers:
        print(f"\nOffers that learn:\n{offer_table(result.report.offers)}")
    if check:
        print(f"\n{silence_summary(check)}")
    if args.html:
        page = simulation_page(result, check)
        await asyncio.to_thread(args.html.write_text, page, encoding="utf-8")
        print(f"wrote {args.html}")
    return 0


def _simulation(
    args: argparse.Namespace, personas: Personas
) -> Callable[[JourneyConfig], Awaitable[tuple[SimulationResult, SilenceCheck | None]]]:
    """How one run goes for these arguments, given the journeys' configuration: the
    personas, or the history up to the cut with its silence check."""
    population: Population = PersonaPopulation(personas)
    days: float = args.days
    silence: Callable[[JourneyConfig], Callable[[Store], Awaitable[SilenceCheck]]] | None = None
    if args.history:
        if args.cut is None:
            raise HistoryError("--history needs --cut (where the journeys stop)")
        purchases = load_history(args.history)
        history = HistoryPopulation(purchases, args.cut)
        horizon = timedelta(days=args.horizon)
        population, days = history, history.cut_day

        def silence(config: JourneyConfig) -> Callable[[Store], Awaitable[SilenceCheck]]:
            async def checked(store: Store) -> SilenceCheck:
                return await check_silence(store, purchases, history, horizon, config)

            return checked

    async def run(config: JourneyConfig) -> tuple[SimulationResult, SilenceCheck | None]:
        with progress_of(days, "simulated days") as progress:
            return await simulate(
                population,
                days,
                args.seed,
                config,
                check=silence(config) if silence else None,
                processes=args.processes,
                batch=args.batch,
                progress=progress,
            )

    return run


async def _fit(settings: Settings, args: argparse.Namespace) -> int:
    """From a history file, or the store's ledger (whoever can reach the database)."""
    if not 0 < args.threshold < 1:
        raise FitError("--threshold is a chance, between 0 and 1")
    if args.history:
        purchases = [(p.customer_id, p.occurred_at) for p in load_history(args.history)]
    else:
        store = Store(settings.database_url)
        try:
            purchases = await ledger_purchases(store)
        finally:
            await store.close()
    if not purchases:
        raise FitError("no purchases to fit")
    at = args.at or max(at for _, at in purchases)
    customers = summaries(purchases, at)
    model = await asyncio.to_thread(fit_model, customers, args.threshold)
    repeating = sum(1 for c in customers if c.repeats)
    print(
        f"fitted to {len(customers)} customers ({repeating} with a repeat purchase) as of "
        f"{at:%Y-%m-%d}: r {model.r:.4g}, alpha {model.alpha:.4g} days, a {model.a:.4g}, "
        f"b {model.b:.4g}\n"
    )
    print(f"EQUATOR_JOURNEY__ALIVE='{model.model_dump_json()}'")
    return 0


def _moment(text: str) -> datetime:
    try:
        return parse_since(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r}: {err}") from None


async def _campaigns_list(settings: Settings) -> int:
    client = await connect(settings)
    for schedule in await campaign_schedules(client):
        next_run = f"{schedule.next_run:%Y-%m-%dT%H:%M:%SZ}" if schedule.next_run else "done"
        print(f"{schedule.name:<24} {next_run:<20} {schedule.note or ''}")
    return 0


async def _operate(
    client: Client,
    command: str,
    customer_id: str,
    asked: OperatorRequest,
    args: argparse.Namespace,
) -> JourneyView:
    """The update each operator command runs, by method, so the type checker sees it."""
    match command:
        case "pause":
            return await steer(client, customer_id, CustomerJourney.pause, asked)
        case "resume":
            return await steer(client, customer_id, CustomerJourney.resume, asked)
        case "skip-step":
            return await steer(client, customer_id, CustomerJourney.skip_step, asked)
        case "end-ladder":
            return await steer(client, customer_id, CustomerJourney.end_ladder, asked)
        case "start-ladder":
            start = StartLadderRequest(cause=args.cause, **asked.model_dump())
            return await steer(client, customer_id, CustomerJourney.start_ladder, start)
    raise ValueError(f"not an operator action: {command}")


async def _steer(settings: Settings, args: argparse.Namespace) -> int:
    asked = OperatorRequest(by=args.by, reason=args.reason)
    client = await connect(settings)
    try:
        view = await _operate(client, args.command, args.customer_id, asked, args)
    except WorkflowUpdateFailedError as err:
        reason = err.cause.message if isinstance(err.cause, ApplicationError) else err
        print(f"equator: refused: {reason}", file=sys.stderr)
        return 1
    except RPCError as err:
        print(f"equator: no journey for {args.customer_id}: {err.message}", file=sys.stderr)
        return 1
    show_details(view, Console())
    return 0


def _new_key(source: str, scopes: Sequence[str]) -> int:
    key = new_key()
    entry = {
        "name": source,
        "key_hashes": [hash_key(key)],
        "scopes": [scope.value for scope in Scope if scope in scopes],
    }
    print(f"API key for {source} (give it to the source; it is not stored): {key}")
    print(f"its entry in EQUATOR_INGEST__SOURCES: {json.dumps(entry)}")
    return 0


def _new_master_key() -> int:
    key_id = datetime.now(UTC).strftime("%Y-%m-%d")
    key = base64.b64encode(new_master_key()).decode()
    print(f"master key {key_id} (keep it in your secret store; it is not stored): {key}")
    print(f"EQUATOR_ENCRYPTION__MASTER_KEYS='{json.dumps({key_id: key})}'")
    print(f"EQUATOR_ENCRYPTION__ACTIVE_MASTER_KEY={key_id}")
    print(
        "rotating: add it beside the master keys you have (they still unwrap the data keys "
        "they wrapped) and make it the active one",
        file=sys.stderr,
    )
    return 0


def _explain(err: ApiError) -> int:
    """Print a refusal with every field at fault; 2 for bad input, 1 for the rest."""
    print(f"equator: {err}", file=sys.stderr)
    for field in err.problem.errors:
        print(f"  {field.field}: {field.reason}", file=sys.stderr)
    return 2 if err.problem.status in (400, 413, 422) else 1


def _command(args: argparse.Namespace, settings: Settings) -> int:
    try:
        match args.command:
            case "run":
                asyncio.run(_run(settings, demo=not args.no_demo))
            case "worker":
                asyncio.run(_worker(settings))
            case "api":
                asyncio.run(_api(settings))
            case "codec-server":
                asyncio.run(_codec_server(settings))
            case "send":
                return asyncio.run(_send(settings, args))
            case "show":
                return asyncio.run(_show(settings, args.customer_id, args.json))
            case "report":
                return asyncio.run(_report(settings, args))
            case "audit":
                return asyncio.run(_audit(settings, args))
            case "feed":
                return asyncio.run(_feed(settings, args))
            case "simulate":
                return asyncio.run(_simulate(settings, args))
            case "fit":
                return asyncio.run(_fit(settings, args))
            case "new-key":
                return _new_key(args.source, args.scope or [Scope.EVENTS_WRITE])
            case "new-master-key":
                return _new_master_key()
            case "temporal":
                return asyncio.run(_setup(settings))
            case "campaigns" if args.action == "sync":
                return asyncio.run(_campaigns_sync(settings, args.file))
            case "campaigns":
                return asyncio.run(_campaigns_list(settings))
            case command if command.replace("-", "_") in OPERATOR_ACTIONS:
                return asyncio.run(_steer(settings, args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("stopped", file=sys.stderr)
    except ApiError as err:
        return _explain(err)
    except httpx.TransportError as err:
        print(f"equator: cannot reach the ingest API at {settings.api_url} ({err}); "
              "is `equator run` or `equator api` running?", file=sys.stderr)  # fmt: skip
        return 1
    except (
        DevServerError,
        PersonaError,
        HistoryError,
        FitError,
        FeedError,
        SweepError,
        RuntimeError,
        OSError,
    ) as err:
        print(f"equator: {err}", file=sys.stderr)
        return 1
    return 0


# Commands that hold a Temporal client (operator actions talk to Temporal directly).
_SERVICES = {
    "run",
    "worker",
    "api",
    "temporal",
    "campaigns",
    *(action.replace("_", "-") for action in OPERATOR_ACTIONS),
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as err:
        # Named as the operator set it: EQUATOR_INGEST__PORT, not ingest.port.
        for error in err.errors():
            name = "__".join(str(part) for part in error["loc"]).upper()
            print(f"equator: EQUATOR_{name}: {error['msg']}", file=sys.stderr)
        return 2
    configure_logging()
    configure_tracing(settings.telemetry)
    if args.command in (*_SERVICES, "codec-server"):  # the commands that send or read payloads
        settings = with_local_master_key(settings, create=args.command == "run")
    code = _command(args, settings)
    if args.command in _SERVICES:
        # Exit without interpreter teardown: the SDK's Rust threads can abort a
        # finalizing interpreter (sdk-python issue #300), turning a clean stop into
        # "Fatal Python error" and exit code 134.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
