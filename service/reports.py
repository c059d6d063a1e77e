"""The programme report: per ladder (or programme) and step, what engagement reached,
what it cost, and what it achieved over the control group. Computed in SQL over the
store (the same query on SQLite and Postgres), then compared in ``service.uplift``.
``equator report`` prints it, the API serves it (``GET /v1/reports/programmes``), and
``service.report_chart`` draws it.

Per step, a customer counts once in their group (treated: sent; control: a ghost):
- responded: an outcome of ``responded`` or ``converted`` filed for the engagement;
- recovered: a purchase credited to it (``engagement_credit``);
- revenue: the amounts credited to it; cost: what was spent (ghosts cost nothing).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel
from sqlalchemy import BigInteger, Integer, Select, and_, case, func, literal, select, type_coerce
from sqlmodel import col

from activities.erasure import ERASED
from activities.store import Engagement, EngagementCredit, Store
from service.offer_report import OfferArmReport, offer_report
from service.uplift import MINIMUM_PER_GROUP, Estimate, mean_difference, rate_difference

RESPONSES = ("responded", "converted")


class Group(BaseModel):
    customers: int = 0
    responded: int = 0
    recovered: int = 0
    revenue: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)
    # Sum over customers of their revenue squared: its spread per customer.
    revenue_squares: float = 0.0


class Interval(BaseModel):
    value: float
    low: float
    high: float

    @classmethod
    def of(cls, estimate: Estimate) -> Interval:
        return cls(value=estimate.value, low=estimate.low, high=estimate.high)


class StepReport(BaseModel):
    cause: str
    step: int
    step_name: str
    treated: Group
    control: Group
    # None when a customer was recovered at no cost or none were.
    cost_per_recovered: Decimal | None
    # Treated minus control, 95% intervals; None: "not enough data" (fewer than
    # ``MINIMUM_PER_GROUP`` customers in either group).
    incremental_recovery_rate: Interval | None
    incremental_revenue_per_customer: Interval | None


class ProgrammeReport(BaseModel):
    generated_at: datetime
    # Engagements sent from this moment on; None: all of them.
    since: datetime | None
    # Every ladder's (or programme's) steps, in order.
    steps: list[StepReport]
    # What the offers that learn made at each decision, and what each recovered.
    offers: list[OfferArmReport] = []


async def programme_report(store: Store, since: datetime | None = None) -> ProgrammeReport:
    steps = assemble(await _groups(store, since))
    offers = await offer_report(store, since)
    return ProgrammeReport(generated_at=datetime.now(UTC), since=since, steps=steps, offers=offers)


# What ``since`` accepts: a date, or a date and time (RFC 3339 when it has an offset).
# Unix seconds and ISO 8601's rarer forms are refused rather than guessed at.
MOMENT_PATTERN = r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?)?"


def parse_since(text: str) -> datetime:
    """A ``since`` as UTC; a date is its midnight, and a time without an offset is UTC."""
    if not re.fullmatch(MOMENT_PATTERN, text):
        raise ValueError("expected a date or a date and time, e.g. 2026-11-01T09:00:00+01:00")
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range once converted to UTC") from None


async def _groups(store: Store, since: datetime | None) -> dict[tuple[str, int, str, bool], Group]:
    async with store.reading() as session:
        connection = await session.connection()
        rows = (await connection.execute(groups_query(since))).all()
    # A step is known by its name: a run that begins with a care ticket numbers the
    # ladder's own steps one later. It is placed where the ladder first has it.
    place: dict[tuple[str, str], int] = {}
    for cause, step, name, *_ in rows:
        place[cause, name] = min(step, place.get((cause, name), step))
    return {
        (cause, place[cause, name], name, bool(held_back)): Group(
            customers=customers,
            responded=int(answered or 0),
            recovered=int(back or 0),
            revenue=Decimal(int(total or 0)) / 100,
            revenue_squares=float(squares or 0) / 100**2,
            cost=Decimal(int(spent or 0)) / 100,
        )
        for cause, step, name, held_back, customers, answered, back, total, squares, spent in rows
    }


def groups_query(since: datetime | None) -> Select[Any]:
    """Per ladder, step (by name) and group: customers, responded, recovered, revenue
    (and its squares) and cost; each customer counted once per step and group."""
    # A credit comes after its engagement: since ``since``, only newer credits count.
    credits_since = [] if since is None else [col(EngagementCredit.at) >= since]
    credited = (
        select(
            col(EngagementCredit.idempotency_key),
            func.sum(type_coerce(EngagementCredit.amount, BigInteger)).label("cents"),
        )
        .where(*credits_since)
        .group_by(col(EngagementCredit.idempotency_key))
        .subquery()
    )
    responded = case((col(Engagement.outcome).in_(RESPONSES), 1), else_=0)
    recovered = case((credited.c.cents.is_not(None), 1), else_=0)
    cents = func.coalesce(credited.c.cents, 0)
    conditions = [col(Engagement.customer_id) != ERASED]
    if since is not None:
        conditions.append(col(Engagement.sent_at) >= since)
    # One row per customer, step and group first: a customer counts once in each.
    per_customer = (
        select(
            col(Engagement.cause).label("cause"),
            func.min(Engagement.step).label("step"),
            col(Engagement.step_name).label("step_name"),
            type_coerce(col(Engagement.held_back), Integer).label("held_back"),
            func.max(responded).label("responded"),
            func.max(recovered).label("recovered"),
            func.sum(cents).label("cents"),
            func.sum(type_coerce(Engagement.cost, BigInteger)).label("cost"),
        )
        .select_from(Engagement)
        .outerjoin(credited, credited.c.idempotency_key == Engagement.idempotency_key)
        .where(and_(*conditions))
        .group_by(
            col(Engagement.cause),
            col(Engagement.step_name),
            col(Engagement.held_back),
            col(Engagement.customer_id),
        )
        .subquery()
    )
    c = per_customer.c
    return select(
        c.cause,
        func.min(c.step),
        c.step_name,
        c.held_back,
        func.count(literal(1)),
        func.sum(c.responded),
        func.sum(c.recovered),
        func.sum(c.cents),
        func.sum(c.cents * c.cents),
        func.sum(c.cost),
    ).group_by(c.cause, c.step_name, c.held_back)


def assemble(groups: dict[tuple[str, int, str, bool], Group]) -> list[StepReport]:
    """Treated and control of each step side by side, with what one gained over the other."""
    steps = sorted({(cause, step, name) for cause, step, name, _ in groups})
    reports = []
    for cause, step, name in steps:
        treated = groups.get((cause, step, name, False), Group())
        control = groups.get((cause, step, name, True), Group())
        reports.append(
            StepReport(
                cause=cause,
                step=step,
                step_name=name,
                treated=treated,
                control=control,
                cost_per_recovered=(
                    treated.cost / treated.recovered if treated.recovered else None
                ),
                **_uplift(treated, control),
            )
        )
    return reports


def _uplift(treated: Group, control: Group) -> dict[str, Interval | None]:
    if min(treated.customers, control.customers) < MINIMUM_PER_GROUP:
        return {"incremental_recovery_rate": None, "incremental_revenue_per_customer": None}
    rate = rate_difference(
        treated.recovered, treated.customers, control.recovered, control.customers
    )
    revenue = mean_difference(
        float(treated.revenue),
        treated.revenue_squares,
        treated.customers,
        float(control.revenue),
        control.revenue_squares,
        control.customers,
    )
    return {
        "incremental_recovery_rate": Interval.of(rate),
        "incremental_revenue_per_customer": Interval.of(revenue),
    }


COLUMNS = (
    "ladder / programme",
    "step",
    "reached",
    "held back",
    "responded",
    "recovered",
    "revenue",
    "cost",
    "cost per recovered",
    "incremental recovery",
    "incremental revenue per customer",
)
FOOTNOTE = (
    f"Intervals are 95%; below {MINIMUM_PER_GROUP} customers in either group, not enough data."
)


def cells(r: StepReport) -> tuple[str, ...]:
    """One step's figures as printed, under ``COLUMNS``: the terminal and the page agree."""
    t, c = r.treated, r.control
    per = f"${r.cost_per_recovered:,.2f}" if r.cost_per_recovered is not None else "—"
    return (
        r.cause,
        f"{r.step} {r.step_name}",
        str(t.customers),
        str(c.customers),
        str(t.responded),
        f"{t.recovered} vs {c.recovered}",
        f"${t.revenue:,.2f}",
        f"${t.cost:,.2f}",
        per,
        _percent(r.incremental_recovery_rate),
        _money(r.incremental_revenue_per_customer),
    )


def table(reports: Sequence[StepReport]) -> str:
    """The report for a terminal: a row per step."""
    lines = [
        "| " + " | ".join(COLUMNS) + " |",
        "| " + " | ".join("---" for _ in COLUMNS) + " |",
        *("| " + " | ".join(cells(r)) + " |" for r in reports),
    ]
    return "\n".join(lines) + f"\n\n{FOOTNOTE}"


def _percent(interval: Interval | None) -> str:
    if interval is None:
        return "not enough data"
    return f"{interval.value:+.1%} ({interval.low:+.1%} to {interval.high:+.1%})"


def _money(interval: Interval | None) -> str:
    if interval is None:
        return "not enough data"
    return f"{interval.value:+,.2f} ({interval.low:+,.2f} to {interval.high:+,.2f})"
