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


@contextmanager
def progress_of(days: float) -> Iterator[Callable[[float], None] | None]:
    """A bar of simulated days on the terminal's stderr while a simulation runs, gone
    when it ends; None when stderr is not a terminal (a log, a pipe: nothing to redraw)."""
    err = Console(stderr=True)
    if not err.is_terminal:
        yield None
        return
    columns = (
        TextColumn("simulated days"),
        BarColumn(),
        TextColumn("{task.completed:.0f} of {task.total:.0f}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("simulate", total=days)

        def reached(day: float) -> None:
            bar.update(task, completed=min(day, days))

        yield reached
