"""``equator fit``: the population's BG/NBD parameters (``workflows/alive.py``) by
maximum likelihood over every customer's purchases, from the store's ledger or a
history file, as of a moment; printed as the configuration that carries them.

Each customer counts as (repeat purchases, days from the first to the last, days from
the first to the moment). The fit works on the parameters' logarithms (all four are
positive) with Nelder-Mead from the paper's CDNOW estimates, then polishes with
L-BFGS-B.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from scipy.optimize import minimize
from sqlmodel import col, select

from activities.store import LedgerEvent, Store
from workflows.alive import AliveModel, log_likelihood

DAY = timedelta(days=1)
# Fader, Hardie and Lee's CDNOW estimates, moved from weeks to days: a start in the
# right region for a retailer's customers.
START = (0.243, 4.414 * 7, 0.793, 2.426)


class FitError(ValueError):
    pass


@dataclass(frozen=True)
class Summary:
    repeats: int
    recency: float
    age: float


def summaries(purchases: Iterable[tuple[str, datetime]], at: datetime) -> list[Summary]:
    """Per customer who had bought by ``at``: their repeats, recency and age in days.
    Purchases on the same day count once (the model counts buying occasions)."""
    days: dict[str, set[datetime]] = defaultdict(set)
    for customer_id, occurred_at in purchases:
        if occurred_at <= at:
            days[customer_id].add(occurred_at)
    found = []
    for times in days.values():
        first, last = min(times), max(times)
        occasions = {t.date() for t in times}
        found.append(Summary(len(occasions) - 1, (last - first) / DAY, (at - first) / DAY))
    return found


def fit(customers: Sequence[Summary], threshold: float = 0.5) -> AliveModel:
    """The parameters that make the customers' histories likeliest."""
    if len(customers) < 20 or not any(c.repeats for c in customers):
        raise FitError(
            f"{len(customers)} customers, {sum(1 for c in customers if c.repeats)} with a "
            "repeat purchase: too few to fit (at least 20 customers, some repeating)"
        )

    def negative(logs: Sequence[float]) -> float:
        r, alpha, a, b = (math.exp(v) for v in logs)
        try:
            return -sum(
                log_likelihood(r, alpha, a, b, c.repeats, c.recency, c.age) for c in customers
            )
        except (OverflowError, ValueError):
            return math.inf

    start = [math.log(v) for v in START]
    rough = minimize(negative, start, method="Nelder-Mead", options={"maxiter": 4000})
    best = minimize(negative, rough.x, method="L-BFGS-B")
    found = best if best.success and best.fun <= rough.fun else rough
    if not math.isfinite(found.fun):
        raise FitError("the fit did not converge")
    r, alpha, a, b = (math.exp(v) for v in found.x)
    return AliveModel(r=r, alpha=alpha, a=a, b=b, threshold=threshold)


async def ledger_purchases(store: Store) -> list[tuple[str, datetime]]:
    """Every purchase the journeys applied (the ledger)."""
    async with store.reading() as session:
        rows = await session.exec(
            select(LedgerEvent.customer_id, LedgerEvent.occurred_at).where(
                col(LedgerEvent.type) == "purchase"
            )
        )
        return list(rows.all())
