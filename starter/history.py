"""A real purchase history as a simulation's population, cut at a date: the journeys see
the history up to the cut, and what the customers really did after it is the truth
their silence detection is checked against.

The CSV has a header and the columns ``customer_id, occurred_at, amount[, category]``
(``occurred_at`` with a UTC offset). Its time axis is moved onto the simulation's
(``EPOCH`` is the midnight that begins the history's first day), so a history of any
year replays alike.

At the cut a customer is **flagged silent** when their journey has flatlined since
their last purchase (a silence ladder started, or they are dormant after one); the
truth is whether they bought within the following ``horizon``. Beside precision and
recall, the check gives the share of flagged customers who came back anyway (and what
was spent on them), and the ROC curve of the silence score at the cut (time since the
last purchase over the customer's silence window: the journey flatlines at 1).
"""

from __future__ import annotations

import csv
import itertools
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from pydantic import AwareDatetime, BaseModel, ValidationError
from sqlmodel import col, select

from activities.store import Engagement, Store
from starter.population import EPOCH, Act, Population
from workflows.alive import p_alive
from workflows.config import JourneyConfig
from workflows.events import Identifier, Label, Money
from workflows.profile import CADENCE_PURCHASES
from workflows.silence import silence_window

DAY = timedelta(days=1)


class HistoryError(Exception):
    """A history file that cannot be read or has a bad row: the message says which."""


class Purchase(BaseModel):
    customer_id: Identifier
    occurred_at: AwareDatetime
    amount: Money
    category: Label | None = None


def load_history(path: Path) -> list[Purchase]:
    """Every purchase in the file, oldest first."""
    try:
        with path.open(newline="", encoding="utf-8") as file:
            rows = list(csv.DictReader(file))
    except FileNotFoundError:
        raise HistoryError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise HistoryError(f"{path}: cannot be read: {err}") from None
    purchases = []
    for line, row in enumerate(rows, start=2):
        try:
            purchases.append(Purchase.model_validate({k: v for k, v in row.items() if v}))
        except ValidationError as err:
            faults = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                for e in err.errors(include_url=False)
            )
            raise HistoryError(f"{path}, line {line}: {faults}") from None
    if not purchases:
        raise HistoryError(f"{path}: no purchases")
    return sorted(purchases, key=lambda p: p.occurred_at)


class HistoryPopulation:
    """The history up to ``cut`` as a population: each purchase at its own time, moved
    onto the simulation's axis; nobody answers anything (there is no response model)."""

    def __init__(self, purchases: list[Purchase], cut: datetime) -> None:
        first = purchases[0].occurred_at
        self.origin = first.replace(hour=0, minute=0, second=0, microsecond=0)
        self.before = [p for p in purchases if p.occurred_at <= cut]
        self.cut_day = (cut - self.origin) / DAY
        if not self.before:
            raise HistoryError(f"no purchase before the cut ({cut:%Y-%m-%d})")

    def groups(self) -> dict[str, int]:
        return {"history": len({p.customer_id for p in self.before})}

    def lives(self, days: float, seed: int) -> Iterator[Act]:
        for n, purchase in enumerate(self.before):
            props = {"amount": str(purchase.amount)}
            if purchase.category:
                props["category"] = purchase.category
            day = (purchase.occurred_at - self.origin) / DAY
            yield Act(day, purchase.customer_id, "purchase", f"history-{n}", props)

    def answer(self, engagement: Engagement, day: float, seed: int) -> Iterator[Act]:
        return iter(())


class RocPoint(BaseModel):
    # Flag when the silence score is at least this.
    threshold: float
    false_positive_rate: float
    true_positive_rate: float


class SilenceCheck(BaseModel):
    """How silence detection did at the cut against what customers did after it."""

    cut: datetime
    horizon_days: float
    customers: int
    # Made no purchase within the horizon after the cut.
    truly_silent: int
    flagged: int
    flagged_truly_silent: int
    precision: float | None
    recall: float | None
    # Flagged, but bought within the horizon: the ladders spent on them were wasted.
    came_back_anyway: int
    wasted_spend: Decimal
    silence_spend: Decimal
    # The silence score's ROC curve at the cut, and the area under it.
    roc: list[RocPoint]
    auc: float | None


