"""The CLI's output as a person reads it: on a terminal, styled text and tables (rich),
times in the reader's own zone to the second; piped, the same as plain text that greps
and diffs well."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from rich.console import Console
from rich.markdown import Markdown
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from service.api_models import PublishedJourney
from workflows.details import current_details
from workflows.state import JourneyView

# The timeline entries `equator show` prints.
RECENT = 10


def local(at: datetime) -> str:
    """A moment in the reader's zone, to the second."""
    return f"{at.astimezone():%Y-%m-%d %H:%M:%S %Z}"


def show_details(view: JourneyView, out: Console) -> None:
    """Where the customer stands and why (the UI's current details)."""
    details = current_details(view)
    if out.is_terminal:
        out.print(Markdown(details))
    else:
        out.print(details.replace("**", ""), markup=False, highlight=False, soft_wrap=True)


def show_journey(view: JourneyView, out: Console) -> None:
    """Where the customer stands and why, then the recent timeline."""
    show_details(view, out)
    entries = view.state.timeline[-RECENT:]
    if not out.is_terminal:
        out.print("\nrecent timeline:", markup=False, highlight=False)
        for entry in entries:
            line = f"  {local(entry.at)}  {entry.kind:<20} {entry.summary}"
            out.print(line, markup=False, highlight=False, soft_wrap=True)
        return
    out.print()
    table = Table(title="recent timeline", title_justify="left", expand=True)
    table.add_column("when", no_wrap=True, style="dim")
    table.add_column("what", no_wrap=True, style="bold")
    table.add_column("programme", no_wrap=True)
    table.add_column("")
    for entry in entries:
        table.add_row(local(entry.at), entry.kind, entry.programme or "", entry.summary)
    out.print(table)


def show_published(view: PublishedJourney, out: Console) -> None:
    """The journey as last published, when it did not answer itself: say so first."""
    lines = [f"{view.customer_id}: the journey did not answer in time; as last published"]
    if view.waiting_since:
        lines.append(f"  work waiting since {local(view.waiting_since)} (not reflected)")
    if view.status:
        lines.append(f"  journey: {view.status}")
    if view.standing:
        standing = view.standing
        ladder = f"{standing.ladder}, step {standing.ladder_step}" if standing.ladder else None
        lines += [
            f"  line position: {standing.line_position or 'unknown'}",
            f"  tier: {standing.tier or 'none'}",
            f"  ladder: {ladder if ladder and standing.ladder != 'none' else 'none'}",
        ]
    if view.customer:
        customer = view.customer
        lines += [
            f"  orders: {customer.order_count}, lifetime value {customer.lifetime_value}",
            f"  customer view written {local(customer.updated_at)}",
        ]
    for line in lines:
        out.print(line, markup=False, highlight=False, soft_wrap=True)


@contextmanager
def progress_of(total: float, what: str) -> Iterator[Callable[[float], None] | None]:
    """A bar of ``what`` (simulated days, campaigns synced) on the terminal's stderr
    while a long command runs, gone when it ends; the callable says how far it is. None
    when stderr is not a terminal (a log, a pipe: nothing to redraw)."""
    err = Console(stderr=True)
    if not err.is_terminal:
        yield None
        return
    columns = (
        TextColumn(what),
        BarColumn(),
        TextColumn("{task.completed:.0f} of {task.total:.0f}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(what, total=total)

        def reached(done: float) -> None:
            bar.update(task, completed=min(done, total))

        yield reached


@contextmanager
def working(what: str) -> Iterator[None]:
    """A spinner saying ``what`` on the terminal's stderr, for work with no count to
    show (a report's queries); nothing when stderr is not a terminal."""
    err = Console(stderr=True)
    if not err.is_terminal:
        yield
        return
    with err.status(what):
        yield
