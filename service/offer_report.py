"""What the offers that learn did: per decision and offer, how many were made, how many
recovered the customer (with Wilson's 95% interval), and each offer's share of the
decision's sends week by week, so a marketer sees the learning shift towards what works.

One SQL query over the store's learned engagements (``engagement.decision``; treated
sends only, ghosts make no offer), grouped by day; the weeks are folded here.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import ColumnElement, case, distinct, func, literal, select
from sqlmodel import col

from activities.store import Engagement, EngagementCredit, Store
from service.uplift import wilson


class WeekShare(BaseModel):
    # The Monday the week starts on.
    week: date
    sent: int
    # Of the decision's sends that week.
    share: float


class OfferArmReport(BaseModel):
    decision: str
    offer_id: str
    sent: int
    recovered: int
    recovery_rate: float
    recovery_low: float
    recovery_high: float
    weeks: list[WeekShare]


async def offer_report(store: Store, since: datetime | None = None) -> list[OfferArmReport]:
    """Every learned decision's offers, by decision then offer."""
    credited = select(distinct(col(EngagementCredit.idempotency_key))).scalar_subquery()
    recovered = case((col(Engagement.idempotency_key).in_(credited), 1), else_=0)
    day = func.date(col(Engagement.sent_at))
    conditions: list[ColumnElement[bool]] = [
        col(Engagement.decision).is_not(None),
        col(Engagement.held_back).is_(False),
    ]
    if since is not None:
        conditions.append(col(Engagement.sent_at) >= since)
    query = (
        select(
            col(Engagement.decision),
            col(Engagement.offer_id),
            day,
            func.count(literal(1)),
            func.sum(recovered),
        )
        .where(*conditions)
        .group_by(col(Engagement.decision), col(Engagement.offer_id), day)
    )
    async with store.reading() as session:
        connection = await session.connection()
        rows = (await connection.execute(query)).all()
    return fold([(d, o or "", _day(at), int(n), int(r or 0)) for d, o, at, n, r in rows])


def _day(value: object) -> date:
    # SQLite answers date() with text, Postgres with a date.
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def fold(rows: list[tuple[str, str, date, int, int]]) -> list[OfferArmReport]:
    """Per-day counts of (decision, offer, day, sent, recovered) into each offer's totals
    and its weekly share of the decision's sends."""
    sent: dict[tuple[str, str], dict[date, int]] = defaultdict(lambda: defaultdict(int))
    recovered: dict[tuple[str, str], int] = defaultdict(int)
    per_week: dict[tuple[str, date], int] = defaultdict(int)
    for decision, offer_id, day, n, back in rows:
        week = day - timedelta(days=day.weekday())
        sent[decision, offer_id][week] += n
        recovered[decision, offer_id] += back
        per_week[decision, week] += n
    reports = []
    for (decision, offer_id), weeks in sorted(sent.items()):
        total, back = sum(weeks.values()), recovered[decision, offer_id]
        low, high = wilson(back, total)
        reports.append(
            OfferArmReport(
                decision=decision,
                offer_id=offer_id,
                sent=total,
                recovered=back,
                recovery_rate=back / total,
                recovery_low=low,
                recovery_high=high,
                weeks=[
                    WeekShare(week=week, sent=n, share=n / per_week[decision, week])
                    for week, n in sorted(weeks.items())
                ],
            )
        )
    return reports


def offer_table(reports: list[OfferArmReport]) -> str:
    """The offers that learn, for a terminal: a row per decision and offer."""
    lines = [
        "| decision | offer | sent | recovered | recovery rate | share of sends by week |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in reports:
        shares = ", ".join(f"{w.week:%m-%d} {w.share:.0%}" for w in r.weeks)
        rate = f"{r.recovery_rate:.1%} ({r.recovery_low:.1%} to {r.recovery_high:.1%})"
        lines.append(
            f"| {r.decision} | {r.offer_id} | {r.sent} | {r.recovered} | {rate} | {shares} |"
        )
    return "\n".join(lines)