async def check_silence(
    store: Store,
    purchases: list[Purchase],
    population: HistoryPopulation,
    horizon: timedelta,
    config: JourneyConfig,
) -> SilenceCheck:
    """Flagged at the cut (by the journeys, from the store) against the truth after it."""
    cut = population.origin + population.cut_day * DAY
    history: dict[str, list[datetime]] = defaultdict(list)
    came_back: set[str] = set()
    for p in purchases:
        if p.occurred_at <= cut:
            history[p.customer_id].append(p.occurred_at)
        elif p.occurred_at <= cut + horizon:
            came_back.add(p.customer_id)
    # The journeys' clock runs from EPOCH; the history's from its origin.
    shift = EPOCH - population.origin
    async with store.reading() as session:
        rows = await session.exec(
            select(Engagement).where(
                col(Engagement.cause) == "silence", col(Engagement.sent_at) <= cut + shift
            )
        )
        silence = list(rows.all())
    flagged: set[str] = set()
    spent: dict[str, Decimal] = defaultdict(Decimal)
    for engagement in silence:
        spent[engagement.customer_id] += engagement.cost
        if engagement.sent_at - shift > max(history.get(engagement.customer_id, [cut])):
            flagged.add(engagement.customer_id)
    silent = set(history) - came_back
    hits = flagged & silent
    back_anyway = flagged & came_back
    scores = {c: silence_score(times, cut, config) for c, times in history.items()}
    curve, auc = roc(scores, silent)
    return SilenceCheck(
        cut=cut,
        horizon_days=horizon / DAY,
        customers=len(history),
        truly_silent=len(silent),
        flagged=len(flagged),
        flagged_truly_silent=len(hits),
        precision=len(hits) / len(flagged) if flagged else None,
        recall=len(hits) / len(silent) if silent else None,
        came_back_anyway=len(back_anyway),
        wasted_spend=sum((spent[c] for c in back_anyway), Decimal(0)),
        silence_spend=sum(spent.values(), Decimal(0)),
        roc=curve,
        auc=auc,
    )


def silence_score(purchase_times: list[datetime], at: datetime, config: JourneyConfig) -> float:
    """How silent the customer is at ``at`` by the journey's rule, scaled so that the
    journey flatlines at 1: time since the last purchase over the silence window; with
    the BG/NBD model, the chance of having dropped out over one minus the threshold (a
    customer with no repeat purchase keeps the cadence rule, as the journey does)."""
    times = sorted(purchase_times)
    repeats = len(times) - 1  # as the journey counts orders
    model = config.alive
    if model is not None and repeats > 0:
        recency, age = (times[-1] - times[0]) / DAY, (at - times[0]) / DAY
        return (1 - p_alive(model, repeats, recency, age)) / (1 - model.threshold)
    kept = times[-CADENCE_PURCHASES:]  # as the profile keeps them
    return (at - kept[-1]) / silence_window(kept, config)


def roc(scores: dict[str, float], positive: set[str]) -> tuple[list[RocPoint], float | None]:
    """The curve over every threshold the scores give, and its area (trapezoids)."""
    positives = sum(1 for c in scores if c in positive)
    negatives = len(scores) - positives
    if not positives or not negatives:
        return [], None
    ranked = sorted(scores.items(), key=lambda item: -item[1])
    points = [RocPoint(threshold=float("inf"), false_positive_rate=0, true_positive_rate=0)]
    tp = fp = 0
    for n, (customer, score) in enumerate(ranked):
        if customer in positive:
            tp += 1
        else:
            fp += 1
        if n + 1 == len(ranked) or ranked[n + 1][1] != score:
            points.append(
                RocPoint(
                    threshold=score,
                    false_positive_rate=fp / negatives,
                    true_positive_rate=tp / positives,
                )
            )
    auc = sum(
        (b.false_positive_rate - a.false_positive_rate)
        * (a.true_positive_rate + b.true_positive_rate)
        / 2
        for a, b in itertools.pairwise(points)
    )
    return points, auc


# Where a history written from personas begins.
WRITTEN_FROM = datetime(2025, 1, 1, tzinfo=UTC)


def write_history(path: Path, population: Population, days: float, seed: int) -> int:
    """The population's own purchases over ``days`` (from ``WRITTEN_FROM``) as a history
    file: a synthetic history whose truth is known. Returns the rows written."""
    purchases = sorted(
        (act for act in population.lives(days, seed) if act.type == "purchase"),
        key=lambda act: (act.day, act.customer_id),
    )
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["customer_id", "occurred_at", "amount", "category"])
        for act in purchases:
            at = WRITTEN_FROM + act.day * DAY
            props = act.properties
            writer.writerow(
                [act.customer_id, at.isoformat(), props["amount"], props.get("category", "")]
            )
    return len(purchases)


def silence_summary(check: SilenceCheck) -> str:
    """The check for a terminal."""

    def share(value: float | None) -> str:
        return "—" if value is None else f"{value:.1%}"

    return "\n".join(
        [
            f"Silence detection at the cut ({check.cut:%Y-%m-%d}), against purchases in the "
            f"{check.horizon_days:g} days after it:",
            f"- customers: {check.customers}; made no purchase after the cut: "
            f"{check.truly_silent}; flagged silent by the journeys: {check.flagged}",
            f"- precision {share(check.precision)} (flagged and truly silent: "
            f"{check.flagged_truly_silent}), recall {share(check.recall)}",
            f"- flagged but came back anyway: {check.came_back_anyway} "
            f"(${check.wasted_spend:,.2f} of ${check.silence_spend:,.2f} spent on silence)",
            f"- silence score ROC AUC: "
            f"{'—' if check.auc is None else f'{check.auc:.3f}'} (0.5: no better than chance)",
        ]
    )
