"""The CLI's output: styled with a table on a terminal, plain when piped, times in the
reader's zone to the second."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from rich.console import Console

from starter.terminal import local, show_journey
from testkit.moments import CONFIG, EVERY, T0, apply, begun, ev
from workflows import engine
from workflows.programme import Journey
from workflows.state import JourneyView

AT = T0 + timedelta(hours=10, minutes=7, seconds=32)


def a_view() -> JourneyView:
    state = begun(T0)
    apply(state, ev("purchase", AT, "p1", amount=42.5, category="shoes"), AT)
    return engine.view(Journey(state, CONFIG, AT), EVERY, 0)


def printed(terminal: bool) -> str:
    out = io.StringIO()
    console = Console(file=out, force_terminal=terminal, width=140, color_system="truecolor")
    show_journey(a_view(), console)
    return out.getvalue()


def test_piped_the_journey_is_plain_text_that_greps() -> None:
    text = printed(terminal=False)
    assert "\x1b[" not in text
    assert "**" not in text
    assert "c is above the line" in text
    assert "recent timeline:" in text
    assert f"  {local(AT)}  event" in text
    assert "purchase: amount 42.5, category shoes" in text
    # What the journey waits for, to the second (the purchase came at 10:07:32).
    assert "flatline if still silent at 2026-01-31 10:07:32 UTC" in text


def test_on_a_terminal_the_journey_is_styled_with_a_timeline_table() -> None:
    text = printed(terminal=True)
    assert "\x1b[1m" in text  # bold, where the markdown said **
    assert "**" not in text
    assert "recent timeline" in text
    assert "│" in text or "┃" in text  # the table's columns
    assert local(AT) in text


def test_times_are_the_readers_to_the_second() -> None:
    moment = datetime(2026, 11, 24, 10, 7, 32, tzinfo=UTC)
    assert local(moment).startswith(f"{moment.astimezone():%Y-%m-%d %H:%M:%S}")
    assert ":32" in local(moment)
