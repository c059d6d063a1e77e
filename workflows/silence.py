"""Silence measured against the customer's own cadence: the flatline's maths."""

from __future__ import annotations

import itertools
import statistics
from datetime import datetime, timedelta

from workflows.config import JourneyConfig
from workflows.contracts import FeedOutage


def median_gap(purchase_times: list[datetime]) -> timedelta | None:
    """The customer's typical time between purchases; None until there are two."""
    gaps = [b - a for a, b in itertools.pairwise(purchase_times)]
    if not gaps:
        return None
    return timedelta(seconds=statistics.median(gap.total_seconds() for gap in gaps))


def silence_window(purchase_times: list[datetime], config: JourneyConfig) -> timedelta:
    """How long a silence must last to be a flatline: k times the customer's own
    cadence (a weekly buyer is silent far sooner than a twice-a-year one), in bounds."""
    gap = median_gap(purchase_times)
    if gap is None:
        return config.silence_default
    window = gap * config.silence_multiplier
    return min(max(window, config.silence_min), config.silence_max)


def feed_out(outages: list[FeedOutage], since: datetime, now: datetime) -> timedelta:
    """How much of the silence from ``since`` to ``now`` the feed was known to be out
    (overlapping outages counted once; one not over yet runs to ``now``): time in which
    the customer's events could not have arrived, so no evidence of silence."""
    spans = sorted(
        (max(o.started_at, since), min(o.ended_at or now, now))
        for o in outages
        if o.started_at < now and (o.ended_at is None or o.ended_at > since)
    )
    out = timedelta(0)
    reached = since
    for start, end in spans:
        start = max(start, reached)
        if end > start:
            out += end - start
            reached = end
    return out
