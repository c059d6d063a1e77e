"""The programme report: the interval maths as plain functions, the SQL on SQLite and
Postgres over a known population, and `equator report` on the terminal, as JSON and as
a page."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from activities.store import Store
from service.reports import programme_report
from service.uplift import mean_difference, rate_difference, wilson
from tests.reporting import T0, population, silence_step
from tests.servers import equator


def test_wilson_and_newcombe_give_the_published_intervals() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873, example (a): 56/70 against 48/80,
    # method 10 (the hybrid score interval): 0.0524 to 0.3339.
    low, high = wilson(56, 70)
    assert (round(low, 4), round(high, 4)) == (0.6918, 0.877)
    difference = rate_difference(56, 70, 48, 80)
    assert (round(difference.value, 4), round(difference.low, 4), round(difference.high, 4)) == (
        0.2,
        0.0524,
        0.3339,
    )


def test_a_difference_of_means_from_sums_and_squares() -> None:
    # Treated: 10 customers spending 0 or 20 (five each); control: 10 spending 0 or 10.
    estimate = mean_difference(100.0, 2000.0, 10, 50.0, 500.0, 10)
    assert estimate.value == 5.0
    # Sample variances 1000/9 and 250/9; Welch's standard error over 10 and 10.
    half = 1.959963984540054 * ((1000 / 9) / 10 + (250 / 9) / 10) ** 0.5
    assert estimate.low == pytest.approx(5.0 - half)
    assert estimate.high == pytest.approx(5.0 + half)


async def test_the_report_counts_each_group_and_what_the_treated_gained(store: Store) -> None:
    await population(store)
    report = await programme_report(store)
    first, second = report.steps

    assert (first.cause, first.step, first.step_name) == ("silence", 1, "we miss you")
    treated, control = first.treated, first.control
    assert (treated.customers, control.customers) == (60, 40)
    assert (treated.recovered, control.recovered) == (18, 4)
    assert (treated.responded, control.responded) == (12, 8)
    assert (treated.revenue, control.revenue) == (Decimal(840), Decimal(160))
    assert (treated.cost, control.cost) == (Decimal("3.00"), Decimal(0))
    assert first.cost_per_recovered == Decimal("3.00") / 18
    rate = first.incremental_recovery_rate
    assert rate is not None
    assert rate.value == pytest.approx(18 / 60 - 4 / 40)
    assert rate.low < rate.value < rate.high
    assert rate.low > 0  # 30% against 10%, on 60 and 40 customers: more than noise
    revenue = first.incremental_revenue_per_customer
    assert revenue is not None
    assert revenue.value == pytest.approx(840 / 60 - 160 / 40)

    assert (second.step, second.treated.customers, second.control.customers) == (2, 5, 2)
    assert second.incremental_recovery_rate is None  # not enough data
    assert second.cost_per_recovered is None

    since = T0 + timedelta(days=1)
    assert (await programme_report(store, since=since)).steps == [second]


async def test_a_step_is_known_by_its_name_wherever_a_care_ticket_puts_it(store: Store) -> None:
    async with store.transaction() as session:
        session.add(silence_step(1, 1, "we miss you", "0.05", held_back=False))
        session.add(silence_step(2, 1, "VIP care ticket", "5.00", held_back=False))
        session.add(silence_step(2, 2, "we miss you", "0.05", held_back=False))
        session.add(silence_step(3, 2, "we miss you", "0.05", held_back=True))
    steps = (await programme_report(store)).steps
    assert [(s.step, s.step_name, s.treated.customers, s.control.customers) for s in steps] == [
        (1, "VIP care ticket", 1, 0),
        (1, "we miss you", 2, 1),
    ]


async def test_equator_report_prints_the_table_and_the_json(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'e.db'}"
    store = Store(url)
    await store.migrate()
    await population(store)
    await store.close()
    environment = {"EQUATOR_DATABASE_URL": url}

    code, printed, _ = await equator("report", environment=environment)
    assert code == 0
    assert "| silence | 1 we miss you | 60 | 40 | 12 | 18 vs 4 | $840.00 | $3.00 |" in printed
    assert "+20.0% (" in printed
    assert "not enough data" in printed

    code, printed, _ = await equator(
        "report", "--json", "--since", "2026-11-03", environment=environment
    )
    assert code == 0
    document = json.loads(printed)
    assert document["since"] == "2026-11-03T00:00:00Z"
    [step] = document["steps"]
    assert (step["step"], step["incremental_recovery_rate"]) == (2, None)

    page = tmp_path / "report.html"
    code, printed, _ = await equator("report", "--html", str(page), environment=environment)
    assert (code, printed) == (0, f"wrote {page}\n")
    html = page.read_text()
    # Self-contained: plotly.js inlined, nothing to fetch.
    assert "plotly.js v" in html
    assert "<script src" not in html
    [chart] = re.findall(
        r'<script type="application/json" data-chart="chart-0">(.*?)</script>', html
    )
    treated, control, *_ = json.loads(chart)["data"]
    assert (treated["y"][0], control["y"][0]) == (18 / 60, 4 / 40)
    assert "<td>18 vs 4</td>" in html
